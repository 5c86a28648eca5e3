"""Cluster backends by name, each built from the loaded configuration.

The daemon and its command line both read ``BACKENDS``, so a backend is
added in one place. A factory gets the loaded ``ClusterConfig`` and this
node's name, and takes from the configuration what it needs (node ids and
names, votes, the group name).

Registered: ``local`` (the embedded single node, always quorate) and
``corosync`` (libcpg; node ids matched to ``<clusternode nodeid>``, quorum
from the ring and cluster.conf's votes). The ``sim`` backend is deliberately
not registered here: its value is many managers in one process, driven step by step by a test; a
daemon process holds exactly one manager, so a simulated network inside it
would be a group of one whose other members can never start, which is the
``local`` backend with a quorum that can never be reached.
"""

from __future__ import annotations

from collections.abc import Callable

from ..config.model import ClusterConfig
from .base import Cluster

#: The CPG group every rgmanager of a cluster joins (one corosync cluster
#: runs one rgmanager group, as the original did).
GROUP = "rgmanager"

BackendFactory = Callable[[ClusterConfig, str], Cluster]


def _local(config: ClusterConfig, node: str) -> Cluster:
    from .local import LocalCluster
    return LocalCluster(node)


def _corosync(config: ClusterConfig, node: str) -> Cluster:
    # Imported on use: loading the module does not need corosync's libraries
    # (they are opened in start()), but nothing else should pay for it.
    from .corosync import CorosyncCluster
    return CorosyncCluster(node, {n.nodeid: n.name for n in config.nodes}, group=GROUP,
                           votes={n.name: n.votes for n in config.nodes},
                           expected_votes=config.expected_votes, two_node=config.two_node)


BACKENDS: dict[str, BackendFactory] = {
    "local": _local,
    "corosync": _corosync,
}


class UnknownBackend(ValueError):
    """A backend name that is not registered; the message lists the known ones."""


def names() -> tuple[str, ...]:
    """Registered backend names, for ``--backend`` choices and messages."""
    return tuple(BACKENDS)


def build(name: str, config: ClusterConfig, node: str) -> Cluster:
    """The backend ``name`` for ``node`` of ``config``."""
    try:
        factory = BACKENDS[name]
    except KeyError:
        raise UnknownBackend(f"unknown cluster backend '{name}' "
                             f"(available: {', '.join(names())})") from None
    return factory(config, node)


__all__ = ["BACKENDS", "GROUP", "UnknownBackend", "build", "names"]
