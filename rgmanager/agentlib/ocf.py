"""OCF agent plumbing: exit codes, meta-data rendering, parameters, dispatch.

An agent describes itself once (an :class:`AgentSpec`); the same description
renders its meta-data, types and defaults its parameters, and validates them.
Nothing here builds a shell command: agents call programs with argv lists.
"""

from __future__ import annotations

import builtins
import logging
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from html import escape as _html_escape

from . import redact

OCF_SUCCESS = 0
OCF_ERR_GENERIC = 1
OCF_ERR_ARGS = 2
OCF_ERR_UNIMPLEMENTED = 3
OCF_ERR_PERM = 4
OCF_ERR_INSTALLED = 5
OCF_ERR_CONFIGURED = 6
OCF_NOT_RUNNING = 7

TRUE_WORDS = frozenset({"1", "yes", "true", "on"})
FALSE_WORDS = frozenset({"0", "no", "false", "off"})

log = logging.getLogger("rgmanager.agent")


class AgentError(Exception):
    """Raised inside an action to end it with a given OCF exit code."""

    def __init__(self, rc: int, message: str) -> None:
        super().__init__(message)
        self.rc = rc


@dataclass(frozen=True)
class Param:
    name: str
    shortdesc: str
    type: str = "string"  # string | boolean | integer
    default: str | None = None
    longdesc: str = ""
    primary: bool = False
    unique: bool = False
    required: bool = False
    inherit: str | None = None  # "ATTR" or "TYPE%ATTR"
    reconfig: bool = False


@dataclass(frozen=True)
class Action:
    name: str
    timeout: int = 20
    interval: int | None = None
    depth: int | None = None


@dataclass(frozen=True)
class Child:
    type: str
    start: int | None = None
    stop: int | None = None
    forbid: bool = False


@dataclass(frozen=True)
class AgentSpec:
    name: str
    shortdesc: str
    longdesc: str
    params: Sequence[Param]
    actions: Sequence[Action]
    children: Sequence[Child] = field(default_factory=tuple)
    maxinstances: int = 0
    version: str = "1.0"

    def param(self, name: str) -> Param:
        for p in self.params:
            if p.name == name:
                return p
        raise KeyError(name)


def escape(text: str) -> str:
    """XML text escaping without xml.sax.saxutils, whose import pulls in urllib and
    http.client (40 ms of start-up on every agent call)."""
    return _html_escape(text, quote=False)


def quoteattr(text: str) -> str:
    return '"' + _html_escape(text, quote=True) + '"'


# ra-api-1.dtd extended with rgmanager's parameter flags and <special> block,
# inline so that ``xmllint --valid`` (ocf-tester) checks the whole document.
RA_API_DTD = """<!DOCTYPE resource-agent [
<!ELEMENT resource-agent (version,longdesc,shortdesc,parameters?,actions,special*)>
<!ATTLIST resource-agent name CDATA #REQUIRED version CDATA #IMPLIED>
<!ELEMENT version (#PCDATA)>
<!ELEMENT parameters (parameter*)>
<!ELEMENT actions (action*)>
<!ELEMENT parameter (longdesc+,shortdesc+,content)>
<!ATTLIST parameter name CDATA #REQUIRED required (1|0) "0" unique (1|0) "0"
  primary (1|0) "0" reconfig (1|0) "0" inherit CDATA #IMPLIED>
<!ELEMENT longdesc ANY>
<!ATTLIST longdesc lang NMTOKEN #IMPLIED>
<!ELEMENT shortdesc ANY>
<!ATTLIST shortdesc lang NMTOKEN #IMPLIED>
<!ELEMENT content EMPTY>
<!ATTLIST content type (string|integer|boolean|time) #REQUIRED default CDATA #IMPLIED>
<!ELEMENT action EMPTY>
<!ATTLIST action name (start|stop|recover|monitor|restart|migrate_to|migrate_from|promote|\
demote|notify|status|reload|reconfig|migrate|meta-data|usage|methods|validate-all) #REQUIRED
  timeout CDATA #REQUIRED interval CDATA #IMPLIED start-delay CDATA #IMPLIED
  role CDATA #IMPLIED depth CDATA #IMPLIED>
<!ELEMENT special (attributes?,child*)>
<!ATTLIST special tag CDATA #REQUIRED>
<!ELEMENT attributes EMPTY>
<!ATTLIST attributes maxinstances CDATA #IMPLIED init_on_add CDATA #IMPLIED
  destroy_on_delete CDATA #IMPLIED>
<!ELEMENT child EMPTY>
<!ATTLIST child type CDATA #REQUIRED start CDATA #IMPLIED stop CDATA #IMPLIED
  forbid CDATA #IMPLIED>
]>"""


def render_metadata(spec: AgentSpec) -> str:
    """OCF ra-api-1 meta-data with rgmanager's ``<special tag="rgmanager">``."""
    out = [
        '<?xml version="1.0"?>',
        RA_API_DTD,
        f"<resource-agent name={quoteattr(spec.name)} version={quoteattr(spec.version)}>",
        "  <version>1.0</version>",
        f"  <longdesc lang=\"en\">{escape(spec.longdesc)}</longdesc>",
        f"  <shortdesc lang=\"en\">{escape(spec.shortdesc)}</shortdesc>",
        "  <parameters>",
    ]
    for p in spec.params:
        flags = []
        for flag in ("primary", "unique", "required", "reconfig"):
            if getattr(p, flag):
                flags.append(f'{flag}="1"')
        if p.inherit:
            flags.append(f"inherit={quoteattr(p.inherit)}")
        attrs = " ".join([f"name={quoteattr(p.name)}", *flags])
        default = "" if p.default is None else f" default={quoteattr(p.default)}"
        out += [
            f"    <parameter {attrs}>",
            f"      <longdesc lang=\"en\">{escape(p.longdesc or p.shortdesc)}</longdesc>",
            f"      <shortdesc lang=\"en\">{escape(p.shortdesc)}</shortdesc>",
            f"      <content type={quoteattr(p.type)}{default}/>",
            "    </parameter>",
        ]
    out += ["  </parameters>", "  <actions>"]
    for a in spec.actions:
        attrs = f"name={quoteattr(a.name)} timeout=\"{a.timeout}\""
        if a.interval is not None:
            attrs += f' interval="{a.interval}"'
        if a.depth is not None:
            attrs += f' depth="{a.depth}"'
        out.append(f"    <action {attrs}/>")
    out += ["  </actions>", '  <special tag="rgmanager">']
    if spec.maxinstances:
        out.append(f'    <attributes maxinstances="{spec.maxinstances}"/>')
    for c in spec.children:
        attrs = f"type={quoteattr(c.type)}"
        if c.start is not None:
            attrs += f' start="{c.start}"'
        if c.stop is not None:
            attrs += f' stop="{c.stop}"'
        if c.forbid:
            attrs += ' forbid="1"'
        out.append(f"    <child {attrs}/>")
    out += ["  </special>", "</resource-agent>", ""]
    return "\n".join(out)


def parse_bool(name: str, value: str) -> bool:
    v = value.strip().lower()
    if v in TRUE_WORDS:
        return True
    if v in FALSE_WORDS:
        return False
    raise AgentError(OCF_ERR_CONFIGURED, f"parameter {name}={value!r} is not a boolean")


class Params:
    """Typed view of ``OCF_RESKEY_*`` with the spec's defaults applied."""

    def __init__(self, spec: AgentSpec, environ: Mapping[str, str]) -> None:
        self._spec = spec
        self._values: dict[str, str] = {}
        for p in spec.params:
            raw = environ.get("OCF_RESKEY_" + p.name)
            if raw is None or raw == "":
                raw = p.default
            if raw is not None:
                self._values[p.name] = raw
        self.instance = environ.get("OCF_RESOURCE_INSTANCE", f"{spec.name}:?")
        try:
            self.check_level = int(environ.get("OCF_CHECK_LEVEL", "0") or 0)
        except ValueError:
            self.check_level = 0

    def get(self, name: str) -> str | None:
        return self._values.get(name)

    def str(self, name: str) -> str:
        value = self._values.get(name)
        if value is None:
            raise AgentError(OCF_ERR_CONFIGURED, f"required parameter {name} is not set")
        return value

    def bool(self, name: builtins.str) -> builtins.bool:
        value = self._values.get(name)
        return False if value is None else parse_bool(name, value)

    def int(self, name: builtins.str, default: builtins.int = 0) -> builtins.int:
        value = self._values.get(name)
        if value is None:
            return default
        try:
            return int(value)
        except ValueError:
            raise AgentError(OCF_ERR_CONFIGURED,
                             f"parameter {name}={value!r} is not an integer") from None

    def validate(self) -> None:
        """Check presence of required parameters and the type of each value."""
        for p in self._spec.params:
            value = self._values.get(p.name)
            if value is None:
                if p.required:
                    raise AgentError(OCF_ERR_CONFIGURED, f"required parameter {p.name} is not set")
                continue
            if p.type == "boolean":
                parse_bool(p.name, value)
            elif p.type == "integer":
                self.int(p.name)


Handler = Callable[[Params], int]


def stop_then_start(stop: Handler, start: Handler) -> Handler:
    """The plain ``recover`` action: stop (whatever it says), then start."""
    def recover(params: Params) -> int:
        stop(params)
        return start(params)
    return recover

_agent_handler: logging.Handler | None = None


def _install_log_handler(agent: str, level: int) -> None:
    """In the agent host one process runs many agents, so each call gets a
    fresh handler (this agent's name, this call's stderr). Only the handler a
    previous call installed is replaced: others (a test's log capture, the
    host's own) stay."""
    global _agent_handler
    root = logging.getLogger()
    if _agent_handler is not None:
        root.removeHandler(_agent_handler)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(f"{agent}: %(levelname)s: %(message)s"))
    root.addHandler(handler)
    root.setLevel(level)
    _agent_handler = handler


def run(spec: AgentSpec, handlers: Mapping[str, Handler], argv: Sequence[str] | None = None,
        environ: Mapping[str, str] | None = None) -> int:
    """Dispatch one OCF action and return its exit code (never raises)."""
    argv = list(sys.argv if argv is None else argv)
    environ = os.environ if environ is None else environ
    _install_log_handler(spec.name, logging.DEBUG if environ.get("OCF_TRACE") else logging.INFO)
    # Nothing this agent logs (its messages, errors, programs' output) may show a
    # credential from its parameters, e.g. netfs options="...,password=...".
    redact.install(redact.params_secrets(
        v for k, v in environ.items() if k.startswith("OCF_RESKEY_")))
    if len(argv) < 2:
        print(f"usage: {argv[0]} {{{'|'.join(['meta-data', *handlers])}}}", file=sys.stderr)
        return OCF_ERR_ARGS
    action = argv[1]
    if action in ("meta-data", "metadata"):
        sys.stdout.write(render_metadata(spec))
        return OCF_SUCCESS
    if action == "monitor" and "monitor" not in handlers:
        action = "status"
    if action == "validate-all" and "validate-all" not in handlers:
        handlers = {**handlers, "validate-all": lambda p: OCF_SUCCESS}
    handler = handlers.get(action)
    if handler is None:
        log.error("action %s is not implemented", action)
        return OCF_ERR_UNIMPLEMENTED
    try:
        params = Params(spec, environ)
        params.validate()
        return handler(params)
    except AgentError as err:
        level = logging.INFO if err.rc == OCF_NOT_RUNNING else logging.ERROR
        log.log(level, "%s %s: %s", params_instance(environ, spec), action, err)
        return err.rc
    except Exception as err:  # the agent must answer with an OCF code, not a traceback
        log.error("%s %s: unexpected error: %s", params_instance(environ, spec), action, err)
        return OCF_ERR_GENERIC


def state_dir() -> str:
    """Where agents keep runtime markers (tmpfs: gone after a reboot)."""
    return os.environ.get("HA_RSCTMP") or "/run/resource-agents"


class Marker:
    """A "started" marker for agents whose resource leaves no trace to probe.

    ``ocf-tester`` (and Pacemaker) need status to answer 7 after stop, even
    for a pure container such as ``service``.
    """

    def __init__(self, agent: str, instance: str) -> None:
        safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in instance)
        self.path = os.path.join(state_dir(), f"{agent}-{safe}")

    def set(self) -> None:
        os.makedirs(os.path.dirname(self.path), exist_ok=True)
        with open(self.path, "w"):
            pass

    def clear(self) -> None:
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass

    def present(self) -> bool:
        return os.path.exists(self.path)


def params_instance(environ: Mapping[str, str], spec: AgentSpec) -> str:
    return environ.get("OCF_RESOURCE_INSTANCE", spec.name)


def standard_actions(status_interval: int = 60, status_timeout: int = 10,
                     start_timeout: int = 60, stop_timeout: int = 60,
                     depths: Sequence[tuple[int, ...]] | None = None,
                     recover_timeout: int | None = None) -> list[Action]:
    """start/stop[/recover]/status/monitor/meta-data/validate-all.

    ``depths`` lists ``(depth, interval[, timeout])`` status levels; without it
    one depth-0 check every ``status_interval`` seconds. Each status level is
    declared twice, as rgmanager's ``status`` and Pacemaker's ``monitor``.
    """
    actions = [Action("start", start_timeout), Action("stop", stop_timeout)]
    if recover_timeout is not None:
        actions.append(Action("recover", recover_timeout))
    for level in depths if depths is not None else ((0, status_interval),):
        depth, interval = level[0], level[1]
        timeout = level[2] if len(level) > 2 else status_timeout
        actions.append(Action("status", timeout, interval, depth))
        actions.append(Action("monitor", timeout, interval, depth))
    actions += [Action("meta-data", 5), Action("validate-all", 5)]
    return actions
