"""Start, stop and status order of a resource tree (rgmanager's _res_op_by_level).

A node starts before its children and stops after them. Children whose
types the parent's rule lists go by level; the rest ("default group") start
after them in config order and stop before them in reverse config order.
"""

from __future__ import annotations

from .model import Node

MAX_LEVEL = 100


def _level_groups(node: Node, phase: str) -> tuple[list[list[Node]], list[Node]]:
    """(children grouped by level, default group) for ``phase`` start|stop."""
    rule = node.rule
    levelled: dict[int, list[Node]] = {}
    default: list[Node] = []
    child_types = [c for c in rule.children if not c.forbid]
    for child in node.children:
        cr = rule.child(child.type)
        level = 0 if cr is None else (cr.start if phase == "start" else cr.stop)
        if level <= 0 or level > MAX_LEVEL:
            # decision 3 in docs/decisions.md: a type with a level for one phase only joins the
            # default group for the other phase instead of being skipped.
            default.append(child)
        else:
            levelled.setdefault(level, []).append(child)
    groups: list[list[Node]] = []
    for level in sorted(levelled):
        members = levelled[level]
        # Within one level: types in the order the rule lists them.
        rank = {c.type: i for i, c in enumerate(child_types)}
        ordered = sorted(range(len(members)), key=lambda i: (rank.get(members[i].type, 0), i))
        groups.append([members[i] for i in ordered])
    return groups, default


def child_start_order(node: Node) -> list[Node]:
    if not node.rule.children:
        return list(node.children)
    groups, default = _level_groups(node, "start")
    return [c for g in groups for c in g] + default


def child_stop_order(node: Node) -> list[Node]:
    if not node.rule.children:
        return list(reversed(node.children))
    groups, default = _level_groups(node, "stop")
    out = list(reversed(default))
    for g in groups:
        # Several children of one type stop in reverse config order; types
        # keep the rule's order within a level.
        by_type: dict[str, list[Node]] = {}
        for c in g:
            by_type.setdefault(c.type, []).append(c)
        for members in by_type.values():
            out.extend(reversed(members))
    return out


def start_order(node: Node) -> list[Node]:
    """Every node of the subtree, in the order ``start`` runs them."""
    out = [node]
    for c in child_start_order(node):
        out.extend(start_order(c))
    return out


def stop_order(node: Node) -> list[Node]:
    out: list[Node] = []
    for c in child_stop_order(node):
        out.extend(stop_order(c))
    out.append(node)
    return out


def status_order(node: Node) -> list[Node]:
    return start_order(node)
