"""Membership, quorum and a totally ordered broadcast channel behind one interface.

Backends: ``local`` (one node, always quorate; the default), ``sim`` (many
nodes in one process, for tests), ``corosync`` (later: libcpg/libvotequorum).
"""

from .base import Cluster, Delivery, Membership, MembershipChange, Message

__all__ = ["Cluster", "Delivery", "Membership", "MembershipChange", "Message"]
