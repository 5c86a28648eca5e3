"""clusvcadm against a real control socket with canned daemon replies.

Every message form and exit code comes from rgmanager's clusvcadm (docs/rgmanager.md §9):
scripts grep these texts and test these exit codes.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from rgmanager import codes, control
from rgmanager.cli import clusvcadm

from .test_control import FakeDaemon

STATUS: dict[str, Any] = {
    "code": 0,
    "cluster": {"name": "mycluster", "config_version": 3, "id": 1234},
    "local": "node1",
    "quorate": True,
    "stale": False,
    "members": [
        {"name": "node1", "nodeid": 1, "online": True, "local": True, "rgmanager": True,
         "estranged": False},
        {"name": "node2", "nodeid": 2, "online": False, "local": False, "rgmanager": False,
         "estranged": False},
        {"name": "node3.example.com", "nodeid": 3, "online": True, "local": False,
         "rgmanager": True, "estranged": False},
    ],
    "services": [],
}


def ok(owner: str | None = None) -> dict[str, Any]:
    return {"code": 0, "text": "Success", "owner": owner}


def fail(code: int, owner: str | None = None) -> dict[str, Any]:
    return {"code": code, "text": codes.strerror(code), "owner": owner}


@pytest.fixture
def daemon(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeDaemon]:
    d = tempfile.mkdtemp(prefix="rgm", dir="/tmp")
    fake = FakeDaemon(os.path.join(d, "rgmanager.sock"))
    fake.replies["status"] = STATUS
    monkeypatch.setenv(control.SOCKET_ENV, fake.path)
    fake.server.start()
    yield fake
    fake.server.stop()
    shutil.rmtree(d, ignore_errors=True)


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, list[str], list[str]]:
    code = clusvcadm.main(list(argv))
    out, err = capsys.readouterr()
    return code, out.splitlines(), err.splitlines()


# ------------------------------------------------------------------ enable


def test_enable_locally(daemon: FakeDaemon, capsys: pytest.CaptureFixture[str]) -> None:
    daemon.replies["enable"] = ok("node1")
    code, out, err = run(capsys, "-e", "web")
    assert code == 0
    assert out == ["Local machine trying to enable service:web...Success",
                   "service:web is now running on node1"]
    assert err == []
    assert daemon.requests == [{"op": "enable", "service": "service:web", "node": None,
                                "timeout": 300.0, "follow_domain": False}]


def test_enable_follow_domain(daemon: FakeDaemon, capsys: pytest.CaptureFixture[str]) -> None:
    daemon.replies["enable"] = ok("node3.example.com")
    code, out, _ = run(capsys, "-e", "service:web", "-F")
    assert code == 0
    assert out[-1] == "service:web is now running on node3.example.com"
    assert daemon.requests[-1]["follow_domain"] is True


def test_enable_on_member(daemon: FakeDaemon, capsys: pytest.CaptureFixture[str]) -> None:
    daemon.replies["enable"] = ok("node3.example.com")
    code, out, _ = run(capsys, "-e", "web", "-m", "node3.example.com")
    assert code == 0
    assert out == ["Member node3.example.com trying to enable service:web...Success",
                   "service:web is now running on node3.example.com"]
    assert daemon.requests[-1]["node"] == "node3.example.com"
    assert daemon.ops() == ["status", "enable"]


@pytest.mark.parametrize("flag", ["-m", "-n"])
def test_enable_on_local_member_says_member(
        daemon: FakeDaemon, capsys: pytest.CaptureFixture[str], flag: str) -> None:
    """rgmanager says "Member N" whenever -m/-n is given, even for the local node."""
    daemon.replies["enable"] = ok("node1")
    code, out, _ = run(capsys, "-e", "web", flag, "node1")
    assert code == 0
    assert out[0] == "Member node1 trying to enable service:web...Success"


def test_enable_on_localhost_says_member_localhost(
        daemon: FakeDaemon, capsys: pytest.CaptureFixture[str]) -> None:
    status = dict(STATUS, local="localhost", members=[
        {"name": "localhost", "nodeid": 1, "online": True, "local": True, "rgmanager": True,
         "estranged": False}])
    daemon.replies["status"] = status
    daemon.replies["disable"] = ok()
    code, out, _ = run(capsys, "-d", "web", "-m", "localhost")
    assert code == 0
    assert out == ["Member localhost disabling service:web...Success"]


def test_enable_elsewhere_than_requested_warns(
        daemon: FakeDaemon, capsys: pytest.CaptureFixture[str]) -> None:
    daemon.replies["enable"] = ok("node1")
    code, out, _ = run(capsys, "-e", "web", "-m", "node3.example.com")
    assert code == 0
    assert out[-1] == "Warning: service:web is now running on node1"


def test_enable_missing_service(daemon: FakeDaemon, capsys: pytest.CaptureFixture[str]) -> None:
    daemon.replies["enable"] = fail(codes.ENOSERVICE)
    code, out, _ = run(capsys, "-e", "nosuch")
    assert code == 252
    assert out == ["Local machine trying to enable service:nosuch...Service does not exist"]


def test_enable_frozen(daemon: FakeDaemon, capsys: pytest.CaptureFixture[str]) -> None:
    daemon.replies["enable"] = fail(codes.EFROZEN)
    code, out, _ = run(capsys, "-e", "web")
    assert code == 245
    assert out == ["Local machine trying to enable service:web...Failure: Service is frozen"]


def test_enable_already_running_is_success(
        daemon: FakeDaemon, capsys: pytest.CaptureFixture[str]) -> None:
    daemon.replies["enable"] = fail(codes.ERUN, owner="node1")
    code, out, _ = run(capsys, "-e", "web")
    assert code == 0
    assert out == ["Local machine trying to enable service:web...Service is already running"]


@pytest.mark.parametrize("rc", [-1, -2, -3, -4, -5, -6, -7, -8, -9, -11, -12, -13, -14, -15,
                                -16, -17, -18])
def test_exit_status_is_code_mod_256(daemon: FakeDaemon, capsys: pytest.CaptureFixture[str],
                                     rc: int) -> None:
    daemon.replies["enable"] = {"code": rc, "text": "whatever the daemon says"}
    code, out, _ = run(capsys, "-e", "web")
    assert code == rc % 256
    assert out == [f"Local machine trying to enable service:web...{codes.strerror(rc)}"]


def test_unknown_code_prints_daemon_text(daemon: FakeDaemon,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    daemon.replies["disable"] = {"code": -42, "text": "Something new"}
    code, out, _ = run(capsys, "-d", "web")
    assert code == 214
    assert out == ["Local machine disabling service:web...Something new"]


# ------------------------------------------------------------ other verbs


@pytest.mark.parametrize(("flag", "op", "verb"), [
    ("-d", "disable", "disabling"),
    ("-s", "stop", "stopping"),
    ("-R", "restart", "trying to restart"),
    ("-Z", "freeze", "freezing"),
    ("-U", "unfreeze", "unfreezing"),
    ("-c", "convalesce", "convalescing"),
])
def test_service_verbs(daemon: FakeDaemon, capsys: pytest.CaptureFixture[str],
                       flag: str, op: str, verb: str) -> None:
    daemon.replies[op] = ok("node1")
    code, out, _ = run(capsys, flag, "web")
    assert code == 0
    # Only enable and relocate report where the service runs.
    assert out == [f"Local machine {verb} service:web...Success"]
    assert daemon.requests == [{"op": op, "service": "service:web", "node": None,
                                "timeout": 300.0}]


def test_full_names_are_kept(daemon: FakeDaemon, capsys: pytest.CaptureFixture[str]) -> None:
    daemon.replies["disable"] = ok()
    code, out, _ = run(capsys, "-d", "vm:guest")
    assert code == 0
    assert out == ["Local machine disabling vm:guest...Success"]


def test_relocate_anywhere(daemon: FakeDaemon, capsys: pytest.CaptureFixture[str]) -> None:
    daemon.replies["relocate"] = ok("node3.example.com")
    code, out, _ = run(capsys, "-r", "web")
    assert code == 0
    assert out == ["Trying to relocate service:web...Success",
                   "service:web is now running on node3.example.com"]
    assert daemon.ops() == ["relocate"]


def test_relocate_to_member(daemon: FakeDaemon, capsys: pytest.CaptureFixture[str]) -> None:
    daemon.replies["relocate"] = ok("node1")
    code, out, _ = run(capsys, "-r", "web", "-m", "node3.example.com")
    assert code == 0
    assert out == ["Trying to relocate service:web to node3.example.com...Success",
                   "Warning: service:web is now running on node1"]


def test_relocate_failed_owner_kept(daemon: FakeDaemon,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    daemon.replies["relocate"] = fail(codes.ERELO, owner="node1")
    code, out, _ = run(capsys, "-r", "web")
    assert code == 239
    assert out == ["Trying to relocate service:web...Failed; service running on original owner"]


def test_migrate(daemon: FakeDaemon, capsys: pytest.CaptureFixture[str]) -> None:
    daemon.replies["migrate"] = ok("node3.example.com")
    code, out, _ = run(capsys, "-M", "vm:guest", "-m", "node3.example.com")
    assert code == 0
    assert out == ["Trying to migrate vm:guest to node3.example.com...Success"]
    assert daemon.requests[-1] == {"op": "migrate", "service": "vm:guest",
                                   "node": "node3.example.com", "timeout": 300.0}


def test_migrate_not_migratable_is_einval(daemon: FakeDaemon,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    """rgmanager answers a migration the service cannot do with EINVAL (-8, exit 248)."""
    daemon.replies["migrate"] = fail(codes.EINVAL)
    code, out, _ = run(capsys, "-M", "web", "-m", "node3.example.com")
    assert code == 248
    assert out == ["Trying to migrate service:web to node3.example.com..."
                   "Invalid operation for resource"]
    # The planner's old name answers the same code, never -10 (ERUN, which exits 0).
    daemon.replies["migrate"] = fail(codes.EINVAL)
    assert run(capsys, "-M", "web", "-m", "node3.example.com")[0] == 248


def test_already_running_is_minus_10(daemon: FakeDaemon,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    daemon.replies["enable"] = {"code": -10, "text": "whatever"}
    assert run(capsys, "-e", "web") == (
        0, ["Local machine trying to enable service:web...Service is already running"], [])
    daemon.replies["enable"] = {"code": -3, "text": "whatever"}
    assert run(capsys, "-e", "web") == (
        253, ["Local machine trying to enable service:web...Service not mastered locally"], [])


def test_migrate_requires_target(daemon: FakeDaemon, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "-M", "web")
    assert code == 1
    assert out == []
    assert err == ["Migration requires a target cluster member"]
    assert daemon.requests == []


def test_migrate_to_offline_member(daemon: FakeDaemon,
                                   capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "-M", "web", "-m", "node2")
    assert code == 1
    assert out == []
    assert err == ["'node2' is offline"]
    assert daemon.ops() == ["status"]


# ------------------------------------------------------------- membership


def test_follow_domain_with_member_is_refused(
        daemon: FakeDaemon, capsys: pytest.CaptureFixture[str]) -> None:
    for flag in ("-m", "-n"):
        code, out, err = run(capsys, "-e", "web", "-F", flag, "node1")
        assert code == 1
        assert out == []
        assert err == ["Cannot use '-F' with '-n' or '-m'"]
    assert daemon.requests == []


def test_unknown_member_closest_match(daemon: FakeDaemon,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    daemon.replies["enable"] = ok("node3.example.com")
    code, out, err = run(capsys, "-e", "web", "-m", "node3")
    assert code == 0
    assert err == ["'node3' not in membership list", "Closest match: 'node3.example.com'"]
    assert out == ["Member node3.example.com trying to enable service:web...Success",
                   "service:web is now running on node3.example.com"]
    assert daemon.requests[-1]["node"] == "node3.example.com"


def test_unknown_member_no_match(daemon: FakeDaemon, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "-e", "web", "-m", "zzz")
    assert code == 1
    assert out == []
    assert err == ["'zzz' not in membership list", "No matches for 'zzz' found"]
    assert daemon.ops() == ["status"]


@pytest.mark.parametrize("members", [STATUS["members"], STATUS["members"][:1]])
def test_empty_member_matches_nothing(daemon: FakeDaemon, capsys: pytest.CaptureFixture[str],
                                      members: list[dict[str, Any]]) -> None:
    """``-m ''`` is a prefix of every name: it must not pick the closest (or only) member."""
    daemon.replies["status"] = dict(STATUS, members=members)
    daemon.replies["enable"] = ok("node1")
    code, out, err = run(capsys, "-e", "web", "-m", "")
    assert (code, out) == (1, [])
    assert err == ["'' not in membership list", "No matches for '' found"]
    assert daemon.ops() == ["status"]


def test_unknown_member_ambiguous(daemon: FakeDaemon, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "-r", "web", "-m", "node")
    assert code == 1
    assert err == ["'node' not in membership list", "More than one possible match for 'node' found"]
    assert daemon.ops() == ["status"]


def test_status_failure_before_member_check(
        daemon: FakeDaemon, capsys: pytest.CaptureFixture[str]) -> None:
    daemon.replies["status"] = fail(codes.EQUORUM)
    code, out, err = run(capsys, "-e", "web", "-m", "node1")
    assert code == 247
    assert err == ["Operation requires quorum"]


# ------------------------------------------------------------------ locks


@pytest.mark.parametrize(("flag", "op", "text"), [
    ("-l", "lock", "Resource groups locked"),
    ("-u", "unlock", "Resource groups unlocked"),
])
def test_lock_unlock(daemon: FakeDaemon, capsys: pytest.CaptureFixture[str],
                     flag: str, op: str, text: str) -> None:
    daemon.replies[op] = {"code": 0, "text": "Success", "locked": op == "lock"}
    code, out, _ = run(capsys, flag)
    assert (code, out) == (0, [text])
    assert daemon.requests == [{"op": op}]


@pytest.mark.parametrize(("flag", "op", "text"), [
    ("-l", "lock", "Lock operation failed"),
    ("-u", "unlock", "Unlock operation failed"),
    ("-S", "lock_status", "Query operation failed"),
])
def test_lock_failures(daemon: FakeDaemon, capsys: pytest.CaptureFixture[str],
                       flag: str, op: str, text: str) -> None:
    daemon.replies[op] = fail(codes.EFAIL)
    code, out, err = run(capsys, flag)
    assert (code, out, err) == (1, [], [text])


@pytest.mark.parametrize(("locked", "text"), [(True, "Resource groups locked"),
                                              (False, "Resource groups unlocked")])
def test_lock_status(daemon: FakeDaemon, capsys: pytest.CaptureFixture[str],
                     locked: bool, text: str) -> None:
    daemon.replies["lock_status"] = {"code": 0, "text": "Success", "locked": locked}
    assert run(capsys, "-S") == (0, [text], [])


# ----------------------------------------------------------------- fence ack


def test_fence_ack_sends_one_control_request(daemon: FakeDaemon,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    daemon.replies["fence_ack"] = ok()
    code, out, err = run(capsys, "--fence-ack", "node2")
    assert (code, out, err) == (0, ["Acknowledging that node2 is fenced...Success"], [])
    assert daemon.requests == [{"op": "fence_ack", "node": "node2"}]


def test_fence_ack_refused_exits_with_the_code(daemon: FakeDaemon,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    daemon.replies["fence_ack"] = {"code": codes.EINVAL,
                                   "text": "node2 is a member; it is not waiting to be fenced"}
    code, out, _ = run(capsys, "--fence-ack=node2")
    assert code == codes.exit_status(codes.EINVAL)
    assert out == ["Acknowledging that node2 is fenced...node2 is a member; it is not "
                   "waiting to be fenced"]


def test_fence_ack_without_a_daemon(monkeypatch: pytest.MonkeyPatch,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv(control.SOCKET_ENV, "/nonexistent/rgmanager.sock")
    code, out, err = run(capsys, "--fence-ack", "node2")
    assert (code, out, err) == (1, [], [clusvcadm.NOT_RUNNING])


def test_fence_ack_needs_a_member(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "--fence-ack")
    assert (code, out) == (1, [])
    assert err[0].startswith("clusvcadm: option --fence-ack requires argument")
    code, _, err = run(capsys, "--fence-ack=")
    assert code == 1 and err[0] == "clusvcadm: --fence-ack needs a member name"


def test_help_documents_fence_ack(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "-h")
    text = "\n".join(out)
    assert code == 0 and "--fence-ack <member>" in text and "fence_ack_manual" in text


# ----------------------------------------------------------------- misc


def test_daemon_not_running(monkeypatch: pytest.MonkeyPatch,
                            capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv(control.SOCKET_ENV, "/nonexistent/rgmanager.sock")
    for argv in (["-e", "web"], ["-e", "web", "-m", "node1"], ["-l"]):
        code, out, err = run(capsys, *argv)
        assert (code, out, err) == (1, [], ["Could not connect to resource group manager"])


def test_hung_daemon_times_out(daemon: FakeDaemon, capsys: pytest.CaptureFixture[str]) -> None:
    release = threading.Event()
    daemon.replies["enable"] = lambda req: (release.wait(5), ok())[1]
    try:
        code, out, err = run(capsys, "--timeout", "0.2", "-e", "web")
    finally:
        release.set()
    assert code == 1
    assert out == ["Local machine trying to enable service:web..."]
    assert err == [clusvcadm.TIMED_OUT]


def test_quiet_prints_nothing(daemon: FakeDaemon, capsys: pytest.CaptureFixture[str]) -> None:
    daemon.replies["enable"] = fail(codes.ENOSERVICE)
    assert run(capsys, "-q", "-e", "web") == (252, [], [])


def test_help_documents_the_request_timeout(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "-h")
    assert code == 0
    text = "\n".join(out)
    assert "--timeout <seconds>" in text and "(default 300)" in text
    assert "exit 1" in text and "not cancelled" in text
    assert clusvcadm.DEFAULT_TIMEOUT == 300.0


@pytest.mark.parametrize("value", ["0", "-1", "soon"])
def test_bad_timeout_is_a_usage_error(capsys: pytest.CaptureFixture[str], value: str) -> None:
    code, out, err = run(capsys, "--timeout", value, "-e", "web")
    assert (code, out) == (1, [])
    assert err[0].startswith("clusvcadm: bad timeout: ")
    assert "Traceback" not in "\n".join(err)


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "-v")
    assert code == 0
    assert out[0].startswith("clusvcadm version ")


def test_no_action_prints_usage(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys)
    assert code == 1
    assert err[0].startswith("usage: clusvcadm")


def test_bad_option_prints_usage(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "-X")
    assert code == 1
    assert any(line.startswith("usage: clusvcadm") for line in err)


def test_as_a_process(daemon: FakeDaemon) -> None:
    daemon.replies["enable"] = fail(codes.EFROZEN)
    env = dict(os.environ, RGMANAGER_SOCKET=daemon.path)
    p = subprocess.run([sys.executable, "-m", "rgmanager.cli.clusvcadm", "-e", "web"],
                       env=env, capture_output=True, text=True, timeout=60)
    assert p.returncode == 245
    assert p.stdout == "Local machine trying to enable service:web...Failure: Service is frozen\n"
