"""clustat against a real control socket with a canned status reply.

The layout is compared line by line with rgmanager's (docs/rgmanager.md §9): monitoring
scripts parse it, so a shifted column is a bug.
"""

from __future__ import annotations

import copy
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from lxml import etree

from rgmanager import control
from rgmanager.cli import clustat

from .test_control import FakeDaemon

T0 = 1262685600.0  # a fixed transition time

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
        {"name": "node3", "nodeid": 3, "online": True, "local": False, "rgmanager": True,
         "estranged": True},
    ],
    "services": [
        {"name": "service:web", "state": "started", "state_code": 112, "owner": "node1",
         "last_owner": "node2", "restarts": 2, "last_transition": T0, "frozen": True,
         "partial": False, "disabled_parts": []},
        {"name": "service:db", "state": "disabled", "state_code": 119, "owner": None,
         "last_owner": "node2", "restarts": 0, "last_transition": T0 + 60, "frozen": False,
         "partial": False, "disabled_parts": []},
        {"name": "service:batch", "state": "stopped", "state_code": 110, "owner": None,
         "last_owner": None, "restarts": 0, "last_transition": T0, "frozen": False,
         "partial": False, "disabled_parts": []},
        {"name": "service:app", "state": "started", "state_code": 112, "owner": "node3",
         "last_owner": None, "restarts": 0, "last_transition": T0, "frozen": True,
         "partial": True, "disabled_parts": ["ip:10.0.0.5", "fs:data"]},
    ],
}

MEMBER_LINES = [
    " Member Name                             ID   Status",
    " ------ ----                             ---- ------",
    " node1                                       1 Online, Local, rgmanager",
    " node2                                       2 Offline",
    " node3                                       3 Online, Estranged, rgmanager",
    "",
]
SERVICE_HEADER = [
    " Service Name                   Owner (Last)                   State         ",
    " ------- ----                   ----- ------                   -----         ",
]
SERVICE_ROWS = [
    " service:app                    node3                          started   [ZP]",
    " service:batch                  (none)                         stopped       ",
    " service:db                     (node2)                        disabled      ",
    " service:web                    node1                          started    [Z]",
]


@pytest.fixture
def daemon(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeDaemon]:
    d = tempfile.mkdtemp(prefix="rgm", dir="/tmp")
    fake = FakeDaemon(os.path.join(d, "rgmanager.sock"))
    fake.replies["status"] = copy.deepcopy(STATUS)
    monkeypatch.setenv(control.SOCKET_ENV, fake.path)
    fake.server.start()
    yield fake
    fake.server.stop()
    shutil.rmtree(d, ignore_errors=True)


def find(root: etree._Element, path: str) -> etree._Element:
    el = root.find(path)
    assert el is not None, path
    return el


def attrs(el: etree._Element) -> dict[str, str]:
    return {str(k): str(v) for k, v in el.attrib.items()}


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, list[str], list[str]]:
    code = clustat.main(list(argv))
    out, err = capsys.readouterr()
    return code, out.splitlines(), err.splitlines()


# ------------------------------------------------------------------- text


def test_text_layout_matches_rgmanager(daemon: FakeDaemon,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys)
    assert code == 0
    assert err == []
    assert out[0].startswith("Cluster Status for mycluster @ ")
    assert out[1:] == ["Member Status: Quorate", ""] + MEMBER_LINES + SERVICE_HEADER + \
        SERVICE_ROWS
    assert daemon.requests == [{"op": "status"}]


def test_render_text_pure() -> None:
    lines = clustat.render_text(STATUS, cols=80, now=T0)
    assert lines[0] == f"Cluster Status for mycluster @ {time.ctime(T0)}"
    assert lines[1:] == ["Member Status: Quorate", ""] + MEMBER_LINES + SERVICE_HEADER + \
        SERVICE_ROWS


def test_spec_example_exactly() -> None:
    """The example printed in docs/rgmanager.md §9, byte for byte (rows sorted by name)."""
    status = {
        "cluster": {"name": "mycluster"}, "quorate": True,
        "members": [STATUS["members"][0], STATUS["members"][1]],
        "services": [
            {"name": "service:web", "state": "started", "owner": "node1", "frozen": True},
            {"name": "service:db", "state": "disabled", "owner": None, "last_owner": "node2"},
        ],
    }
    assert clustat.render_text(status, cols=80, now=T0)[3:] == [
        " Member Name                             ID   Status",
        " ------ ----                             ---- ------",
        " node1                                       1 Online, Local, rgmanager",
        " node2                                       2 Offline",
        "",
        " Service Name                   Owner (Last)                   State         ",
        " ------- ----                   ----- ------                   -----         ",
        " service:db                     (node2)                        disabled      ",
        " service:web                    node1                          started    [Z]",
    ]


def test_tty_strips_service_prefix_and_uses_width() -> None:
    lines = clustat.render_text(STATUS, cols=100, strip_prefix=True, now=T0)
    assert " Member Name" + " " * 39 + "ID   Status" in lines
    rows = [line for line in lines if line.startswith(" web ")]
    assert rows == [" web" + " " * 37 + " node1" + " " * 35 + " started    [Z]"]
    assert not any("service:" in line for line in lines)


def test_long_names_are_truncated_to_their_column() -> None:
    status = copy.deepcopy(STATUS)
    status["services"] = [{"name": "service:" + "x" * 40, "state": "stopped",
                           "last_owner": "n" * 40}]
    row = clustat.render_text(status, cols=80, now=T0)[-1]
    assert row == " " + ("service:" + "x" * 22) + " (" + "n" * 28 + ") " + "stopped".ljust(14)


def test_long_format(daemon: FakeDaemon, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "-l")
    assert code == 0
    start = out.index("Service Information")
    assert out[start:] == [
        "Service Information",  # no leading space, as rgmanager
        "------- -----------",
        "",
        "Service Name      : service:app",
        "  Current State   : started (112)",
        "  Flags           : frozen, partial (3)",
        "  Owner           : node3",
        "  Last Owner      : none",
        f"  Last Transition : {time.ctime(T0)}",
        "  Stopped parts   : ip:10.0.0.5, fs:data",
        "",
        "Service Name      : service:batch",
        "  Current State   : stopped (110)",
        "  Flags           : none (0)",
        "  Owner           : none",
        "  Last Owner      : none",
        f"  Last Transition : {time.ctime(T0)}",
        "",
        "Service Name      : service:db",
        "  Current State   : disabled (119)",
        "  Flags           : none (0)",
        "  Owner           : none",
        "  Last Owner      : node2",
        f"  Last Transition : {time.ctime(T0 + 60)}",
        "",
        "Service Name      : service:web",
        "  Current State   : started (112)",
        "  Flags           : frozen (1)",
        "  Owner           : node1",
        "  Last Owner      : node2",
        f"  Last Transition : {time.ctime(T0)}",
        "",
    ]


# --------------------------------------------------------------- filters


@pytest.mark.parametrize(("name", "expected"), [
    ("web", 0), ("service:web", 0), ("db", 119), ("batch", 110), ("nosuch", 255),
])
def test_service_exit_codes(daemon: FakeDaemon, capsys: pytest.CaptureFixture[str],
                            name: str, expected: int) -> None:
    code, out, err = run(capsys, "-s", name)
    assert code == expected
    # Only the service section, only that service: no "Cluster Status for" header.
    assert out[0:2] == SERVICE_HEADER
    assert len(out) == (2 if expected == 255 else 3)
    assert "Member Name" not in "\n".join(out)
    assert err == []


@pytest.mark.parametrize("state", ["starting", "stopping"])
def test_service_in_transition_counts_as_running(
        daemon: FakeDaemon, capsys: pytest.CaptureFixture[str], state: str) -> None:
    daemon.replies["status"]["services"][0]["state"] = state  # type: ignore[index]
    assert run(capsys, "-s", "web")[0] == 0


@pytest.mark.parametrize(("name", "expected"), [("node1", 0), ("node2", 1), ("node9", 255)])
def test_member_exit_codes(daemon: FakeDaemon, capsys: pytest.CaptureFixture[str],
                           name: str, expected: int) -> None:
    code, out, _ = run(capsys, "-m", name)
    assert code == expected
    assert out[0:2] == MEMBER_LINES[:2]  # no "Cluster Status for" header
    assert len(out) == (3 if expected == 255 else 4)
    assert "Service Name" not in "\n".join(out)


@pytest.mark.parametrize("argv", [["-s", "web"], ["-m", "node1"], ["-m", "node1", "-s", "web"]])
def test_filtered_text_has_no_header_and_warns_on_stderr(
        daemon: FakeDaemon, capsys: pytest.CaptureFixture[str], argv: list[str]) -> None:
    daemon.replies["status"]["quorate"] = False  # type: ignore[index]
    code, out, err = run(capsys, *argv)
    assert code == 0
    assert not any(line.startswith(("Cluster Status", "Member Status", "WARNING"))
                   for line in out)
    assert out[0] in (SERVICE_HEADER[0], MEMBER_LINES[0])
    assert err == [clustat.WARN_INQUORATE]


def test_render_text_filtered_pure() -> None:
    assert clustat.render_text(STATUS, cols=80, service="web", now=T0) == \
        SERVICE_HEADER + [SERVICE_ROWS[3]]
    assert clustat.render_text(STATUS, cols=80, member="node2", now=T0) == \
        MEMBER_LINES[:2] + [MEMBER_LINES[3], ""]


def test_quorum_query(daemon: FakeDaemon, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(capsys, "-Q") == (0, [], [])
    daemon.replies["status"]["quorate"] = False  # type: ignore[index]
    assert run(capsys, "-Q") == (1, [], [])


def test_quorum_query_without_daemon(monkeypatch: pytest.MonkeyPatch,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv(control.SOCKET_ENV, "/nonexistent/rgmanager.sock")
    assert run(capsys, "-Q") == (1, [], [])


def test_local_node_id(daemon: FakeDaemon, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(capsys, "-I") == (0, ["0x00000001"], [])


# ----------------------------------------------------------- XML and JSON


def test_xml(daemon: FakeDaemon, capsys: pytest.CaptureFixture[str]) -> None:
    code = clustat.main(["-x"])
    out = capsys.readouterr().out
    assert code == 0
    assert out.startswith('<?xml version="1.0"?>\n<clustat version="4.1.1">')
    root = etree.fromstring(out.encode())
    assert root.tag == "clustat"
    assert attrs(find(root, "cluster")) == {"name": "mycluster", "id": "1234",
                                            "generation": "0"}
    assert attrs(find(root, "quorum")) == {"quorate": "1", "groupmember": "1"}
    nodes = root.findall("nodes/node")
    assert [attrs(n) for n in nodes][:2] == [
        {"name": "node1", "state": "1", "local": "1", "estranged": "0", "rgmanager": "1",
         "rgmanager_master": "0", "qdisk": "0", "nodeid": "0x00000001"},
        {"name": "node2", "state": "0", "local": "0", "estranged": "0", "rgmanager": "0",
         "rgmanager_master": "0", "qdisk": "0", "nodeid": "0x00000002"},
    ]
    assert nodes[2].get("estranged") == "1"
    groups = {g.get("name"): attrs(g) for g in root.findall("groups/group")}
    assert list(groups) == ["service:app", "service:batch", "service:db", "service:web"]
    assert groups["service:web"] == {
        "name": "service:web", "state": "112", "state_str": "started", "flags": "1",
        "flags_str": "frozen", "owner": "node1", "last_owner": "node2", "restarts": "2",
        "last_transition": str(int(T0)), "last_transition_str": time.ctime(T0)}
    assert groups["service:app"]["flags"] == "3"
    assert groups["service:app"]["flags_str"] == "frozen, partial"
    assert groups["service:db"]["owner"] == "none"
    assert groups["service:db"]["state"] == "119"


def test_xml_filtered(daemon: FakeDaemon, capsys: pytest.CaptureFixture[str]) -> None:
    assert clustat.main(["-x", "-s", "db"]) == 119
    root = etree.fromstring(capsys.readouterr().out.encode())
    assert root.find("nodes") is None
    assert [g.get("name") for g in root.findall("groups/group")] == ["service:db"]
    assert clustat.main(["-x", "-m", "node2"]) == 1
    root = etree.fromstring(capsys.readouterr().out.encode())
    assert root.find("groups") is None
    assert [n.get("name") for n in root.findall("nodes/node")] == ["node2"]


@pytest.mark.parametrize(("argv", "children"), [
    (["-s", "db"], ["groups"]),
    (["-m", "node2"], ["nodes"]),
    (["-m", "node2", "-s", "db"], ["nodes", "groups"]),
    ([], ["cluster", "quorum", "nodes", "groups"]),
])
def test_xml_filtered_leaves_out_cluster_and_quorum(
        daemon: FakeDaemon, capsys: pytest.CaptureFixture[str], argv: list[str],
        children: list[str]) -> None:
    """rgmanager's -x -s/-m wrote only the asked-for sections."""
    clustat.main(["-x", *argv])
    root = etree.fromstring(capsys.readouterr().out.encode())
    assert [c.tag for c in root] == children


def test_xml_inquorate_warning_goes_to_stderr(
        daemon: FakeDaemon, capsys: pytest.CaptureFixture[str]) -> None:
    daemon.replies["status"]["quorate"] = False  # type: ignore[index]
    assert clustat.main(["-x"]) == 0
    out, err = capsys.readouterr()
    assert find(etree.fromstring(out.encode()), "quorum").get("quorate") == "0"
    assert err.splitlines() == [clustat.WARN_INQUORATE]


def test_json(daemon: FakeDaemon, capsys: pytest.CaptureFixture[str]) -> None:
    assert clustat.main(["--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["cluster"] == STATUS["cluster"]
    assert data["quorate"] is True
    assert data["members"] == STATUS["members"]
    assert [s["name"] for s in data["services"]] == [
        "service:app", "service:batch", "service:db", "service:web"]
    assert "code" not in data


def test_json_filtered(daemon: FakeDaemon, capsys: pytest.CaptureFixture[str]) -> None:
    assert clustat.main(["--json", "-s", "batch"]) == 110
    data = json.loads(capsys.readouterr().out)
    assert [s["name"] for s in data["services"]] == ["service:batch"]


def test_json_filters_like_the_text(daemon: FakeDaemon,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    """-s shows no members, -m no services; both: the member and the service."""
    assert clustat.main(["--json", "-s", "db"]) == 119
    data = json.loads(capsys.readouterr().out)
    assert "members" not in data and [s["name"] for s in data["services"]] == ["service:db"]
    assert data["quorate"] is True and data["cluster"] == STATUS["cluster"]
    assert clustat.main(["--json", "-m", "node2"]) == 1
    data = json.loads(capsys.readouterr().out)
    assert "services" not in data and [m["name"] for m in data["members"]] == ["node2"]
    assert clustat.main(["--json", "-m", "node9"]) == 255
    assert json.loads(capsys.readouterr().out)["members"] == []
    assert clustat.main(["--json", "-m", "node1", "-s", "web"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert [m["name"] for m in data["members"]] == ["node1"]
    assert [s["name"] for s in data["services"]] == ["service:web"]


@pytest.mark.parametrize("argv", [["-x", "--json"], ["--json", "-x"], ["-x", "--json", "-s", "db"]])
def test_xml_and_json_are_exclusive(daemon: FakeDaemon, capsys: pytest.CaptureFixture[str],
                                    argv: list[str]) -> None:
    assert run(capsys, *argv) == (
        1, [], ["Error: Options '-x' and '--json' are mutually exclusive"])
    assert daemon.requests == []


# ------------------------------------------------------- stale and errors


def test_daemon_not_running(monkeypatch: pytest.MonkeyPatch,
                            capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv(control.SOCKET_ENV, "/nonexistent/rgmanager.sock")
    for argv in ([], ["-x"], ["-s", "web"]):
        assert run(capsys, *argv) == (1, [], [
            "Could not connect to resource group manager at /nonexistent/rgmanager.sock: "
            "No such file or directory (from $RGMANAGER_SOCKET)"])


def test_daemon_not_running_default_socket(monkeypatch: pytest.MonkeyPatch,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.delenv(control.SOCKET_ENV, raising=False)
    monkeypatch.setattr(control, "DEFAULT_SOCKET", "/nonexistent/default.sock")
    code, out, err = run(capsys)
    assert (code, out) == (1, [])
    assert err == ["Could not connect to resource group manager at /nonexistent/default.sock: "
                   "No such file or directory "
                   "(the default; set $RGMANAGER_SOCKET to use another socket)"]


def test_inquorate_warning(daemon: FakeDaemon, capsys: pytest.CaptureFixture[str]) -> None:
    daemon.replies["status"]["quorate"] = False  # type: ignore[index]
    code, out, _ = run(capsys)
    assert code == 0
    assert out[1:4] == [clustat.WARN_INQUORATE, "Member Status: Inquorate", ""]
    assert out[-len(SERVICE_ROWS):] == SERVICE_ROWS  # the (possibly stale) table still shows


def test_stale_warning(daemon: FakeDaemon, capsys: pytest.CaptureFixture[str]) -> None:
    daemon.replies["status"]["stale"] = True  # type: ignore[index]
    code, out, _ = run(capsys)
    assert code == 0
    assert out[1:3] == [
        "WARNING: the resource group manager is not answering; information may be stale",
        "Member Status: Quorate"]


def test_hung_daemon_times_out(daemon: FakeDaemon, capsys: pytest.CaptureFixture[str]) -> None:
    release = threading.Event()
    daemon.replies["status"] = lambda req: (release.wait(5), STATUS)[1]
    try:
        started = time.monotonic()
        code, out, err = run(capsys, "--timeout", "0.3")
        assert time.monotonic() - started < 3
    finally:
        release.set()
    assert (code, out, err) == (1, [], [clustat.TIMED_OUT])


def test_status_error_reply(daemon: FakeDaemon, capsys: pytest.CaptureFixture[str]) -> None:
    daemon.replies["status"] = {"code": -9, "text": "Operation requires quorum"}
    code, out, err = run(capsys)
    assert code == 1
    assert out == []
    assert err == ["clustat: Operation requires quorum"]


# ---------------------------------------------------------------- refresh


def test_refresh_redraws(daemon: FakeDaemon, capsys: pytest.CaptureFixture[str]) -> None:
    code = clustat.main(["-i", "0.01", "--count", "2"])
    out = capsys.readouterr().out
    assert code == 0
    assert out.count(clustat.CLEAR_SCREEN) == 2
    assert out.count("Cluster Status for mycluster") == 2
    assert out.startswith(clustat.CLEAR_SCREEN)
    assert daemon.ops() == ["status", "status"]


def test_refresh_stops_on_interrupt(daemon: FakeDaemon, capsys: pytest.CaptureFixture[str],
                                    monkeypatch: pytest.MonkeyPatch) -> None:
    def interrupt(_: float) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(clustat.time, "sleep", interrupt)
    assert clustat.main(["-i", "1"]) == 0
    assert capsys.readouterr().out.count("Cluster Status") == 1


@pytest.mark.parametrize("argv", [["-i", "1", "-x"], ["-x", "-i", "1"]])
def test_refresh_and_xml_are_exclusive(capsys: pytest.CaptureFixture[str],
                                       argv: list[str]) -> None:
    assert run(capsys, *argv) == (
        1, [], ["Error: Options '-i' and '-x' are mutually exclusive"])


def test_bad_options(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(capsys, "-i", "0")[0] == 1
    assert run(capsys, "-X")[0] == 1


def test_fast_flag_accepted(daemon: FakeDaemon, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(capsys, "-f")[0] == 0


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "-v")
    assert code == 0
    assert out[0].startswith("clustat version ")


def test_as_a_process(daemon: FakeDaemon) -> None:
    env = dict(os.environ, RGMANAGER_SOCKET=daemon.path)
    p = subprocess.run([sys.executable, "-m", "rgmanager.cli.clustat", "-s", "db"],
                       env=env, capture_output=True, text=True, timeout=60)
    assert p.returncode == 119
    assert p.stdout.splitlines() == SERVICE_HEADER + [SERVICE_ROWS[2]]


def _awaiting_fence() -> dict[str, Any]:
    """node2 was lost while running web: web waits for node2's fence."""
    status = copy.deepcopy(STATUS)
    status["members"][1]["awaiting_fence"] = True
    web = status["services"][0]
    web.update(state="recovering", state_code=118, owner=None, frozen=False,
               reason="awaiting fence of node2")
    status["awaiting_fence"] = ["node2"]
    return status


def test_text_marks_a_member_awaiting_fence_and_notes_why_under_the_table() -> None:
    lines = clustat.render_text(_awaiting_fence(), cols=80, now=T0)
    members = MEMBER_LINES.copy()
    members[3] = " node2                                       2 Offline, Awaiting fence"
    rows = SERVICE_ROWS.copy()
    rows[3] = " service:web                    (node2)                        recovering    "
    assert lines[1:] == ["Member Status: Quorate", ""] + members + SERVICE_HEADER + rows + \
        ["", " service:web is recovering: awaiting fence of node2"]
    tty = clustat.render_text(_awaiting_fence(), cols=80, now=T0, strip_prefix=True)
    assert tty[-1] == " web is recovering: awaiting fence of node2"


def test_long_format_shows_the_reason() -> None:
    lines = clustat.render_text(_awaiting_fence(), cols=80, now=T0, long=True,
                                service="web")
    assert "  Reason          : awaiting fence of node2" in lines
    assert "  Current State   : recovering (118)" in lines


def test_xml_and_json_carry_the_fence_wait_as_added_fields() -> None:
    root = etree.fromstring(clustat.render_xml(_awaiting_fence()).encode())
    assert find(root, "nodes/node[@name='node2']").get("awaiting_fence") == "1"
    assert find(root, "nodes/node[@name='node1']").get("awaiting_fence") is None
    web = find(root, "groups/group[@name='service:web']")
    assert (web.get("state_str"), web.get("reason")) == ("recovering", "awaiting fence of node2")
    assert find(root, "groups/group[@name='service:db']").get("reason") is None
    data = clustat.render_json(_awaiting_fence())
    assert data["awaiting_fence"] == ["node2"]
    assert next(s for s in data["services"] if s["name"] == "service:web")["reason"] == \
        "awaiting fence of node2"
    assert next(m for m in data["members"] if m["name"] == "node2")["awaiting_fence"]
