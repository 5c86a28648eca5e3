"""The cluster interface the manager is written against, and its contract.

Everything a node learns arrives as one ordered stream of deliveries:
messages (including its own broadcasts, delivered back) and membership
changes, interleaved in the same total order on every member (CPG's virtual
synchrony). Managers that apply the same stream to the same pure planner
hold the same state table, so no other agreement is needed.

The contract every backend keeps (the manager relies on each point; the
``local``, ``sim`` and ``corosync`` backends are tested against it):

1. *One stream, one at a time.* ``deliver`` is called for one delivery at a
   time, never concurrently, in the total order of the group.
2. *Own broadcasts come back.* A node's own ``broadcast`` is delivered to it
   too, at its place in the total order; a node acts on what it sent only
   when it comes back (that is what makes "never two owners" hold).
3. *A newcomer's first change lists itself as joined.* The first delivery
   after ``start()`` (and after every rejoin following ``ClusterLost``) is a
   ``MembershipChange`` whose ``joined`` contains this node; the members
   already there see the same change at the same point of their streams.
4. *``broadcast`` never blocks and may be called from inside ``deliver``.*
   It queues and returns; sending happens on the backend's own thread (the
   corosync backend also retries ``CS_ERR_TRY_AGAIN`` with backoff and
   fragments payloads above its fragment size), so a busy channel can never
   deadlock the delivery thread. A payload that is not JSON-serialisable
   fails in the caller.
5. *Losing the channel is a delivery.* If the group communication itself
   goes away under a running node (corosync killed), the backend delivers
   ``ClusterLost``; ``membership()`` is then empty and inquorate, queued
   broadcasts are dropped, and when the channel is back the node rejoins as
   a fresh member (point 3).
6. *Members vs online nodes.* ``membership().members`` are the nodes whose
   rgmanager joined the group; ``online_nodes()`` the nodes the membership
   layer sees (corosync's members), which may be more (a node running
   corosync without rgmanager). Backends without that distinction return
   the members.
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


@dataclass(frozen=True)
class ClusterLost:
    """The group channel went away under a running node (delivered like a change).

    The manager treats it as losing quorum *and* membership: the node is in
    no group until the backend reconnects and delivers a MembershipChange
    that lists this node as joined (a fresh member, waiting for the table).
    """

    reason: str


Delivery = Message | MembershipChange | ClusterLost
DeliverFn = Callable[[Delivery], None]


class Cluster(abc.ABC):
    """One node's view of the cluster (see the module docstring for the contract)."""

    def __init__(self, local_node: str) -> None:
        self.local_node = local_node

    @abc.abstractmethod
    def start(self, deliver: DeliverFn) -> None:
        """Join the group; from now on call ``deliver`` for every delivery, one at
        a time, in total order. The first delivery is a MembershipChange that
        includes this node in ``joined``."""

    @abc.abstractmethod
    def broadcast(self, payload: Mapping[str, Any]) -> None:
        """Send to every member, this node included; returns before delivery,
        never blocks, and may be called from inside ``deliver``."""

    @abc.abstractmethod
    def membership(self) -> Membership:
        """The membership as of the last delivery."""

    def online_nodes(self) -> tuple[str, ...]:
        """Nodes the membership layer sees as up, whether or not their rgmanager
        joined the group; by default the group's members."""
        return self.membership().members

    @abc.abstractmethod
    def stop(self) -> None:
        """Leave the group; no delivery after this returns."""
