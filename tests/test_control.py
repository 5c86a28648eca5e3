"""The control socket protocol: a real server on a temporary socket, real clients.

The daemon's handler is replaced by canned replies (the daemon is tested on its
own); everything else — socket permissions, framing, error replies, client
errors — is the production code.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import socket
import stat
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from rgmanager import codes, control

Reply = dict[str, Any] | Callable[[dict[str, Any]], dict[str, Any]]


class FakeDaemon:
    """A real :class:`ControlServer` whose handler answers from a table of canned replies."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.replies: dict[str, Reply] = {}
        self.requests: list[dict[str, Any]] = []
        self.server = control.ControlServer(path, self.handle)

    def handle(self, req: dict[str, Any]) -> dict[str, Any]:
        self.requests.append(req)
        reply = self.replies.get(str(req.get("op")))
        if reply is None:
            return {"code": codes.EINVAL, "text": "unknown op"}
        return reply(req) if callable(reply) else reply

    def ops(self) -> list[str]:
        return [str(r.get("op")) for r in self.requests]


@pytest.fixture
def sockdir() -> Iterator[str]:
    """A short directory: AF_UNIX paths are limited to 107 bytes, pytest's tmp_path is long."""
    d = tempfile.mkdtemp(prefix="rgm", dir="/tmp")
    yield d
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def daemon(sockdir: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeDaemon]:
    fake = FakeDaemon(os.path.join(sockdir, "run", "rgmanager.sock"))
    monkeypatch.setenv(control.SOCKET_ENV, fake.path)
    fake.server.start()
    yield fake
    fake.server.stop()


def raw_exchange(path: str, data: bytes) -> dict[str, Any]:
    """Send raw bytes (maybe not JSON at all) and parse the server's one-line reply."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(5)
        s.connect(path)
        s.sendall(data)
        s.shutdown(socket.SHUT_WR)
        buf = b""
        while chunk := s.recv(4096):
            buf += chunk
    assert buf.endswith(b"\n") and buf.count(b"\n") == 1
    return dict(json.loads(buf))


# ---------------------------------------------------------------- codes


def test_strerror_matches_rgmanager() -> None:
    """rgmanager's rg_strerror texts for resgroup.h's codes (rgmanager.codes owns the table)."""
    expected = {
        0: "Success", -1: "Failure", -2: "Aborted; service failed",
        -3: "Service not mastered locally", -4: "Service does not exist",
        -5: "Operation would cause a deadlock",
        -6: "Temporary failure; try again", -7: "Operation violates dependency rule",
        -8: "Invalid operation for resource", -9: "Operation requires quorum",
        -10: "Service is already running", -11: "Failure: Service is frozen",
        -12: "Target node dead / nonexistent", -15: "Service not runnable",
        -16: "Service not runnable: cannot run exclusive",
        -17: "Failed; service running on original owner", -18: "Permissing denied",
    }
    for code, text in expected.items():
        assert codes.strerror(code) == text
    assert codes.strerror(-99) == "Unknown error"


def test_exit_status_is_code_mod_256_except_erun() -> None:
    assert codes.exit_status(codes.ESUCCESS) == 0
    assert codes.exit_status(codes.EFAIL) == 255
    assert codes.exit_status(codes.ENOSERVICE) == 252
    assert codes.exit_status(codes.EFROZEN) == 245
    assert codes.exit_status(codes.EPERM) == 238
    assert codes.exit_status(codes.ERUN) == 0


def test_socket_path_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(control.SOCKET_ENV, raising=False)
    assert control.socket_path() == control.DEFAULT_SOCKET == "/var/run/cluster/rgmanager.sock"
    monkeypatch.setenv(control.SOCKET_ENV, "/tmp/x.sock")
    assert control.socket_path() == "/tmp/x.sock"


# ---------------------------------------------------------------- server


def test_socket_is_root_only_and_parent_created(daemon: FakeDaemon) -> None:
    st = os.stat(daemon.path)
    assert stat.S_ISSOCK(st.st_mode)
    assert stat.S_IMODE(st.st_mode) == 0o600
    assert stat.S_IMODE(os.stat(os.path.dirname(daemon.path)).st_mode) == 0o755


def test_round_trip(daemon: FakeDaemon) -> None:
    daemon.replies["status"] = {"code": 0, "quorate": True, "members": []}
    reply = control.request({"op": "status"})
    assert reply == {"code": 0, "quorate": True, "members": []}
    assert daemon.requests == [{"op": "status"}]


def test_explicit_path_beats_environment(daemon: FakeDaemon,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    daemon.replies["status"] = {"code": 0}
    monkeypatch.setenv(control.SOCKET_ENV, "/nonexistent/sock")
    assert control.request({"op": "status"}, path=daemon.path) == {"code": 0}


def test_bad_json_request_is_rejected(daemon: FakeDaemon) -> None:
    reply = raw_exchange(daemon.path, b"{not json\n")
    assert reply["code"] == codes.EINVAL
    assert reply["text"].startswith("bad request: ")
    assert daemon.requests == []


def test_non_object_request_is_rejected(daemon: FakeDaemon) -> None:
    reply = raw_exchange(daemon.path, b"[1, 2]\n")
    assert reply == {"code": -8, "text": "bad request: not a JSON object"}


def test_request_without_newline_is_read_to_eof(daemon: FakeDaemon) -> None:
    daemon.replies["status"] = {"code": 0}
    assert raw_exchange(daemon.path, b'{"op": "status"}') == {"code": 0}


def test_oversized_request_is_rejected(daemon: FakeDaemon) -> None:
    reply = raw_exchange(daemon.path, b'{"op": "' + b"x" * (control.MAX_REQUEST + 10) + b'"}\n')
    assert reply["code"] == codes.EINVAL
    assert daemon.requests == []


def test_handler_exception_is_logged_and_answered_failure(
        daemon: FakeDaemon, caplog: pytest.LogCaptureFixture) -> None:
    def boom(req: dict[str, Any]) -> dict[str, Any]:
        raise RuntimeError("kaboom")

    daemon.replies["enable"] = boom
    with caplog.at_level(logging.ERROR, logger="rgmanager.control"):
        reply = control.request({"op": "enable", "service": "service:web"})
    assert reply == {"code": -1, "text": "Failure"}
    records = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert records and records[0].exc_info is not None
    assert "kaboom" in caplog.text


def test_unserialisable_handler_reply_is_failure(daemon: FakeDaemon) -> None:
    daemon.replies["status"] = {"code": 0, "when": object()}
    assert control.request({"op": "status"}) == {"code": -1, "text": "Failure"}


def test_connections_are_served_concurrently(daemon: FakeDaemon) -> None:
    """A long start must not block clustat."""
    release = threading.Event()

    def slow(req: dict[str, Any]) -> dict[str, Any]:
        release.wait(10)
        return {"code": 0, "text": "Success", "owner": "node1"}

    daemon.replies["enable"] = slow
    daemon.replies["status"] = {"code": 0}
    result: list[dict[str, Any]] = []
    t = threading.Thread(target=lambda: result.append(control.request({"op": "enable"})))
    t.start()
    try:
        deadline = time.monotonic() + 5
        while "enable" not in daemon.ops() and time.monotonic() < deadline:
            time.sleep(0.01)
        assert control.request({"op": "status"}, timeout=2) == {"code": 0}
    finally:
        release.set()
        t.join(5)
    assert result == [{"code": 0, "text": "Success", "owner": "node1"}]


def test_stop_removes_socket_file(sockdir: str) -> None:
    path = os.path.join(sockdir, "s.sock")
    server = control.ControlServer(path, lambda req: {"code": 0})
    server.start()
    assert os.path.exists(path)
    server.stop()
    assert not os.path.exists(path)
    with pytest.raises(control.DaemonNotRunning):
        control.request({"op": "status"}, path=path)


def test_stale_socket_file_is_replaced(sockdir: str) -> None:
    path = os.path.join(sockdir, "s.sock")
    dead = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    dead.bind(path)
    dead.close()  # the file stays behind, as after a crash
    with control.ControlServer(path, lambda req: {"code": 0}):
        assert control.request({"op": "status"}, path=path) == {"code": 0}


def test_live_socket_is_not_stolen(sockdir: str) -> None:
    path = os.path.join(sockdir, "s.sock")
    with control.ControlServer(path, lambda req: {"code": 0}):
        with pytest.raises(OSError):
            control.ControlServer(path, lambda req: {"code": 1}).start()
        assert control.request({"op": "status"}, path=path) == {"code": 0}


def test_non_socket_file_is_not_removed(sockdir: str) -> None:
    path = os.path.join(sockdir, "s.sock")
    with open(path, "w") as f:
        f.write("precious")
    with pytest.raises(FileExistsError):
        control.ControlServer(path, lambda req: {"code": 0}).start()
    with open(path) as f:
        assert f.read() == "precious"


# ---------------------------------------------------------------- client


def test_missing_socket_means_daemon_not_running(sockdir: str) -> None:
    with pytest.raises(control.DaemonNotRunning):
        control.request({"op": "status"}, path=os.path.join(sockdir, "none.sock"))


def test_refused_connection_means_daemon_not_running(sockdir: str) -> None:
    path = os.path.join(sockdir, "s.sock")
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.bind(path)  # bound but not listening: ECONNREFUSED
        with pytest.raises(control.DaemonNotRunning):
            control.request({"op": "status"}, path=path)


def test_hung_daemon_times_out(daemon: FakeDaemon) -> None:
    release = threading.Event()
    daemon.replies["status"] = lambda req: (release.wait(5), {"code": 0})[1]
    try:
        with pytest.raises(TimeoutError):
            control.request({"op": "status"}, timeout=0.2)
    finally:
        release.set()


def _serve_raw_once(path: str, answer: bytes) -> threading.Thread:
    """A fake daemon speaking garbage: reads the request, answers ``answer``, closes."""
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)
    listener.listen(1)

    def run() -> None:
        with listener:
            conn, _ = listener.accept()
            with conn:
                conn.recv(65536)
                conn.sendall(answer)

    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t


@pytest.mark.parametrize("answer", [b"this is not json\n", b"[1]\n", b'{"text": "no code"}\n',
                                    b"", b"[" * 60000 + b"\n"])
def test_bad_reply_is_a_protocol_error(sockdir: str, answer: bytes) -> None:
    path = os.path.join(sockdir, "raw.sock")
    t = _serve_raw_once(path, answer)
    with pytest.raises(control.ProtocolError):
        control.request({"op": "status"}, path=path, timeout=5)
    t.join(5)


# ---------------------------------------------------------------- hostile input


def _wait(pred: Callable[[], bool], timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(0.01)
    return pred()


def _conn_threads() -> int:
    return sum(t.name == "rgmanager-control-conn" for t in threading.enumerate())


@pytest.mark.parametrize("line", [b"[" * 60000, b'{"a":' * 12000, b"[" * 100000],
                         ids=["array", "object", "over-long"])
def test_deeply_nested_request_is_einval_and_server_keeps_serving(
        daemon: FakeDaemon, line: bytes) -> None:
    daemon.replies["status"] = {"code": 0}
    errors: list[threading.ExceptHookArgs] = []
    saved, threading.excepthook = threading.excepthook, errors.append
    try:
        reply = raw_exchange(daemon.path, line + b"\n")
    finally:
        threading.excepthook = saved
    assert reply["code"] == codes.EINVAL and reply["text"].startswith("bad request")
    assert errors == []  # no connection thread died
    assert daemon.requests == []
    assert control.request({"op": "status"}, timeout=5) == {"code": 0}


def test_connections_are_capped_and_idle_ones_time_out(sockdir: str) -> None:
    path = os.path.join(sockdir, "cap.sock")
    cap = 4
    server = control.ControlServer(path, lambda req: {"code": 0, "op": req.get("op")},
                                   idle_timeout=0.5, max_connections=cap)
    assert server.max_connections == cap
    server.start()
    idle: list[socket.socket] = []
    try:
        for _ in range(60):  # many more than the cap, sending nothing
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.settimeout(5)
            s.connect(path)
            idle.append(s)
        # Every connection over the cap is answered "try again" at once and closed ...
        for s in idle[cap:]:
            buf = b""
            while chunk := s.recv(4096):
                buf += chunk
            reply = json.loads(buf)
            assert reply["code"] == codes.EAGAIN and "too many" in reply["text"]
        # ... so the threads serving connections stay bounded by the cap.
        assert _conn_threads() <= cap
        assert server.active_connections == cap
        # The idle ones are dropped after the idle timeout (0.5 s here) ...
        for s in idle[:cap]:
            assert s.recv(4096) == b""
        assert _wait(lambda: server.active_connections == 0 and _conn_threads() == 0)
        # ... and a normal client is served again.
        assert control.request({"op": "status"}, path=path, timeout=5) == \
            {"code": 0, "op": "status"}
    finally:
        for s in idle:
            s.close()
        server.stop()


def test_trickling_client_is_dropped_after_the_idle_timeout(sockdir: str) -> None:
    """The timeout is for the whole request, not per read: one byte at a time does not help."""
    path = os.path.join(sockdir, "slow.sock")
    with control.ControlServer(path, lambda req: {"code": 0}, idle_timeout=0.5):
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.connect(path)
            start = time.monotonic()
            dropped = False
            while time.monotonic() - start < 4:
                try:
                    s.sendall(b" ")
                except (BrokenPipeError, ConnectionResetError):
                    dropped = True
                    break
                time.sleep(0.1)
            assert dropped and time.monotonic() - start < 2


def test_defaults_for_the_caps() -> None:
    server = control.ControlServer("/nonexistent/x.sock", lambda req: {"code": 0})
    assert server.idle_timeout == control.REQUEST_READ_TIMEOUT == 30.0
    assert server.max_connections == control.MAX_CONNECTIONS == 64
    assert server.max_request == control.MAX_REQUEST == 64 * 1024
