"""Process life of rgmanager: config, logging, control socket, signals.

Decisions live in the planner and their execution in the manager; this
module only wires them to the outside world and keeps running through bad
configurations (a rejected reload changes nothing that runs).
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

from . import codes
from .agents.discovery import RuleSet, default_agent_dirs, load_rules
from .cluster.base import Cluster
from .cluster.local import LocalCluster
from .config.model import ClusterConfig
from .control import ControlServer
from .errors import ConfigError
from .loader import Loaded, load
from .manager import Manager

log = logging.getLogger(__name__)

DEFAULT_CONF = "/etc/cluster/cluster.conf"
REQUEST_OPS = ("enable", "disable", "relocate", "restart", "stop", "freeze", "unfreeze",
               "convalesce", "migrate")
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


def _on(value: str | None) -> bool:
    return (value or "").strip().lower() in ("1", "yes", "on", "true")


def configure_logging(config: ClusterConfig, to_stderr: bool = True) -> None:
    """Apply ``<logging>`` (and ``<rm log_level>``) to the root logger."""
    lg = dict(config.logging)
    mine = next((d for d in config.logging_daemons if d.get("name") == "rgmanager"), {})
    merged = {**lg, **mine}
    level = logging.INFO
    if "log_level" in config.rm.attrs:
        level = SYSLOG_LEVELS.get(int(config.rm.attrs["log_level"]), logging.INFO)
    if _on(merged.get("debug")):
        level = logging.DEBUG
    root = logging.getLogger()
    for h in list(root.handlers):
        if getattr(h, "_rgmanager", False):
            root.removeHandler(h)
    fmt = logging.Formatter("%(asctime)s rgmanager[%(process)d]: %(levelname)s %(message)s")
    handlers: list[logging.Handler] = []
    if to_stderr:
        handlers.append(logging.StreamHandler())
    if _on(merged.get("to_logfile")) or merged.get("logfile"):
        path = merged.get("logfile") or "/var/log/cluster/rgmanager.log"
        try:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            handlers.append(logging.FileHandler(path))
        except OSError as err:
            log.warning("cannot open log file %s: %s", path, err)
    if _on(merged.get("to_syslog")) and os.path.exists("/dev/log"):
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
    logging.getLogger("apscheduler").setLevel(max(level, logging.WARNING))


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


def notify_systemd(state: str) -> None:
    addr = os.environ.get("NOTIFY_SOCKET")
    if not addr:
        return
    if addr.startswith("@"):
        addr = "\0" + addr[1:]
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
            s.connect(addr)
            s.sendall(state.encode())
    except OSError as err:
        log.debug("sd_notify failed: %s", err)


class Daemon:
    def __init__(self, opts: Options) -> None:
        self.opts = opts
        self.rules: RuleSet = load_rules(default_agent_dirs(opts.agent_dirs))
        self.loaded = self._load()
        configure_logging(self.loaded.config, opts.log_to_stderr)
        for r in self.loaded.reports:
            log.warning("%s", r)
        self.node = pick_node(self.loaded.config, opts.node)
        self.cluster = self._backend()
        self.manager = Manager(self.loaded, self.cluster, extra_env=opts.extra_env)
        self.server: ControlServer | None = None
        self.locked = False
        self.stopping = threading.Event()
        self.reload_requested = threading.Event()
        self.wake = threading.Event()
        self._seen_stamp: tuple[int, int] | None = None

    def _load(self) -> Loaded:
        try:
            return load(self.opts.conf, self.rules)
        except ConfigError as err:
            raise StartupError("configuration rejected:\n" + "\n".join(
                str(r) for r in err.reports)) from None

    def _backend(self) -> Cluster:
        if self.opts.backend == "local":
            return LocalCluster(self.node)
        raise StartupError(f"unknown cluster backend '{self.opts.backend}' (available: local)")

    # -- control requests ----------------------------------------------------
    def handle(self, req: dict[str, Any]) -> dict[str, Any]:
        op = req.get("op")
        if op == "status":
            return self.manager.status()
        if op in ("lock", "unlock"):
            self.locked = op == "lock"
            log.info("resource groups %s", "locked" if self.locked else "unlocked")
            return {"code": codes.SUCCESS, "text": codes.strerror(codes.SUCCESS),
                    "locked": self.locked}
        if op == "lock_status":
            return {"code": codes.SUCCESS, "text": "Success", "locked": self.locked}
        if op == "reload":
            return self.reload()
        if op not in REQUEST_OPS:
            return {"code": codes.EINVAL, "text": f"unknown operation {op!r}"}
        service = str(req.get("service") or "")
        if self.locked and op in ("enable", "relocate", "restart", "migrate"):
            return {"code": codes.EAGAIN, "text": "Resource groups are locked"}
        reply = self.manager.request(op, service, req.get("node"),
                                     bool(req.get("follow_domain")))
        return {"code": reply.code, "text": reply.text, "owner": reply.owner}

    # -- reconfiguration ---------------------------------------------------------
    def reload(self) -> dict[str, Any]:
        try:
            new = load(self.opts.conf, self.rules)
        except ConfigError as err:
            for r in err.reports:
                log.error("reload rejected: %s", r)
            return {"code": codes.EINVAL, "text": "configuration rejected; nothing changed",
                    "reports": [r.as_dict() for r in err.reports]}
        old_version = self.loaded.config.config_version
        done = self.manager.reload(new)
        self.loaded = new
        configure_logging(new.config, self.opts.log_to_stderr)
        log.info("configuration %d -> %d applied (%d changes)", old_version,
                 new.config.config_version, len(done))
        return {"code": codes.SUCCESS, "text": "Success", "changes": done}

    def _config_version_on_disk(self) -> int | None:
        """Parse the file only when it changed: the poll runs every few seconds."""
        try:
            st = os.stat(self.opts.conf)
            stamp = (st.st_mtime_ns, st.st_size)
            if stamp == self._seen_stamp:
                return None
            self._seen_stamp = stamp
            root = etree.parse(self.opts.conf).getroot()
            return int(root.get("config_version", "0"))
        except (OSError, ValueError, etree.XMLSyntaxError):
            return None

    # -- life ---------------------------------------------------------------------------
    def run(self) -> int:
        if self.opts.stop_at_startup:
            self.manager.stop_all_local("startup: clean slate")
        path = self.opts.socket or os.environ.get("RGMANAGER_SOCKET") or \
            "/var/run/cluster/rgmanager.sock"
        self.server = ControlServer(path, self.handle)
        self.server.start()
        self.manager.start()
        log.info("rgmanager started on %s (cluster %s, config version %d, %d services)",
                 self.node, self.loaded.config.name, self.loaded.config.config_version,
                 len(self.manager.model.services))
        notify_systemd("READY=1")
        while not self.stopping.is_set():
            self.wake.wait(self.opts.config_poll)
            self.wake.clear()
            if self.stopping.is_set():
                break
            if self.reload_requested.is_set():
                self.reload_requested.clear()
                self.reload()
                continue
            version = self._config_version_on_disk()
            if version is not None and version > self.loaded.config.config_version:
                log.info("config_version %d on disk is newer; reloading", version)
                self.reload()
        notify_systemd("STOPPING=1")
        log.info("shutting down: stopping services")
        self.manager.shutdown(stop_services=True)
        self.server.stop()
        log.info("rgmanager stopped")
        return 0

    def request_stop(self) -> None:
        self.stopping.set()
        self.wake.set()

    def request_reload(self) -> None:
        self.reload_requested.set()
        self.wake.set()

    def install_signals(self) -> None:
        signal.signal(signal.SIGTERM, lambda *_: self.request_stop())
        signal.signal(signal.SIGINT, lambda *_: self.request_stop())
        signal.signal(signal.SIGHUP, lambda *_: self.request_reload())
