"""Fixtures for running the real agents in ``resource-agents/`` as processes."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from rgmanager.executor import SANE_PATH

REPO = Path(__file__).resolve().parents[2]
AGENT_DIR = REPO / "resource-agents"


@dataclass
class AgentRun:
    rc: int
    stdout: str
    stderr: str


def agent_env(rsctmp: Path, params: dict[str, str], **extra: str) -> dict[str, str]:
    env = {
        # As the executor builds it: system directories first, the venv last.
        "PATH": f"{SANE_PATH}:{os.path.dirname(sys.executable)}",
        "RGMANAGER_PYTHON": sys.executable,
        "OCF_ROOT": str(AGENT_DIR),
        "HA_RSCTMP": str(rsctmp),
    }
    env.update({"OCF_RESKEY_" + k: v for k, v in params.items()})
    env.update(extra)
    return env


RunAgent = Callable[..., AgentRun]


@pytest.fixture
def rsctmp(tmp_path: Path) -> Path:
    d = tmp_path / "rsctmp"
    d.mkdir()
    return d


@pytest.fixture
def run_agent(rsctmp: Path) -> RunAgent:
    """run_agent("ip", "start", address="10.1.1.1/24", netns="x") -> AgentRun.

    ``netns=`` runs the agent inside that network namespace (``ip netns exec``);
    ``check_level=`` sets OCF_CHECK_LEVEL; other keywords become OCF_RESKEY_*.
    """

    def run(agent: str, action: str, *, netns: str | None = None, check_level: int = 0,
            instance: str | None = None, timeout: float = 120, **params: str) -> AgentRun:
        primary = next(iter(params.values()), "x")
        env = agent_env(rsctmp, params, OCF_CHECK_LEVEL=str(check_level),
                        OCF_RESOURCE_INSTANCE=instance or f"{agent}:{primary}",
                        OCF_RESOURCE_TYPE=agent)
        argv = [str(AGENT_DIR / agent), action]
        if netns:
            argv = ["ip", "netns", "exec", netns, *argv]
        p = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=timeout)
        return AgentRun(p.returncode, p.stdout, p.stderr)

    return run


needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="needs root (namespaces, mounts)")


def ocf_tester(agent: str, params: dict[str, str], rsctmp: Path,
               netns: str | None = None) -> subprocess.CompletedProcess[str]:
    """Run Debian's ocf-tester against one of our agents with a valid parameter set."""
    tester = shutil.which("ocf-tester")
    if tester is None:
        pytest.skip("ocf-tester (package resource-agents) is not installed")
    argv = [tester, "-n", f"{agent}-test"]
    for k, v in params.items():
        argv += ["-o", f"{k}={v}"]
    argv.append(str(AGENT_DIR / agent))
    if netns:
        argv = ["ip", "netns", "exec", netns, *argv]
    env = agent_env(rsctmp, {})
    env["OCF_ROOT"] = "/usr/lib/ocf"
    # ocf-tester is another OCF manager: it knows nothing of RGMANAGER_PYTHON, and
    # the launchers then run the checkout's .venv/bin/python (else python3 from PATH).
    del env["RGMANAGER_PYTHON"]
    env["PATH"] = f"{os.path.dirname(sys.executable)}:{SANE_PATH}"
    return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=600)


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[object]:
    """Loop images, loop devices and mount points (an FsLab), all cleaned up afterwards."""
    from ._helpers_fs import FsLab  # it imports this module

    lab = FsLab(tmp_path)
    try:
        yield lab
    finally:
        lab.cleanup()


@pytest.fixture
def netns(request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh network namespace with lo up; removed afterwards."""
    if os.geteuid() != 0:
        pytest.skip("network namespaces need root")
    name = f"rgt{os.getpid()}{abs(hash(request.node.nodeid)) % 10000}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    subprocess.run(["ip", "-n", name, "link", "set", "lo", "up"], check=True)
    try:
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], check=False)
