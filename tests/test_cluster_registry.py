"""Backends by name, built from the loaded configuration (one registry)."""

from __future__ import annotations

from pathlib import Path

import pytest

from rgmanager.agents.discovery import RuleSet
from rgmanager.cluster import registry
from rgmanager.cluster.corosync import CorosyncCluster
from rgmanager.cluster.local import LocalCluster
from rgmanager.config.model import ClusterConfig
from rgmanager.config.parser import load_config

CONF = """<?xml version="1.0"?>
<cluster name="t" config_version="1">
  <clusternodes>
    <clusternode name="alpha" nodeid="7" votes="2"/>
    <clusternode name="beta" nodeid="3"/>
  </clusternodes>
</cluster>
"""


@pytest.fixture
def config(tmp_path: Path) -> ClusterConfig:
    conf = tmp_path / "cluster.conf"
    conf.write_text(CONF)
    return load_config(conf, RuleSet())[0]


def test_names_are_the_command_line_choices() -> None:
    from rgmanager.cli import daemon_main
    assert registry.names() == ("local", "corosync")
    with pytest.raises(SystemExit) as exc:
        daemon_main.main(["--backend", "sim", "--write-corosync-conf", "-"])
    assert exc.value.code == 2


def test_local_backend(config: ClusterConfig) -> None:
    c = registry.build("local", config, "beta")
    assert isinstance(c, LocalCluster) and c.local_node == "beta"


def test_corosync_backend_maps_node_ids_from_the_config(config: ClusterConfig) -> None:
    c = registry.build("corosync", config, "alpha")  # builds only: start() connects
    assert isinstance(c, CorosyncCluster)
    assert c.nodes == {7: "alpha", 3: "beta"} and c.group == registry.GROUP
    assert c.online_nodes() == () and c.membership().members == ()


def test_unknown_backend_lists_the_known_ones(config: ClusterConfig) -> None:
    with pytest.raises(registry.UnknownBackend, match="available: local, corosync"):
        registry.build("sim", config, "alpha")
