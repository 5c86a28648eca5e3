"""Resource agents: discovery, cached meta-data and the rules built from it."""

from .discovery import AgentLoadError, RuleSet, default_agent_dirs, load_rules
from .rules import (
    ActionRule,
    ChildRule,
    ParamRule,
    ResourceRule,
    expand_time,
    parse_metadata,
)

__all__ = [
    "ActionRule",
    "AgentLoadError",
    "ChildRule",
    "ParamRule",
    "ResourceRule",
    "RuleSet",
    "default_agent_dirs",
    "expand_time",
    "load_rules",
    "parse_metadata",
]
