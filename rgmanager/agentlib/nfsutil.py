"""Shared helpers for the NFS agents: the kernel NFS server and ``exportfs``.

``nfsserver`` and ``nfsexport`` both need "make sure nfsd and mountd run";
``nfsclient`` (and tests) need an exports table that copes with the wrapped
lines ``exportfs -v`` prints for long paths.  Programs run through
:mod:`.syscmd` (argv lists, never a shell).
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import signal
import time
from collections.abc import Sequence
from dataclasses import dataclass

from . import syscmd
from .ocf import OCF_ERR_GENERIC, OCF_ERR_INSTALLED, AgentError, state_dir

log = logging.getLogger(__name__)

NFSD_FS = "/proc/fs/nfsd"
DEFAULT_THREADS = 8
COMMAND_TIMEOUT = 60.0


def require(*programs: str) -> None:
    """Fail with OCF_ERR_INSTALLED (5) when a needed program is missing."""
    for prog in programs:
        if shutil.which(prog) is None:
            raise AgentError(OCF_ERR_INSTALLED, f"{prog} is not installed")


# --- processes -------------------------------------------------------------

def pids_of(comm: str) -> list[int]:
    """PIDs whose /proc/PID/comm is ``comm`` (no pgrep dependency, no shell)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/comm") as f:
                if f.read().strip() == comm[:15]:
                    found.append(int(entry))
        except OSError:
            continue
    return found


#: The PID :func:`is_running` found last, per program: checked (one read)
#: before scanning /proc (one read per process) again.  Always re-validated,
#: so a stale entry costs a scan, never a wrong answer.
_last_seen: dict[str, int] = {}


def is_running(comm: str) -> bool:
    """Whether a process named ``comm`` runs: cheap on the status path, where an
    agent host asks every few seconds."""
    pid = _last_seen.get(comm)
    if pid is not None and pid_is(pid, comm):
        return True
    found = pids_of(comm)
    if found:
        _last_seen[comm] = found[0]
        return True
    _last_seen.pop(comm, None)
    return False


def pid_is(pid: int, comm: str) -> bool:
    """True when ``pid`` is alive and still the program we think it is."""
    try:
        with open(f"/proc/{pid}/comm") as f:
            return f.read().strip() == comm[:15]
    except OSError:
        return False


def kill_pid(pid: int, comm: str, timeout: float = 10.0) -> None:
    """TERM, then KILL, one process, but only if it is still ``comm``.

    The check guards against a recycled PID from an old record.
    """
    if not pid_is(pid, comm):
        return
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not pid_is(pid, comm):
            return
        time.sleep(0.1)
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


# --- kernel nfsd -----------------------------------------------------------

def nfsd_fs_mounted() -> bool:
    try:
        with open("/proc/mounts") as f:
            return any(line.split()[1:3] == [NFSD_FS, "nfsd"] for line in f if line.strip())
    except OSError:
        return False


def ensure_nfsd_fs() -> None:
    """Mount the nfsd control file system; OCF_ERR_INSTALLED if the kernel lacks nfsd.

    rpc.nfsd itself would only print a hint, so probing here gives the
    cluster (and the operator) a precise reason.
    """
    if nfsd_fs_mounted():
        return
    if shutil.which("modprobe"):
        syscmd.run(["modprobe", "nfsd"])
    p = syscmd.run(["mount", "-t", "nfsd", "nfsd", NFSD_FS])
    if p.rc != 0 and not nfsd_fs_mounted():
        raise AgentError(OCF_ERR_INSTALLED,
                         f"kernel NFS server unavailable: mount -t nfsd nfsd {NFSD_FS}: "
                         f"{' '.join(p.said().split())}")


def nfsd_threads() -> int:
    """Running nfsd threads (0 when the kernel server is down or absent)."""
    try:
        with open(os.path.join(NFSD_FS, "threads")) as f:
            return int(f.read().strip() or 0)
    except (OSError, ValueError):
        return 0


def set_v4_recovery_dir(path: str) -> None:
    """Point NFSv4 client tracking at ``path`` when the kernel offers the knob.

    Must happen before nfsd starts; newer kernels track clients via nfsdcld
    and have no such file, which is fine.
    """
    knob = os.path.join(NFSD_FS, "nfsv4recoverydir")
    if os.path.exists(knob):
        try:
            with open(knob, "w") as f:
                f.write(path)
        except OSError as err:
            log.warning("cannot set %s to %s: %s", knob, path, err)


def server_running() -> bool:
    """The NFS server answers when nfsd has threads and mountd is alive."""
    return nfsd_threads() > 0 and is_running("rpc.mountd")


@dataclass
class Started:
    """What :func:`ensure_server` had to start itself (so stop kills only that)."""

    nfsd: bool = False
    mountd: int | None = None
    statd: int | None = None


def spawn_daemon(argv: Sequence[str], timeout: float = COMMAND_TIMEOUT) -> None:
    """Run a self-daemonizing program; its output goes to a file, not a pipe.

    A daemon that kept an inherited stdout pipe open would make a pipe-reading
    wait last until the timeout.
    """
    p = syscmd.run(argv, timeout=timeout, to_file=True)
    if p.rc != 0:
        raise AgentError(OCF_ERR_GENERIC, f"{syscmd.shown(argv)} failed (rc {p.rc}): "
                         f"{' '.join(p.said().split())}")


def _new_pid(comm: str, before: set[int], timeout: float = 10.0) -> int | None:
    """The PID of a daemon that forked into the background after ``before``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        new = set(pids_of(comm)) - before
        if new:
            return min(new)
        time.sleep(0.1)
    return None


def ensure_rpcbind() -> None:
    """Start rpcbind when absent; mountd and statd register with it.

    rpcbind is shared host infrastructure, so no agent ever stops it.
    """
    if pids_of("rpcbind") or shutil.which("rpcbind") is None:
        return
    try:
        spawn_daemon(["rpcbind", "-w"])
    except AgentError as err:
        log.warning("rpcbind: %s", err)


def ensure_server(threads: int = DEFAULT_THREADS, statd_dir: str | None = None,
                  v4_recovery_dir: str | None = None) -> Started:
    """Make sure nfsd threads and rpc.mountd (and optionally rpc.statd) run.

    Idempotent: daemons already running are left as they are and are not
    reported as started by us.
    """
    require("rpc.nfsd", "rpc.mountd")
    ensure_nfsd_fs()
    ensure_rpcbind()
    started = Started()
    if statd_dir is not None and not pids_of("rpc.statd") and shutil.which("rpc.statd"):
        before = set(pids_of("rpc.statd"))
        try:
            spawn_daemon(["rpc.statd", "--no-notify", "-P", statd_dir])
            started.statd = _new_pid("rpc.statd", before)
        except AgentError as err:
            log.warning("rpc.statd did not start: %s", err)
    if not pids_of("rpc.mountd"):
        before = set(pids_of("rpc.mountd"))
        spawn_daemon(["rpc.mountd"])
        started.mountd = _new_pid("rpc.mountd", before)
        if started.mountd is None:
            raise AgentError(OCF_ERR_GENERIC, "rpc.mountd exited right after starting")
    if nfsd_threads() == 0:
        if v4_recovery_dir is not None:
            set_v4_recovery_dir(v4_recovery_dir)
        syscmd.run(["rpc.nfsd", str(threads)], check=True)
        started.nfsd = True
        if nfsd_threads() == 0:
            raise AgentError(OCF_ERR_GENERIC, "rpc.nfsd ran but the kernel reports 0 threads")
    # No "exportfs -r" here: it would drop the exports nfsclient made with
    # "exportfs -i"; the kernel asks mountd about etab entries on demand anyway.
    return started


def stop_nfsd() -> None:
    """Stop all kernel nfsd threads (rpc.nfsd 0); a no-op when none run."""
    if nfsd_threads() == 0:
        return
    syscmd.run(["rpc.nfsd", "0"], check=True)


# --- ownership records -------------------------------------------------------

class Record:
    """A small JSON record in HA_RSCTMP: what an agent started, for its stop."""

    def __init__(self, agent: str, instance: str) -> None:
        safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in instance)
        self.path = os.path.join(state_dir(), f"{agent}-{safe}.json")

    def load(self) -> dict[str, object] | None:
        try:
            with open(self.path) as f:
                data = json.load(f)
        except (OSError, ValueError):
            return None
        return data if isinstance(data, dict) else None

    def save(self, data: dict[str, object]) -> None:
        os.makedirs(os.path.dirname(self.path), exist_ok=True)
        tmp = self.path + ".tmp"
        with open(tmp, "w") as f:
            json.dump(data, f)
        os.replace(tmp, self.path)

    def clear(self) -> None:
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass


# --- exportfs ----------------------------------------------------------------

@dataclass(frozen=True)
class Export:
    path: str
    client: str
    options: str


_OCTAL = re.compile(r"\\([0-7]{3})")


def _unescape(path: str) -> str:
    return _OCTAL.sub(lambda m: chr(int(m.group(1), 8)), path)


def parse_exportfs(text: str) -> list[Export]:
    """Parse ``exportfs -v``.

    One export per line is ``PATH<pad>\\tCLIENT(OPTS)``; when PATH is long,
    exportfs puts it alone on a line and the client on the next line after
    two tabs.  The client part never contains a tab, the path may hold spaces.
    """
    exports: list[Export] = []
    pending: str | None = None
    for raw in text.splitlines():
        if not raw.strip():
            continue
        if "\t" in raw:
            left, _, right = raw.rpartition("\t")
            path = left.strip() or pending
            pending = None
            if not path:
                continue
            right = right.strip()
            m = re.fullmatch(r"(.*?)\((.*)\)", right)
            client, opts = (m.group(1), m.group(2)) if m else (right, "")
            exports.append(Export(_unescape(path), client, opts))
        else:
            pending = raw.strip()
    return exports


#: The export table ``exportfs -v`` prints, where nfs-utils keeps it by default.
ETAB = "/var/lib/nfs/etab"
#: nfs-utils configuration that may move the table elsewhere.
NFS_CONF = "/etc/nfs.conf"
NFS_CONF_DIR = "/etc/nfs.conf.d"


def etab_path() -> str | None:
    """:data:`ETAB` when it is surely the table in use, else None.

    nfs-utils replaces the file by rename under its lock, so reading it gives
    a whole table.  A configured ``state-directory-path`` (in nfs.conf or
    nfs.conf.d) may move it: then we do not guess and run ``exportfs -v``.
    """
    if not os.path.isfile(ETAB):
        return None
    confs = [NFS_CONF]
    try:
        confs += [os.path.join(NFS_CONF_DIR, n) for n in sorted(os.listdir(NFS_CONF_DIR))]
    except OSError:
        pass
    for conf in confs:
        try:
            with open(conf, encoding="utf-8", errors="replace") as f:
                if any(line.lstrip().startswith("state-directory-path") for line in f):
                    return None  # set (comments start with # or ;)
        except OSError:
            continue
    return ETAB


def list_exports() -> list[Export]:
    """The current exports: read from the export table itself when we know where
    it is (no fork: the ``nfsclient`` status path), else from ``exportfs -v``."""
    path = etab_path()
    if path is not None:
        try:
            with open(path, encoding="utf-8", errors="surrogateescape") as f:
                return parse_exportfs(f.read())
        except OSError as err:
            log.debug("cannot read %s (%s); asking exportfs", path, err)
    p = syscmd.run(["exportfs", "-v"], check=True)
    return parse_exportfs(p.stdout)


def client_matches(shown: str, target: str) -> bool:
    """exportfs shows ``*`` as ``<world>``; host names compare case-blind."""
    if target == "*":
        return shown in ("<world>", "*")
    return shown.lower() == target.lower()


def norm_path(path: str) -> str:
    return os.path.normpath(path) if path else path


def find_export(target: str, path: str) -> Export | None:
    want = norm_path(path)
    for e in list_exports():
        if norm_path(e.path) == want and client_matches(e.client, target):
            return e
    return None
