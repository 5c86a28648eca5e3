"""What an agent writes: a bounded buffer, and a drain for pipes left to leftovers.

Shared by the executor (agents as processes) and the agent host (agents in a
worker), so output is kept and truncated the same way on both paths.
"""

from __future__ import annotations

import logging
import os

log = logging.getLogger(__name__)

#: Most output kept per action (the tail is kept: errors come last).
MAX_OUTPUT = 64 * 1024

#: Seconds we keep reading output after the agent itself is done.  Processes
#: left behind (a daemon started by an init script) may still hold the pipe
#: open; we do not wait for them beyond this window.
DRAIN_WINDOW = 0.5


class BoundedOutput:
    """Bounded buffer that keeps the tail of what the agent wrote."""

    def __init__(self, limit: int = MAX_OUTPUT) -> None:
        self._limit = limit
        self._buf = bytearray()
        self._dropped = 0

    def add(self, data: bytes) -> None:
        self._buf += data
        # Trim only when well over the limit so trimming stays amortised O(n).
        if len(self._buf) > 2 * self._limit:
            cut = len(self._buf) - self._limit
            del self._buf[:cut]
            self._dropped += cut

    def text(self) -> str:
        if len(self._buf) > self._limit:
            cut = len(self._buf) - self._limit
            del self._buf[:cut]
            self._dropped += cut
        body = self._buf.decode("utf-8", errors="replace")
        if self._dropped:
            return f"[... {self._dropped} bytes of output truncated ...]\n{body}"
        return body


def drain_forever(fd: int, label: str) -> None:
    """Read and discard until EOF (run it in a daemon thread), then close *fd*.

    Used when processes the agent left behind (a daemon started by an init
    script) still hold the output pipe: closing our end would kill them with
    SIGPIPE on their next write, and waiting for EOF would block the action.
    """
    discarded = 0
    try:
        while True:
            try:
                data = os.read(fd, 65536)
            except InterruptedError:
                continue
            except OSError:
                break
            if not data:
                break
            discarded += len(data)
    finally:
        os.close(fd)
        log.debug(
            "%s: output pipe closed by leftover processes (%d bytes discarded)", label, discarded
        )
