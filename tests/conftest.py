"""Shared fixtures: seed rules and a writer for cluster.conf files."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from rgmanager.agents.discovery import RuleSet

from .seed_rules import seed_rules

HEADER = """<?xml version="1.0"?>
<cluster name="test" config_version="1">
  <clusternodes>
    <clusternode name="node1" nodeid="1"/>
    <clusternode name="node2" nodeid="2"/>
    <clusternode name="node3" nodeid="3"/>
  </clusternodes>
"""

WriteConf = Callable[..., Path]


@pytest.fixture
def rules() -> RuleSet:
    return seed_rules()


@pytest.fixture
def write_conf(tmp_path: Path) -> WriteConf:
    """write_conf(rm_body) -> path of a cluster.conf with three nodes and <rm>rm_body</rm>.

    ``full=`` writes the given text as the whole file instead.
    """
    counter = [0]

    def write(rm: str = "", *, full: str | None = None, rm_attrs: str = "") -> Path:
        counter[0] += 1
        path = tmp_path / f"cluster{counter[0]}.conf"
        text = full if full is not None else (
            HEADER + f"  <rm{(' ' + rm_attrs) if rm_attrs else ''}>\n{rm}\n  </rm>\n</cluster>\n")
        path.write_text(text)
        return path

    return write
