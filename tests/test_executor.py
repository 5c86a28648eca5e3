"""Tests for rgmanager.executor: environment, argv, exit codes, timeouts and kills.

The agents are small sh scripts written into tmp_path, so every test shows
exactly what the agent does.
"""

from __future__ import annotations

import logging
import os
import signal
import stat
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from rgmanager import executor
from rgmanager.executor import (
    SANE_PATH,
    ActionRequest,
    ActionResult,
    OcfRc,
    build_env,
    describe_rc,
    lsb_to_ocf,
    run_action,
)


def make_agent(tmp_path: Path, body: str, name: str = "agent") -> Path:
    path = tmp_path / name
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(0o755)
    return path


def request(agent: Path | str, action: str = "start", **kw: object) -> ActionRequest:
    args: dict[str, object] = {
        "params": {"name": "web"},
        "resource_type": "script",
        "instance": "script:web",
        "ocf_root": "/usr/lib/ocf",
    }
    args.update(kw)
    return ActionRequest(agent=str(agent), action=action, **args)  # type: ignore[arg-type]


def proc_alive(pid: int) -> bool:
    """True if *pid* exists and is not a zombie (an unreaped corpse is dead enough)."""
    try:
        data = Path(f"/proc/{pid}/stat").read_bytes()
    except OSError:
        return False
    state = data[data.rfind(b")") + 2 :].split()[0]
    return state not in (b"Z", b"X")


def wait_dead(pid: int, within: float = 2.0) -> bool:
    end = time.monotonic() + within
    while time.monotonic() < end:
        if not proc_alive(pid):
            return True
        time.sleep(0.02)
    return not proc_alive(pid)


def read_pid(path: Path, within: float = 2.0) -> int:
    end = time.monotonic() + within
    while time.monotonic() < end:
        text = path.read_text() if path.exists() else ""
        if text.strip():
            return int(text.split()[0])
        time.sleep(0.02)
    raise AssertionError(f"{path} never got a pid")


@pytest.fixture
def reap_pids() -> Iterator[list[int]]:
    """Pids a test leaves running on purpose; SIGKILLed afterwards whatever happens."""
    pids: list[int] = []
    yield pids
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


# --- codes -----------------------------------------------------------------


def test_describe_rc() -> None:
    assert describe_rc(0) == "success"
    assert describe_rc(1) == "generic error"
    assert describe_rc(2) == "invalid argument(s)"
    assert describe_rc(3) == "function not implemented"
    assert describe_rc(4) == "insufficient privileges"
    assert describe_rc(5) == "program not installed"
    assert describe_rc(6) == "program not configured"
    assert describe_rc(7) == "not running"
    assert describe_rc(150) == "unknown (150)"
    assert describe_rc(-9) == "killed by SIGKILL"
    assert describe_rc(-15) == "killed by SIGTERM"
    assert describe_rc(-200) == "killed by signal 200"


@pytest.mark.parametrize(
    ("action", "rc", "want"),
    [
        ("status", 0, 0),
        ("status", 1, 1),
        ("status", 2, 1),
        ("status", 3, 7),
        ("status", 4, 1),
        ("status", 5, 1),
        ("status", 150, 1),
        ("status", -9, 1),
        ("start", 0, 0),
        ("start", 1, 1),
        ("start", 5, 5),
        ("stop", 7, 7),
        ("stop", 3, 3),
        ("start", 8, 1),
        ("start", 150, 1),
        ("start", -15, 1),
    ],
)
def test_lsb_to_ocf(action: str, rc: int, want: int) -> None:
    assert lsb_to_ocf(action, rc) == want


def test_result_ok() -> None:
    assert ActionResult(0, 0, "", False, 0.0).ok
    assert not ActionResult(7, 7, "", False, 0.0).ok


# --- environment and argv ----------------------------------------------------


def test_build_env_is_exactly_the_ocf_set(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RGM_TEST_CANARY", "leak")
    monkeypatch.delenv("HA_RSCTMP", raising=False)
    req = request(
        "/x/agent",
        action="status",
        params={"name": "web", "file": "/etc/init.d/web"},
        ocf_root="/srv/agents",
        check_level=10,
        extra_env={"OCF_RESKEY_RGMANAGER_meta_refcnt": "1"},
    )
    env = build_env(req)
    py_dir = os.path.dirname(os.path.abspath(sys.executable))
    assert env["PATH"] in (SANE_PATH, f"{SANE_PATH}:{py_dir}")
    del env["PATH"]
    assert env.pop("RGMANAGER_PYTHON") == os.path.abspath(sys.executable)
    assert env == {
        "LANG": "C",
        "OCF_RESKEY_name": "web",
        "OCF_RESKEY_file": "/etc/init.d/web",
        "OCF_RA_VERSION_MAJOR": "1",
        "OCF_RA_VERSION_MINOR": "0",
        "OCF_ROOT": "/srv/agents",
        "OCF_RESOURCE_INSTANCE": "script:web",
        "OCF_RESOURCE_TYPE": "script",
        "OCF_CHECK_LEVEL": "10",
        "OCF_RESKEY_RGMANAGER_meta_refcnt": "1",
    }


def test_agent_path_puts_system_directories_before_the_virtualenv(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """A program in the virtualenv's bin must never shadow the system's (mount, python3)."""
    venv_bin = tmp_path / "venv" / "bin"
    venv_bin.mkdir(parents=True)
    monkeypatch.setattr(sys, "executable", str(venv_bin / "python3"))
    path = build_env(request("/x"))["PATH"].split(":")
    system = ["/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin"]
    assert path[: len(system)] == system
    assert path == [*system, str(venv_bin)]
    # An interpreter that already lives in a system directory adds nothing.
    monkeypatch.setattr(sys, "executable", "/usr/bin/python3")
    assert build_env(request("/x"))["PATH"] == SANE_PATH


def test_agent_run_finds_system_program_before_virtualenv_one(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """End to end: an agent running ``ls`` gets /usr/bin/ls (or /bin/ls), not the venv's."""
    venv_bin = tmp_path / "venv" / "bin"
    venv_bin.mkdir(parents=True)
    fake = venv_bin / "ls"
    fake.write_text("#!/bin/sh\necho FAKE-LS\n")
    fake.chmod(0o755)
    monkeypatch.setattr(sys, "executable", str(venv_bin / "python3"))
    agent = make_agent(tmp_path, "ls -d /\n")
    res = run_action(request(agent))
    assert res.ok, res
    assert "FAKE-LS" not in res.output and res.output.strip() == "/"


def test_our_python_agent_runs_under_the_project_interpreter(tmp_path: Path) -> None:
    """With the system directories first in PATH, ``python3`` may be the system's (no
    pyroute2): our agents' launchers run RGMANAGER_PYTHON, the daemon's interpreter."""
    repo = Path(__file__).resolve().parents[1]
    res = run_action(request(repo / "resource-agents" / "service", action="meta-data",
                             ocf_root=str(repo / "resource-agents")))
    assert res.ok and "<resource-agent" in res.output, res
    probe = tmp_path / "probe"
    probe.write_text('#!/bin/sh\necho "python=$RGMANAGER_PYTHON"\n'
                     '"$RGMANAGER_PYTHON" -c "import sys; print(sys.prefix)"\n')
    probe.chmod(0o755)
    res = run_action(request(probe))
    assert res.ok, res
    assert f"python={os.path.abspath(sys.executable)}" in res.output
    assert sys.prefix in res.output


def test_build_env_passes_ha_rsctmp(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HA_RSCTMP", "/run/rsctmp")
    assert build_env(request("/x"))["HA_RSCTMP"] == "/run/rsctmp"


def test_build_env_skips_invalid_names(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="rgmanager.executor")
    env = build_env(
        request("/x", params={"ok_1": "a", "bad-name": "b", "1st": "c", "x=y": "d", "nul": "a\0b"})
    )
    assert env["OCF_RESKEY_ok_1"] == "a"
    assert not any(k.startswith("OCF_RESKEY_") and k != "OCF_RESKEY_ok_1" for k in env)
    assert "bad-name" in caplog.text and "1st" in caplog.text and "x=y" in caplog.text
    assert "nul" in caplog.text
    assert "a\0b" not in caplog.text


def test_agent_sees_only_our_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RGM_TEST_CANARY", "leak")
    monkeypatch.setenv("HOME", "/root-or-whatever")
    monkeypatch.setenv("HA_RSCTMP", str(tmp_path))
    dump = tmp_path / "env.out"
    agent = make_agent(tmp_path, f"env > '{dump}'\n")
    res = run_action(
        request(agent, params={"x": "1", "name": "web"}, check_level=20, ocf_root=str(tmp_path))
    )
    assert res.ok, res
    lines = dump.read_text().splitlines()
    env = dict(line.split("=", 1) for line in lines if "=" in line)
    assert env["OCF_RESKEY_x"] == "1"
    assert env["OCF_RESKEY_name"] == "web"
    assert env["OCF_ROOT"] == str(tmp_path)
    assert env["OCF_CHECK_LEVEL"] == "20"
    assert env["OCF_RESOURCE_INSTANCE"] == "script:web"
    assert env["HA_RSCTMP"] == str(tmp_path)
    assert env["PATH"].startswith(SANE_PATH)
    assert "RGM_TEST_CANARY" not in env
    assert "HOME" not in env
    # sh may add PWD/SHLVL/_ itself; everything else must come from us.
    allowed = set(build_env(request(agent, params={"x": "1", "name": "web"}))) | {
        "PWD",
        "SHLVL",
        "_",
        "OLDPWD",
    }
    assert set(env) <= allowed, set(env) - allowed


def test_metacharacters_arrive_verbatim_and_run_nothing(tmp_path: Path) -> None:
    canary = tmp_path / "pwned"
    evil = f"$(touch {canary}); rm -rf {tmp_path}/nothing `touch {canary}` ' \" | & ; > <"
    out = tmp_path / "value.out"
    agent = make_agent(tmp_path, f"printf '%s' \"$OCF_RESKEY_evil\" > '{out}'\n")
    res = run_action(request(agent, params={"evil": evil}, extra_args=[evil]))
    assert res.ok, res
    assert out.read_text() == evil
    assert not canary.exists()


def test_argv_is_agent_action_extra(tmp_path: Path) -> None:
    out = tmp_path / "argv.out"
    agent = make_agent(tmp_path, f'for a in "$0" "$@"; do echo "[$a]"; done > \'{out}\'\n')
    res = run_action(request(agent, action="migrate", extra_args=["node 2; ls"]))
    assert res.ok
    assert out.read_text().splitlines() == [f"[{agent}]", "[migrate]", "[node 2; ls]"]


def test_stdin_is_dev_null_and_cwd_root(tmp_path: Path) -> None:
    agent = make_agent(tmp_path, "cat; pwd\n")
    res = run_action(request(agent))
    assert res.ok
    assert res.output == "/\n"


# --- exit codes and output ---------------------------------------------------


@pytest.mark.parametrize("code", [0, 1, 2, 5, 6, 7, 42, 150])
def test_ocf_exit_codes_pass_through(tmp_path: Path, code: int) -> None:
    agent = make_agent(tmp_path, f"exit {code}\n")
    res = run_action(request(agent))
    assert (res.rc, res.raw_rc, res.timed_out) == (code, code, False)
    assert res.ok == (code == 0)


@pytest.mark.parametrize(
    ("action", "code", "want"),
    [("status", 3, 7), ("status", 4, 1), ("start", 0, 0), ("stop", 150, 1)],
)
def test_lsb_codes_are_mapped(tmp_path: Path, action: str, code: int, want: int) -> None:
    agent = make_agent(tmp_path, f'[ "$1" = {action} ] || exit 99\nexit {code}\n')
    res = run_action(request(agent, action=action, lsb=True))
    assert (res.rc, res.raw_rc) == (want, code)


def test_killed_by_signal_is_generic_error(tmp_path: Path) -> None:
    agent = make_agent(tmp_path, "kill -KILL $$\n")
    res = run_action(request(agent))
    assert (res.rc, res.raw_rc, res.timed_out) == (1, -9, False)


def test_output_combined_and_captured(tmp_path: Path) -> None:
    agent = make_agent(tmp_path, "echo out; echo err >&2; echo out2\n")
    res = run_action(request(agent))
    assert res.output == "out\nerr\nout2\n"


def test_output_truncated_keeping_the_tail(tmp_path: Path) -> None:
    agent = make_agent(
        tmp_path,
        "i=0; while [ $i -lt 3000 ]; do echo line-$i-xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx;"
        " i=$((i+1)); done; echo THE-END\n",
    )
    res = run_action(request(agent))
    assert res.ok
    assert len(res.output) <= executor.MAX_OUTPUT + 100
    assert "truncated" in res.output.splitlines()[0]
    assert res.output.endswith("THE-END\n")
    assert "line-0-" not in res.output


def test_missing_agent_is_not_installed(tmp_path: Path) -> None:
    res = run_action(request(tmp_path / "nope"))
    assert res.rc == OcfRc.ERR_INSTALLED
    assert not res.timed_out
    assert "nope" in res.output and "no such file" in res.output


def test_non_executable_agent_is_not_installed(tmp_path: Path) -> None:
    agent = make_agent(tmp_path, "exit 0\n")
    agent.chmod(stat.S_IRUSR | stat.S_IWUSR)
    res = run_action(request(agent))
    assert res.rc == OcfRc.ERR_INSTALLED
    assert "not executable" in res.output


def test_bad_interpreter_is_not_installed(tmp_path: Path) -> None:
    agent = tmp_path / "agent"
    agent.write_text("#!/nonexistent/interpreter\n")
    agent.chmod(0o755)
    res = run_action(request(agent))
    assert res.rc == OcfRc.ERR_INSTALLED


def test_logs_param_names_not_values(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="rgmanager.executor")
    agent = make_agent(tmp_path, "echo hello\n")
    res = run_action(request(agent, params={"passwd": "s3cr3t-value"}))
    assert res.ok
    assert "passwd" in caplog.text
    assert "s3cr3t-value" not in caplog.text
    assert "hello" in caplog.text and "returned 0 (success)" in caplog.text


# --- timeouts ------------------------------------------------------------------


def test_timeout_kills_the_whole_group(tmp_path: Path, reap_pids: list[int]) -> None:
    pidfile = tmp_path / "child.pid"
    agent = make_agent(tmp_path, f"sleep 1000 &\necho $! > '{pidfile}'\nsleep 1000\n")
    t0 = time.monotonic()
    res = run_action(request(agent, timeout=0.5), kill_grace=0.5)
    elapsed = time.monotonic() - t0
    child = read_pid(pidfile)
    reap_pids.append(child)
    assert res.timed_out
    assert res.rc == OcfRc.ERR_GENERIC
    assert not res.ok
    assert elapsed < 2.0
    assert wait_dead(child), "background sleep survived the timeout"


def test_timeout_kills_children_that_trap_term(tmp_path: Path, reap_pids: list[int]) -> None:
    pidfile = tmp_path / "child.pid"
    agent_pid = tmp_path / "agent.pid"
    agent = make_agent(
        tmp_path,
        f"echo $$ > '{agent_pid}'\n"
        f'sh -c \'trap "" TERM; echo $$ > "{pidfile}"; while :; do sleep 0.1; done\' &\n'
        "trap '' TERM\n"
        "while :; do sleep 0.1; done\n",
    )
    t0 = time.monotonic()
    res = run_action(request(agent, timeout=0.5), kill_grace=0.5)
    elapsed = time.monotonic() - t0
    child = read_pid(pidfile)
    reap_pids.append(child)
    assert res.timed_out and res.rc == 1
    assert res.raw_rc == -signal.SIGKILL
    assert 0.9 <= elapsed < 3.0
    assert wait_dead(child), "TERM-ignoring child survived SIGKILL"
    assert wait_dead(read_pid(agent_pid))


def test_timeout_term_is_enough_when_obeyed(tmp_path: Path) -> None:
    agent = make_agent(tmp_path, "sleep 1000\n")
    t0 = time.monotonic()
    res = run_action(request(agent, timeout=0.3), kill_grace=5.0)
    assert res.timed_out and res.rc == 1
    assert res.raw_rc == -signal.SIGTERM
    assert time.monotonic() - t0 < 2.0  # did not sit out the 5 s grace


def test_output_before_timeout_is_kept(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.ERROR, logger="rgmanager.executor")
    agent = make_agent(tmp_path, "echo starting\nsleep 1000\n")
    res = run_action(request(agent, timeout=0.3), kill_grace=0.5)
    assert res.timed_out
    assert "starting" in res.output
    assert "start on script:web timed out after 0.3 seconds" in caplog.text


def test_unenforced_timeout_only_warns(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="rgmanager.executor")
    agent = make_agent(tmp_path, "sleep 0.8\necho finished\nexit 0\n")
    res = run_action(request(agent, timeout=0.2, enforce_timeout=False), kill_grace=0.1)
    assert res.ok and not res.timed_out
    assert res.output == "finished\n"
    assert res.duration >= 0.8
    assert "start on script:web exceeded its timeout of 0.2 s (not enforced)" in caplog.text


@pytest.mark.parametrize("timeout", [None, 0])
def test_no_timeout_means_no_limit(tmp_path: Path, timeout: float | None) -> None:
    agent = make_agent(tmp_path, "sleep 0.3\nexit 7\n")
    res = run_action(request(agent, timeout=timeout), kill_grace=0.1)
    assert (res.rc, res.timed_out) == (7, False)


# --- daemonizing scripts ---------------------------------------------------------


def test_daemonizing_lsb_script_does_not_hang(tmp_path: Path, reap_pids: list[int]) -> None:
    """An init script that backgrounds a daemon with our pipe as its stdout."""
    pidfile = tmp_path / "daemon.pid"
    agent = make_agent(
        tmp_path,
        "case $1 in start)\n"
        "  (echo daemon-up; exec sleep 1000) &\n"
        f"  echo $! > '{pidfile}'\n"
        "  echo started\n"
        "  exit 0;;\n"
        "esac\nexit 3\n",
    )
    t0 = time.monotonic()
    res = run_action(request(agent, action="start", lsb=True, timeout=10))
    elapsed = time.monotonic() - t0
    daemon = read_pid(pidfile)
    reap_pids.append(daemon)
    assert res.ok and not res.timed_out
    assert elapsed < 3.0
    assert "started" in res.output
    # The daemon is the service: a normal exit must leave it running.
    assert proc_alive(daemon)
    time.sleep(0.2)
    assert proc_alive(daemon), "daemon died (SIGPIPE?) after the action returned"


def test_daemon_writing_after_return_survives(tmp_path: Path, reap_pids: list[int]) -> None:
    """Leftovers that keep writing to the inherited stdout are not killed by SIGPIPE."""
    pidfile = tmp_path / "daemon.pid"
    agent = make_agent(
        tmp_path,
        f'(echo $$ >/dev/null; sh -c \'echo $$ > "{pidfile}"; '
        "while :; do echo tick; sleep 0.05; done') &\nexit 0\n",
    )
    res = run_action(request(agent, lsb=True))
    assert res.ok
    daemon = read_pid(pidfile)
    reap_pids.append(daemon)
    time.sleep(0.5)
    assert proc_alive(daemon)


def test_metadata_runs_put_system_directories_first(tmp_path: Path) -> None:
    """meta-data is an agent run too: the same PATH rule as every action."""
    from rgmanager.agents.discovery import _run_metadata
    agent = tmp_path / "show-path"
    agent.write_text('#!/bin/sh\necho "<path>$PATH</path>"\n')
    agent.chmod(0o755)
    out = _run_metadata(agent).decode()
    path = out.removeprefix("<path>").split("</path>")[0].split(":")
    assert path[:6] == ["/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin",
                        "/sbin", "/bin"]


# --- run_program (fence agents and other non-OCF programs) ------------------------


def test_run_program_exit_code_stdout_stderr_and_stdin(tmp_path: Path) -> None:
    prog = make_agent(tmp_path, 'read a; read b; echo "got $a/$b"; echo oops >&2; exit 3\n')
    res = executor.run_program([str(prog)], stdin=b"action=off\nport=4\n", timeout=10)
    assert (res.returncode, res.timed_out) == (3, False)
    assert res.stdout == "got action=off/port=4\n"
    assert res.stderr == "oops\n"
    assert not res.ok and res.elapsed < 5


def test_run_program_environment_is_base_env_plus_given(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RGM_TEST_CANARY", "leak")
    prog = make_agent(tmp_path, "env\n")
    res = executor.run_program([str(prog)], env={"FENCE_X": "1", "bad-name": "2"}, timeout=10)
    assert res.ok, res
    env = dict(line.split("=", 1) for line in res.stdout.splitlines() if "=" in line)
    assert env["FENCE_X"] == "1"
    assert env["PATH"].startswith(SANE_PATH)
    assert "RGM_TEST_CANARY" not in env and "bad-name" not in env


def test_run_program_timeout_kills_the_group(tmp_path: Path, reap_pids: list[int]) -> None:
    pidfile = tmp_path / "child.pid"
    prog = make_agent(tmp_path, f"sleep 1000 &\necho $! > '{pidfile}'\ntrap '' TERM\n"
                                "while :; do sleep 0.1; done\n")
    res = executor.run_program([str(prog)], timeout=0.3, kill_grace=0.3)
    child = read_pid(pidfile)
    reap_pids.append(child)
    assert res.timed_out and res.returncode is None
    assert res.elapsed < 3.0
    assert wait_dead(child)


def test_run_program_missing_program_is_reported_not_raised(tmp_path: Path) -> None:
    res = executor.run_program([str(tmp_path / "nope")], timeout=5)
    assert res.returncode is None and not res.timed_out
    assert "nope" in res.stderr


def test_run_program_large_stdin_does_not_deadlock(tmp_path: Path) -> None:
    prog = make_agent(tmp_path, "cat\n")
    data = b"x" * 300_000
    res = executor.run_program([str(prog)], stdin=data, timeout=10)
    assert res.ok
    assert res.stdout.endswith("x" * 1000) and "truncated" in res.stdout.splitlines()[0]
