"""Resources and the trees that use them.

A :class:`Resource` is one entry of the global resource list (``type:value``);
a :class:`Node` is one use of it in a service tree. The same resource may sit
in several trees (refs), each use with its own flags and inherited values.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

from ..agents.rules import ActionRule, ResourceRule
from ..errors import Source


@dataclass(eq=False)
class Resource:
    rule: ResourceRule
    attrs: dict[str, str]  # given or defaulted values
    inherits: dict[str, str]  # param -> inherit spec, for params left to inheritance
    source: Source | None
    inline: bool
    actions: tuple[ActionRule, ...]
    refs: int = 0

    @property
    def type(self) -> str:
        return self.rule.type

    @property
    def primary_value(self) -> str:
        p = self.rule.primary
        if p is None:
            return ""
        return self.attrs.get(p.name, "")

    @property
    def name(self) -> str:
        """rgmanager's resource name, ``type:primary`` (e.g. ``ip:10.0.0.1``)."""
        return f"{self.type}:{self.primary_value}"


@dataclass(eq=False)
class Node:
    resource: Resource
    parent: Node | None
    source: Source | None
    actions: tuple[ActionRule, ...]
    children: list[Node] = field(default_factory=list)
    independent: bool = False
    noncritical: bool = False
    enforce_timeouts: bool = False
    max_restarts: int = 0
    restart_expire_time: int = 0
    max_failures: int = 0
    failure_expire_time: int = 0

    @property
    def type(self) -> str:
        return self.resource.type

    @property
    def name(self) -> str:
        return self.resource.name

    @property
    def rule(self) -> ResourceRule:
        return self.resource.rule

    def walk(self) -> Iterator[Node]:
        """This node and its descendants, depth first in tree order."""
        yield self
        for c in self.children:
            yield from c.walk()

    def ancestors(self) -> Iterator[Node]:
        n = self.parent
        while n is not None:
            yield n
            n = n.parent

    @property
    def service(self) -> Node:
        top = self
        for a in self.ancestors():
            top = a
        return top

    @property
    def path(self) -> str:
        """A stable id for this use of the resource within its service."""
        parts = [self.name]
        for a in self.ancestors():
            parts.append(a.name)
        return "/".join(reversed(parts))

    def attr(self, name: str) -> str | None:
        """The value the agent will see, following inheritance (docs/rgmanager.md §2)."""
        res = self.resource
        if name in res.attrs:
            return res.attrs[name]
        spec = res.inherits.get(name)
        if spec is not None:
            value = self._inherited(spec)
            if value is not None:
                return value
            p = res.rule.param(name)
            return p.default if p else None
        return None

    def _inherited(self, spec: str) -> str | None:
        if "%" in spec:
            type_, attr = spec.split("%", 1)
            for a in self.ancestors():
                if a.type == type_:
                    return a.attr(attr)
            return None
        if self.parent is None:
            return None
        return self.parent.attr(spec)

    def params(self) -> dict[str, str]:
        """Every resolved parameter value, for the agent's environment.

        An implied ``name`` (rules.IMPLIED_NAME) is left out: the agent never
        declared it; it reaches the agent as ``OCF_RESOURCE_INSTANCE``.
        """
        out: dict[str, str] = {}
        implied = {p.name for p in self.rule.params if p.implied}
        for p in self.rule.params:
            v = self.attr(p.name)
            if v is not None and not p.implied:
                out[p.name] = v
        for k, v in self.resource.attrs.items():
            if k not in implied:
                out.setdefault(k, v)
        return out

    def status_actions(self) -> tuple[ActionRule, ...]:
        """decision 4 in docs/decisions.md: ``status`` with an interval, else ``monitor``."""
        st = tuple(a for a in self.actions if a.name == "status" and a.interval > 0)
        if st:
            return st
        return tuple(a for a in self.actions if a.name == "monitor" and a.interval > 0)

    def action(self, name: str, depth: int = 0) -> ActionRule | None:
        """The action as this use runs it (``<action>`` overrides applied): the one
        declared for ``depth``, else the first of that name.

        The project's only action lookup: a rule's own actions are just the
        defaults every use starts from, so nothing asks the rule directly.
        """
        for a in self.actions:
            if a.name == name and a.depth == depth:
                return a
        for a in self.actions:
            if a.name == name:
                return a
        return None


@dataclass
class Forest:
    """Every resource and every service tree of one configuration."""

    resources: list[Resource]
    services: list[Node]
    _by_name: dict[tuple[str, str], Node] = field(default_factory=dict, init=False,
                                                  repr=False, compare=False)
    _indexed: int = field(default=-1, init=False, repr=False, compare=False)

    def service(self, name: str) -> Node | None:
        """Find a top-level node by ``name``, ``service:name`` or ``type:name``.

        The manager asks this twice per status check: an index (built on
        first use, rebuilt if the list changed length) keeps it O(1) at 10,000
        services instead of a scan."""
        if ":" in name:
            type_, _, value = name.partition(":")
        else:
            type_, value = "service", name
        if self._indexed != len(self.services):
            self._by_name.clear()
            for s in self.services:
                self._by_name.setdefault((s.type, s.resource.primary_value), s)
            self._indexed = len(self.services)
        return self._by_name.get((type_, value))

    def find(self, type_: str, value: str) -> list[Node]:
        """Every use of resource ``type:value`` in every tree."""
        return [n for s in self.services for n in s.walk()
                if n.type == type_ and n.resource.primary_value == value]
