"""Start an agent of ``resource-agents/``: make ``rgmanager`` importable, run its ``main``.

The files in ``resource-agents/`` are tiny ``/bin/sh`` launchers that run
``$RGMANAGER_PYTHON`` (the project's interpreter, which rgmanager-py's
executor puts in every agent's environment) or else ``python3`` from ``PATH``
(``ocf-tester``, Pacemaker), and call :func:`launch`.  The executor's ``PATH``
lists the system directories first, so a bare ``python3`` would be the
system's, possibly without the project's packages (``pyroute2`` for ``ip``).
"""

from __future__ import annotations

import importlib
import os
import sys


def ensure_importable(agent_file: str) -> None:
    """Agents live in ``resource-agents/`` next to the package; a manager such
    as ``ocf-tester`` may start them with a Python that has not installed it."""
    root = os.path.dirname(os.path.dirname(os.path.realpath(agent_file)))
    if os.path.isdir(os.path.join(root, "rgmanager")) and root not in sys.path:
        sys.path.insert(0, root)


def launch(agent_file: str, name: str) -> None:
    """Run agent ``name`` as if ``agent_file`` were the program (``sys.argv[0]``)."""
    ensure_importable(agent_file)
    sys.argv = [agent_file, *sys.argv[2:]]
    module = importlib.import_module(f"rgmanager.agentlib.{name}")
    sys.exit(module.main())
