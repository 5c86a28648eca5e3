"""Where a service may run: failover-domain scores, exclusivity, tie-breaks.

Scores follow rgmanager's node_should_start (ILLEGAL 0, GOOD 1, BETTER 2,
BEST 3) with decision 7 in docs/decisions.md: ties go to the lowest node id, and in an ordered
domain a member without a priority ranks below every prioritised member.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence, Set
from dataclasses import dataclass
from types import MappingProxyType

from ..config.model import DomainNode, FailoverDomain
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


@dataclass(frozen=True)
class DomainView:
    """A failover domain seen against the online nodes, worked out once per
    planner step instead of once per candidate node."""

    members: Mapping[str, DomainNode]  # lower-cased name -> member (as FailoverDomain.member)
    any_online: bool
    best: int  # the best priority among online members (NO_PRIORITY if none ranks)

    @classmethod
    def of(cls, d: FailoverDomain, online: Collection[str]) -> DomainView:
        members: dict[str, DomainNode] = {}
        for m in d.nodes:
            members.setdefault(m.name.lower(), m)
        prios = [_prio(m.priority) for m in d.nodes if m.name in online]
        return cls(MappingProxyType(members), bool(prios), min(prios, default=NO_PRIORITY))


def score(spec: ServiceSpec, node: str, online: Collection[str], ss: ServiceState | None = None,
          view: DomainView | None = None) -> tuple[int, str]:
    """rgmanager's node_should_start for one node. ``view``: the service's
    domain against ``online``, when the caller has it already."""
    if node not in online:
        return ILLEGAL, "offline"
    d = spec.domain
    if d is None:
        return BEST, "no failover domain"
    if view is None:
        view = DomainView.of(d, online)
    me = view.members.get(node.lower())
    if me is None:
        if d.restricted:
            return ILLEGAL, f"not in restricted domain {d.name}"
        if not view.any_online:
            return BEST, f"no member of domain {d.name} online"
        return GOOD, f"not in domain {d.name}"
    result, why = BEST, f"member of domain {d.name}"
    if d.ordered:
        mine = _prio(me.priority)
        prio_text = f"priority {me.priority}" if me.priority else "no priority"
        if mine == view.best:
            result, why = BEST, f"domain {d.name} {prio_text}, best online"
        else:
            result, why = BETTER, f"domain {d.name} {prio_text}, a better member is online"
    if d.nofailback and ss is not None and ss.state == State.STARTED and ss.owner in online \
            and (ss.owner or "").lower() in view.members:
        if node == ss.owner:
            return BEST, f"nofailback: current owner in domain {d.name}"
        if result == BEST:
            return BETTER, f"nofailback: {ss.owner} keeps it"
    return result, why


#: Who occupies a node (``ServiceState.occupies``): a table's index, or a
#: planner step's draft, which keeps it current as the step changes states.
Occupants = Callable[[str], Set[str]]


def exclusive_conflict(model: PlanModel, spec: ServiceSpec, node: str, occupants: Occupants
                       ) -> str | None:
    """Why exclusivity keeps ``spec`` off ``node`` (None: it does not). Looks
    at that node's occupants only; names the first in name order, as the
    table lists them."""
    on = occupants(node)
    if not on:
        return None
    if spec.exclusive:
        others = on - {spec.name} if spec.name in on else on
        return f"exclusive, node runs {min(others)}" if others else None
    excl = model.exclusive
    if not excl or on.isdisjoint(excl):
        return None
    small, large = (excl, on) if len(excl) < len(on) else (on, excl)
    hits = [n for n in small if n in large and n != spec.name]
    return f"node runs exclusive {min(hits)}" if hits else None


class Placement:
    """Candidate nodes for services during one planner step.

    The online set, the node order and the domains' views are worked out
    once per event, not per candidate, and an exclusivity check looks at one
    node's occupants (kept current by the caller), so placing N services on
    M nodes costs O(N x M).
    """

    def __init__(self, model: PlanModel, occupants: Occupants, online: Sequence[str],
                 unfenced: Collection[str] = ()) -> None:
        self.model = model
        self.occupants = occupants
        self.online = frozenset(online)
        #: Members that rejoined awaiting fence: not online for placement; the
        #: explanations say why.
        self.unfenced = frozenset(unfenced)
        if self.online.issubset(model.node_ids):
            self.nodes = model.node_order
        else:  # a member the configuration does not name (it is being reloaded)
            self.nodes = tuple(sorted(sorted(set(model.node_ids) | self.online),
                                      key=model.nodeid))
        self._views: dict[int, tuple[FailoverDomain, DomainView]] = {}

    def view(self, d: FailoverDomain) -> DomainView:
        hit = self._views.get(id(d))
        if hit is None or hit[0] is not d:
            hit = (d, DomainView.of(d, self.online))
            self._views[id(d)] = hit
        return hit[1]

    def score(self, spec: ServiceSpec, node: str, ss: ServiceState | None = None
              ) -> tuple[int, str]:
        view = self.view(spec.domain) if spec.domain is not None else None
        return score(spec, node, self.online, ss, view)

    def candidates(self, spec: ServiceSpec, ss: ServiceState | None,
                   exclude: Collection[str] = ()) -> list[Candidate]:
        view = self.view(spec.domain) if spec.domain is not None else None
        out = []
        for node in self.nodes:
            sc, why = score(spec, node, self.online, ss, view)
            if node in self.unfenced:
                why = "rejoined, not fenced yet"
            eligible = sc > ILLEGAL
            if eligible and node in exclude:
                eligible, why = False, why + "; excluded (already tried or current owner)"
            if eligible:
                conflict = exclusive_conflict(self.model, spec, node, self.occupants)
                if conflict:
                    eligible, why = False, why + f"; {conflict}"
            out.append(Candidate(node, sc, eligible, why))
        return out


def candidates(model: PlanModel, spec: ServiceSpec, table: Table, online: Sequence[str],
               exclude: Collection[str] = ()) -> list[Candidate]:
    """Every node's verdict for ``spec`` (O(table) to set up: for one-off
    questions; a planner step keeps one :class:`Placement`)."""
    occupants = table.index.occupants
    return Placement(model, lambda node: occupants.get(node, frozenset()), online).candidates(
        spec, table.get(spec.name), exclude)


def best(cands: Sequence[Candidate], model: PlanModel) -> Candidate | None:
    eligible = [c for c in cands if c.eligible]
    if not eligible:
        return None
    return min(eligible, key=lambda c: (-c.score, model.nodeid(c.node)))
