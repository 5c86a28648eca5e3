#!/usr/bin/env python3
"""Fence agent of the chaos runs: the lab's power switch, with a record.

It hands its ``key=value`` input unchanged to ``tests/fence_agents/fence_netns``
(which SIGKILLs every process of a namespace node) and, for ``off``/``reboot``,
appends ``fence NODE T_END T_START RC`` to ``logfile=`` (CLOCK_REALTIME, like
the event log). T_END is taken after every process of the node is gone, so
a run on the fenced node provably ended by then.

The chaos lab binds the host's ``/run/netns`` into every node
(``CorosyncLab(show_netns=True)``), so fence_netns finds the target node
from inside the coordinator's namespaces. Standard library only: the
executor runs agents with a clean environment.
"""

import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
FENCE_NETNS = os.path.join(os.path.dirname(HERE), "tests", "fence_agents", "fence_netns")


def main() -> int:
    raw = sys.stdin.read()
    args = {}
    for line in raw.splitlines():
        key, sep, value = line.strip().partition("=")
        if sep and not key.startswith("#"):
            args[key.strip()] = value
    action = (args.get("action") or args.get("option") or "reboot").lower()
    started = time.time()
    r = subprocess.run([sys.executable, FENCE_NETNS],
                       input=raw, text=True, capture_output=True, check=False)
    ended = time.time()
    sys.stdout.write(r.stdout)
    sys.stderr.write(r.stderr)
    logfile = args.get("logfile")
    if logfile and action in ("off", "reboot"):
        node = args.get("nodename") or args.get("port") or "?"
        fd = os.open(logfile, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, f"fence {node} {ended:.9f} {started:.9f} {r.returncode}\n".encode())
        finally:
            os.close(fd)
    return r.returncode


if __name__ == "__main__":
    sys.exit(main())
