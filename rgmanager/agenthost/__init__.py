"""The persistent agent host: our own agents' code served by long-lived workers.

Starting a Python interpreter for every status check costs ~45 ms of CPU
(interpreter, ``site``, logging, the agent library) against ~0.01 ms for
the check itself.  The host keeps a few worker processes that import the
agent library once and run actions over a pipe, with the executor's
guarantees kept (timeouts kill the worker's process group, a crashing agent
only costs a worker).  :mod:`rgmanager.executor` decides what runs here.

Modules: :mod:`.procgroup` (process-group primitives), :mod:`.protocol`
(length-prefixed JSON frames), :mod:`.worker` (the worker's side),
:mod:`.pool` (the daemon's side).  This package must not import
:mod:`rgmanager.executor` (the executor depends on it, not the reverse).
"""
