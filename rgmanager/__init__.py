"""rgmanager-py: rgmanager's resource-tree model on a modern corosync stack."""

__version__ = "0.1.0"
