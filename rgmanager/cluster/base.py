"""The cluster interface the manager is written against.

Everything a node learns arrives as one ordered stream of deliveries:
messages (including its own broadcasts, delivered back) and membership
changes, interleaved in the same total order on every member (CPG's virtual
synchrony). Managers that apply the same stream to the same pure planner
hold the same state table, so no other agreement is needed.
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Membership:
    """The members of this node's group (node names, ordered by node id)."""

    members: tuple[str, ...]
    quorate: bool
    epoch: int = 0  # increases with every change


@dataclass(frozen=True)
class Message:
    sender: str
    payload: Mapping[str, Any]  # JSON-compatible


@dataclass(frozen=True)
class MembershipChange:
    membership: Membership
    joined: tuple[str, ...] = ()
    left: tuple[str, ...] = ()


Delivery = Message | MembershipChange
DeliverFn = Callable[[Delivery], None]


class Cluster(abc.ABC):
    """One node's view of the cluster."""

    def __init__(self, local_node: str) -> None:
        self.local_node = local_node

    @abc.abstractmethod
    def start(self, deliver: DeliverFn) -> None:
        """Join the group; from now on call ``deliver`` for every delivery, one at
        a time, in total order. The first delivery is a MembershipChange that
        includes this node in ``joined``."""

    @abc.abstractmethod
    def broadcast(self, payload: Mapping[str, Any]) -> None:
        """Send to every member, this node included; returns before delivery."""

    @abc.abstractmethod
    def membership(self) -> Membership:
        """The membership as of the last delivery."""

    @abc.abstractmethod
    def stop(self) -> None:
        """Leave the group; no delivery after this returns."""
