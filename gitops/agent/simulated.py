"""Simulated nodes, as kwok and kubemark do it: N Nodes that look Ready, heartbeat their
Leases (kube-node-lease) and run the pods bound to them without any container (they go
Running at once, and Succeeded/removed as the control plane asks). For measuring the
control plane at a scale no test machine could run: the scheduler, the store, the API.

All the nodes live in one process and write through the registry (the one write path),
in transactions of `batch` objects, so 1,000 nodes cost a few writes a second.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import structlog

from gitops.errors import GitopsError
from gitops.model import ObjectKey
from gitops.model.times import rfc3339
from gitops.store.election import micro_time

log = structlog.get_logger(__name__)

LEASE_NAMESPACE = "kube-node-lease"
LABEL = "type"              # kwok's label, so simulated nodes are told apart
VALUE = "simulated"


@dataclass(frozen=True)
class NodeShape:
    cpu: str = "32"
    memory: str = "256Gi"
    pods: str = "110"


def node_object(name: str, shape: NodeShape, now: float, index: int) -> dict:
    capacity = {"cpu": shape.cpu, "memory": shape.memory, "pods": shape.pods}
    stamp = rfc3339(now)
    return {"apiVersion": "v1", "kind": "Node",
            "metadata": {"name": name, "labels": {LABEL: VALUE,
                                                  "kubernetes.io/hostname": name,
                                                  "kubernetes.io/os": "linux"},
                         "annotations": {"node.alpha.kubernetes.io/ttl": "0"}},
            "spec": {},
            "status": {"capacity": capacity, "allocatable": dict(capacity),
                       "conditions": [{"type": "Ready", "status": "True",
                                       "reason": "KubeletReady",
                                       "message": "simulated node posting ready status",
                                       "lastHeartbeatTime": stamp,
                                       "lastTransitionTime": stamp}],
                       "addresses": [{"type": "InternalIP",
                                      "address": f"10.{200 + index // 65536 % 50}."
                                                 f"{index // 256 % 256}.{index % 256}"},
                                     {"type": "Hostname", "address": name}],
                       "nodeInfo": {"kubeletVersion": "simulated",
                                    "operatingSystem": "linux", "architecture": "amd64"}}}


def running_status(pod: dict, node_ip: str, pod_ip: str, now: float) -> dict:
    stamp = rfc3339(now)
    containers = (pod.get("spec") or {}).get("containers") or []
    return {**(pod.get("status") or {}), "phase": "Running", "hostIP": node_ip,
            "podIP": pod_ip, "podIPs": [{"ip": pod_ip}], "startTime": stamp,
            "conditions": [{"type": t, "status": "True", "lastTransitionTime": stamp}
                           for t in ("PodScheduled", "Initialized", "ContainersReady",
                                     "Ready")],
            "containerStatuses": [{"name": c.get("name", ""), "ready": True,
                                   "restartCount": 0, "image": c.get("image", ""),
                                   "imageID": "", "started": True,
                                   "state": {"running": {"startedAt": stamp}}}
                                  for c in containers]}


class SimulatedNodes:
    def __init__(self, store, count: int, prefix: str = "sim-node-",
                 shape: NodeShape = NodeShape(), batch: int = 100,
                 clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self.names = [f"{prefix}{i:05d}" for i in range(count)]
        self._index = {n: i for i, n in enumerate(self.names)}
        self.shape = shape
        self.batch = batch
        self.clock = clock
        self._pod_ips = 0

    def register(self) -> None:
        """Every Node and its Lease (existing ones are kept: a restart re-registers)."""
        now = self.clock()
        for start in range(0, len(self.names), self.batch):
            with self.store.transaction():
                for name in self.names[start:start + self.batch]:
                    if self.store.get(ObjectKey("Node", "", name)) is None:
                        self.store.create(node_object(name, self.shape, now,
                                                      self._index[name]))
        self.heartbeat()

    def heartbeat(self) -> None:
        """Renew every node's Lease, as a kubelet does every 10 s."""
        now = self.clock()
        for start in range(0, len(self.names), self.batch):
            with self.store.transaction():
                for name in self.names[start:start + self.batch]:
                    self._renew(name, now)

    def _renew(self, name: str, now: float) -> None:
        key = ObjectKey("Lease", LEASE_NAMESPACE, name)
        lease = self.store.get(key)
        spec = {"holderIdentity": name, "leaseDurationSeconds": 40,
                "renewTime": micro_time(now)}
        if lease is None:
            self.store.create({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                               "metadata": {"name": name, "namespace": LEASE_NAMESPACE},
                               "spec": spec})
        else:
            self.store.update({**lease, "spec": {**lease.get("spec", {}), **spec}})

    def run_pods(self, pods: list[dict] | None = None) -> int:
        """Pods bound to these nodes and not yet Running go Running; returns how many."""
        now = self.clock()
        todo = [p for p in (pods if pods is not None else self.store.list("Pod"))
                if (p.get("spec") or {}).get("nodeName") in self._index
                and (p.get("status") or {}).get("phase") != "Running"
                and not (p.get("metadata") or {}).get("deletionTimestamp")]
        done = 0
        for start in range(0, len(todo), self.batch):
            try:
                with self.store.transaction():
                    for pod in todo[start:start + self.batch]:
                        node = pod["spec"]["nodeName"]
                        meta = pod["metadata"]
                        self.store.update_status(
                            ObjectKey("Pod", meta["namespace"], meta["name"]),
                            running_status(pod, self._node_ip(node), self._next_ip(), now))
                done += len(todo[start:start + self.batch])
            except GitopsError as exc:      # one batch lost a race: the next pass retries
                log.info("simulated_pods_batch_failed", error=str(exc))
        return done

    def _node_ip(self, name: str) -> str:
        i = self._index[name]
        return f"10.{200 + i // 65536 % 50}.{i // 256 % 256}.{i % 256}"

    def _next_ip(self) -> str:
        self._pod_ips += 1
        n = self._pod_ips
        return f"10.{100 + n // 65536 % 50}.{n // 256 % 256}.{n % 256}"

    def run(self, stopping: Callable[[], bool], interval: float = 1.0,
            heartbeat_every: float = 10.0) -> None:
        """Until stopping(): pods go Running as they are bound; Leases renewed."""
        self.register()
        last_beat = time.monotonic()
        while not stopping():
            try:
                self.run_pods()
                if time.monotonic() - last_beat >= heartbeat_every:
                    self.heartbeat()
                    last_beat = time.monotonic()
            except GitopsError as exc:
                log.warning("simulated_nodes_pass_failed", error=str(exc))
            time.sleep(interval)
