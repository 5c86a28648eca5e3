"""Resource rules: what an agent's meta-data says about its resources.

Rules drive everything above them (schema, tree checks, ordering, status
scheduling), which is why they are parsed once into frozen objects.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from lxml import etree

_TIME_SEGMENT = re.compile(r"([0-9]+)([A-Za-z]?)", re.ASCII)
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "y": 31536000}


#: expand_time saturates here (about 31,700 years) instead of converting an
#: absurdly long digit string, which Python refuses beyond 4,300 digits.
TIME_LIMIT = 10**12


def expand_time(value: str | None) -> int:
    """rgmanager's ``expand_time``: ``"1h30m"`` -> 5400; unknown unit -> 0 for that part.

    Never raises: a part longer than 12 digits counts as :data:`TIME_LIMIT`, and
    so does a total above it (the config parser rejects such values with a
    located error; this keeps every other caller safe).
    """
    if not value:
        return 0
    total = 0
    for digits, unit in _TIME_SEGMENT.findall(value.strip()):
        if not digits.isascii():
            continue
        digits = digits.lstrip("0")
        n = TIME_LIMIT if len(digits) > 12 else int(digits or "0")
        total += n * _UNITS.get(unit.lower(), 0)
        if total >= TIME_LIMIT:
            return TIME_LIMIT
    return total


def _flag(value: str | None) -> bool:
    """rgmanager's flag test: a non-zero number or a word starting with 'y'."""
    if value is None:
        return False
    v = value.strip().lower()
    if v.startswith("y") or v == "true":
        return True
    try:
        return int(v) != 0
    except ValueError:
        return False


@dataclass(frozen=True)
class ParamRule:
    name: str
    primary: bool = False
    unique: bool = False
    required: bool = False
    inherit: str | None = None  # "ATTR" or "TYPE%ATTR"
    reconfig: bool = False
    default: str | None = None
    type: str = "string"
    #: Not in the agent's meta-data: the optional ``name`` rgmanager-py gives
    #: every agent without a primary parameter (see :data:`IMPLIED_NAME`).
    implied: bool = False


#: The name a user may give a resource whose agent declares no primary
#: parameter (Pacemaker's heartbeat agents, for one): without it such a
#: resource could not be told apart from another of its type, referenced, or
#: named in logs. Optional (every such agent worked unnamed before), unique
#: among its type when given, and never passed as ``OCF_RESKEY_name`` — the
#: agent did not ask for it; it reaches the agent as ``OCF_RESOURCE_INSTANCE``.
IMPLIED_NAME = ParamRule("name", primary=True, unique=True, implied=True)
IMPLIED_NAME_DESC = ("name", "string", "Name of this resource, for refs and logs (given by "
                     "rgmanager-py; the agent sees it as OCF_RESOURCE_INSTANCE type:name)")


@dataclass(frozen=True)
class ActionRule:
    name: str
    timeout: int = 0
    interval: int = 0  # 0 = never scheduled
    depth: int = 0


@dataclass(frozen=True)
class ChildRule:
    type: str
    start: int = 0  # 0 = no level
    stop: int = 0
    forbid: bool = False


@dataclass(frozen=True)
class ResourceRule:
    type: str
    agent: str  # absolute path of the executable
    ocf_root: str
    params: tuple[ParamRule, ...] = ()
    actions: tuple[ActionRule, ...] = ()
    children: tuple[ChildRule, ...] = ()
    maxinstances: int = 0
    init_on_add: bool = True
    destroy_on_delete: bool = True
    shortdesc: str = ""
    metadata_params: tuple[tuple[str, str, str], ...] = field(default=(), compare=False)

    @property
    def primary(self) -> ParamRule | None:
        for p in self.params:
            if p.primary:
                return p
        return None

    def param(self, name: str) -> ParamRule | None:
        for p in self.params:
            if p.name == name:
                return p
        return None

    def child(self, type_: str) -> ChildRule | None:
        for c in self.children:
            if c.type == type_:
                return c
        return None

    def has_action(self, name: str) -> bool:
        return any(a.name == name for a in self.actions)


class MetadataError(ValueError):
    """Meta-data that cannot give a usable rule."""


def parse_metadata(xml: bytes | str, agent: str, ocf_root: str) -> ResourceRule:
    """Build a rule from ``meta-data`` output (rgmanager's load_resource_rulefile)."""
    data = xml.encode() if isinstance(xml, str) else xml
    if not data.strip():
        raise MetadataError("empty meta-data")
    try:
        parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)
        root = etree.fromstring(data, parser)
    except etree.XMLSyntaxError as err:
        raise MetadataError(f"meta-data is not XML: {err}") from None
    if root.tag != "resource-agent":
        raise MetadataError(f"meta-data root is <{root.tag}>, not <resource-agent>")
    type_ = root.get("name")
    if not type_:
        raise MetadataError("meta-data has no resource-agent name")
    if type_ == "action":
        raise MetadataError("Resource type 'action' is reserved")

    params: list[ParamRule] = []
    described: list[tuple[str, str, str]] = []
    for p in root.iterfind("parameters/parameter"):
        name = p.get("name")
        if not name:
            continue
        content = p.find("content")
        inherit = p.get("inherit")
        rule = ParamRule(
            name=name,
            primary=_flag(p.get("primary")),
            unique=_flag(p.get("unique")),
            required=_flag(p.get("required")),
            inherit=inherit or None,
            reconfig=_flag(p.get("reconfig")),
            default=content.get("default") if content is not None else None,
            type=(content.get("type") if content is not None else None) or "string",
        )
        if rule.inherit and (rule.primary or rule.unique or rule.required):
            raise MetadataError(f"parameter {name} is inherited and primary/unique/required")
        params.append(rule)
        short = (p.findtext("shortdesc") or "").strip()
        described.append((name, rule.type, " ".join(short.split())))
    primaries = [p for p in params if p.primary]
    if len(primaries) > 1:
        raise MetadataError("more than one primary parameter")
    if primaries:  # rgmanager keeps the primary attribute in slot 0
        params.remove(primaries[0])
        params.insert(0, primaries[0])
    elif all(p.name != IMPLIED_NAME.name for p in params):
        params.insert(0, IMPLIED_NAME)
        described.insert(0, IMPLIED_NAME_DESC)

    actions = []
    for a in root.iterfind("actions/action"):
        name = a.get("name")
        if not name:
            continue
        interval_raw = a.get("interval")
        interval = 0 if interval_raw is None else max(1, expand_time(interval_raw))
        depth = 0
        if name in ("status", "monitor") and a.get("depth") not in (None, "*"):
            depth = _int(a.get("depth"))  # atoi, as rgmanager reads it
        actions.append(ActionRule(name, expand_time(a.get("timeout")), interval, depth))

    special = root.find("special[@tag='rgmanager']")
    children: list[ChildRule] = []
    maxinstances = 0
    init_on_add = destroy_on_delete = True
    if special is not None:
        attrs = special.find("attributes")
        if attrs is not None:
            maxinstances = max(0, _int(attrs.get("maxinstances")))
            init_on_add = attrs.get("init_on_add", "1") != "0"
            destroy_on_delete = attrs.get("destroy_on_delete", "1") != "0"
        for c in special.iterfind("child"):
            ctype = c.get("type")
            if ctype:
                children.append(ChildRule(ctype, _int(c.get("start")), _int(c.get("stop")),
                                          _flag(c.get("forbid"))))
    return ResourceRule(
        type=type_,
        agent=agent,
        ocf_root=ocf_root,
        params=tuple(params),
        actions=tuple(actions),
        children=tuple(children),
        maxinstances=maxinstances,
        init_on_add=init_on_add,
        destroy_on_delete=destroy_on_delete,
        shortdesc=" ".join((root.findtext("shortdesc") or "").split()),
        metadata_params=tuple(described),
    )


def _int(value: str | None) -> int:
    try:
        return int(value or 0)
    except ValueError:
        return 0
