"""The ``clusterfs`` agent: a cluster file system (GFS2) mounted on every node that needs it.

Same code as ``fs`` (:mod:`.mountfs`) except that ``force_fsck`` does not
exist -- checking a file system other nodes have mounted would corrupt it --
and any number of instances may exist (``maxinstances`` 0), since several
services may share one cluster file system.
"""

from __future__ import annotations

from .mountfs import Kind, handlers, make_spec
from .ocf import run

KIND = Kind(agent="clusterfs", cluster=True)

SPEC = make_spec(
    KIND,
    shortdesc="Defines a cluster file system mount.",
    longdesc="A cluster file system (normally GFS2) mounted on the node running the service; "
             "other nodes may have it mounted at the same time.",
    fstype_desc="File system type; normally gfs2 (detected by mount when not set).",
)


def main() -> int:
    return run(SPEC, handlers(KIND))
