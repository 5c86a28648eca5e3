"""Our agents called again and again in one process, as the agent host does.

Each call gets its own argv and environment (``os.environ`` replaced, as the
host's worker does); answers must not depend on what an earlier call did.
Runs in a child interpreter so that replacing ``os.environ`` and ``ocf.run``'s
logging set-up cannot touch the test process.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

from .conftest import REPO


def test_agents_answer_the_same_on_every_call(tmp_path: Path) -> None:
    lsb = tmp_path / "lsb"
    lsb.write_text('#!/bin/sh\n[ "$1" = status ] && exit "${LSB_RC:-0}"\nexit 0\n')
    lsb.chmod(0o755)
    code = textwrap.dedent(f"""
        import importlib, os, sys
        base = {{"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "HA_RSCTMP": {str(tmp_path)!r}}}
        calls = [
            ("ip", "status", {{"address": "127.0.0.1"}}, 0),
            ("ip", "status", {{"address": "192.0.2.254"}}, 7),
            ("script", "status", {{"name": "s", "file": {str(lsb)!r}}}, 0),
            ("script", "status", {{"name": "s", "file": {str(lsb)!r}, "LSB_RC": "3"}}, 7),
            ("script", "status", {{"name": "s", "file": "/nonexistent"}}, 5),
            ("fs", "status", {{"name": "f", "mountpoint": {str(tmp_path / "mnt")!r},
                               "device": "/dev/rgm-none"}}, 7),
            ("service", "status", {{"name": "svc"}}, 7),
            ("service", "start", {{"name": "svc"}}, 0),
            ("service", "status", {{"name": "svc"}}, 0),
            ("service", "stop", {{"name": "svc"}}, 0),
            ("nfsexport", "status", {{"name": "e"}}, 7),
            ("lvm", "meta-data", {{}}, 0),
        ]
        for round in range(3):
            for agent, action, params, want in calls:
                env = dict(base)
                for k, v in params.items():
                    env[k if k.isupper() else "OCF_RESKEY_" + k] = v
                os.environ.clear()
                os.environ.update(env)
                sys.argv = [agent, action]
                rc = importlib.import_module("rgmanager.agentlib." + agent).main()
                assert rc == want, (round, agent, action, params, rc, want)
        print("ok")
    """)
    p = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True,
                       timeout=120)
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip().endswith("ok"), p.stdout
