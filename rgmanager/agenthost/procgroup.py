"""Process-group primitives shared by every place that runs agent code.

An agent (or the agent host worker serving it) runs as the leader of its own
process group, so whatever it starts can be stopped with one signal.  These
helpers never reap the leader: a zombie leader keeps its pid, and with it the
group id, reserved, so ``killpg`` can never hit an unrelated group that reused
the number.
"""

from __future__ import annotations

import os
import signal


def pidfd_open(pid: int) -> int | None:
    """A descriptor that becomes readable when *pid* exits (Linux >= 5.3), if available."""
    opener = getattr(os, "pidfd_open", None)
    if opener is None:
        return None
    try:
        fd: int = opener(pid)
        return fd
    except OSError:
        return None


def exited(pid: int) -> bool:
    """True once *pid* (our child) has exited, *without reaping it*."""
    try:
        info = os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
    except ChildProcessError:
        return True
    return info is not None


def group_members(pgid: int, leader: int) -> list[int]:
    """Pids of the non-zombie processes in *pgid* other than *leader* (from /proc)."""
    try:
        entries = os.listdir("/proc")
    except OSError:
        return []
    found: list[int] = []
    for entry in entries:
        if not entry.isdigit() or int(entry) == leader:
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as f:
                stat = f.read()
        except OSError:
            continue
        # Fields after the parenthesised command name: state ppid pgrp ...
        rest = stat[stat.rfind(b")") + 2 :].split()
        if len(rest) >= 3 and rest[0] not in (b"Z", b"X") and int(rest[2]) == pgid:
            found.append(int(entry))
    return found


def group_alive(pgid: int, leader: int) -> bool:
    """Whether any non-zombie process other than the (exited) leader is in *pgid*."""
    if not os.path.isdir("/proc/self"):  # no /proc: ask the kernel (zombies count)
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True
    return bool(group_members(pgid, leader))


def killpg(pgid: int, sig: signal.Signals) -> None:
    """Signal a whole group; a group that is already gone is not an error."""
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        pass
