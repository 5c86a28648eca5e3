"""One call from a cluster.conf path to validated trees (config + agents + tree)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .agents.discovery import RuleSet
from .config.model import ClusterConfig
from .config.parser import load_config
from .errors import ConfigError, Report, Reporter
from .tree.build import build_forest
from .tree.model import Forest


@dataclass
class Loaded:
    config: ClusterConfig
    forest: Forest
    rules: RuleSet
    reports: list[Report]


def load(path: str | Path, rules: RuleSet, *, allow_fragment: bool = False) -> Loaded:
    """Parse, validate and build; raise ConfigError carrying every report.

    ``allow_fragment``: accept a ``<cluster>`` without name, config_version or
    clusternodes, with a warning (rg_test only; see ``config.load_config``).
    """
    config, reports = load_config(path, rules, allow_fragment=allow_fragment)
    r = Reporter()
    r.reports.extend(reports)
    forest = build_forest(config, rules, r)
    r.raise_if_errors()
    return Loaded(config, forest, rules, r.reports)


__all__ = ["ConfigError", "Loaded", "load"]
