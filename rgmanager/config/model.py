"""Immutable model of cluster.conf.

Frozen dataclasses so that the planner and the manager can share one loaded
configuration between threads and compare two of them (reload deltas)
without defensive copies. Resource elements stay close to the XML here; the
``tree`` package gives them meaning with the agents' rules.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from ..agentlib.redact import MASK, redact_options
from ..errors import Source

EMPTY: Mapping[str, str] = MappingProxyType({})


def frozen_map(d: Mapping[str, str] | None = None) -> Mapping[str, str]:
    return MappingProxyType(dict(d or {}))


#: Attribute names whose values never appear in logs, errors or output.
SECRET_ATTRS = frozenset({"passwd", "password", "passwd_script", "snmp_priv_passwd"})
#: Attribute-name fragments that mark a secret beyond :data:`SECRET_ATTRS`
#: (fence agents' ``secret_key``, ``token``, ``api_key``, ...).
_SECRET_NAME = re.compile(r"passw|secret|token|api_?key|private_?key", re.IGNORECASE)


def is_secret(name: str) -> bool:
    """Whether the value of attribute ``name`` must never be shown (the one
    rule for cluster.conf attributes: resources and fence devices alike)."""
    return name in SECRET_ATTRS or bool(_SECRET_NAME.search(name))


def redact_value(name: str, value: str) -> str:
    """One attribute's value as it may be shown: masked whole for a secret
    attribute, and with secret options masked inside option strings
    (``options="username=bob,password=..."`` of a netfs or cifs mount)."""
    if is_secret(name):
        return MASK
    return redact_options(value) if "=" in value else value


def redact(attrs: Mapping[str, str]) -> dict[str, str]:
    """Attributes as they may be printed or logged (see :func:`redact_value`)."""
    return {k: redact_value(k, v) for k, v in attrs.items()}


@dataclass(frozen=True)
class FenceDevice:
    name: str
    agent: str
    attrs: Mapping[str, str] = field(default_factory=frozen_map, repr=False)
    source: Source | None = field(default=None, compare=False)

    def __repr__(self) -> str:
        return f"FenceDevice(name={self.name!r}, agent={self.agent!r}, attrs={redact(self.attrs)})"


@dataclass(frozen=True)
class FenceDeviceRef:
    name: str
    attrs: Mapping[str, str] = field(default_factory=frozen_map, repr=False)


@dataclass(frozen=True)
class FenceMethod:
    name: str
    devices: tuple[FenceDeviceRef, ...] = ()


@dataclass(frozen=True)
class ClusterNode:
    name: str
    nodeid: int
    votes: int = 1
    fence: tuple[FenceMethod, ...] = ()
    source: Source | None = field(default=None, compare=False)


@dataclass(frozen=True)
class DomainNode:
    name: str
    priority: int = 0  # 0 = no (valid) priority


@dataclass(frozen=True)
class FailoverDomain:
    name: str
    ordered: bool = False
    restricted: bool = False
    nofailback: bool = False
    nodes: tuple[DomainNode, ...] = ()
    source: Source | None = field(default=None, compare=False)

    def member(self, node: str) -> DomainNode | None:
        for n in self.nodes:
            if n.name.lower() == node.lower():
                return n
        return None


@dataclass(frozen=True)
class ActionOverride:
    """``<action name depth timeout interval/>`` under a resource element."""

    name: str
    depth: str | None = None  # "*" = every depth
    timeout: int | None = None
    interval: int | None = None


@dataclass(frozen=True)
class ResourceDecl:
    """A resource element as written: a service, an inline resource or a ref."""

    tag: str
    attrs: Mapping[str, str]
    children: tuple[ResourceDecl, ...] = ()
    actions: tuple[ActionOverride, ...] = ()
    source: Source | None = field(default=None, compare=False)
    # Per-reference flags, parsed once from ``attrs`` (which stays as written).
    #: ``__independent_subtree`` is 1/yes (or 2/non-critical, which implies it).
    independent: bool = field(default=False, compare=False)
    #: ``__independent_subtree="2"`` / ``non-critical``.
    noncritical: bool = field(default=False, compare=False)
    #: ``__enforce_timeouts``.
    enforce_timeouts: bool = field(default=False, compare=False)

    @property
    def ref(self) -> str | None:
        return self.attrs.get("ref")

    def __repr__(self) -> str:
        return (f"ResourceDecl(tag={self.tag!r}, attrs={redact(self.attrs)}, "
                f"children={len(self.children)}, source={self.source})")


#: ``<rm status_poll_interval>`` when not given (rgmanager's default).
DEFAULT_STATUS_POLL_INTERVAL = 10


@dataclass(frozen=True)
class RMConfig:
    """``<rm>``: its attributes parsed once into typed fields (``attrs`` keeps
    the text as written for the few readers that need it)."""

    attrs: Mapping[str, str] = field(default_factory=frozen_map)
    domains: tuple[FailoverDomain, ...] = ()
    resources: tuple[ResourceDecl, ...] = ()
    defaults: Mapping[str, Mapping[str, str]] = field(default_factory=lambda: MappingProxyType({}))
    services: tuple[ResourceDecl, ...] = ()  # every top-level resource element under <rm>
    status_poll_interval: int = DEFAULT_STATUS_POLL_INTERVAL
    enforce_timeouts: bool = False
    central_processing: bool = False
    #: syslog level 0..7, None when not given.
    log_level: int | None = None

    def domain(self, name: str) -> FailoverDomain | None:
        for d in self.domains:
            if d.name.lower() == name.lower():
                return d
        return None


@dataclass(frozen=True)
class ClusterConfig:
    path: str
    name: str
    config_version: int
    cman: Mapping[str, str] = field(default_factory=frozen_map)
    totem: Mapping[str, str] = field(default_factory=frozen_map)
    quorumd: Mapping[str, str] | None = None
    nodes: tuple[ClusterNode, ...] = ()
    fencedevices: tuple[FenceDevice, ...] = ()
    logging: Mapping[str, str] = field(default_factory=frozen_map)
    logging_daemons: tuple[Mapping[str, str], ...] = ()
    rm: RMConfig = field(default_factory=RMConfig)
    #: ``<cman expected_votes>``; 0 when not given (then the nodes' votes count).
    expected_votes: int = 0
    #: ``<cman two_node>``: either node of a two-node cluster is quorate alone.
    two_node: bool = False
    # ``<logging>`` for rgmanager: its attributes, overridden by those of
    # ``<logging_daemon name="rgmanager">``.
    log_debug: bool = False
    log_to_syslog: bool = False
    log_to_logfile: bool = False
    #: ``logfile``, None when not given.
    log_file: str | None = None
    #: False for a fragment (no name, config_version or clusternodes) that only
    #: ``rg_test`` accepts; see :func:`rgmanager.config.parser.load_config`.
    complete: bool = True

    def node(self, name: str) -> ClusterNode | None:
        for n in self.nodes:
            if n.name.lower() == name.lower():
                return n
        return None

    @property
    def quorum_expected_votes(self) -> int:
        """cman's expected votes: ``expected_votes`` or, when not given, the sum
        of every configured node's votes."""
        return self.expected_votes or sum(n.votes for n in self.nodes)

    def node_by_id(self, nodeid: int) -> ClusterNode | None:
        for n in self.nodes:
            if n.nodeid == nodeid:
                return n
        return None

    def fencedevice(self, name: str) -> FenceDevice | None:
        for d in self.fencedevices:
            if d.name == name:
                return d
        return None
