"""Start one of our agents as an OCF executable (the launchers' Python half).

Every file in ``resource-agents/`` is the same three-line ``/bin/sh``
launcher that names its agent and sources ``agentlib/launch.sh``; that picks
the interpreter and runs :func:`main` with the checkout's root already first
on ``sys.path`` (so any Python, from any working directory, imports this
checkout's code).  :func:`main` makes the agent look like the program that
was started (``sys.argv[0]`` is the launcher) and exits with its code.

This is the only ``sys.exit`` of the agent library: the agent host calls the
agents' ``main()`` in-process and never comes through here.
"""

from __future__ import annotations

import importlib
import sys


def main(argv: list[str] | None = None) -> None:
    """``main(["NAME", "LAUNCHER", "ACTION", ...])``: run agent NAME, exit with its code."""
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) < 2 or not args[0].isidentifier():
        sys.exit(f"usage: {sys.argv[0]} AGENT LAUNCHER [ACTION]")
    name, launcher, rest = args[0], args[1], args[2:]
    sys.argv = [launcher, *rest]
    module = importlib.import_module(f"rgmanager.agentlib.{name}")
    sys.exit(module.main())
