"""Read cluster.conf into the immutable model, reporting every problem found.

Order, so that no input crashes or stalls: the nesting depth is checked
first with an iterative walk (nothing recursive runs on a deeper tree); the
fixed structure of ``etc/cluster.rng`` is checked in one linear pass with
exact messages (:mod:`.structure`); resource elements are checked against
the agents' rules (unknown types and attributes, booleans, bounded integers
and times, ``<action>`` overrides, stray text), because a rule-aware message
("unknown resource type 'fss'") beats libxml2's generic one. Only then does
libxml2 validate the grammar, on the document with the already checked
resource subtrees cut off, which keeps its backtracking validator linear.
Every problem found is reported, not just the first.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType

from lxml import etree

from ..agents.discovery import RuleSet
from ..agents.rules import expand_time
from ..errors import ConfigError, Report, Reporter, Source
from .model import (
    DEFAULT_STATUS_POLL_INTERVAL,
    ActionOverride,
    ClusterConfig,
    ClusterNode,
    DomainNode,
    FailoverDomain,
    FenceDevice,
    FenceDeviceRef,
    FenceMethod,
    ResourceDecl,
    RMConfig,
    frozen_map,
)
from .schema import SPECIAL_ATTRS, relaxng_for
from .structure import check_depth, check_structure, integer_error, time_error

TRUE_WORDS = frozenset({"1", "yes", "true", "on"})
FALSE_WORDS = frozenset({"0", "no", "false", "off"})
RM_CONTAINERS = frozenset({"failoverdomains", "resources", "resource-defaults", "events"})
RECOVERY_POLICIES = ("restart", "relocate", "disable", "restart-disable")
#: Attributes read as times (rgmanager's expand_time) wherever they appear.
TIME_ATTRS = frozenset({"restart_expire_time", "__restart_expire_time",
                        "__failure_expire_time"})
#: Per-reference attributes read as counts.
COUNT_ATTRS = frozenset({"__max_restarts", "__max_failures"})
ACTION_ATTRS = ("name", "depth", "timeout", "interval")


_NO_DEFAULT = object()


def parse_bool(value: str | None, default: bool | object = _NO_DEFAULT) -> bool:
    """The one boolean reader (decision 1 in docs/decisions.md).

    rgmanager's words, case-insensitive and ignoring blanks: 1/yes/true/on
    and 0/no/false/off. Anything else (or None) raises ValueError, unless a
    ``default`` is given: then it is returned instead, for values that were
    validated already or that rgmanager itself read leniently.
    """
    v = (value or "").strip().lower()
    if v in TRUE_WORDS:
        return True
    if v in FALSE_WORDS:
        return False
    if isinstance(default, bool):
        return default
    raise ValueError(f"{value!r} is not a boolean (use 1/0, yes/no, true/false, on/off)")


def _int_or(value: str | None, default: int | None) -> int | None:
    """An already validated integer attribute, or ``default`` when absent or bad."""
    if value is None or integer_error(value) is not None:
        return default
    return int(value)


class _Reader:
    def __init__(self, path: str, rules: RuleSet, reporter: Reporter) -> None:
        self.path = path
        self.rules = rules
        self.r = reporter

    def src(self, el: etree._Element) -> Source:
        return Source(self.path, _line(el), str(el.tag))

    def bool_attr(self, el: etree._Element, name: str, default: bool = False) -> bool:
        raw = el.get(name)
        if raw is None:
            return default
        try:
            return parse_bool(raw)
        except ValueError as err:
            self.r.error("E_BAD_BOOLEAN", f"attribute {name}: {err}", self.src(el))
            return default

    def int_attr(self, el: etree._Element, name: str, default: int = 0) -> int:
        raw = el.get(name)
        if raw is None:
            return default
        problem = integer_error(raw)
        if problem:
            self.r.error("E_BAD_INTEGER", f"attribute {name}: {problem}", self.src(el))
            return default
        return int(raw)

    def value(self, el: etree._Element, name: str, value: str, type_: str) -> bool:
        """Check one typed value (a rule parameter or a per-reference flag)."""
        if type_ == "boolean":
            try:
                parse_bool(value)
            except ValueError as err:
                self.r.error("E_BAD_BOOLEAN", f"attribute {name}: {err}", self.src(el))
                return False
        elif type_ == "integer":
            problem = integer_error(value)
            if problem:
                self.r.error("E_BAD_INTEGER", f"attribute {name}: {problem}", self.src(el))
                return False
        if name in TIME_ATTRS:
            problem = time_error(value)
            if problem:
                self.r.error("E_BAD_TIME", f"attribute {name}: {problem}", self.src(el))
                return False
        return True

    def special(self, el: etree._Element, name: str, value: str) -> bool:
        """The per-reference ``__*`` attributes every resource element may carry."""
        if name in COUNT_ATTRS:
            problem = integer_error(value, "nonNegativeInteger")
            if problem:
                self.r.error("E_BAD_INTEGER", f"attribute {name}: {problem}", self.src(el))
                return False
            return True
        if name == "__enforce_timeouts":
            return self.value(el, name, value, "boolean")
        if name == "__independent_subtree":
            if value.strip().lower() not in ("0", "1", "2", "yes", "no", "non-critical"):
                self.r.error("E_BAD_VALUE", f"__independent_subtree={value!r}: use 0, 1 (yes) "
                             "or 2 (non-critical)", self.src(el))
                return False
            return True
        return self.value(el, name, value, "string")

    def identifier(self, el: etree._Element, name: str, value: str) -> bool:
        """A primary value (or a ``ref`` to one) names the resource everywhere:
        ``service:web`` in events, logs and clusvcadm, so it cannot be blank or
        carry leading or trailing blanks that no command line could match."""
        if value.strip() and value == value.strip():
            return True
        what = "is empty" if not value.strip() else "has leading or trailing whitespace"
        self.r.error("E_BAD_VALUE", f"attribute {name}={value!r} {what}", self.src(el))
        return False

    def stray_text(self, el: etree._Element) -> bool:
        """Resource and action elements hold elements only; report other text."""
        texts = [el.text] + [c.tail for c in el]
        text = next((t.strip() for t in texts if t and t.strip()), None)
        if text is None:
            return True
        shown = text if len(text) <= 40 else text[:40] + "..."
        self.r.error("E_SCHEMA", f"does not match the schema: unexpected text {shown!r} in "
                     f"<{el.tag}>", self.src(el))
        return False

    # -- resources -------------------------------------------------------
    def resource(self, el: etree._Element) -> ResourceDecl | None:
        tag = str(el.tag)
        rule = self.rules.get(tag)
        if rule is None:
            self.r.error("E_UNKNOWN_TYPE",
                         f"unknown resource type '{tag}' (no agent provides it)", self.src(el))
            return None
        ok = self.stray_text(el)
        is_ref = el.get("ref") is not None
        for raw_name, raw_value in el.attrib.items():
            name, value = str(raw_name), str(raw_value)
            if name == "ref" or (p := rule.param(name)) is not None and p.primary:
                ok = self.identifier(el, name, value) and ok
            if name == "ref":
                continue
            if name in SPECIAL_ATTRS:
                ok = self.special(el, name, value) and ok
                continue
            param = rule.param(name)
            if param is None:
                self.r.error("E_UNKNOWN_ATTR",
                             f"unknown attribute '{name}' for resource type '{tag}'", self.src(el))
                ok = False
                continue
            if is_ref:
                self.r.warning("W_REF_ATTR", f"attribute '{name}' on a reference is ignored; "
                               f"set it on the referenced resource", self.src(el))
            ok = self.value(el, name, value, param.type) and ok
        children: list[ResourceDecl] = []
        actions: list[ActionOverride] = []
        for child in el:
            if not isinstance(child.tag, str):
                continue  # comments, processing instructions
            if child.tag == "action":
                act = self.action(child)
                if act:
                    actions.append(act)
                else:
                    ok = False
                continue
            decl = self.resource(child)
            if decl is None:
                ok = False
            else:
                children.append(decl)
        if not ok:
            return None
        attrs = frozen_map({str(k): str(v) for k, v in el.attrib.items()})
        subtree = attrs.get("__independent_subtree", "0").strip().lower()
        noncritical = subtree in ("2", "non-critical")
        return ResourceDecl(tag, attrs, tuple(children), tuple(actions), self.src(el),
                            independent=noncritical or parse_bool(subtree, False),
                            noncritical=noncritical,
                            enforce_timeouts=parse_bool(attrs.get("__enforce_timeouts"),
                                                        False))

    def action(self, el: etree._Element) -> ActionOverride | None:
        ok = self.stray_text(el)
        for child in el:
            if isinstance(child.tag, str):
                self.r.error("E_SCHEMA", f"does not match the schema: unexpected element "
                             f"<{child.tag}> in <action> (an action has no children)",
                             self.src(child))
                ok = False
        for attr in map(str, el.attrib):
            if attr not in ACTION_ATTRS:
                self.r.error("E_UNKNOWN_ATTR", f"unknown attribute '{attr}' for <action> "
                             f"(allowed: {', '.join(ACTION_ATTRS)})", self.src(el))
                ok = False
        name = el.get("name")
        if not name:
            self.r.error("E_MISSING_ATTR", "action has no name", self.src(el))
            ok = False
        depth = el.get("depth")
        if depth is not None and depth.strip() != "*":
            problem = integer_error(depth, "nonNegativeInteger")
            if problem:
                self.r.error("E_BAD_VALUE", f"action depth: {problem} (use a number or *)",
                             self.src(el))
                ok = False
            else:
                depth = str(int(depth))
        elif depth is not None:
            depth = "*"
        times: dict[str, int | None] = {}
        for attr in ("timeout", "interval"):
            raw = el.get(attr)
            times[attr] = None
            if raw is None:
                continue
            problem = time_error(raw)
            if problem:
                self.r.error("E_BAD_TIME", f"action {attr}: {problem}", self.src(el))
                ok = False
            else:
                times[attr] = expand_time(raw)
        if not ok or not name:
            return None
        interval = times["interval"]
        return ActionOverride(name, depth, times["timeout"],
                              None if interval is None else max(1, interval))

    # -- the rest ----------------------------------------------------------
    def nodes(self, root: etree._Element) -> tuple[ClusterNode, ...]:
        nodes: list[ClusterNode] = []
        names: dict[str, int | None] = {}  # lower-cased name -> line
        ids: dict[int, str] = {}
        for el in root.iterfind("clusternodes/clusternode"):
            name = el.get("name", "")
            nodeid = self.int_attr(el, "nodeid")
            if name.lower() in names:
                self.r.error("E_DUPLICATE_NODE", f"duplicate cluster node name '{name}' "
                             f"(first at line {names[name.lower()]})", self.src(el))
                continue
            if nodeid in ids:
                self.r.error("E_DUPLICATE_NODEID", f"node '{name}' reuses nodeid {nodeid} "
                             f"of node '{ids[nodeid]}'", self.src(el))
                continue
            names[name.lower()] = _line(el)
            ids[nodeid] = name
            methods = []
            for m in el.iterfind("fence/method"):
                devs = tuple(FenceDeviceRef(d.get("name", ""), frozen_map(
                    {str(k): str(v) for k, v in d.attrib.items() if k != "name"}))
                    for d in m.iterfind("device"))
                methods.append(FenceMethod(m.get("name", ""), devs))
            nodes.append(ClusterNode(name, nodeid, self.int_attr(el, "votes", 1),
                                     tuple(methods), self.src(el)))
        return tuple(nodes)

    def fencedevices(self, root: etree._Element, nodes: tuple[ClusterNode, ...]
                     ) -> tuple[FenceDevice, ...]:
        devices: dict[str, FenceDevice] = {}
        for el in root.iterfind("fencedevices/fencedevice"):
            name = el.get("name", "")
            if name in devices:
                self.r.error("E_DUPLICATE_FENCEDEVICE", f"duplicate fence device '{name}'",
                             self.src(el))
                continue
            devices[name] = FenceDevice(name, el.get("agent", ""), frozen_map(
                {str(k): str(v) for k, v in el.attrib.items() if k not in ("name", "agent")}),
                self.src(el))
        for el in root.iterfind("clusternodes/clusternode/fence/method/device"):
            if el.get("name") not in devices:
                self.r.error("E_UNKNOWN_FENCEDEVICE",
                             f"fence method uses unknown fence device '{el.get('name')}'",
                             self.src(el))
        return tuple(devices.values())

    def domains(self, rm: etree._Element, nodes: tuple[ClusterNode, ...] | None
                ) -> tuple[FailoverDomain, ...]:
        """The failover domains; ``nodes`` None (a fragment) takes any node name."""
        known = None if nodes is None else {n.name.lower() for n in nodes}
        domains: list[FailoverDomain] = []
        seen: set[str] = set()
        for el in rm.iterfind("failoverdomains/failoverdomain"):
            name = el.get("name", "")
            if name.lower() in seen:
                self.r.error("E_DUPLICATE_DOMAIN", f"duplicate failover domain '{name}'",
                             self.src(el))
                continue
            seen.add(name.lower())
            ordered = self.bool_attr(el, "ordered")
            members: list[DomainNode] = []
            member_names: set[str] = set()
            for n in el.iterfind("failoverdomainnode"):
                nname = n.get("name", "")
                if known is not None and nname.lower() not in known:
                    self.r.error("E_UNKNOWN_DOMAIN_NODE", f"failover domain '{name}': node "
                                 f"'{nname}' is not a cluster node", self.src(n))
                    continue
                if nname.lower() in member_names:
                    self.r.error("E_DUPLICATE_DOMAIN_NODE", f"failover domain '{name}': node "
                                 f"'{nname}' listed twice", self.src(n))
                    continue
                member_names.add(nname.lower())
                prio = self.int_attr(n, "priority") if ordered else 0
                if ordered and n.get("priority") is not None and not 1 <= prio <= 100:
                    self.r.warning("W_BAD_PRIORITY", f"priority {prio} outside 1..100 is "
                                   "treated as no priority", self.src(n))
                    prio = 0
                members.append(DomainNode(nname, prio))
            domains.append(FailoverDomain(name, ordered, self.bool_attr(el, "restricted"),
                                          self.bool_attr(el, "nofailback"), tuple(members),
                                          self.src(el)))
        return tuple(domains)

    def defaults(self, rm: etree._Element) -> Mapping[str, Mapping[str, str]]:
        out: dict[str, Mapping[str, str]] = {}
        for el in rm.iterfind("resource-defaults/*"):
            if not isinstance(el.tag, str):
                continue
            rule = self.rules.get(str(el.tag))
            if rule is None:
                self.r.error("E_UNKNOWN_TYPE", f"resource-defaults for unknown resource type "
                             f"'{el.tag}'", self.src(el))
                continue
            for name, value in el.attrib.items():
                name = str(name)
                p = rule.param(name)
                if p is None:
                    self.r.error("E_UNKNOWN_ATTR", f"unknown attribute '{name}' for resource "
                                 f"type '{el.tag}'", self.src(el))
                elif p.primary or p.unique:
                    self.r.error("E_BAD_DEFAULT", f"'{name}' is primary/unique and cannot have "
                                 "a default", self.src(el))
                else:
                    self.value(el, name, str(value), p.type)
            out[str(el.tag)] = frozen_map({str(k): str(v) for k, v in el.attrib.items()})
        return MappingProxyType(out)

    def services(self, decls: tuple[ResourceDecl, ...], domains: tuple[FailoverDomain, ...]
                 ) -> None:
        names = {d.attrs.get("name", "").lower() for d in decls if d.tag == "service"}
        domain_names = {d.name.lower() for d in domains}
        for d in decls:
            if d.tag != "service":
                continue
            a = d.attrs
            if "domain" in a and a["domain"].lower() not in domain_names:
                self.r.error("E_UNKNOWN_DOMAIN", f"service '{a.get('name')}': unknown failover "
                             f"domain '{a['domain']}'", d.source)
            if "recovery" in a and a["recovery"] not in RECOVERY_POLICIES:
                self.r.error("E_BAD_VALUE", f"recovery={a['recovery']!r}: use one of "
                             f"{', '.join(RECOVERY_POLICIES)}", d.source)
            if "depend" in a:
                dep = a["depend"].removeprefix("service:")
                if dep.lower() not in names:
                    self.r.error("E_UNKNOWN_DEPEND", f"service '{a.get('name')}' depends on "
                                 f"unknown service '{a['depend']}'", d.source)
            if "depend_mode" in a and a["depend_mode"] not in ("hard", "soft"):
                self.r.error("E_BAD_VALUE", "depend_mode must be hard or soft", d.source)
            _warn_restarts(self.r, d, "max_restarts", "restart_expire_time")
        for d in _walk(decls):
            _warn_restarts(self.r, d, "__max_restarts", "__restart_expire_time")
            _warn_restarts(self.r, d, "__max_failures", "__failure_expire_time")


def _line(el: etree._Element) -> int | None:
    line = el.sourceline
    return line if isinstance(line, int) else None


def _walk(decls: tuple[ResourceDecl, ...]) -> list[ResourceDecl]:
    out: list[ResourceDecl] = []
    stack = list(decls)
    while stack:
        d = stack.pop()
        out.append(d)
        stack.extend(d.children)
    return out


def _warn_restarts(r: Reporter, d: ResourceDecl, count: str, window: str) -> None:
    raw = d.attrs.get(count)
    if raw is None or integer_error(raw):
        return  # reported when the element was read
    n = int(raw)
    if n > 0 and not expand_time(d.attrs.get(window)):
        r.warning("W_NO_EXPIRE", f"{count}={n} without {window}: the counter never expires",
                  d.source)


def _elements_by_line(root: etree._Element) -> dict[int, str]:
    out: dict[int, str] = {}
    for el in root.iter():
        if isinstance(el.tag, str) and isinstance(el.sourceline, int):
            out.setdefault(el.sourceline, str(el.tag))
    return out


def _relaxng(path: str, root: etree._Element, rules: RuleSet, resource_els: list[etree._Element],
             r: Reporter) -> None:
    """libxml2's RelaxNG pass over the structure, every error it logs reported.

    The resource elements' contents were checked against the rules already;
    they are cut off first (the tree is not used again), so that libxml2's
    backtracking never meets a long run of children.
    """
    for el in resource_els:
        el.text = None
        del el[:]
    schema = relaxng_for(rules)
    if schema.validate(root.getroottree()):
        return
    tags = _elements_by_line(root)
    seen: set[tuple[int, str]] = set()
    for e in schema.error_log:
        key = (e.line, e.message)
        if key in seen:
            continue
        seen.add(key)
        line = e.line if e.line > 0 else None
        r.error("E_SCHEMA", f"does not match the schema: {e.message}",
                Source(path, line, tags.get(e.line, "cluster")))


#: What rgmanager's own test files leave out of ``<cluster>``: what only a
#: running cluster needs (its identity and membership), not a resource tree.
FRAGMENT_PARTS = ("name", "config_version", "clusternodes")
#: The stand-in member of a fragment's ``<clusternodes>``, dropped from the model.
_PLACEHOLDER_NODE = "rg_test fragment placeholder"


def _complete_fragment(root: etree._Element) -> list[str]:
    """Fill in what a fragment lacks so the grammar checks the rest; return the
    missing parts (empty for a complete configuration)."""
    missing = [a for a in ("name", "config_version") if root.get(a) is None]
    if root.find("clusternodes") is None:
        missing.append("clusternodes")
        nodes = etree.SubElement(root, "clusternodes")
        etree.SubElement(nodes, "clusternode", name=_PLACEHOLDER_NODE, nodeid="1")
    if "name" in missing:
        root.set("name", "")
    if "config_version" in missing:
        root.set("config_version", "0")
    return missing


def load_config(path: str | Path, rules: RuleSet, *, allow_fragment: bool = False
                ) -> tuple[ClusterConfig, list[Report]]:
    """Parse and validate; return the model and its warnings, or raise ConfigError.

    ``allow_fragment`` (rg_test's mode) accepts a ``<cluster>`` without a name,
    config_version or clusternodes, as rgmanager's own test files are written:
    one W_FRAGMENT warning names what is missing, the model has ``complete``
    False, and its failover domains may name nodes that are not configured.
    The daemon never passes it.
    """
    path = str(path)
    r = Reporter()
    try:
        data = Path(path).read_bytes()
    except OSError as err:
        r.error("E_FILE", f"cannot read configuration: {err.strerror}",
                Source(path, None, "cluster"))
        raise ConfigError(r.reports) from None
    parser = etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=True,
                             remove_blank_text=False)
    try:
        root = etree.fromstring(data, parser, base_url=path)
    except etree.XMLSyntaxError as err:
        r.error("E_XML", f"malformed XML: {err.msg}", Source(path, err.lineno, "xml"))
        raise ConfigError(r.reports) from None
    reader = _Reader(path, rules, r)
    if root.tag != "cluster":
        r.error("E_SCHEMA", f"root element is <{root.tag}>, expected <cluster>", reader.src(root))
        raise ConfigError(r.reports)
    if not check_depth(path, root, r):
        raise ConfigError(r.reports)
    missing = _complete_fragment(root) if allow_fragment else []
    if missing:
        parts = " and ".join([", ".join(missing[:-1]), missing[-1]] if len(missing) > 1
                             else missing)
        r.warning("W_FRAGMENT", f"<cluster> has no {parts}: read as a configuration fragment "
                  "(rg_test tries its resources; the daemon needs a complete <cluster>)",
                  reader.src(root))
    resource_els = check_structure(path, root, r)

    rm = root.find("rm")
    resources: list[ResourceDecl] = []
    services: list[ResourceDecl] = []
    if rm is not None:
        for el in rm.iterfind("resources/*"):
            if isinstance(el.tag, str):
                decl = reader.resource(el)
                if decl:
                    resources.append(decl)
        for el in rm:
            if isinstance(el.tag, str) and el.tag not in RM_CONTAINERS:
                decl = reader.resource(el)
                if decl:
                    services.append(decl)
    if not r.errors:
        _relaxng(path, root, rules, resource_els, r)
    r.raise_if_errors()

    nodes = tuple(n for n in reader.nodes(root) if n.name != _PLACEHOLDER_NODE)
    fencedevices = reader.fencedevices(root, nodes)
    domains = reader.domains(rm, None if "clusternodes" in missing else nodes) \
        if rm is not None else ()
    reader.services(tuple(services), domains)
    rm_attrs = _attrs(rm)
    central = reader.bool_attr(rm, "central_processing") if rm is not None else False
    if central and rm is not None:
        r.warning("W_CENTRAL", "central_processing is not supported; using distributed "
                  "mode", reader.src(rm))
    rm_model = RMConfig(
        attrs=rm_attrs,
        domains=domains,
        resources=tuple(resources),
        defaults=reader.defaults(rm) if rm is not None else frozen_map(),  # type: ignore[arg-type]
        services=tuple(services),
        status_poll_interval=_int_or(rm_attrs.get("status_poll_interval"),
                                     DEFAULT_STATUS_POLL_INTERVAL) or 0,
        enforce_timeouts=parse_bool(rm_attrs.get("enforce_timeouts"), False),
        central_processing=central,
        log_level=_int_or(rm_attrs.get("log_level"), None),
    )
    logging_el = root.find("logging")
    cman = _attrs(root.find("cman"))
    logging_attrs = _attrs(logging_el)
    logging_daemons = tuple(_attrs(d) for d in root.iterfind("logging/logging_daemon"))
    mine = next((d for d in logging_daemons if d.get("name") == "rgmanager"), {})
    rgmanager_logging = {**logging_attrs, **mine}
    config = ClusterConfig(
        path=path,
        name=root.get("name", ""),
        config_version=int(root.get("config_version", "0")),
        cman=cman,
        totem=_attrs(root.find("totem")),
        quorumd=_attrs(root.find("quorumd")) if root.find("quorumd") is not None else None,
        nodes=nodes,
        fencedevices=fencedevices,
        logging=logging_attrs,
        logging_daemons=logging_daemons,
        rm=rm_model,
        expected_votes=_int_or(cman.get("expected_votes"), 0) or 0,
        two_node=parse_bool(cman.get("two_node"), False),
        log_debug=parse_bool(rgmanager_logging.get("debug"), False),
        log_to_syslog=parse_bool(rgmanager_logging.get("to_syslog"), False),
        log_to_logfile=parse_bool(rgmanager_logging.get("to_logfile"), False),
        log_file=rgmanager_logging.get("logfile"),
        complete=not missing,
    )
    r.raise_if_errors()
    return config, r.reports


def _attrs(el: etree._Element | None) -> Mapping[str, str]:
    if el is None:
        return frozen_map()
    return frozen_map({str(k): str(v) for k, v in el.attrib.items()})
