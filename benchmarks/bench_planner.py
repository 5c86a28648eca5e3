"""The planner at scale: placement and recovery of N services on M nodes.

Run: .venv/bin/python -m benchmarks.bench_planner [--repeats 5] [--nodes 32]
     [--services 1000 10000]

For each size it prints min / median / max over the repeats of:

- **initial placement**: one planner step, every node joins an empty table
  and every service is placed (the step that emits N starts);
- **settle**: the whole boot as a cluster lives it, that step plus one step
  per start completion (N + 1 planner steps) until nothing is pending;
- **node-down**: one planner step, the busiest node leaves a settled
  cluster and its services are taken over elsewhere (fencing off);
- **node-down, fencing** and **fenced**: the same loss with fencing on
  (``PlanModel.fencing``): the step that puts the node's services in
  ``recovering`` to wait for its fence, then the ``NodeFenced`` step that
  takes them over; together they are what a loss costs the planner then.

The services mix what a real configuration has: M/8 exclusive services,
each restricted to a node of its own, and on the other nodes services that
each prefer a node (service i: an ordered domain of four nodes starting at
node i mod M'; one in ten a restricted pair of nodes, one in ten an
unordered group of four, one in a hundred no domain), so every node runs
about N/M services. rgmanager does no load balancing: services without a
domain all go to the lowest node id, so that node holds more; a node-down
costs time per service it moves, printed with the figures. Times are CPU
time of this process (the machine may be shared), min/median/max.

Then a line per measure gives the growth from the smallest to the largest
size per service (1.0 = linear), and a line compares with the goals (initial
placement of 1,000 services on 32 nodes <= 0.2 s, node-down <= 10 ms, with
fencing node-down + fenced <= 10 ms).
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import replace
from types import MappingProxyType

from rgmanager.cluster.base import Membership
from rgmanager.config.model import DomainNode, FailoverDomain
from rgmanager.planner import (
    Event,
    NodeFenced,
    NodesChanged,
    PlanModel,
    ServiceSpec,
    Start,
    StartDone,
    plan,
)
from rgmanager.state import Table

GOAL_PLACEMENT_S = 0.2  # 1,000 services on 32 nodes
GOAL_NODE_DOWN_S = 0.010


def build_model(services: int, nodes: int) -> PlanModel:
    names = [f"node{i}" for i in range(1, nodes + 1)]
    exclusives = max(1, nodes // 8)
    regular = names[:nodes - exclusives]  # the exclusive services have nodes of their own

    def around(k: int, width: int) -> list[str]:
        return [regular[(k + j) % len(regular)] for j in range(width)]

    ordered = [FailoverDomain(f"prefer{k}", ordered=True, nodes=tuple(
        DomainNode(n, p) for p, n in enumerate(around(k, 4), 1))) for k in range(len(regular))]
    unordered = [FailoverDomain(f"group{k}", nodes=tuple(
        DomainNode(n) for n in around(k, 4))) for k in range(len(regular))]
    pairs = [FailoverDomain(f"pair{k}", restricted=True, nodes=tuple(
        DomainNode(n) for n in around(k, 2))) for k in range(len(regular))]
    specs = {}
    for j, node in enumerate(names[len(regular):]):
        name = f"service:excl{j:06d}"
        specs[name] = ServiceSpec(name, exclusive=True, domain=FailoverDomain(
            f"own{j}", ordered=True, restricted=True, nodes=(DomainNode(node, 1),)))
    for i in range(services - exclusives):
        k = i % len(regular)
        domain: FailoverDomain | None = ordered[k]
        if i % 10 == 0:
            domain = pairs[k]
        elif i % 100 == 1:
            domain = None
        elif i % 10 == 1:
            domain = unordered[k]
        name = f"service:svc{i:06d}"
        specs[name] = ServiceSpec(name, domain=domain)
    return PlanModel(MappingProxyType(specs),
                     MappingProxyType({n: i for i, n in enumerate(names, 1)}))


def boot(model: PlanModel) -> tuple[Table, Membership, int]:
    """Place and start everything; returns the settled table and the step count."""
    members = tuple(sorted(model.node_ids, key=model.nodeid))
    membership = Membership(members, True)
    table = Table()
    clock = 0.0
    queue: deque[Event] = deque([NodesChanged(clock, joined=members)])
    steps = 0
    while queue:
        p = plan(model, table, membership, queue.popleft())
        steps += 1
        table = p.table
        for a in p.actions:
            if isinstance(a, Start):
                clock += 1.0
                queue.append(StartDone(clock, a.service, a.node, True))
    return table, membership, steps


def timed(fn: Callable[[], object], repeats: int) -> list[float]:
    out = []
    for _ in range(repeats):
        t0 = time.process_time()
        fn()
        out.append(time.process_time() - t0)
    return out


def fmt(times: list[float]) -> str:
    ms = [t * 1000 for t in times]
    return f"min {min(ms):9.2f} ms  median {statistics.median(ms):9.2f} ms  " \
           f"max {max(ms):9.2f} ms"


def measure(services: int, nodes: int, repeats: int) -> dict[str, list[float]]:
    model = build_model(services, nodes)
    members = tuple(sorted(model.node_ids, key=model.nodeid))
    joined = NodesChanged(0.0, joined=members)
    placement = timed(lambda: plan(model, Table(), Membership(members, True), joined), repeats)
    settle = timed(lambda: boot(model), repeats)
    table, membership, steps = boot(model)
    unplaced = sum(1 for ss in table if ss.state != "started")
    print(f"  N={services} M={nodes}: boot took {steps} planner steps; "
          f"{services - unplaced} started, {unplaced} not")
    owned = Counter(ss.owner for ss in table if ss.owner is not None)
    down, moved = owned.most_common(1)[0]  # the busiest node: the most to take over
    after = Membership(tuple(n for n in members if n != down), True)
    event = NodesChanged(1e6, left=(down,))
    node_down = timed(lambda: plan(model, table, after, event), repeats)
    print(f"  node-down of {down} takes over {moved} services")
    fencing = replace(model, fencing=True)
    waiting = plan(fencing, table, after, event).table
    assert waiting.awaiting_fence == (down,)
    fence_wait = timed(lambda: plan(fencing, table, after, event), repeats)
    fenced_event = NodeFenced(1e6 + 1, down, "agent:power/pdu")
    fenced = timed(lambda: plan(fencing, waiting, after, fenced_event), repeats)
    return {"initial placement": placement, "settle (boot)": settle, "node-down": node_down,
            "node-down, fencing": fence_wait, "fenced": fenced}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--nodes", type=int, default=32)
    ap.add_argument("--services", type=int, nargs="+", default=[1000, 10000])
    args = ap.parse_args(argv)
    sizes = sorted(set(args.services))
    results = {}
    for n in sizes:
        print(f"measuring N={n} services on M={args.nodes} nodes ({args.repeats} repeats)")
        results[n] = measure(n, args.nodes, args.repeats)
    print()
    for n in sizes:
        for what, times in results[n].items():
            print(f"N={n:>6} M={args.nodes}  {what:<18} {fmt(times)}")
    if len(sizes) > 1:
        lo, hi = sizes[0], sizes[-1]
        print(f"\ngrowth from N={lo} to N={hi} ({hi / lo:g}x the services); time per service "
              "at the larger size / at the smaller (1.0 = linear):")
        for what in results[lo]:
            a = statistics.median(results[lo][what]) / lo
            b = statistics.median(results[hi][what]) / hi
            print(f"  {what:<18} {b / a:5.2f}")
    if 1000 in results and args.nodes == 32:
        p = statistics.median(results[1000]["initial placement"])
        d = statistics.median(results[1000]["node-down"])
        f = statistics.median(results[1000]["node-down, fencing"]) + \
            statistics.median(results[1000]["fenced"])
        print(f"\ngoal (N=1000, M=32): initial placement {p * 1000:.1f} ms (goal <= "
              f"{GOAL_PLACEMENT_S * 1000:.0f} ms: {'met' if p <= GOAL_PLACEMENT_S else 'MISSED'}"
              f"), node-down {d * 1000:.2f} ms (goal <= {GOAL_NODE_DOWN_S * 1000:.0f} ms: "
              f"{'met' if d <= GOAL_NODE_DOWN_S else 'MISSED'}), with fencing node-down + "
              f"fenced {f * 1000:.2f} ms ({'met' if f <= GOAL_NODE_DOWN_S else 'MISSED'})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
