"""The embedded single-node backend: a group of one, always quorate.

Broadcasts go through a queue and a delivery thread, exactly as a real
group would deliver them back, so the manager code path is the same.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Mapping
from typing import Any

from .base import Cluster, DeliverFn, Delivery, Membership, MembershipChange, Message

log = logging.getLogger(__name__)
_STOP = object()


class LocalCluster(Cluster):
    def __init__(self, local_node: str) -> None:
        super().__init__(local_node)
        self._queue: queue.Queue[object] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._membership = Membership((local_node,), True, 1)

    def start(self, deliver: DeliverFn) -> None:
        self._queue.put(MembershipChange(self._membership, joined=(self.local_node,)))
        self._thread = threading.Thread(target=self._run, args=(deliver,),
                                        name="local-delivery", daemon=True)
        self._thread.start()

    def _run(self, deliver: DeliverFn) -> None:
        while True:
            item = self._queue.get()
            if item is _STOP:
                return
            try:
                deliver(item)  # type: ignore[arg-type]
            except Exception:  # the delivery loop must never die
                log.exception("delivery handler failed")

    def broadcast(self, payload: Mapping[str, Any]) -> None:
        self._queue.put(Message(self.local_node, dict(payload)))

    def membership(self) -> Membership:
        return self._membership

    def stop(self) -> None:
        if self._thread is not None:
            self._queue.put(_STOP)
            if threading.current_thread() is not self._thread:
                self._thread.join(timeout=10)
            self._thread = None


__all__ = ["Delivery", "LocalCluster"]
