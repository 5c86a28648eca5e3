"""Resource trees: build them from config + rules, order them, diff them."""

from .build import build_forest
from .model import Forest, Node, Resource
from .order import child_start_order, child_stop_order, start_order, status_order, stop_order

__all__ = [
    "Forest",
    "Node",
    "Resource",
    "build_forest",
    "child_start_order",
    "child_stop_order",
    "start_order",
    "status_order",
    "stop_order",
]
