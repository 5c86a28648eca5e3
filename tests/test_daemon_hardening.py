"""The daemon must never die of input.

Reloads that fail in any way leave the configuration in force and the daemon
running; only a higher config_version applies; a rejected file is logged once
per change; a slow load never delays SIGTERM; a second rgmanager on the node
refuses at once without touching the first one's services.

Most tests run the real :class:`rgmanager.daemon.Daemon` in-process (its main
loop in a thread, real agents, real LSB script); the lock test runs two real
daemon processes.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from rgmanager import daemon as daemon_mod
from rgmanager.cli import daemon_main
from rgmanager.pidlock import AlreadyRunning, PidLock

from .manager_helpers import cluster_conf, script, starts, wait_for, write_lsb

REPO = Path(__file__).resolve().parents[1]


def deep_body(depth: int) -> str:
    """A service whose resources nest ``depth`` levels deep (exhausts the recursion limit)."""
    inner = "".join(f'<script name="x{i}" file="/bin/true{i}">' for i in range(depth))
    return f'<service name="deep">{inner}{"</script>" * depth}</service>'


class InProc:
    """A real Daemon in this process: its main loop in a thread, services really run."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.conf = tmp / "cluster.conf"
        self.state = tmp / "state"
        self.state.mkdir()
        self.lsb = write_lsb(tmp)
        self.sockdir = tempfile.mkdtemp(prefix="rgmh", dir="/tmp")
        self.d: daemon_mod.Daemon | None = None
        self.thread: threading.Thread | None = None
        self.rc: list[int] = []

    def body(self, extra: str = "") -> str:
        return f'<service name="web">{script("base", self.lsb)}</service>{extra}'

    def write(self, version: int, body: str | None = None) -> None:
        text = cluster_conf(self.body() if body is None else body)
        self.conf.write_text(text.replace('config_version="1"', f'config_version="{version}"'))

    def touch(self) -> None:
        """A new stamp for the same content (the poll looks at changed files only)."""
        st = self.conf.stat()
        os.utime(self.conf, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))

    def start(self, version: int = 1) -> daemon_mod.Daemon:
        self.write(version)
        self.d = daemon_mod.Daemon(daemon_mod.Options(
            conf=str(self.conf), socket=os.path.join(self.sockdir, "s.sock"),
            log_to_stderr=False, config_poll=0.05))
        self.thread = threading.Thread(target=lambda: self.rc.append(self.daemon.run()),
                                       daemon=True)
        self.thread.start()
        assert wait_for(lambda: (self.state / "base.on").exists(), timeout=10)
        return self.d

    @property
    def daemon(self) -> daemon_mod.Daemon:
        assert self.d is not None
        return self.d

    def version(self) -> int:
        return self.daemon.loaded.config.config_version

    def running(self) -> bool:
        return self.thread is not None and self.thread.is_alive()

    def stop(self, timeout: float = 10.0) -> None:
        self.daemon.request_stop()
        assert self.thread is not None
        self.thread.join(timeout)

    def still_managed(self) -> None:
        """The monitor still restarts a service that dies behind its back."""
        before = starts(self.state, "base")
        (self.state / "base.on").unlink()
        assert wait_for(lambda: starts(self.state, "base") > before
                        and (self.state / "base.on").exists(), timeout=10)


@pytest.fixture
def inproc(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[InProc]:
    monkeypatch.setenv("HA_RSCTMP", str(tmp_path / "state"))
    monkeypatch.setenv("RGMANAGER_CACHE_DIR", str(tmp_path / "cache"))
    root = logging.getLogger()
    level = root.level
    h = InProc(tmp_path)
    yield h
    if h.d is not None and h.running():
        h.stop()
    root.setLevel(level)
    shutil.rmtree(h.sockdir, ignore_errors=True)


def records(caplog: pytest.LogCaptureFixture, level: int, text: str) -> list[logging.LogRecord]:
    return [r for r in caplog.records
            if r.name == "rgmanager.daemon" and r.levelno == level and text in r.getMessage()]


def wait_record(caplog: pytest.LogCaptureFixture, level: int, text: str,
                count: int = 1) -> bool:
    return wait_for(lambda: len(records(caplog, level, text)) >= count, timeout=10)


def polls_after(n: int) -> Callable[[], bool]:
    """True once ``n`` more config_version polls ran (a condition, not a sleep)."""
    start = polls[0]
    return lambda: polls[0] >= start + n


polls = [0]


@pytest.fixture
def count_polls(monkeypatch: pytest.MonkeyPatch) -> None:
    real = daemon_mod.Daemon.poll_config

    def counted(self: daemon_mod.Daemon) -> None:
        real(self)
        polls[0] += 1

    monkeypatch.setattr(daemon_mod.Daemon, "poll_config", counted)


# ---------------------------------------------------------------- 1. reloads never kill


def test_reload_raising_recursion_error_keeps_daemon_and_services(
        inproc: InProc, caplog: pytest.LogCaptureFixture,
        monkeypatch: pytest.MonkeyPatch) -> None:
    caplog.set_level(logging.DEBUG, logger="rgmanager.daemon")
    inproc.start()
    # A configuration nested ~1000 deep: rejected (a depth limit) or RecursionError,
    # never the end of the daemon.
    inproc.write(2, inproc.body(deep_body(1000)))
    inproc.daemon.request_reload()  # what SIGHUP does
    assert wait_for(lambda: any(r.levelno == logging.ERROR for r in caplog.records
                                if r.name == "rgmanager.daemon"), timeout=10), caplog.text
    assert inproc.running() and inproc.version() == 1
    # A genuine RecursionError from the loader, whatever its cause.
    real = daemon_mod.load

    def recursing(path: Any, rules: Any, depth: int = 0) -> Any:
        return recursing(path, rules, depth + 1)

    monkeypatch.setattr(daemon_mod, "load", recursing)
    inproc.daemon.request_reload()
    assert wait_record(caplog, logging.ERROR, "RecursionError"), caplog.text
    errors = records(caplog, logging.ERROR, "RecursionError")
    assert len(errors) == 1 and errors[0].exc_info is None  # one line, no traceback at ERROR
    assert "stays in force" in errors[0].getMessage()
    assert any(r.exc_info for r in records(caplog, logging.DEBUG, "reload failure"))
    assert inproc.running() and inproc.version() == 1
    inproc.still_managed()
    # and a good file afterwards still applies
    monkeypatch.setattr(daemon_mod, "load", real)
    inproc.write(3)
    inproc.daemon.request_reload()
    assert wait_for(lambda: inproc.version() == 3, timeout=10), caplog.text
    inproc.stop()
    assert inproc.rc == [0] and not (inproc.state / "base.on").exists()


def test_reload_raising_any_exception_is_one_error_line(
        inproc: InProc, caplog: pytest.LogCaptureFixture,
        monkeypatch: pytest.MonkeyPatch, count_polls: None) -> None:
    caplog.set_level(logging.DEBUG, logger="rgmanager.daemon")
    inproc.start()

    def broken(path: Any, rules: Any) -> Any:
        raise KeyError("a bug in the loader")

    monkeypatch.setattr(daemon_mod, "load", broken)
    inproc.write(2)
    inproc.daemon.request_reload()
    assert wait_record(caplog, logging.ERROR, "KeyError"), caplog.text
    [err] = records(caplog, logging.ERROR, "KeyError")
    assert err.exc_info is None and "a bug in the loader" in err.getMessage()
    assert inproc.running() and inproc.version() == 1
    # the poll tries a changed file (higher version) once, not at every poll
    inproc.touch()
    assert wait_record(caplog, logging.ERROR, "KeyError", count=2)
    assert wait_for(polls_after(10), timeout=10)
    assert len(records(caplog, logging.ERROR, "KeyError")) == 2
    assert inproc.running() and inproc.version() == 1
    inproc.still_managed()


def test_sighup_with_equal_or_older_version_is_refused(
        inproc: InProc, caplog: pytest.LogCaptureFixture) -> None:
    inproc.start(version=5)
    base_starts = starts(inproc.state, "base")
    inproc.write(1, inproc.body('<service name="new">' + script("new", inproc.lsb)
                                + "</service>"))
    inproc.daemon.request_reload()
    assert wait_record(caplog, logging.WARNING, "refused"), caplog.text
    [msg] = [r.getMessage() for r in records(caplog, logging.WARNING, "refused")]
    assert "config_version 1" in msg and "5 in force" in msg
    inproc.write(5, inproc.body('<service name="new">' + script("new", inproc.lsb)
                                + "</service>"))
    inproc.daemon.request_reload()
    assert wait_record(caplog, logging.WARNING, "refused", count=2), caplog.text
    assert "config_version 5" in records(caplog, logging.WARNING, "refused")[1].getMessage()
    assert inproc.version() == 5 and "service:new" not in inproc.daemon.manager.model.services
    assert not records(caplog, logging.INFO, "applied")
    assert starts(inproc.state, "base") == base_starts and not (inproc.state / "new.on").exists()
    assert inproc.daemon.reload("control request")["code"] == daemon_mod.codes.EINVAL


@pytest.mark.parametrize("bad", ["malformed", "schema"])
def test_rejected_higher_version_is_logged_once_per_change(
        inproc: InProc, caplog: pytest.LogCaptureFixture, count_polls: None,
        bad: str) -> None:
    inproc.start()
    if bad == "malformed":
        text = inproc.conf.read_text().replace('config_version="1"', 'config_version="2"')
        inproc.conf.write_text(text.replace("</rm>", "</rmm>"))
        expected = "malformed XML"
    else:
        inproc.write(2, inproc.body().replace('<service name="web">',
                                              '<service name="web" bogus="1">'))
        expected = "bogus"
    assert wait_record(caplog, logging.ERROR, expected), caplog.text
    assert wait_for(polls_after(10), timeout=10)  # ten more polls of the unchanged file
    assert len(records(caplog, logging.ERROR, expected)) == 1
    assert len(records(caplog, logging.ERROR, "reload (config_version poll) rejected")) == 1
    # changed again (same content, new stamp): logged again, once
    inproc.touch()
    assert wait_record(caplog, logging.ERROR, expected, count=2), caplog.text
    assert wait_for(polls_after(10), timeout=10)
    assert len(records(caplog, logging.ERROR, expected)) == 2
    assert inproc.running() and inproc.version() == 1
    assert (inproc.state / "base.on").exists()


def test_poll_ignores_a_changed_file_with_the_same_version(
        inproc: InProc, caplog: pytest.LogCaptureFixture, count_polls: None) -> None:
    inproc.start()
    inproc.write(1, inproc.body('<service name="new">' + script("new", inproc.lsb)
                                + "</service>"))
    assert wait_record(caplog, logging.INFO, "not higher than 1"), caplog.text
    assert wait_for(polls_after(5), timeout=10)
    assert len(records(caplog, logging.INFO, "not higher than 1")) == 1
    assert "service:new" not in inproc.daemon.manager.model.services


def test_missing_or_unreadable_file_is_logged_once(
        inproc: InProc, caplog: pytest.LogCaptureFixture, count_polls: None) -> None:
    inproc.start()
    saved = inproc.conf.read_text().replace('config_version="1"', 'config_version="2"')
    inproc.conf.unlink()
    assert wait_record(caplog, logging.ERROR, "cannot stat"), caplog.text
    inproc.conf.mkdir()  # there, but not readable as a file (OSError)
    assert wait_record(caplog, logging.ERROR, "cannot read"), caplog.text
    assert wait_for(polls_after(10), timeout=10)
    assert len(records(caplog, logging.ERROR, "cannot stat")) == 1
    assert len(records(caplog, logging.ERROR, "cannot read")) == 1
    inproc.daemon.request_reload()  # SIGHUP on an unreadable file: rejected, daemon lives
    assert wait_record(caplog, logging.ERROR, "reload (SIGHUP) rejected"), caplog.text
    assert inproc.running() and inproc.version() == 1
    inproc.conf.rmdir()
    inproc.conf.write_text(saved)
    assert wait_for(lambda: inproc.version() == 2, timeout=10), caplog.text
    assert (inproc.state / "base.on").exists()


# ---------------------------------------------------------------- 4. slow loads


def test_sigterm_during_a_slow_reload_stops_promptly(
        inproc: InProc, caplog: pytest.LogCaptureFixture,
        monkeypatch: pytest.MonkeyPatch) -> None:
    inproc.start()
    entered, release = threading.Event(), threading.Event()
    real = daemon_mod.load

    def slow(path: Any, rules: Any) -> Any:
        entered.set()
        release.wait(30)  # validation of a huge file
        return real(path, rules)

    monkeypatch.setattr(daemon_mod, "load", slow)
    try:
        inproc.write(2, inproc.body('<service name="new">' + script("new", inproc.lsb)
                                    + "</service>"))
        inproc.daemon.request_reload()
        assert entered.wait(5)
        inproc.still_managed()  # status checks go on during the load
        t0 = time.monotonic()
        inproc.stop(timeout=5)
        assert not inproc.running(), "SIGTERM waited for the reload's load"
        assert time.monotonic() - t0 < 5
        assert inproc.rc == [0]
        assert not (inproc.state / "base.on").exists()  # services stopped
        assert "rgmanager stopped" in caplog.text
    finally:
        release.set()
    # the abandoned load never applies after the shutdown
    assert wait_record(caplog, logging.INFO, "abandoned"), caplog.text
    assert not (inproc.state / "new.on").exists() and inproc.version() == 1


# ---------------------------------------------------------------- 2. one daemon per node


def test_pid_lock_is_exclusive_and_says_who_holds_it(tmp_path: Path) -> None:
    path = str(tmp_path / "run" / "rgmanager.pid")
    with PidLock(path) as first:
        assert first.held and Path(path).read_text().strip() == str(os.getpid())
        with pytest.raises(AlreadyRunning) as e:
            PidLock(path).acquire()
        assert e.value.pid == os.getpid()
        assert str(e.value) == f'Process "rgmanager" already running (pid {os.getpid()})'
    assert not Path(path).exists()
    with PidLock(path):  # free again
        pass


def test_second_daemon_refuses_at_once_without_touching_the_first(
        inproc: InProc, monkeypatch: pytest.MonkeyPatch) -> None:
    """In-process: the lock is taken before the configuration is even read."""
    lock = str(inproc.tmp / "rgmanager.pid")
    inproc.write(1)
    with PidLock(lock):
        monkeypatch.setattr(sys, "argv", ["rgmanager"])
        called: list[str] = []

        def load_rules(*args: Any) -> None:
            called.append("load_rules")

        monkeypatch.setattr(daemon_mod, "load_rules", load_rules)
        assert daemon_main.main(["-c", str(inproc.conf), "--lock-file", lock]) == \
            daemon_main.EXIT_ALREADY_RUNNING == 3
        assert called == []


def test_two_daemon_processes(tmp_path: Path) -> None:
    sockdir = tempfile.mkdtemp(prefix="rgmh", dir="/tmp")
    state = tmp_path / "state"
    state.mkdir()
    lsb = write_lsb(tmp_path)
    conf = tmp_path / "cluster.conf"
    conf.write_text(cluster_conf(f'<service name="web">{script("base", lsb)}</service>'))
    lock = tmp_path / "run" / "rgmanager.pid"
    sock = os.path.join(sockdir, "rgmanager.sock")
    env = {**os.environ, "RGMANAGER_SOCKET": sock, "HA_RSCTMP": str(state),
           "RGMANAGER_CACHE_DIR": str(tmp_path / "cache"), "RGMANAGER_LOCK": str(lock)}
    cmd = [sys.executable, "-m", "rgmanager.cli.daemon_main", "-c", str(conf)]
    log1 = open(tmp_path / "first.log", "w")  # noqa: SIM115
    first = subprocess.Popen(cmd, env=env, cwd=REPO, stdout=log1, stderr=subprocess.STDOUT)
    try:
        assert wait_for(lambda: (state / "base.on").exists() and os.path.exists(sock)
                        and lock.exists() and lock.read_text().strip() == str(first.pid),
                        timeout=20), (tmp_path / "first.log").read_text()
        order_before = (state / "order.log").read_text()
        # the same node, the same paths: by $RGMANAGER_LOCK, then by --lock-file
        env2 = {k: v for k, v in env.items() if k != "RGMANAGER_LOCK"}
        for extra, e in (([], env), (["--lock-file", str(lock)], env2)):
            t0 = time.monotonic()
            second = subprocess.run(cmd + extra, env=e, cwd=REPO, capture_output=True,
                                    text=True, timeout=30)
            assert second.returncode == 3, second.stderr
            assert second.stderr.strip() == \
                f'Process "rgmanager" already running (pid {first.pid})'
            assert "Traceback" not in second.stderr
            assert time.monotonic() - t0 < 10
        # the first daemon's service was never stopped and it still answers
        assert (state / "order.log").read_text() == order_before
        assert (state / "base.on").exists() and first.poll() is None
        r = subprocess.run([sys.executable, "-m", "rgmanager.cli.clustat", "-s", "web"],
                           env=env, cwd=REPO, capture_output=True, text=True, timeout=30)
        assert r.returncode == 0, r.stdout + r.stderr
    finally:
        first.send_signal(signal.SIGTERM)
        rc = first.wait(30)
        log1.close()
        shutil.rmtree(sockdir, ignore_errors=True)
    assert rc == 0 and not lock.exists()


def test_pid_lock_survives_a_stale_file_and_is_not_inherited(tmp_path: Path) -> None:
    path = tmp_path / "rgmanager.pid"
    path.write_text("999999\n")  # left by a daemon killed with SIGKILL
    lock = PidLock(str(path))
    lock.acquire()
    assert path.read_text().strip() == str(os.getpid())
    # an agent's long-lived process started meanwhile must not keep the lock
    child = subprocess.Popen(["sleep", "30"], close_fds=False)
    try:
        lock.release()
        with PidLock(str(path)):
            pass
    finally:
        child.kill()
        child.wait()


# ------------------------------------------------- 4. a version switched to by another node


def test_version_from_the_cluster_is_held_until_this_node_loads_it(
        inproc: InProc, caplog: pytest.LogCaptureFixture) -> None:
    """Another node switched the cluster to config 2 (a config message) while
    this node's file is still 1: the manager holds its deliveries and the
    daemon reads its file; once the file says 2 the node switches and goes on."""
    caplog.set_level(logging.INFO, logger="rgmanager.daemon")
    d = inproc.start(version=1)
    d.cluster.broadcast({"kind": "config", "version": 2})
    assert wait_record(caplog, logging.INFO, "the cluster switched to config_version 2")
    assert wait_for(lambda: d.manager.held_for == 2, timeout=10)
    assert inproc.version() == 1
    inproc.write(2, inproc.body(f'<service name="new">{script("new", inproc.lsb)}</service>'))
    assert wait_for(lambda: d.manager.held_for is None and inproc.version() == 2, timeout=10)
    assert wait_for(lambda: (inproc.state / "new.on").exists(), timeout=10)
    inproc.still_managed()
    inproc.stop()
    assert inproc.rc == [0]
