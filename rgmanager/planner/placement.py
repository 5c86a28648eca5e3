"""Where a service may run: failover-domain scores, exclusivity, tie-breaks.

Scores follow rgmanager's node_should_start (ILLEGAL 0, GOOD 1, BETTER 2,
BEST 3) with decision 7 in docs/decisions.md: ties go to the lowest node id, and in an ordered
domain a member without a priority ranks below every prioritised member.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass

from ..state import ServiceState, State, Table
from .model import PlanModel, ServiceSpec

ILLEGAL, GOOD, BETTER, BEST = 0, 1, 2, 3
SCORE_NAMES = {ILLEGAL: "ILLEGAL", GOOD: "GOOD", BETTER: "BETTER", BEST: "BEST"}
NO_PRIORITY = 101  # ranks below every valid priority (1..100)


@dataclass(frozen=True)
class Candidate:
    node: str
    score: int
    eligible: bool
    reason: str

    def line(self, chosen: bool) -> str:
        mark = "chosen" if chosen else ("eligible" if self.eligible else "not eligible")
        return f"{self.node}: {SCORE_NAMES[self.score]} ({self.reason}) -> {mark}"


def _prio(p: int) -> int:
    return p if 1 <= p <= 100 else NO_PRIORITY


def score(spec: ServiceSpec, node: str, online: Collection[str], ss: ServiceState | None = None
          ) -> tuple[int, str]:
    if node not in online:
        return ILLEGAL, "offline"
    d = spec.domain
    if d is None:
        return BEST, "no failover domain"
    online_members = [m for m in d.nodes if m.name in online]
    me = d.member(node)
    if me is None:
        if d.restricted:
            return ILLEGAL, f"not in restricted domain {d.name}"
        if not online_members:
            return BEST, f"no member of domain {d.name} online"
        return GOOD, f"not in domain {d.name}"
    result, why = BEST, f"member of domain {d.name}"
    if d.ordered:
        best = min(_prio(m.priority) for m in online_members)
        mine = _prio(me.priority)
        prio_text = f"priority {me.priority}" if me.priority else "no priority"
        if mine == best:
            result, why = BEST, f"domain {d.name} {prio_text}, best online"
        else:
            result, why = BETTER, f"domain {d.name} {prio_text}, a better member is online"
    if d.nofailback and ss is not None and ss.state == State.STARTED and ss.owner in online \
            and d.member(ss.owner or "") is not None:
        if node == ss.owner:
            return BEST, f"nofailback: current owner in domain {d.name}"
        if result == BEST:
            return BETTER, f"nofailback: {ss.owner} keeps it"
    return result, why


def _exclusive_conflict(model: PlanModel, spec: ServiceSpec, node: str, table: Table
                        ) -> str | None:
    others = [s for s in table if s.occupies == node and s.name != spec.name]
    if spec.exclusive and others:
        return f"exclusive, node runs {others[0].name}"
    for s in others:
        other = model.services.get(s.name)
        if other is not None and other.exclusive:
            return f"node runs exclusive {s.name}"
    return None


def candidates(model: PlanModel, spec: ServiceSpec, table: Table, online: Sequence[str],
               exclude: Collection[str] = ()) -> list[Candidate]:
    ss = table.get(spec.name)
    out = []
    nodes = sorted(set(model.node_ids) | set(online), key=model.nodeid)
    for node in nodes:
        sc, why = score(spec, node, online, ss)
        eligible = sc > ILLEGAL
        if eligible and node in exclude:
            eligible, why = False, why + "; excluded (already tried or current owner)"
        if eligible:
            conflict = _exclusive_conflict(model, spec, node, table)
            if conflict:
                eligible, why = False, why + f"; {conflict}"
        out.append(Candidate(node, sc, eligible, why))
    return out


def best(cands: Sequence[Candidate], model: PlanModel) -> Candidate | None:
    eligible = [c for c in cands if c.eligible]
    if not eligible:
        return None
    return min(eligible, key=lambda c: (-c.score, model.nodeid(c.node)))
