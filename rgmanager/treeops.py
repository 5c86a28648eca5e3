"""Run start, stop and status over a resource tree through the executor.

The ordering comes from ``tree.order``; this module adds rgmanager's
failure semantics: start aborts at the first failure, stop is best effort
(every node is tried, the parent's stop still runs), status checks a node's
children only when the node itself passed.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Container, Mapping
from dataclasses import dataclass, field

from .executor import ActionRequest, ActionResult, describe_rc, run_action
from .tree.model import Node
from .tree.order import child_start_order, start_order, stop_order

log = logging.getLogger(__name__)

Runner = Callable[[ActionRequest], ActionResult]


@dataclass
class OpRecord:
    node: Node
    action: str
    result: ActionResult | None  # None: not run (noop, or action not declared)


@dataclass
class TreeOpResult:
    records: list[OpRecord] = field(default_factory=list)
    failed: list[Node] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failed


class TreeOps:
    """Executes tree operations; ``noop`` records what would run instead."""

    def __init__(self, runner: Runner = run_action, *, enforce_timeouts: bool = False,
                 noop: bool = False, extra_env: Mapping[str, str] | None = None) -> None:
        self.runner = runner
        self.enforce_timeouts = enforce_timeouts
        self.noop = noop
        self.extra_env = dict(extra_env or {})

    def request(self, node: Node, action: str, depth: int = 0) -> ActionRequest:
        act = node.action(action, depth)
        enforce = action in ("status", "monitor") or node.enforce_timeouts or \
            self.enforce_timeouts
        return ActionRequest(
            agent=node.rule.agent,
            action=action,
            params=node.params(),
            resource_type=node.type,
            instance=node.name,
            ocf_root=node.rule.ocf_root,
            check_level=depth if action in ("status", "monitor") else 0,
            timeout=float(act.timeout) if act and act.timeout else None,
            enforce_timeout=enforce,
            extra_env=self.extra_env,
        )

    def run(self, node: Node, action: str, depth: int = 0) -> OpRecord:
        if action == "status" and not node.rule.has_action("status") \
                and node.rule.has_action("monitor"):
            # OCF agents from elsewhere (Pacemaker's) declare only monitor: a
            # status check of one is its monitor, not a skipped step.
            action = "monitor"
        if not node.rule.has_action(action):
            return OpRecord(node, action, None)  # undeclared action counts as success
        if self.noop:
            return OpRecord(node, action, None)
        result = self.runner(self.request(node, action, depth))
        level = logging.DEBUG if result.ok else logging.WARNING
        log.log(level, "%s on %s returned %d (%s)", action, node.name, result.rc,
                describe_rc(result.rc))
        return OpRecord(node, action, result)

    def start(self, top: Node, skip: Container[Node] = ()) -> TreeOpResult:
        out = TreeOpResult()
        for node in start_order(top):
            if any(n in skip for n in (node, *node.ancestors())):
                continue
            rec = self.run(node, "start")
            out.records.append(rec)
            if rec.result is not None and not rec.result.ok:
                out.failed.append(node)
                break
        return out

    def stop(self, top: Node, skip: Container[Node] = ()) -> TreeOpResult:
        out = TreeOpResult()
        for node in stop_order(top):
            if any(n in skip for n in (node, *node.ancestors())):
                continue
            rec = self.run(node, "stop")
            out.records.append(rec)
            if rec.result is not None and not rec.result.ok:
                out.failed.append(node)
        return out

    def status(self, top: Node, depth: int = 0, skip: Container[Node] = ()) -> TreeOpResult:
        """Check ``top`` and, if it passes, its children; an independent
        subtree's failure does not stop the check of its siblings."""
        out = TreeOpResult()
        self._status(top, depth, skip, out)
        return out

    def _status(self, node: Node, depth: int, skip: Container[Node], out: TreeOpResult) -> bool:
        if node in skip:
            return True
        rec = self.run(node, "status", depth)
        out.records.append(rec)
        if rec.result is not None and not rec.result.ok:
            out.failed.append(node)
            return False
        for child in child_start_order(node):
            if not self._status(child, depth, skip, out) and not child.independent:
                return False
        return True
