"""Shared pieces for manager tests: a generic LSB script and config writing.

The LSB script is real (run by our real `script` agent through the real
executor); its state lives in files under HA_RSCTMP so tests can read what
happened and break it behind the manager's back.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

LSB = """#!/bin/sh
d="$HA_RSCTMP"; n="$OCF_RESKEY_name"
[ "$1" = status ] || echo "$1 $n" >> "$d/order.log"
case "$1" in
start) echo start >> "$d/$n.log"; [ -e "$d/$n.failstart" ] && exit 1; touch "$d/$n.on" ;;
stop) echo stop >> "$d/$n.log"; [ -e "$d/$n.failstop" ] && exit 1; rm -f "$d/$n.on" ;;
status) [ -e "$d/$n.on" ] && exit 0; exit 3 ;;
esac
exit 0
"""


def write_lsb(directory: Path) -> Path:
    path = directory / "lsb-test"
    path.write_text(LSB)
    path.chmod(0o755)
    return path


def script(name: str, lsb: Path, extra: str = "", interval: int = 1) -> str:
    """A script resource; each gets its own link to the LSB script (file is unique)."""
    link = lsb.parent / f"lsb-{name}"
    if not link.exists():
        link.symlink_to(lsb)
    return (f'<script name="{name}" file="{link}" {extra}>'
            f'<action name="status" depth="*" interval="{interval}"/></script>')


def cluster_conf(rm_body: str, nodes: int = 1, rm_attrs: str = 'status_poll_interval="1"'
                 ) -> str:
    members = "\n".join(f'    <clusternode name="node{i}" nodeid="{i}"/>'
                        for i in range(1, nodes + 1))
    return (f'<?xml version="1.0"?>\n<cluster name="t" config_version="1">\n'
            f"  <clusternodes>\n{members}\n  </clusternodes>\n"
            f"  <rm {rm_attrs}>\n{rm_body}\n  </rm>\n</cluster>\n")


def wait_for(pred: Callable[[], bool], timeout: float = 20.0, interval: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(interval)
    return pred()


def starts(state_dir: Path, name: str) -> int:
    log = state_dir / f"{name}.log"
    return log.read_text().split().count("start") if log.exists() else 0
