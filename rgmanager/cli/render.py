"""Text and JSON views of rules, resources, trees, domains and dry runs (rg_test's output).

The text follows rgmanager's rg_test layout so administrators can compare;
the JSON carries the same facts for scripts. Every attribute value shown
goes through :func:`rgmanager.config.model.redact_value`: passwords and the
secrets inside mount options never reach a terminal or a JSON consumer.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..agents.discovery import RuleSet
from ..agents.rules import ResourceRule
from ..cluster.base import Membership
from ..config.model import ClusterConfig, redact, redact_value
from ..planner.dryrun import DryRunResult
from ..state import ServiceState, Table
from ..tree.model import Forest, Node, Resource


def rule_text(rule: ResourceRule) -> str:
    lines = [f'Resource Rules for "{rule.type}"']
    if rule.maxinstances:
        lines.append(f"Max instances: {rule.maxinstances}")
    lines.append(f"Agent: {rule.agent}")
    flags = ("init_on_add " if rule.init_on_add else "") + \
        ("destroy_on_delete " if rule.destroy_on_delete else "")
    lines.append(f"Flags: {flags}")
    lines.append("Attributes:")
    for p in rule.params:
        fl = [f for f in ("primary", "unique", "required", "reconfig") if getattr(p, f)]
        if p.inherit:
            fl.append("inherit")
        line = f"  {p.name}"
        if fl:
            line += f" [ {' '.join(fl)} ]"
        if p.inherit:
            line += f' default="{p.inherit}"'
        elif p.default is not None:
            line += f' default="{p.default}"'
        lines.append(line)
    lines.append("Actions:")
    for a in rule.actions:
        lines.append(f"  {a.name}")
        lines.append(f"    Timeout (hint): {a.timeout} seconds")
        if a.name in ("status", "monitor"):
            lines.append(f"    OCF Check Depth (status/monitor): {a.depth} seconds")
        if a.interval:
            lines.append(f"    Check Interval: {a.interval} seconds")
    lines.append("Explicitly defined child resource types:")
    if not rule.children:
        lines.append("  - None -")
    for c in rule.children:
        if c.forbid:
            lines.append(f"  {c.type} (forbidden)")
        elif c.start or c.stop:
            lines.append(f"  {c.type} [ startlevel = {c.start} stoplevel = {c.stop} ] ")
        else:
            lines.append(f"  {c.type}")
    lines.append("")
    return "\n".join(lines)


def rule_json(rule: ResourceRule) -> dict[str, object]:
    return {
        "type": rule.type,
        "agent": rule.agent,
        "maxinstances": rule.maxinstances,
        "parameters": [{"name": p.name, "primary": p.primary, "unique": p.unique,
                        "required": p.required, "inherit": p.inherit, "reconfig": p.reconfig,
                        "default": p.default, "type": p.type} for p in rule.params],
        "actions": [{"name": a.name, "timeout": a.timeout, "interval": a.interval,
                     "depth": a.depth} for a in rule.actions],
        "children": [{"type": c.type, "start": c.start, "stop": c.stop, "forbid": c.forbid}
                     for c in rule.children],
    }


def rules_text(rules: RuleSet) -> str:
    return "\n".join(rule_text(r) for r in rules)


def resource_text(res: Resource) -> str:
    flags = " [INLINE]" if res.inline else ""
    lines = [f"Resource type: {res.type}{flags}"]
    maxi = res.rule.maxinstances
    lines.append(f"Instances: {res.refs}/{maxi}" if maxi else f"Instances: {res.refs}")
    lines.append(f"Agent: {res.rule.agent}")
    lines.append("Attributes:")
    for p in res.rule.params:
        fl = [f for f in ("primary", "unique", "required", "reconfig") if getattr(p, f)]
        if p.name in res.attrs:
            value = redact_value(p.name, res.attrs[p.name])
        elif p.name in res.inherits:
            value = None
            fl.append(f'inherit("{res.inherits[p.name]}")')
        else:
            continue
        line = f"  {p.name} = {value if value is not None else '(inherited)'}"
        if fl:
            line += f" [ {' '.join(fl)} ]"
        lines.append(line)
    lines.append("")
    return "\n".join(lines)


def node_flags(node: Node) -> list[str]:
    flags = []
    if node.noncritical:
        flags.append("NON-CRITICAL")
    elif node.independent:
        flags.append("INDEPENDENT")
    if node.enforce_timeouts:
        flags.append("ENFORCE-TIMEOUTS")
    return flags


def tree_text(node: Node, indent: int = 0) -> str:
    pad = "  " * indent
    flags = node_flags(node)
    head = f"{pad}{node.type}"
    if flags:
        head += f" [ {' '.join(flags)} ]"
    lines = [head + " {"]
    for p in node.rule.params:
        value = node.attr(p.name)
        shown = "(null)" if value is None else redact_value(p.name, value)
        lines.append(f'{pad}  {p.name} = "{shown}";')
    for c in node.children:
        lines.append(tree_text(c, indent + 1))
    lines.append(pad + "}")
    return "\n".join(lines)


def tree_json(node: Node) -> dict[str, object]:
    return {
        "name": node.name,
        "type": node.type,
        "flags": node_flags(node),
        "parameters": redact(node.params()),
        "children": [tree_json(c) for c in node.children],
    }


def domains_text(config: ClusterConfig) -> str:
    lines = []
    for d in config.rm.domains:
        lines.append(f"Failover domain: {d.name}")
        fl = [n for n, on in (("Ordered", d.ordered), ("Restricted", d.restricted),
                               ("No Failback", d.nofailback)) if on]
        lines.append(f"Flags: {' '.join(fl) if fl else 'none'}")
        for m in d.nodes:
            node = config.node(m.name)
            nid = node.nodeid if node else -1
            lines.append(f"  Node {m.name} (id {nid}, priority {m.priority})")
    return "\n".join(lines)


def test_text(config: ClusterConfig, forest: Forest) -> str:
    parts = ["=== Resources List ==="]
    parts += [resource_text(r) for r in forest.resources]
    parts.append("=== Resource Tree ===")
    parts += [tree_text(s) for s in forest.services]
    parts.append("=== Failover Domains ===")
    dt = domains_text(config)
    if dt:
        parts.append(dt)
    parts.append("=== Event Triggers ===")
    return "\n".join(parts) + "\n"


def test_json(config: ClusterConfig, forest: Forest) -> dict[str, object]:
    return {
        "cluster": {"name": config.name, "config_version": config.config_version},
        "nodes": [{"name": n.name, "nodeid": n.nodeid, "votes": n.votes} for n in config.nodes],
        "resources": [{"name": r.name, "type": r.type, "inline": r.inline, "refs": r.refs,
                       "attributes": redact(r.attrs),
                       "inherit": dict(r.inherits)} for r in forest.resources],
        "services": [tree_json(s) for s in forest.services],
        "domains": [{"name": d.name, "ordered": d.ordered, "restricted": d.restricted,
                     "nofailback": d.nofailback,
                     "nodes": [{"name": m.name, "priority": m.priority} for m in d.nodes]}
                    for d in config.rm.domains],
    }


def changed_attr_text(name: str, attr: str, old: str | None, new: str | None) -> str:
    """One line of ``rg_test delta``'s changed resources, secrets masked."""
    def shown(v: str | None) -> str:
        return str(v) if v is None else redact_value(attr, v)
    return f"{name}: {attr}: {shown(old)} -> {shown(new)}"


def redact_changes(changes: Mapping[str, Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """``delta --json``'s resources_changed ({name: {attr: [old, new]}}), secrets masked."""
    return {name: {attr: [v if v is None else redact_value(attr, str(v)) for v in pair]
                   for attr, pair in attrs.items()}
            for name, attrs in changes.items()}


# -- dry runs (rg_test simulate) ------------------------------------------------
def members_line(m: Membership) -> str:
    names = " ".join(m.members) if m.members else "(none)"
    return f"Members: {names} ({'quorate' if m.quorate else 'no quorum'})"


def table_lines(table: Table) -> list[str]:
    """One aligned line per service: name, state, owner, then flags / last owner."""
    rows = []
    for ss in table:
        extra = [f for f in ("frozen", "partial") if getattr(ss, f)]
        if ss.owner is None and ss.last_owner:
            extra.append(f"last owner {ss.last_owner}")
        if ss.reason:
            extra.append(ss.reason)
        rows.append((ss.name, str(ss.state), ss.owner or "-", ", ".join(extra)))
    if not rows:
        return ["  (no services)"]
    w0 = max(len(r[0]) for r in rows)
    w1 = max(len(r[1]) for r in rows)
    w2 = max(len(r[2]) for r in rows)
    return [f"  {a:<{w0}}  {b:<{w1}}  {c:<{w2}}  {d}".rstrip() for a, b, c, d in rows]


def fence_lines(table: Table) -> list[str]:
    """``Awaiting fence: NODE...`` when the table waits for a fence, else nothing."""
    if not table.awaiting_fence:
        return []
    return [f"  Awaiting fence: {' '.join(table.awaiting_fence)}"]


def dry_run_text(result: DryRunResult) -> str:
    out = ["=== Starting table ===", *table_lines(result.start_table),
           "  " + members_line(result.start_membership), *fence_lines(result.start_table)]
    for step in result.steps:
        out.append(f"=== Event: {step.event} ===")
        prefix = {"note": "  * ", "action": "  -> ", "explain": "  "}
        out += [prefix[k] + text for k, text in step.lines]
    out += ["=== Resulting table ===", *table_lines(result.table),
            "  " + members_line(result.membership), *fence_lines(result.table)]
    return "\n".join(out) + "\n"


def _service_json(ss: ServiceState) -> dict[str, Any]:
    """``reason`` only when there is one (e.g. "awaiting fence of node2")."""
    out: dict[str, Any] = {"state": str(ss.state), "owner": ss.owner,
                           "last_owner": ss.last_owner, "frozen": ss.frozen,
                           "partial": ss.partial}
    if ss.reason:
        out["reason"] = ss.reason
    return out


def dry_run_json(result: DryRunResult) -> dict[str, Any]:
    return {
        "steps": [s.to_json() for s in result.steps],
        "table": {ss.name: _service_json(ss) for ss in result.table},
        "members": list(result.membership.members),
        "quorate": result.membership.quorate,
        "awaiting_fence": list(result.table.awaiting_fence),
        "livelock": result.livelock,
    }
