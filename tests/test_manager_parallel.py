"""Independent services start and stop in parallel (a bounded pool); ``depend``
still orders them, and a service's own tree still runs in its order.

The LSB script sleeps on start and stop and writes when each sleep began and
ended, so the tests see how many ran at once (not only the time taken, which
depends on how busy the machine is).
"""

from __future__ import annotations

import time
from pathlib import Path

from rgmanager.agents.discovery import load_rules
from rgmanager.cluster.local import LocalCluster
from rgmanager.loader import load
from rgmanager.manager import Manager

from .manager_helpers import LSB, cluster_conf, script, wait_for

RULES = load_rules()
SLEEP = 0.3
COUNT = 20


def slow_lsb(directory: Path) -> Path:
    """The shared LSB test script, sleeping SLEEP seconds in start and stop."""
    path = directory / "lsb-slow"
    span = 'date +%s.%N >> "$d/$n.$1.span"'
    path.write_text(LSB.replace('start) echo start', f'start) {span}; sleep {SLEEP}; {span}; '
                                'echo start')
                    .replace('stop) echo stop', f'stop) {span}; sleep {SLEEP}; {span}; '
                             'echo stop'))
    path.chmod(0o755)
    return path


def manager(tmp: Path, body: str, state: Path) -> Manager:
    conf = tmp / "cluster.conf"
    conf.write_text(cluster_conf(body, rm_attrs='status_poll_interval="60"'))
    return Manager(load(conf, RULES), LocalCluster("node1"), monitor=False,
                   extra_env={"HA_RSCTMP": str(state)})


def all_started(m: Manager) -> bool:
    return all(s["state"] == "started" for s in m.status()["services"])


def ops(state: Path, op: str) -> list[str]:
    return [line.split()[1] for line in (state / "order.log").read_text().splitlines()
            if line.startswith(op + " ")]


def most_at_once(state: Path, op: str) -> int:
    """The largest number of ``op`` runs that were sleeping at the same time."""
    edges: list[tuple[float, int]] = []
    for f in state.glob(f"*.{op}.span"):
        times = [float(t) for t in f.read_text().split()]
        for begin, end in zip(times[::2], times[1::2], strict=True):
            edges += [(begin, 1), (end, -1)]
    now = best = 0
    for _, step in sorted(edges):
        now += step
        best = max(best, now)
    return best


def test_independent_services_start_and_stop_in_parallel(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    lsb = slow_lsb(tmp_path)
    body = "".join(f'<service name="s{i:02d}">{script(f"s{i:02d}", lsb, interval=60)}'
                   "</service>" for i in range(COUNT))
    m = manager(tmp_path, body, state)
    serial = COUNT * SLEEP
    began = time.monotonic()
    m.start()
    try:
        assert wait_for(lambda: all_started(m) and m.wait_quiet(1), timeout=60)
        took = time.monotonic() - began
        print(f"TIMING start {COUNT} x {SLEEP}s: {took:.2f}s (serial {serial:.1f}s)")
        assert took < serial, took
        assert most_at_once(state, "start") >= 4
        assert sorted(ops(state, "start")) == [f"s{i:02d}" for i in range(COUNT)]
    finally:
        began = time.monotonic()
        m.shutdown(stop_services=True)
        took = time.monotonic() - began
    print(f"TIMING stop {COUNT} x {SLEEP}s: {took:.2f}s (serial {serial:.1f}s)")
    assert took < serial, took
    assert most_at_once(state, "stop") >= 4
    assert not any(state.glob("*.on"))


def test_depend_chain_starts_in_order_and_stops_in_reverse(tmp_path: Path) -> None:
    """c depends on b, b on a: a starts first and stops last, even with
    independent services starting and stopping around them."""
    state = tmp_path / "state"
    state.mkdir()
    lsb = slow_lsb(tmp_path)
    body = (f'<service name="c" depend="service:b">{script("c", lsb, interval=60)}</service>'
            f'<service name="b" depend="service:a">{script("b", lsb, interval=60)}</service>'
            f'<service name="a">{script("a", lsb, interval=60)}</service>'
            + "".join(f'<service name="x{i}">{script(f"x{i}", lsb, interval=60)}</service>'
                      for i in range(4)))
    m = manager(tmp_path, body, state)
    m.start()
    try:
        assert wait_for(lambda: all_started(m) and m.wait_quiet(1), timeout=60)
        started = [n for n in ops(state, "start") if n in "abc"]
        assert started == ["a", "b", "c"]
    finally:
        m.shutdown(stop_services=True)
    stopped = [n for n in ops(state, "stop") if n in "abc"]
    assert stopped == ["c", "b", "a"]


def test_a_service_tree_still_runs_in_its_order(tmp_path: Path) -> None:
    """Parallel services, but inside one service the children start in tree
    order and stop in reverse."""
    state = tmp_path / "state"
    state.mkdir()
    lsb = slow_lsb(tmp_path)
    body = "".join(
        f'<service name="t{i}">{script(f"t{i}p", lsb, interval=60).replace("</script>", "")}'
        f'{script(f"t{i}c", lsb, interval=60)}</script></service>' for i in range(4))
    m = manager(tmp_path, body, state)
    m.start()
    try:
        assert wait_for(lambda: all_started(m) and m.wait_quiet(1), timeout=60)
    finally:
        m.shutdown(stop_services=True)
    starts, stops = ops(state, "start"), ops(state, "stop")
    for i in range(4):
        assert starts.index(f"t{i}p") < starts.index(f"t{i}c")
        assert stops.index(f"t{i}c") < stops.index(f"t{i}p")
