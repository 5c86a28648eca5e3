"""Membership, quorum and a totally ordered broadcast channel behind one interface.

Backends (built by name from the configuration, see ``registry``): ``local``
(one node, always quorate; the default), ``corosync`` (libcpg; quorum
computed from the agreed ring), and ``sim`` (many nodes in one process, for tests only).
The contract they keep is written down in ``base``.
"""

from .base import Cluster, ClusterLost, Delivery, Membership, MembershipChange, Message

__all__ = ["Cluster", "ClusterLost", "Delivery", "Membership", "MembershipChange", "Message"]
