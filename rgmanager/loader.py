"""One call from a cluster.conf path to validated trees (config + agents + tree)."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from .agents.discovery import RuleSet
from .config.model import ClusterConfig
from .config.parser import load_config
from .errors import ConfigError, Report, Reporter
from .tree.build import build_forest
from .tree.model import Forest

if TYPE_CHECKING:
    from .planner.model import PlanModel


@dataclass
class Loaded:
    config: ClusterConfig
    forest: Forest
    rules: RuleSet
    reports: list[Report]

    def plan_model(self, *, fencing: bool) -> PlanModel:
        """The planner's model of this configuration. ``fencing`` is asked
        for by name: whether lost members are fenced before recovery is the
        caller's decision (see :class:`rgmanager.planner.model.PlanModel`)."""
        from .planner.model import PlanModel

        return PlanModel.build(self.config, self.forest, fencing=fencing)


@contextmanager
def cyclic_gc_paused() -> Iterator[None]:
    """Hold Python's cyclic garbage collector while a configuration is loaded.

    A load allocates a few million objects that all live on (the model, the
    trees) and hardly any garbage cycles. Each time allocations pass the
    collector's thresholds it walks the young objects, and every tenth or so
    of those passes a full one walks everything allocated so far: the cost
    grows with the square of the configuration (50,000 resources: 5 full
    passes, a third of the time). Reference counting still frees everything
    that is not a cycle; the collector resumes (if it was running) at the end.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def load(path: str | Path, rules: RuleSet, *, allow_fragment: bool = False) -> Loaded:
    """Parse, validate and build; raise ConfigError carrying every report.

    ``allow_fragment``: accept a ``<cluster>`` without name, config_version or
    clusternodes, with a warning (rg_test only; see ``config.load_config``).
    """
    with cyclic_gc_paused():
        config, reports = load_config(path, rules, allow_fragment=allow_fragment)
        r = Reporter()
        r.reports.extend(reports)
        forest = build_forest(config, rules, r)
    r.raise_if_errors()
    return Loaded(config, forest, rules, r.reports)


__all__ = ["ConfigError", "Loaded", "load"]
