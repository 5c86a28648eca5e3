"""Shared CLI plumbing: printing config reports the same way in every tool."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable
from typing import Any

from ..errors import Report


def print_reports(reports: Iterable[Report], as_json: bool = False) -> None:
    reports = list(reports)
    if as_json:
        json.dump({"reports": [r.as_dict() for r in reports]}, sys.stdout, indent=2)
        sys.stdout.write("\n")
        return
    for r in reports:
        print(str(r), file=sys.stderr)


def dump_json(data: Any) -> None:
    json.dump(data, sys.stdout, indent=2, sort_keys=False)
    sys.stdout.write("\n")
