"""The launchers in ``resource-agents/``: one shared mechanism, plain OCF executables."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import AGENT_DIR, REPO

AGENTS = sorted(p.name for p in AGENT_DIR.iterdir() if not p.name.startswith("."))
BARE_ENV = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C"}

TEMPLATE = """#!/bin/sh
# OCF resource agent "{name}" of rgmanager-py: rgmanager/agentlib/{name}.py, run by \
agentlib/launch.sh.
agent={name} self=$(readlink -f -- "$0") || exit 5
. "${{self%/*/*}}/rgmanager/agentlib/launch.sh"
"""


def test_every_launcher_is_the_same_three_lines() -> None:
    assert len(AGENTS) == 10
    for name in AGENTS:
        path = AGENT_DIR / name
        assert path.read_text() == TEMPLATE.format(name=name), name
        assert os.access(path, os.X_OK)
        assert (REPO / "rgmanager" / "agentlib" / f"{name}.py").is_file()


@pytest.mark.parametrize("name", AGENTS)
def test_meta_data_from_any_cwd_without_the_venv(name: str, tmp_path: Path) -> None:
    """As ocf-tester or Pacemaker start it: no RGMANAGER_PYTHON, no venv on PATH."""
    p = subprocess.run([str(AGENT_DIR / name), "meta-data"], cwd=tmp_path, env=BARE_ENV,
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    assert f'<resource-agent name="{name}"' in p.stdout


def test_usage_names_the_launcher_and_exits_2(tmp_path: Path) -> None:
    p = subprocess.run([str(AGENT_DIR / "fs")], cwd=tmp_path, env=BARE_ENV,
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 2
    assert f"usage: {AGENT_DIR / 'fs'} " in p.stderr


def test_symlinked_launcher_and_rgmanager_python(tmp_path: Path) -> None:
    """A link in an OCF provider directory works; RGMANAGER_PYTHON is the interpreter."""
    link = tmp_path / "resource.d" / "rgmanager" / "service"
    link.parent.mkdir(parents=True)
    link.symlink_to(AGENT_DIR / "service")
    mark = tmp_path / "ran"
    wrapper = tmp_path / "python"
    wrapper.write_text(f'#!/bin/sh\necho "$@" > {mark}\nexec {sys.executable} "$@"\n')
    wrapper.chmod(0o755)
    p = subprocess.run([str(link), "meta-data"], cwd=tmp_path,
                       env={**BARE_ENV, "RGMANAGER_PYTHON": str(wrapper)},
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    assert '<resource-agent name="service"' in p.stdout
    assert "service" in mark.read_text()


def test_working_directory_cannot_shadow_our_code(tmp_path: Path) -> None:
    """A ``rgmanager`` package (or ``sh.py``) in the caller's cwd is never imported."""
    fake = tmp_path / "rgmanager"
    fake.mkdir()
    (fake / "__init__.py").write_text("raise SystemExit('imported the wrong rgmanager')\n")
    (tmp_path / "sh.py").write_text("raise SystemExit('imported the wrong sh')\n")
    p = subprocess.run([str(AGENT_DIR / "script"), "status"], cwd=tmp_path,
                       env={**BARE_ENV, "OCF_RESKEY_name": "x", "OCF_RESKEY_file": "/bin/true"},
                       capture_output=True, text=True, timeout=60)
    assert "wrong" not in p.stderr
    assert p.returncode == 0, p.stderr
