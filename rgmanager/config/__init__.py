"""cluster.conf: parse, validate and model (no processes, no network)."""

from .model import (
    ActionOverride,
    ClusterConfig,
    ClusterNode,
    DomainNode,
    FailoverDomain,
    FenceDevice,
    FenceDeviceRef,
    FenceMethod,
    ResourceDecl,
    RMConfig,
)
from .parser import load_config, parse_bool

__all__ = [
    "ActionOverride",
    "ClusterConfig",
    "ClusterNode",
    "DomainNode",
    "FailoverDomain",
    "FenceDevice",
    "FenceDeviceRef",
    "FenceMethod",
    "RMConfig",
    "ResourceDecl",
    "load_config",
    "parse_bool",
]
