"""systemd's notification protocol (``sd_notify``), for ``Type=notify`` units.

A module of its own because two layers speak it: the daemon (READY=1,
STOPPING=1) and the corosync backend, which says what it waits for
(``STATUS=``) while corosync is not up. Without ``$NOTIFY_SOCKET`` (not
under systemd) every call is a no-op.
"""

from __future__ import annotations

import logging
import os
import socket

log = logging.getLogger(__name__)


def notify(state: str) -> None:
    """Send ``state`` (e.g. ``READY=1``, ``STATUS=waiting for corosync``)."""
    addr = os.environ.get("NOTIFY_SOCKET")
    if not addr:
        return
    if addr.startswith("@"):
        addr = "\0" + addr[1:]
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
            s.connect(addr)
            s.sendall(state.encode())
    except OSError as err:
        log.debug("sd_notify failed: %s", err)
