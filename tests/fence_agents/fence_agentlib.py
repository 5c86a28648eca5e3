"""What the test fence agents share: the fence-agent calling convention.

Options arrive as ``key=value`` lines on stdin (``#`` lines and blank lines
ignored, the last value of a key wins), or on the command line as
``-o ACTION`` / ``--action=ACTION`` / ``--key=value`` for a person trying an
agent by hand.  Standard library only: the agents run under the system
``python3`` of the executor's PATH.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable

ACTIONS = ("on", "off", "reboot", "status", "monitor", "list", "metadata")


def parse_lines(lines: Iterable[str]) -> dict[str, str]:
    args: dict[str, str] = {}
    for line in lines:
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        key, _, value = line.partition("=")
        args[key.strip()] = value
    return args


def parse_argv(argv: list[str]) -> dict[str, str]:
    args: dict[str, str] = {}
    it = iter(argv)
    for word in it:
        if word == "-o":
            args["action"] = next(it, "")
        elif word.startswith("--") and "=" in word:
            key, _, value = word[2:].partition("=")
            args[key.replace("-", "_")] = value
    return args


def read_options() -> tuple[dict[str, str], list[str]]:
    """(options, the raw stdin lines); stdin is read only when no argv is given."""
    if len(sys.argv) > 1:
        return parse_argv(sys.argv[1:]), []
    raw = sys.stdin.read().splitlines()
    return parse_lines(raw), raw


def action_of(args: dict[str, str]) -> str:
    return (args.get("action") or args.get("option") or "reboot").lower()


def metadata(name: str, shortdesc: str, params: Iterable[tuple[str, str]]) -> str:
    """fence-agents style meta-data: enough for a person or a tool to list options."""
    lines = ['<?xml version="1.0" ?>', f'<resource-agent name="{name}" shortdesc="{shortdesc}">',
             f"<longdesc>{shortdesc}</longdesc>", "<parameters>"]
    for pname, desc in [("action", "Fencing action (default reboot)"), *params]:
        lines += [f'\t<parameter name="{pname}" unique="0" required="0">',
                  '\t\t<content type="string" />',
                  f'\t\t<shortdesc lang="en">{desc}</shortdesc>', "\t</parameter>"]
    lines += ["</parameters>", "<actions>"]
    lines += [f'\t<action name="{a}" />' for a in ACTIONS]
    lines += ["</actions>", "</resource-agent>"]
    return "\n".join(lines)
