"""Shared pieces for manager tests: a generic LSB script and config writing.

The LSB script is real (run by our real `script` agent through the real
executor); its state lives in files under HA_RSCTMP so tests can read what
happened and break it behind the manager's back.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
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


#: The test fence agent that records every call (a real process; tests/fence_agents).
FENCE_RECORD = Path(__file__).resolve().parent / "fence_agents" / "fence_record"


@dataclass(frozen=True)
class Fencing:
    """``<fence>`` configuration for :func:`cluster_conf`: every node gets one
    method ``power`` with the device ``rec`` (fence_record, logging to
    ``log``) and ``port`` = its node id, except the nodes in ``without``.
    ``device`` adds attributes to the ``<fencedevice>`` (``exit_code="1"``,
    ``sleep="2"``)."""

    log: Path
    device: str = ""
    without: tuple[str, ...] = ()

    def node(self, name: str, nodeid: int) -> str:
        if name in self.without:
            return ""
        return (f'<fence><method name="power"><device name="rec" port="{nodeid}"/>'
                "</method></fence>")

    def devices(self) -> str:
        return (f'  <fencedevices><fencedevice name="rec" agent="{FENCE_RECORD}" '
                f'logfile="{self.log}" {self.device}/></fencedevices>\n')


def cluster_conf(rm_body: str, nodes: int = 1, rm_attrs: str = 'status_poll_interval="1"',
                 fencing: Fencing | None = None, version: int = 1) -> str:
    def member(i: int) -> str:
        inner = fencing.node(f"node{i}", i) if fencing is not None else ""
        if not inner:
            return f'    <clusternode name="node{i}" nodeid="{i}"/>'
        return f'    <clusternode name="node{i}" nodeid="{i}">{inner}</clusternode>'

    members = "\n".join(member(i) for i in range(1, nodes + 1))
    devices = fencing.devices() if fencing is not None else ""
    return (f'<?xml version="1.0"?>\n<cluster name="t" config_version="{version}">\n'
            f"  <clusternodes>\n{members}\n  </clusternodes>\n{devices}"
            f"  <rm {rm_attrs}>\n{rm_body}\n  </rm>\n</cluster>\n")


@dataclass(frozen=True)
class FenceCall:
    """One recorded fence_record call: when (CLOCK_MONOTONIC) and what it read."""

    pid: int
    t: float
    args: dict[str, str]
    lines: tuple[str, ...]


def fence_calls(log: Path) -> list[FenceCall]:
    """The calls fence_record appended to ``log`` (header ``# pid=P t=T``, the
    stdin lines, a blank line), oldest first."""
    if not log.exists():
        return []
    calls: list[FenceCall] = []
    for block in log.read_text().split("\n\n"):
        rows = [r for r in block.splitlines() if r]
        if not rows or not rows[0].startswith("# pid="):
            continue
        head = dict(f.split("=", 1) for f in rows[0][2:].split())
        lines = tuple(rows[1:])
        calls.append(FenceCall(int(head["pid"]), float(head["t"]),
                               dict(line.split("=", 1) for line in lines if "=" in line),
                               lines))
    return calls


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
