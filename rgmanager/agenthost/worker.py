"""The worker's side of the agent host: import agents once, run one action at a time.

Each request names an agent module and its entry point (``main``), the argv
and the complete environment the agent would get as a process, and carries
the write end of the call's output pipe.  For the length of the call the
worker makes itself look like that process: ``os.environ`` is replaced by the
request's environment (and restored after: nothing leaks into the next call),
``sys.argv`` is the agent's argv, descriptors 1 and 2 are the output pipe, the
working directory is ``/``.  Between calls 1 and 2 point at /dev/null, so
nothing but the agent itself ever writes into a call's output.

The agent's exit code is what a process would have exited with: ``main()``'s
return value or ``SystemExit``'s code; an exception that escapes is printed
(as Python would) and counts as 1.  Anything that kills the worker (``os._exit``,
a segfault) is seen by the daemon as a crash.
"""

from __future__ import annotations

import importlib
import os
import socket
import sys
import traceback
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from . import protocol
from .procgroup import group_members


def exit_code(code: object) -> int:
    """The status a process exiting with ``sys.exit(code)`` would have."""
    if code is None:
        return 0
    if isinstance(code, bool):
        return int(code)
    if isinstance(code, int):
        return code & 0xFF
    print(code, file=sys.stderr)
    return 1


class Worker:
    """Serves requests from one socket until EOF (or until it must retire)."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.null = os.open(os.devnull, os.O_RDWR | os.O_CLOEXEC)
        self.rest_env = dict(os.environ)
        self.rest_argv = list(sys.argv)
        os.chdir("/")

    def serve(self) -> None:
        while True:
            got = protocol.recv(self.sock)
            if got is None:
                return
            message, fds = got
            reply = self.call(message, fds)
            protocol.send(self.sock, reply)
            if reply.get("retire"):
                return

    def call(self, message: Mapping[str, Any], fds: Sequence[int]) -> dict[str, Any]:
        out_fd, *extra = fds or [os.dup(self.null)]
        for fd in extra:
            os.close(fd)
        rc = self.run_agent(str(message["module"]), str(message.get("entry", "main")),
                            list(message["argv"]), dict(message["env"]), out_fd,
                            bool(message.get("merge_stderr", True)))
        # Processes an action left in our group (an init script's daemon) would
        # die with us on a later timeout: a worker that has any retires, and
        # leaves them, like an agent process, in a group whose leader is gone.
        retire = bool(message.get("check_leftovers")) and bool(
            group_members(os.getpgrp(), os.getpid()))
        return {"rc": rc, "retire": retire}

    def run_agent(self, module: str, entry: str, argv: list[str], env: dict[str, str],
                  out_fd: int, merge_stderr: bool) -> int:
        self._flush()
        os.dup2(out_fd, 1)
        os.dup2(out_fd if merge_stderr else self.null, 2)
        os.close(out_fd)
        os.environ.clear()
        os.environ.update(env)
        sys.argv = argv
        try:
            func: Callable[[], object] = getattr(importlib.import_module(module), entry)
            return exit_code(func())
        except SystemExit as exc:
            return exit_code(exc.code)
        except BaseException:  # what an uncaught exception does to a process
            traceback.print_exc()
            return 1
        finally:
            self._flush()
            os.dup2(self.null, 1)
            os.dup2(self.null, 2)
            os.environ.clear()
            os.environ.update(self.rest_env)
            sys.argv = list(self.rest_argv)
            os.chdir("/")

    @staticmethod
    def _flush() -> None:
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except (OSError, ValueError):
                pass


def main(argv: Sequence[str] | None = None) -> None:
    """``python -m rgmanager.agenthost FD``: serve the socket inherited as *FD*."""
    args = list(sys.argv[1:] if argv is None else argv)
    fd = int(args[0])
    os.set_inheritable(fd, False)  # never passed on to what the agents start
    Worker(socket.socket(fileno=fd)).serve()
