"""Build the resource list and one tree per service (rgmanager's reslist/restree).

Differences from rgmanager are deliberate (docs/decisions.md): a bad
resource, ref or child is an error with its location instead of silently
hiding later siblings, ``<resource-defaults>`` reach every resource, and
``<action>`` overrides on ``ref=`` elements count.
"""

from __future__ import annotations

from collections.abc import Mapping

from ..agents.discovery import RuleSet
from ..agents.rules import ActionRule, ResourceRule, expand_time
from ..config.model import ActionOverride, ClusterConfig, ResourceDecl
from ..errors import Reporter, Source
from .model import Forest, Node, Resource


def apply_overrides(actions: tuple[ActionRule, ...], overrides: tuple[ActionOverride, ...]
                    ) -> tuple[ActionRule, ...]:
    """``<action>`` children: change matching actions, or add a complete new one.

    The parser rejects a depth that is neither ``*`` nor a number with a
    located error; an override built some other way with such a depth matches
    nothing and adds nothing rather than raising.
    """
    out = list(actions)
    for o in overrides:
        depth: int | None = None
        if o.depth not in (None, "*"):
            try:
                depth = int(o.depth)
            except ValueError:
                continue
        matched = False
        for i, a in enumerate(out):
            if a.name != o.name:
                continue
            if depth is not None and a.depth != depth:
                continue
            matched = True
            out[i] = ActionRule(a.name,
                                a.timeout if o.timeout is None else o.timeout,
                                a.interval if o.interval is None else o.interval,
                                a.depth)
        if not matched and o.timeout is not None and o.interval is not None:
            out.append(ActionRule(o.name, o.timeout, o.interval, depth or 0))
    return tuple(out)


def _flag_int(attrs: Mapping[str, str], name: str) -> int:
    try:
        return int(attrs.get(name, "0") or 0)
    except ValueError:
        return 0


class TreeBuilder:
    def __init__(self, config: ClusterConfig, rules: RuleSet, reporter: Reporter) -> None:
        self.config = config
        self.rules = rules
        self.r = reporter
        self.resources: list[Resource] = []
        self.by_primary: dict[tuple[str, str], Resource] = {}
        self.by_unique: dict[tuple[str, str, str], Resource] = {}
        self.inline_of: dict[int, Resource] = {}  # id(decl) -> resource

    # -- the global resource list ------------------------------------------
    def make_resource(self, decl: ResourceDecl, inline: bool) -> Resource | None:
        rule = self.rules[decl.tag]
        defaults = self.config.rm.defaults.get(decl.tag, {})
        attrs: dict[str, str] = {}
        inherits: dict[str, str] = {}
        ok = True
        for p in rule.params:
            if p.name in decl.attrs:
                attrs[p.name] = decl.attrs[p.name]
            elif p.name in defaults:
                attrs[p.name] = defaults[p.name]
            elif p.inherit:
                inherits[p.name] = p.inherit
            elif (p.required or p.primary) and not p.implied:
                self.r.error("E_MISSING_ATTR", f"resource {decl.tag} is missing required "
                             f"attribute '{p.name}'", decl.source)
                ok = False
            elif p.default is not None and not p.unique:
                # A unique parameter's default cannot be one value for every
                # resource: the agent derives it per instance (Pacemaker's Dummy:
                # state=$HA_RSCTMP/Dummy-$OCF_RESOURCE_INSTANCE.state, which its
                # meta-data shows expanded once). Passing that text would give
                # every such resource the same value; the agent applies its own.
                attrs[p.name] = p.default
        if not ok:
            return None
        res = Resource(rule, attrs, inherits, decl.source, inline,
                       apply_overrides(rule.actions, decl.actions))
        return res if self.register(res) else None

    def register(self, res: Resource) -> bool:
        rule = res.rule
        primary = rule.primary
        if primary is not None and primary.implied and not res.primary_value:
            primary = None  # an unnamed resource of a primary-less agent: nothing to collide
        if primary is not None:
            key = (rule.type, res.primary_value)
            other = self.by_primary.get(key)
            if other is not None:
                what = ("duplicate service name" if rule.type == "service"
                        else "primary attribute collision")
                self.r.error("E_DUPLICATE", f"{what}: {res.name} "
                             f"(first defined at line {_line(other.source)})", res.source)
                return False
        for p in rule.params:
            if not p.unique or p.primary or p.name not in res.attrs:
                continue
            ukey = (rule.type, p.name, res.attrs[p.name])
            other = self.by_unique.get(ukey)
            if other is not None:
                self.r.error("E_DUPLICATE_UNIQUE", f"unique attribute collision: {rule.type} "
                             f"{p.name}=\"{res.attrs[p.name]}\" is already used by {other.name} "
                             f"(line {_line(other.source)})", res.source)
                return False
        if primary is not None:
            self.by_primary[(rule.type, res.primary_value)] = res
        for p in rule.params:
            if p.unique and not p.primary and p.name in res.attrs:
                self.by_unique[(rule.type, p.name, res.attrs[p.name])] = res
        self.resources.append(res)
        return True

    def lookup(self, decl: ResourceDecl) -> Resource | None:
        """rgmanager's ref resolution: primary value, else a unique+required value."""
        ref = decl.ref or ""
        res = self.by_primary.get((decl.tag, ref))
        if res is None:
            rule = self.rules[decl.tag]
            for p in rule.params:
                if p.unique and p.required:
                    res = self.by_unique.get((decl.tag, p.name, ref))
                    if res is not None:
                        break
        if res is None:
            self.r.error("E_UNKNOWN_REF", f"reference to nonexistent resource {ref} "
                         f"(type {decl.tag})", decl.source)
            return None
        if res.inline:
            self.r.error("E_INLINE_REF", f"reference to inlined resource {res.name} is illegal; "
                         f"define it in <resources> (it is inline at line "
                         f"{_line(res.source)})", decl.source)
            return None
        return res

    # -- trees ----------------------------------------------------------------
    def build(self) -> Forest:
        for decl in self.config.rm.resources:
            if decl.ref is not None:
                self.r.error("E_BAD_REF", "a ref= element cannot appear in <resources>",
                             decl.source)
                continue
            if decl.children:
                self.r.error("E_RESOURCE_CHILDREN", f"resource {decl.tag} in <resources> has "
                             "children; nest children under its use in a service",
                             decl.children[0].source)
            self.make_resource(decl, inline=False)
        # Inline resources first, so that a ref to one is reported as such
        # wherever the two appear.
        stack = list(reversed(self.config.rm.services))
        while stack:
            decl = stack.pop()
            if decl.ref is None:
                res = self.make_resource(decl, inline=True)
                if res is not None:
                    self.inline_of[id(decl)] = res
            stack.extend(reversed(decl.children))
        services: list[Node] = []
        for decl in self.config.rm.services:
            node = self.node(decl, None)
            if node is not None:
                services.append(node)
        for s in services:
            for n in s.walk():
                if n.noncritical and n.resource.refs > 1:
                    self.r.warning("W_NONCRITICAL_SHARED", f"{n.name} is used more than once; "
                                   "it cannot be non-critical (treated as independent)",
                                   n.source)
                    n.noncritical = False
        return Forest(self.resources, services)

    def node(self, decl: ResourceDecl, parent: Node | None) -> Node | None:
        rule: ResourceRule = self.rules[decl.tag]
        if parent is not None:
            child_rule = parent.rule.child(decl.tag)
            if child_rule is not None and child_rule.forbid:
                self.r.error("E_FORBIDDEN_CHILD", f"resource type {decl.tag} is not allowed "
                             f"under {parent.type} ({parent.name})", decl.source)
                return None
        res = self.lookup(decl) if decl.ref is not None else self.inline_of.get(id(decl))
        if res is None:
            return None
        if rule.maxinstances and res.refs >= rule.maxinstances:
            self.r.warning("W_MAXREFS", f"Max references exceeded for resource {res.name}; "
                           "this use is left out", decl.source)
            return None
        res.refs += 1
        actions = apply_overrides(res.actions, decl.actions) if decl.ref is not None \
            else res.actions
        a = decl.attrs
        node = Node(res, parent, decl.source, actions)
        # The flags are parsed once, by the config parser (decl.independent ...).
        if parent is not None:
            node.noncritical = decl.noncritical
            node.independent = decl.independent
        elif decl.independent:
            self.r.warning("W_TOPLEVEL_INDEPENDENT", "__independent_subtree on a top-level "
                           "resource has no effect", decl.source)
        node.enforce_timeouts = decl.enforce_timeouts
        if node.independent:
            node.max_restarts = _flag_int(a, "__max_restarts")
            node.restart_expire_time = expand_time(a.get("__restart_expire_time"))
        node.max_failures = _flag_int(a, "__max_failures")
        node.failure_expire_time = expand_time(a.get("__failure_expire_time"))
        if parent is None and rule.type == "service":
            node.max_restarts = _flag_int(res.attrs, "max_restarts")
            node.restart_expire_time = expand_time(res.attrs.get("restart_expire_time"))
        for child_decl in decl.children:
            child = self.node(child_decl, node)
            if child is not None:
                node.children.append(child)
        return node


def _line(source: Source | None) -> str:
    return "?" if source is None or source.line is None else str(source.line)


def build_forest(config: ClusterConfig, rules: RuleSet, reporter: Reporter) -> Forest:
    return TreeBuilder(config, rules, reporter).build()
