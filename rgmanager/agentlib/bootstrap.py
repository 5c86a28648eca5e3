"""Make ``rgmanager`` importable for an agent started by any OCF manager."""

from __future__ import annotations

import os
import sys


def ensure_importable(agent_file: str) -> None:
    """Agents live in ``resource-agents/`` next to the package; a manager such
    as ``ocf-tester`` may start them with a Python that has not installed it."""
    root = os.path.dirname(os.path.dirname(os.path.realpath(agent_file)))
    if os.path.isdir(os.path.join(root, "rgmanager")) and root not in sys.path:
        sys.path.insert(0, root)
