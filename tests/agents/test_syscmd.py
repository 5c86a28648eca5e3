"""The agents' one way to run a program: :mod:`rgmanager.agentlib.syscmd` (real processes)."""

from __future__ import annotations

import logging
import os
import threading
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rgmanager.agentlib import ocf
from rgmanager.agentlib.redact import MASK
from rgmanager.agentlib.syscmd import CommandError, run


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ", 1)[1][0] != "Z"
    except (OSError, IndexError):
        return False


def _wait_gone(pid: int, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not _alive(pid):
            return True
        time.sleep(0.02)
    return False


def test_result_of_any_exit_status_without_check() -> None:
    r = run(["sh", "-c", "echo out; echo err >&2; exit 3"])
    assert (r.rc, r.stdout, r.stderr) == (3, "out\n", "err\n")
    assert not r.ok and r.said() == "err"
    assert run(["true"]).ok


def test_check_raises_one_agent_error_with_the_result() -> None:
    with pytest.raises(CommandError) as err:
        run(["sh", "-c", "echo nope >&2; exit 4"], check=True)
    assert isinstance(err.value, ocf.AgentError)
    assert err.value.rc == ocf.OCF_ERR_GENERIC
    assert err.value.result is not None and err.value.result.rc == 4
    assert "rc 4" in str(err.value) and "nope" in str(err.value)
    assert run(["sh", "-c", "exit 2"], check=True, ok_codes=(0, 2)).rc == 2


def test_missing_program_is_not_installed(tmp_path: Path) -> None:
    with pytest.raises(CommandError) as err:
        run(["rgmanager-no-such-program"])
    assert err.value.rc == ocf.OCF_ERR_INSTALLED
    assert "not installed" in str(err.value)


def test_unexecutable_script_is_a_generic_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad"
    bad.write_text("#!/nonexistent/interpreter\n")
    bad.chmod(0o755)
    with pytest.raises(CommandError) as err:
        run([str(bad), "status"])
    assert err.value.rc == ocf.OCF_ERR_GENERIC
    assert "cannot run" in str(err.value)


def test_timeout_kills_the_program(tmp_path: Path) -> None:
    pidfile = tmp_path / "pid"
    started = time.monotonic()
    with pytest.raises(CommandError) as err:
        run(["sh", "-c", f'echo $$ > {pidfile}; exec sleep 60'], timeout=0.5)
    assert time.monotonic() - started < 30
    assert err.value.rc == ocf.OCF_ERR_GENERIC and "timed out" in str(err.value)
    assert _wait_gone(int(pidfile.read_text()))


def test_death_by_signal_is_a_negative_rc() -> None:
    assert run(["sh", "-c", "kill -KILL $$"]).rc == -9


def test_no_shell_and_stdin_is_empty() -> None:
    assert run(["printf", "%s", "a; echo b $(id) *"]).stdout == "a; echo b $(id) *"
    assert run(["cat"], timeout=10).stdout == ""  # /dev/null, not an open pipe


def test_env_replaces_the_environment_and_finds_the_program(tmp_path: Path) -> None:
    bindir = tmp_path / "bin"
    bindir.mkdir()
    tool = bindir / "rgm-test-tool"
    tool.write_text('#!/bin/sh\necho "tool $FOO"\n')
    tool.chmod(0o755)
    env = {"PATH": f"{bindir}:/usr/bin:/bin", "FOO": "bar"}
    assert run(["rgm-test-tool"], env=env).stdout == "tool bar\n"
    assert "FOO=" not in run(["env"], env={"PATH": "/usr/bin:/bin"}).stdout


def test_to_file_does_not_wait_for_a_daemon_holding_the_output() -> None:
    started = time.monotonic()
    r = run(["sh", "-c", "sleep 60 & echo $!; echo said >&2"], timeout=30, to_file=True)
    try:
        assert time.monotonic() - started < 20
        lines = r.stdout.split()
        assert r.rc == 0 and "said" in lines
    finally:
        pid = int(r.stdout.split()[0])
        os.kill(pid, 9)
    assert _wait_gone(pid)


def test_secrets_never_logged_or_raised(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)  # as OCF_TRACE=1 does: sh's own tracing stays quiet
    argv = ["sh", "-c", 'echo "bad: $0" >&2; exit 32', "user=bob,password=s3cr3t-Pw"]
    with pytest.raises(CommandError) as err:
        run(argv, check=True)
    assert "s3cr3t-Pw" not in str(err.value) + caplog.text
    assert not [r for r in caplog.records if r.name.startswith("sh")]
    assert f"password={MASK}" in caplog.text and "user=bob" in str(err.value)


def test_repeated_calls_leak_no_descriptors() -> None:
    """An agent host calls this many times in one process."""
    run(["true"])
    before = len(os.listdir("/proc/self/fd"))
    threads = threading.active_count()
    for _ in range(30):
        run(["sh", "-c", "echo x; exit 1"])
        run(["true"], to_file=True)
    assert len(os.listdir("/proc/self/fd")) <= before
    assert threading.active_count() <= threads  # sh's I/O threads end with the call


@settings(max_examples=25, deadline=None)
@given(st.lists(st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\0"),
                        max_size=20), min_size=1, max_size=4))
def test_arguments_arrive_verbatim(args: list[str]) -> None:
    """Whatever the words, the program gets exactly them: no shell, no splitting."""
    out = run(["printf", "%s\\0", *args]).stdout
    assert out.split("\0")[:-1] == args
