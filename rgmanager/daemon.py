"""Process life of rgmanager: config, logging, control socket, signals.

Decisions live in the planner and their execution in the manager; this
module only wires them to the outside world and keeps running through bad
input: a reload that fails for any reason (rejected file, unreadable file,
a configuration deep enough to exhaust the recursion limit, a bug) is logged
once and changes nothing that runs. Reloads are loaded and validated in a
worker thread, so a slow validation never delays SIGTERM.

Fencing is on for every backend: the manager fences a member lost while it
runs a service before recovering it (docs/fencing.md). With the ``local``
backend nothing changes in practice, as no other node can be lost.

The ``fence_ack`` control request (``clusvcadm --fence-ack NODE``, cman's
fence_ack_manual) is an administrator's word that NODE is off. It is taken
only with quorum (else ``EQUORUM``), for a configured node that is not a
member of the group (a member is up: refused, saying so) and that the
cluster awaits (else it says there is nothing to acknowledge). It is logged
at WARNING ("fence of NODE acknowledged by an administrator"), broadcast as
``NodeFenced(by="admin")``, and answered with success once delivered here,
like the service requests.
"""

from __future__ import annotations

import logging
import logging.handlers
import os
import signal
import socket
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lxml import etree

from . import codes, sdnotify
from .agents.discovery import RuleSet, default_agent_dirs, load_rules
from .cluster import registry
from .cluster.base import Cluster
from .config.model import ClusterConfig
from .control import OP_FENCE_ACK, ControlServer
from .errors import ConfigError, Severity
from .loader import Loaded, load
from .manager import Manager, ReloadRefused
from .pidlock import AlreadyRunning, PidLock
from .planner.events import REQUEST_OPS, Op

log = logging.getLogger(__name__)

DEFAULT_CONF = "/etc/cluster/cluster.conf"
DEFAULT_REQUEST_TIMEOUT = 300.0  # seconds a request may wait for the cluster
SYSLOG_LEVELS = {0: logging.CRITICAL, 1: logging.CRITICAL, 2: logging.CRITICAL,
                 3: logging.ERROR, 4: logging.WARNING, 5: logging.WARNING, 6: logging.INFO,
                 7: logging.DEBUG}


class StartupError(Exception):
    """The daemon cannot start; the message says why (no traceback)."""


@dataclass
class Options:
    conf: str = DEFAULT_CONF
    node: str | None = None
    backend: str = "local"
    socket: str | None = None
    agent_dirs: Sequence[str] = ()
    stop_at_startup: bool = True
    config_poll: float = 5.0
    log_to_stderr: bool = True
    extra_env: dict[str, str] = field(default_factory=dict)
    #: The one-daemon-per-node lock (see rgmanager.pidlock); None takes none (in-process use).
    lock_file: str | None = None


def configure_logging(config: ClusterConfig, to_stderr: bool = True) -> None:
    """Apply ``<logging>`` (and ``<rm log_level>``) to the root logger."""
    lg = dict(config.logging)
    mine = next((d for d in config.logging_daemons if d.get("name") == "rgmanager"), {})
    merged = {**lg, **mine}
    level = logging.INFO
    if config.rm.log_level is not None:
        level = SYSLOG_LEVELS.get(config.rm.log_level, logging.INFO)
    if config.log_debug:
        level = logging.DEBUG
    root = logging.getLogger()
    for h in list(root.handlers):
        if getattr(h, "_rgmanager", False):
            root.removeHandler(h)
    fmt = logging.Formatter("%(asctime)s rgmanager[%(process)d]: %(levelname)s %(message)s")
    handlers: list[logging.Handler] = []
    if to_stderr:
        handlers.append(logging.StreamHandler())
    if config.log_to_logfile or config.log_file:
        path = config.log_file or "/var/log/cluster/rgmanager.log"
        try:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            handlers.append(logging.FileHandler(path))
        except OSError as err:
            log.warning("cannot open log file %s: %s", path, err)
    if config.log_to_syslog and os.path.exists("/dev/log"):
        facility = merged.get("syslog_facility", "daemon")
        sh = logging.handlers.SysLogHandler(
            "/dev/log", logging.handlers.SysLogHandler.facility_names.get(facility, 3))
        sh.setFormatter(logging.Formatter("rgmanager[%(process)d]: %(message)s"))
        handlers.append(sh)
    for h in handlers:
        if not isinstance(h, logging.handlers.SysLogHandler):
            h.setFormatter(fmt)
        h._rgmanager = True  # type: ignore[attr-defined]
        root.addHandler(h)
    root.setLevel(level)


def pick_node(config: ClusterConfig, wanted: str | None) -> str:
    if wanted:
        if config.node(wanted) is None:
            raise StartupError(f"node '{wanted}' is not a clusternode in {config.path}")
        return config.node(wanted).name  # type: ignore[union-attr]
    if len(config.nodes) == 1:
        return config.nodes[0].name
    host = socket.gethostname()
    for cand in (host, host.split(".")[0]):
        n = config.node(cand)
        if n is not None:
            return n.name
    raise StartupError(f"this host ({host}) is not a clusternode in {config.path}; "
                       "use --node NAME")


FileStamp = tuple[int, int, int, int]


def file_stamp(path: str) -> FileStamp | str:
    """What identifies one version of a file (or why it cannot be stat()ed)."""
    try:
        st = os.stat(path)
    except OSError as err:
        return f"{err.strerror or err}"
    return (st.st_mtime_ns, st.st_size, st.st_ino, st.st_dev)


def peek_config_version(path: str) -> int | None:
    """``config_version`` of the root element, reading no further than its start tag.

    ``None`` when the file does not even start as XML (the full load then says
    where and why). Raises ``OSError`` for an unreadable file.
    """
    with open(path, "rb") as f:
        try:
            for _event, el in etree.iterparse(f, events=("start",), huge_tree=True,
                                              resolve_entities=False, no_network=True):
                return int(el.get("config_version", "0"))
        except (etree.XMLSyntaxError, ValueError):
            return None
    return None


def _describe(err: BaseException) -> str:
    text = str(err)
    if len(text) > 300:
        text = text[:300] + "..."
    return f"{type(err).__name__}: {text}" if text else type(err).__name__


class Daemon:
    def __init__(self, opts: Options) -> None:
        self.opts = opts
        self.pidlock: PidLock | None = None
        if opts.lock_file:
            # Before anything else: a second daemon must not touch the first one's services.
            self.pidlock = PidLock(opts.lock_file)
            try:
                self.pidlock.acquire()
            except AlreadyRunning:
                self.pidlock = None
                raise
            except OSError as err:
                self.pidlock = None
                raise StartupError(f"cannot take the lock file {opts.lock_file}: "
                                   f"{err.strerror or err}") from None
        try:
            self._init()
        except BaseException:
            self.release_lock()
            raise

    def _init(self) -> None:
        opts = self.opts
        self.rules: RuleSet = load_rules(default_agent_dirs(opts.agent_dirs))
        self._seen_stamp: FileStamp | str | None = file_stamp(opts.conf)
        self.loaded = self._load()
        configure_logging(self.loaded.config, opts.log_to_stderr)
        for r in self.loaded.reports:
            log.warning("%s", r)
        self.node = pick_node(self.loaded.config, opts.node)
        self.cluster = self._backend()
        self.manager = Manager(self.loaded, self.cluster, extra_env=opts.extra_env,
                               fencing=True)  # every backend (see the module docstring)
        self.manager.on_config_needed = self._config_needed
        self.server: ControlServer | None = None
        self.locked = False
        self.stopping = threading.Event()
        # Reloads: the worker thread loads and validates (however long it takes);
        # one reload at a time; applying and shutting down exclude each other.
        self.reload_requested = threading.Event()
        self._reload_trigger = "SIGHUP"  # what the next explicit reload is for (logs)
        self._reload_lock = threading.Lock()
        self._apply_lock = threading.Lock()
        self._reloader: threading.Thread | None = None

    def release_lock(self) -> None:
        if self.pidlock is not None:
            self.pidlock.release()
            self.pidlock = None

    def _load(self) -> Loaded:
        try:
            return load(self.opts.conf, self.rules)
        except ConfigError as err:
            raise StartupError("configuration rejected:\n" + "\n".join(
                str(r) for r in err.reports)) from None
        except RecursionError:
            raise StartupError(f"configuration rejected: {self.opts.conf}: nested too "
                               "deeply") from None
        except OSError as err:
            raise StartupError(f"cannot read {self.opts.conf}: {err.strerror or err}") from None

    def _backend(self) -> Cluster:
        try:
            return registry.build(self.opts.backend, self.loaded.config, self.node)
        except (registry.UnknownBackend, ValueError) as err:
            raise StartupError(str(err)) from None

    # -- control requests ----------------------------------------------------
    def handle(self, req: dict[str, Any]) -> dict[str, Any]:
        op = req.get("op")
        if op == "status":
            return dict(self.manager.status())
        if op in ("lock", "unlock"):
            self.locked = op == "lock"
            log.info("resource groups %s", "locked" if self.locked else "unlocked")
            return {"code": codes.ESUCCESS, "text": codes.strerror(codes.ESUCCESS),
                    "locked": self.locked}
        if op == "lock_status":
            return {"code": codes.ESUCCESS, "text": "Success", "locked": self.locked}
        if op == "reload":
            return self.reload("control request")
        if op == OP_FENCE_ACK:
            node = req.get("node")
            if not isinstance(node, str) or not node:
                return {"code": codes.EINVAL, "text": "fence_ack needs a node name"}
            reply = self.manager.fence_ack(node, timeout=DEFAULT_REQUEST_TIMEOUT)
            return {"code": reply.code, "text": reply.text}
        if op not in REQUEST_OPS:
            return {"code": codes.EINVAL, "text": f"unknown operation {op!r}"}
        service = str(req.get("service") or "")
        if self.locked and op in (Op.ENABLE, Op.RELOCATE, Op.RESTART, Op.MIGRATE):
            return {"code": codes.EAGAIN, "text": "Resource groups are locked"}
        # The client says how long it waits (clusvcadm --timeout); the daemon
        # gives up a little earlier so that its answer still reaches it.
        try:
            wait = float(req.get("timeout") or DEFAULT_REQUEST_TIMEOUT)
        except (TypeError, ValueError):
            return {"code": codes.EINVAL, "text": "bad timeout"}
        wait = min(max(wait - 1.0, 0.5), DEFAULT_REQUEST_TIMEOUT)
        reply = self.manager.request(op, service, req.get("node"),
                                     bool(req.get("follow_domain")), timeout=wait)
        return {"code": reply.code, "text": reply.text, "owner": reply.owner}

    # -- reconfiguration ---------------------------------------------------------
    def reload(self, trigger: str = "request") -> dict[str, Any]:
        """Load, validate and apply the file if its config_version is higher.

        Never raises: whatever goes wrong is logged (one ERROR line; the
        traceback at DEBUG) and the configuration in force stays in force.
        Called by the reload worker (SIGHUP, poll) and by control requests.
        """
        with self._reload_lock:
            try:
                return self._reload(trigger)
            except Exception as err:  # deep nesting, unreadable file, a bug: never fatal
                # The traceback first: whoever waits for the ERROR line then
                # finds the whole record of this failure.
                log.debug("reload failure", exc_info=True)
                log.error("reload (%s) failed: %s; configuration %d stays in force",
                          trigger, _describe(err), self.loaded.config.config_version)
                return {"code": codes.EFAIL, "text": f"reload failed: {_describe(err)}; "
                        "nothing changed"}

    def _reload(self, trigger: str) -> dict[str, Any]:
        self._seen_stamp = file_stamp(self.opts.conf)  # the poll need not look at it again
        current = self.loaded.config.config_version
        try:
            new = load(self.opts.conf, self.rules)
        except ConfigError as err:
            errors = [r for r in err.reports if r.severity == Severity.ERROR]
            log.error("reload (%s) rejected: %s has %d error(s); configuration %d stays "
                      "in force", trigger, self.opts.conf, len(errors), current)
            for r in err.reports:
                log.log(logging.ERROR if r.severity == Severity.ERROR else logging.WARNING,
                        "reload rejected: %s", r)
            return {"code": codes.EINVAL, "text": "configuration rejected; nothing changed",
                    "reports": [r.as_dict() for r in err.reports]}
        version = new.config.config_version
        if version <= current:
            log.warning("reload (%s) refused: config_version %d in %s is not higher than "
                        "%d in force; nothing changed", trigger, version, self.opts.conf,
                        current)
            return {"code": codes.EINVAL, "text": f"config_version {version} is not higher "
                    f"than {current} in force; nothing changed"}
        with self._apply_lock:
            if self.stopping.is_set():
                log.info("reload to config_version %d abandoned: shutting down", version)
                return {"code": codes.EAGAIN, "text": "shutting down; nothing changed"}
            try:
                done = self.manager.reload(new)
            except ReloadRefused as err:
                log.warning("reload (%s) to config_version %d refused by the cluster: %s; "
                            "nothing changed here", trigger, version, err)
                return {"code": codes.EINVAL, "text": f"refused by the cluster: {err}"}
            except Exception as err:
                log.error("reload to config_version %d failed while applying: %s; "
                          "configuration %d stays in force", version, _describe(err), current)
                log.debug("reload failure", exc_info=True)
                return {"code": codes.EFAIL, "text": f"reload failed: {_describe(err)}"}
            self.loaded = new
        try:
            configure_logging(new.config, self.opts.log_to_stderr)
        except Exception as err:
            log.error("<logging> of config_version %d not applied: %s", version,
                      _describe(err))
        for r in new.reports:
            log.warning("%s", r)
        log.info("configuration %d -> %d applied (%d changes)", current, version, len(done))
        return {"code": codes.ESUCCESS, "text": "Success", "changes": done}

    def _config_needed(self, version: int) -> None:
        """Another node switched the cluster to ``version``: read our file now
        (the manager holds its deliveries until we hand it that version)."""
        log.info("the cluster switched to config_version %d; reading %s", version,
                 self.opts.conf)
        self._reload_trigger = f"the cluster runs config_version {version}"
        self.reload_requested.set()

    def poll_config(self) -> None:
        """The config_version poll: look at the file only when it changed, once per change.

        A changed file with a higher version is reloaded; if it is rejected the
        errors are logged once, and again only when the file changes again.
        """
        stamp = file_stamp(self.opts.conf)
        if stamp == self._seen_stamp:
            return
        self._seen_stamp = stamp
        if isinstance(stamp, str):
            log.error("cannot stat %s: %s; configuration %d stays in force", self.opts.conf,
                      stamp, self.loaded.config.config_version)
            return
        current = self.loaded.config.config_version
        try:
            version = peek_config_version(self.opts.conf)
        except OSError as err:
            log.error("cannot read %s: %s; configuration %d stays in force", self.opts.conf,
                      err.strerror or err, current)
            return
        if version is not None and version <= current:
            log.info("%s changed but its config_version %d is not higher than %d in force; "
                     "not reloaded", self.opts.conf, version, current)
            return
        if version is None:
            log.info("%s changed and is not well-formed; checking it", self.opts.conf)
        else:
            log.info("config_version %d on disk is newer; reloading", version)
        self.reload("config_version poll")

    def _reloader_loop(self) -> None:
        while not self.stopping.is_set():
            explicit = self.reload_requested.wait(self.opts.config_poll)
            if self.stopping.is_set():
                return
            try:
                if explicit:
                    self.reload_requested.clear()
                    trigger, self._reload_trigger = self._reload_trigger, "SIGHUP"
                    self.reload(trigger)
                else:
                    self.poll_config()
            except Exception as err:  # never let the reloader die
                log.error("configuration poll failed: %s", _describe(err))
                log.debug("configuration poll failure", exc_info=True)

    # -- life ---------------------------------------------------------------------------
    def run(self) -> int:
        try:
            return self._run()
        finally:
            self.release_lock()

    def _run(self) -> int:
        if self.opts.stop_at_startup:
            self.manager.stop_all_local("startup: clean slate")
        path = self.opts.socket or os.environ.get("RGMANAGER_SOCKET") or \
            "/var/run/cluster/rgmanager.sock"
        self.server = ControlServer(path, self.handle)
        try:
            self.server.start()
        except OSError as err:
            raise StartupError(f"cannot serve the control socket {path}: "
                               f"{err.strerror or err}") from None
        self.manager.start()
        log.info("rgmanager started on %s (cluster %s, config version %d, %d services)",
                 self.node, self.loaded.config.name, self.loaded.config.config_version,
                 len(self.manager.model.services))
        sdnotify.notify("READY=1")
        # The reloader's loop catches everything, so it lives as long as we do;
        # the main thread only waits for SIGTERM.
        self._reloader = threading.Thread(target=self._reloader_loop, name="rgmanager-reload",
                                          daemon=True)
        self._reloader.start()
        self.stopping.wait()
        sdnotify.notify("STOPPING=1")
        # A reload being loaded is abandoned; one being applied finishes first.
        with self._apply_lock:
            log.info("shutting down: stopping services")
            self.manager.shutdown(stop_services=True)
        self.server.stop()
        log.info("rgmanager stopped")
        return 0

    def request_stop(self) -> None:
        self.stopping.set()
        self.reload_requested.set()  # wake the reloader so it ends

    def request_reload(self) -> None:
        self.reload_requested.set()

    def install_signals(self) -> None:
        signal.signal(signal.SIGTERM, lambda *_: self.request_stop())
        signal.signal(signal.SIGINT, lambda *_: self.request_stop())
        signal.signal(signal.SIGHUP, lambda *_: self.request_reload())
