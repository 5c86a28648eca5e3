"""The agent host: our agents in persistent workers, with the executor's guarantees.

This module is also the "agent" these tests run: the executor is pointed at a
stand-in launcher file, and the worker calls :func:`main` below, which acts
out whatever the action's name says (exit, raise, crash, hang, daemonize).
Results are compared with what the same agent gives as a process.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rgmanager import executor
from rgmanager.agenthost import pool as agent_host
from rgmanager.agenthost import protocol
from rgmanager.executor import ActionRequest, ActionResult, OcfRc, run_action

REPO = Path(__file__).resolve().parents[1]
THIS_MODULE = "tests.test_agenthost"

# --- the stand-in agent (runs inside the worker) ----------------------------------


def _spawn_sleeper() -> None:
    child = subprocess.Popen(["sleep", "1000"])
    Path(os.environ["OCF_RESKEY_pidfile"]).write_text(str(child.pid))


def _hang() -> int:
    _spawn_sleeper()
    time.sleep(1000)
    return 0


def _hang_ignoring_term() -> int:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    return _hang()


def _daemonize() -> int:
    """An init script's start: a daemon in our group, writing to our stdout forever."""
    pidfile = os.environ["OCF_RESKEY_pidfile"]
    subprocess.Popen(["sh", "-c", f'echo $$ > "{pidfile}"; '
                      "while :; do echo tick; sleep 0.05; done"])
    print("started", flush=True)
    return 0


def _segfault() -> int:
    print("before the crash", flush=True)
    os.kill(os.getpid(), signal.SIGSEGV)
    time.sleep(10)
    return 0


def _os_exit() -> int:
    print("before the exit", flush=True)
    os._exit(0)


def _raise() -> int:
    raise RuntimeError("agent bug")


def _dirty() -> int:
    os.environ["LEAKED"] = "1"
    os.chdir("/tmp")
    return 0


def _env() -> int:
    print(json.dumps({"env": dict(os.environ), "argv": sys.argv, "cwd": os.getcwd(),
                      "pid": os.getpid()}))
    print("to stderr", file=sys.stderr)
    return 0


def _slow() -> int:
    time.sleep(1.5)
    return 0


_ACTIONS: dict[str, Callable[[], object]] = {
    "status": _env, "start": _env, "hang": _hang, "hang-ignoring-term": _hang_ignoring_term,
    "daemonize": _daemonize, "segfault": _segfault, "os-exit": _os_exit, "raise": _raise,
    "dirty": _dirty, "slow": _slow,
    "exit-3": lambda: sys.exit(3), "exit-text": lambda: sys.exit("going away"),
    "return-7": lambda: 7,
}


def main() -> object:
    return _ACTIONS[sys.argv[1]]()


# --- helpers ------------------------------------------------------------------


def alive(pid: int) -> bool:
    try:
        data = Path(f"/proc/{pid}/stat").read_bytes()
    except OSError:
        return False
    return data[data.rfind(b")") + 2:].split()[0] not in (b"Z", b"X")


def wait_for(cond: Callable[[], bool], within: float = 3.0) -> bool:
    end = time.monotonic() + within
    while time.monotonic() < end:
        if cond():
            return True
        time.sleep(0.02)
    return cond()


def read_pid(path: Path) -> int:
    assert wait_for(lambda: path.exists() and path.read_text().strip() != ""), path
    return int(path.read_text().split()[0])


@pytest.fixture
def agent(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A launcher file the executor sends to the host (as this module's ``main``)."""
    path = tmp_path / "standin"
    path.write_text("#!/bin/sh\necho \"process $1 $$\"\n")
    path.chmod(0o755)
    real = agent_host.builtin_module
    monkeypatch.setattr(agent_host, "builtin_module",
                        lambda p: THIS_MODULE if p == str(path) else real(p))
    monkeypatch.delenv(agent_host.ENABLE_VAR, raising=False)
    executor.close_host_pool()
    yield path
    executor.close_host_pool()


@pytest.fixture
def kill_later() -> Iterator[list[int]]:
    pids: list[int] = []
    yield pids
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def request(agent: Path, action: str, **kw: object) -> ActionRequest:
    args: dict[str, object] = {"params": {"name": "web"}, "resource_type": "standin",
                               "instance": "standin:web", "ocf_root": "/srv/ocf"}
    args.update(kw)
    return ActionRequest(agent=str(agent), action=action, **args)  # type: ignore[arg-type]


def seen(res: ActionResult) -> dict[str, object]:
    line = next(ln for ln in res.output.splitlines() if ln.startswith("{"))
    data: dict[str, object] = json.loads(line)
    return data


def worker_pid(agent: Path, action: str = "status") -> int:
    res = run_action(request(agent, action))
    assert res.ok, res
    pid = seen(res)["pid"]
    assert isinstance(pid, int)
    return pid


# --- routing -----------------------------------------------------------------------


def test_our_agents_go_to_the_host_and_others_do_not(tmp_path: Path) -> None:
    assert agent_host.builtin_module(str(REPO / "resource-agents" / "service")) == \
        "rgmanager.agentlib.service"
    link = tmp_path / "service"
    link.symlink_to(REPO / "resource-agents" / "service")
    assert agent_host.builtin_module(str(link)) == "rgmanager.agentlib.service"
    other = tmp_path / "fs"
    other.write_text("#!/bin/sh\n")
    assert agent_host.builtin_module(str(other)) is None
    assert agent_host.builtin_module("/usr/lib/ocf/resource.d/heartbeat/Dummy") is None


def test_the_host_serves_and_reuses_one_worker(agent: Path) -> None:
    first = worker_pid(agent)
    assert first != os.getpid()
    assert worker_pid(agent) == first
    assert executor.host_pool().worker_pids() == [first]


def test_switch_runs_our_agents_as_processes(agent: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(agent_host.ENABLE_VAR, "0")
    res = run_action(request(agent, "status"))
    assert res.ok and res.output.startswith("process status "), res


# --- the agent sees what a process would see ----------------------------------------


def test_environment_argv_and_cwd_are_a_process_s(agent: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RGM_TEST_CANARY", "leak")
    req = request(agent, "status", params={"name": "web", "x": "1"}, check_level=20,
                  extra_args=["a b", "$(c)"])
    data = seen(run_action(req))
    assert data["env"] == executor.build_env(req)
    assert data["argv"] == [str(agent), "status", "a b", "$(c)"]
    assert data["cwd"] == "/"


def test_nothing_leaks_from_one_call_into_the_next(agent: Path) -> None:
    pid = worker_pid(agent)
    assert run_action(request(agent, "dirty", params={"secret": "s3"})).ok
    req = request(agent, "status", params={"other": "2"})
    data = seen(run_action(req))
    assert data["pid"] == pid  # the same worker served all three
    assert data["env"] == executor.build_env(req)
    assert data["cwd"] == "/"


def test_output_is_stdout_and_stderr_combined_or_stdout_only(agent: Path) -> None:
    res = run_action(request(agent, "status"))
    # Order between the two is Python's buffering, as in a process: not checked.
    assert "to stderr" in res.output.splitlines() and seen(res)
    res = run_action(request(agent, "status", merge_stderr=False))
    assert "to stderr" not in res.output and seen(res)


@pytest.mark.parametrize(("action", "rc"), [("exit-3", 3), ("return-7", 7), ("exit-text", 1),
                                            ("raise", 1)])
def test_exit_codes_are_a_process_s(agent: Path, action: str, rc: int) -> None:
    pid = worker_pid(agent, "start")
    res = run_action(request(agent, action))
    assert (res.rc, res.raw_rc, res.timed_out) == (rc, rc, False)
    if action == "raise":
        assert "RuntimeError: agent bug" in res.output
    if action == "exit-text":
        assert "going away" in res.output
    assert worker_pid(agent, "start") == pid  # an agent's error is not a worker's death


# --- crashes -------------------------------------------------------------------------


@pytest.mark.parametrize(("action", "raw"), [("segfault", -signal.SIGSEGV), ("os-exit", 0)])
def test_a_crash_is_a_generic_error_and_costs_only_the_worker(
        agent: Path, action: str, raw: int) -> None:
    before = worker_pid(agent, "start")
    res = run_action(request(agent, action))
    assert (res.rc, res.raw_rc, res.timed_out) == (OcfRc.ERR_GENERIC, raw, False)
    assert "before the" in res.output  # what it wrote before dying is kept
    assert wait_for(lambda: not alive(before))
    after = worker_pid(agent, "start")
    assert after != before


# --- timeouts ------------------------------------------------------------------------


def test_timeout_kills_the_worker_s_group_and_a_new_worker_serves(
        agent: Path, tmp_path: Path, kill_later: list[int]) -> None:
    before = worker_pid(agent, "start")
    pidfile = tmp_path / "child.pid"
    t0 = time.monotonic()
    res = run_action(request(agent, "hang", params={"pidfile": str(pidfile)}, timeout=0.5),
                     kill_grace=5.0)
    elapsed = time.monotonic() - t0
    child = read_pid(pidfile)
    kill_later.append(child)
    assert res.timed_out and res.rc == OcfRc.ERR_GENERIC
    assert res.raw_rc == -signal.SIGTERM
    assert elapsed < 3.0  # did not sit out the grace: everything obeyed SIGTERM
    assert wait_for(lambda: not alive(child)), "the agent's child survived the timeout"
    assert not alive(before)
    assert worker_pid(agent, "start") != before


def test_timeout_escalates_to_sigkill(agent: Path, tmp_path: Path,
                                      kill_later: list[int]) -> None:
    worker_pid(agent, "start")  # a warm worker: the timeout must not race its start-up
    pidfile = tmp_path / "child.pid"
    t0 = time.monotonic()
    res = run_action(request(agent, "hang-ignoring-term", params={"pidfile": str(pidfile)},
                             timeout=1.0), kill_grace=0.5)
    elapsed = time.monotonic() - t0
    kill_later.append(read_pid(pidfile))
    assert res.timed_out and res.raw_rc == -signal.SIGKILL
    assert 1.5 <= elapsed < 10.0  # sat out timeout + grace: SIGTERM was ignored
    assert wait_for(lambda: not alive(kill_later[0]))


def test_unenforced_timeout_only_waits(agent: Path, caplog: pytest.LogCaptureFixture) -> None:
    res = run_action(request(agent, "slow", timeout=0.2, enforce_timeout=False))
    assert res.ok and not res.timed_out and res.duration >= 1.5
    assert "exceeded its timeout of 0.2 s (not enforced)" in caplog.text


# --- processes an action leaves behind -------------------------------------------------


def test_a_daemon_left_by_start_outlives_later_timeouts(
        agent: Path, tmp_path: Path, kill_later: list[int]) -> None:
    first = worker_pid(agent, "start")
    pidfile = tmp_path / "daemon.pid"
    res = run_action(request(agent, "daemonize", params={"pidfile": str(pidfile)}, timeout=10))
    daemon = read_pid(pidfile)
    kill_later.append(daemon)
    assert res.ok and "started" in res.output and res.duration < 3.0
    # The worker retired: the daemon is not in any live worker's group ...
    second = worker_pid(agent, "start")
    assert second != first
    # ... so a timeout there does not reach it, and writing to its stdout (our
    # pipe) does not kill it either.
    hang_pid = tmp_path / "hang.pid"
    res = run_action(request(agent, "hang", params={"pidfile": str(hang_pid)}, timeout=0.3),
                     kill_grace=0.5)
    kill_later.append(read_pid(hang_pid))
    assert res.timed_out
    time.sleep(0.3)  # the daemon writes every 50 ms: give SIGPIPE a chance
    assert alive(daemon)


# --- concurrency -------------------------------------------------------------------------


def test_a_long_start_does_not_hold_up_status_checks(agent: Path) -> None:
    worker_pid(agent, "status")  # a warm checker
    slow = threading.Thread(target=run_action, args=(request(agent, "slow"),))
    slow.start()
    try:
        assert wait_for(lambda: len(executor.host_pool().worker_pids()) == 2)
        t0 = time.monotonic()
        for _ in range(5):
            assert run_action(request(agent, "status")).ok
        assert time.monotonic() - t0 < 1.0
        assert slow.is_alive()
    finally:
        slow.join()


def test_pool_bounds_workers_per_kind(agent: Path) -> None:
    pool = agent_host.Pool(env=executor.base_env(), sizes={"check": 1, "action": 1})
    call = agent_host.HostCall(module=THIS_MODULE, argv=[str(agent), "slow"], env={})
    try:
        results: list[agent_host.HostOutcome] = []
        threads = [threading.Thread(target=lambda: results.append(
            pool.run(call, timeout=None, enforce=True, kill_grace=1, label="x")))
            for _ in range(2)]
        t0 = time.monotonic()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert time.monotonic() - t0 >= 3.0  # one worker: the calls took turns
        assert [r.raw_rc for r in results] == [0, 0]
        assert len(pool.worker_pids()) == 1
    finally:
        pool.close()


# --- our real agents: the same answers as processes ---------------------------------------


@pytest.mark.parametrize("sequence", [["status", "start", "status", "stop", "status"]])
def test_service_agent_answers_as_it_does_as_a_process(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, sequence: list[str]) -> None:
    executor.close_host_pool()
    service = REPO / "resource-agents" / "service"
    answers: dict[str, list[int]] = {}
    try:
        for mode in ("1", "0"):
            monkeypatch.setenv(agent_host.ENABLE_VAR, mode)
            monkeypatch.setenv("HA_RSCTMP", str(tmp_path / mode))
            req = {a: request(service, a, resource_type="service", instance="service:web",
                              ocf_root=str(service.parent)) for a in sequence}
            answers[mode] = [run_action(req[a]).rc for a in sequence]
            meta = run_action(request(service, "meta-data", merge_stderr=False,
                                      ocf_root=str(service.parent)))
            answers[mode + "-meta"] = [hash(meta.output)]
        assert answers["1"] == answers["0"] == [7, 0, 0, 0, 7]
        assert answers["1-meta"] == answers["0-meta"]
    finally:
        executor.close_host_pool()


# --- the wire format ---------------------------------------------------------------------

_json = st.recursive(st.none() | st.booleans() | st.integers() | st.text(),
                     lambda inner: st.lists(inner, max_size=4)
                     | st.dictionaries(st.text(max_size=8), inner, max_size=4), max_leaves=20)


@settings(max_examples=200, deadline=None)
@given(messages=st.lists(st.dictionaries(st.text(max_size=8), _json, max_size=5), max_size=5),
       cuts=st.lists(st.integers(min_value=1, max_value=64), max_size=20))
def test_frames_survive_any_chunking(messages: list[dict[str, object]], cuts: list[int]) -> None:
    """However the stream is split into reads, the same messages come out in order."""
    stream = b"".join(protocol.encode(m) for m in messages)
    reader = protocol.FrameReader()
    out: list[dict[str, object]] = []
    pos = 0
    for cut in [*cuts, len(stream)]:
        reader.feed(stream[pos:pos + cut])
        pos += cut
        while (frame := reader.frame()) is not None:
            out.append(frame)
    assert out == messages


_names = st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,10}", fullmatch=True)
_values = st.text(alphabet=st.characters(exclude_categories=["Cs"], exclude_characters="\0"),
                  max_size=20)


@pytest.fixture(scope="module")
def small_pool() -> Iterator[agent_host.Pool]:
    pool = agent_host.Pool(env=executor.base_env(), sizes={"check": 1, "action": 1})
    yield pool
    pool.close()


@settings(max_examples=40, deadline=None)
@given(first=st.dictionaries(_names, _values, max_size=6),
       second=st.dictionaries(_names, _values, max_size=6))
def test_each_call_sees_exactly_its_own_environment(
        small_pool: agent_host.Pool, first: dict[str, str], second: dict[str, str]) -> None:
    """Any parameters: the agent's environment is build_env's, never the last call's."""
    path = REPO / "tests" / "standin-not-a-file"
    for params in (first, second):
        req = request(path, "status", params=params)
        call = agent_host.HostCall(module=THIS_MODULE, argv=[str(path), "status"],
                                   env=executor.build_env(req))
        got = small_pool.run(call, timeout=10, enforce=True, kill_grace=1, label="env")
        line = next(ln for ln in got.output.splitlines() if ln.startswith("{"))
        assert json.loads(line)["env"] == executor.build_env(req)
