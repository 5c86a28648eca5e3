"""The ``fs`` agent: a local (failover) file system, mounted on one node at a time.

All the work is in :mod:`.mountfs`; this module only names the kind and
its meta-data.  ``force_unmount`` defaults to off, as in rgmanager: killing
processes is a decision the administrator makes per file system.
"""

from __future__ import annotations

from .mountfs import Kind, handlers, make_spec
from .ocf import run

KIND = Kind(agent="fs", cluster=False)

SPEC = make_spec(
    KIND,
    shortdesc="Defines a file system mount.",
    longdesc="A local file system (ext4, xfs, ...) that is mounted on the node running the "
             "service and unmounted before the service moves.",
    fstype_desc="File system type (ext4, xfs, ...); detected by mount when not set.",
)


def main() -> int:
    return run(SPEC, handlers(KIND))
