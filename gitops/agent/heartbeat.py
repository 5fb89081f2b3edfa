"""A node's heartbeat: its Lease in kube-node-lease renewed every few seconds, as the
kubelet does, and its Ready condition put back to True when the node lifecycle controller
had marked it Unknown while the node was silent."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime

from gitops.agent.status import node_ready_condition
from gitops.model import ObjectKey
from gitops.model.times import rfc3339
from gitops.store.base import Conflict, NotFound, Store

LEASE_NAMESPACE = "kube-node-lease"
RENEW_EVERY = 10.0      # the kubelet renews at a quarter of the 40 s lease


def micro_time(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class Heartbeat:
    def __init__(self, store: Store, node_name: str, runtime_ok: Callable[[], bool],
                 clock: Callable[[], float] = time.time, every: float = RENEW_EVERY) -> None:
        self.store = store
        self.node_name = node_name
        self.runtime_ok = runtime_ok
        self.clock = clock
        self.every = every

    def beat(self) -> float:
        """One renewal; returns the seconds until the next."""
        now = self.clock()
        key = ObjectKey("Lease", LEASE_NAMESPACE, self.node_name)
        spec = {"holderIdentity": self.node_name, "leaseDurationSeconds": 40,
                "renewTime": micro_time(now)}
        lease = self.store.get(key)
        try:
            if lease is None:
                self.store.create({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                                   "metadata": {"name": self.node_name,
                                                "namespace": LEASE_NAMESPACE},
                                   "spec": spec})
            else:
                self.store.update({**lease, "spec": {**(lease.get("spec") or {}), **spec}})
        except (Conflict, NotFound):
            return 1.0          # raced with someone (a restart): again soon
        self._ready_again(now)
        return self.every

    def _ready_again(self, now: float) -> None:
        key = ObjectKey("Node", "", self.node_name)
        node = self.store.get(key)
        if node is None or not self.runtime_ok():
            return
        status = node.get("status") or {}
        conds = status.get("conditions") or []
        ready = next((c for c in conds if c.get("type") == "Ready"), None)
        if ready is not None and ready.get("status") == "True":
            return
        others = [c for c in conds if c.get("type") != "Ready"]
        condition = node_ready_condition(True, "the agent is posting ready status",
                                         rfc3339(now))
        self.store.update_status(key, {**status, "conditions": [condition, *others]})
