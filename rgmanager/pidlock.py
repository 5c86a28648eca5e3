"""One rgmanager per node: an exclusive ``flock`` on a pid file.

Two daemons on one node would each believe they own the local services (the
second one's "clean slate" stop at startup would stop the first one's), so the
daemon takes this lock before it touches anything and refuses to start when
another process holds it.

The lock is the kernel's: it disappears with the process that held it (even
after ``kill -9``), so a stale pid file never blocks a restart. The file's
content (the holder's pid) is only informational.
"""

from __future__ import annotations

import errno
import fcntl
import logging
import os

log = logging.getLogger(__name__)

DEFAULT_LOCK = "/var/run/cluster/rgmanager.pid"
#: Environment variable that overrides :data:`DEFAULT_LOCK` (tests, unprivileged runs).
LOCK_ENV = "RGMANAGER_LOCK"


def lock_path() -> str:
    """Where the lock lives: ``$RGMANAGER_LOCK`` or :data:`DEFAULT_LOCK`."""
    return os.environ.get(LOCK_ENV) or DEFAULT_LOCK


class AlreadyRunning(Exception):
    """Another process holds the lock; ``pid`` is its pid when the file says so."""

    def __init__(self, path: str, pid: int | None) -> None:
        self.path = path
        self.pid = pid
        held = f" (pid {pid})" if pid else ""
        super().__init__(f'Process "rgmanager" already running{held}')


class PidLock:
    """An exclusive, non-blocking ``flock`` on ``path``, holding this process's pid."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self) -> None:
        """Take the lock or raise :class:`AlreadyRunning` (``OSError`` if the file can't be made).

        The descriptor is not inherited by children (Python's default), so an
        agent's long-lived process never keeps the lock after the daemon died.
        """
        if self._fd is not None:
            return
        parent = os.path.dirname(self.path)
        if parent:
            os.makedirs(parent, mode=0o755, exist_ok=True)
        for _ in range(10):
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as err:
                os.close(fd)
                if err.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                    raise AlreadyRunning(self.path, _read_pid(self.path)) from None
                raise
            # The previous holder may have unlinked the file between our open()
            # and flock(): then we locked an orphan inode; start over.
            try:
                same = os.stat(self.path).st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:
                same = False
            if not same:
                os.close(fd)
                continue
            os.ftruncate(fd, 0)
            os.write(fd, f"{os.getpid()}\n".encode())
            self._fd = fd
            log.debug("lock %s taken (pid %d)", self.path, os.getpid())
            return
        raise OSError(errno.EAGAIN, "lock file keeps changing under us", self.path)

    def release(self) -> None:
        """Remove the file (while still holding the lock) and drop the lock."""
        fd, self._fd = self._fd, None
        if fd is None:
            return
        try:
            os.unlink(self.path)
        except OSError:
            pass
        os.close(fd)

    def __enter__(self) -> PidLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def _read_pid(path: str) -> int | None:
    try:
        with open(path) as f:
            return int(f.read(32).strip() or 0) or None
    except (OSError, ValueError):
        return None
