"""The README's agent reference is generated from meta-data and must not drift;
its first two commands are the ones CI and people run."""

from __future__ import annotations

import re
from pathlib import Path

from rgmanager.cli.agents_doc import BEGIN, END, generate

REPO = Path(__file__).resolve().parents[1]


def test_agent_reference_is_current() -> None:
    readme = (REPO / "README.md").read_text()
    section = readme.split(BEGIN)[1].split(END)[0].strip()
    assert section == generate().strip(), \
        "README agent tables drifted: run python -m rgmanager.cli.agents_doc --write"


def test_readme_commands_and_ci_agree() -> None:
    readme = (REPO / "README.md").read_text()
    blocks = re.findall(r"```sh\n(.*?)\n```", readme, re.S)
    assert blocks[0].startswith("./setup.sh && .venv/bin/rgmanager -c etc/cluster.conf")
    assert blocks[1] == "./run-tests"
    assert "./run-tests" in (REPO / ".ci" / "run").read_text()
