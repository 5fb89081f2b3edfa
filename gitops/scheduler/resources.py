"""Resource arithmetic the scheduler needs: what a pod requests, what a node offers (pure).

Amounts are plain numbers: CPUs in millicores, memory and storage in bytes, pods as a
count, extended resources (e.g. example.com/gpu) as given.
"""

from __future__ import annotations

import functools
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field

from gitops.model import quantity
from gitops.model.nodes import taints
from gitops.model.pods import has_finished

CPU, MEMORY, PODS, STORAGE = "cpu", "memory", "pods", "ephemeral-storage"
# What scoring assumes for a container that requests nothing (Kubernetes' non-zero
# defaults: 100 millicores, 200 MiB), so empty pods do not all pile onto one node.
DEFAULT_MILLI_CPU, DEFAULT_MEMORY = 100, 200 * 2**20

Resources = dict[str, int]


def amount(name: str, value: object) -> int:
    if isinstance(value, (str, int, float)):
        return _amount(name, value)
    return 0


@functools.lru_cache(maxsize=4096)      # the same few quantities, parsed for every node
def _amount(name: str, value: str | int | float) -> int:
    try:
        parsed = quantity.parse(value)
    except (ValueError, TypeError):
        return 0
    return int(parsed * 1000) if name == CPU else int(parsed)


def _container_requests(container: dict) -> Resources:
    """Requests, defaulted from limits as the API server does when only limits are set."""
    res = container.get("resources") or {}
    merged = {**(res.get("limits") or {}), **(res.get("requests") or {})}
    return {name: amount(name, value) for name, value in merged.items()}


def _add(a: Resources, b: Resources) -> Resources:
    return {k: a.get(k, 0) + b.get(k, 0) for k in a.keys() | b.keys()}


def _max(a: Resources, b: Resources) -> Resources:
    return {k: max(a.get(k, 0), b.get(k, 0)) for k in a.keys() | b.keys()}


def pod_requests(pod: dict, non_zero: bool = False) -> Resources:
    """resource.PodRequests: containers summed, each init container alone (a sidecar,
    restartPolicy Always, adds to everything after it), the larger wins; plus overhead.
    non_zero: containers without a CPU or memory request count the scoring defaults."""
    spec = pod.get("spec") or {}
    total: Resources = {}
    for c in spec.get("containers") or []:
        req = _container_requests(c)
        if non_zero:
            req[CPU] = req.get(CPU) or DEFAULT_MILLI_CPU
            req[MEMORY] = req.get(MEMORY) or DEFAULT_MEMORY
        total = _add(total, req)
    sidecars: Resources = {}
    init_peak: Resources = {}
    for c in spec.get("initContainers") or []:
        req = _container_requests(c)
        if c.get("restartPolicy") == "Always":
            sidecars = _add(sidecars, req)
            init_peak = _max(init_peak, sidecars)
        else:
            init_peak = _max(init_peak, _add(req, sidecars))
    total = _max(_add(total, sidecars), init_peak)
    for name, value in (spec.get("overhead") or {}).items():
        total[name] = total.get(name, 0) + amount(name, value)
    return {k: v for k, v in total.items() if v}


def allocatable(node: dict) -> Resources:
    status = node.get("status") or {}
    offered = status.get("allocatable") or status.get("capacity") or {}
    return {name: amount(name, value) for name, value in offered.items()}


def requested(pods: Iterable[dict], non_zero: bool = False) -> Resources:
    total: Resources = {}
    for pod in pods:
        total = _add(total, pod_requests(pod, non_zero))
    return total


def counts_on_node(pod: dict) -> bool:
    """A pod holds its node's resources until it is finished (terminating ones too)."""
    return not has_finished(pod)


def owner_uid(pod: dict) -> str:
    for ref in (pod.get("metadata") or {}).get("ownerReferences") or []:
        if ref.get("controller"):
            return ref.get("uid", "")
    return ""


def host_ports(pod: dict) -> set[tuple[str, str, int]]:
    out = set()
    for c in (pod.get("spec") or {}).get("containers") or []:
        for p in c.get("ports") or []:
            if p.get("hostPort"):
                out.add((p.get("hostIP") or "0.0.0.0", p.get("protocol") or "TCP",
                         int(p["hostPort"])))
    return out


@dataclass
class NodeInfo:
    """A node with what is placed on it, summed once and kept up to date as pods come and
    go (the scheduler cache's NodeInfo). A pass that places pods works on copies."""
    node: dict
    pods: int = 0
    requested: Resources = field(default_factory=dict)
    non_zero: Resources = field(default_factory=dict)      # with the scoring defaults
    ports: Counter = field(default_factory=Counter)        # (ip, protocol, port) -> pods
    owners: Counter = field(default_factory=Counter)       # controller uid -> pods here

    @functools.cached_property
    def name(self) -> str:
        return self.node["metadata"]["name"]

    @functools.cached_property
    def taints(self) -> list[dict]:
        """The node's taints (with not-ready's), read once per node version, not per pod."""
        return taints(self.node)

    @functools.cached_property
    def allocatable(self) -> Resources:
        return allocatable(self.node)

    def add(self, pod: dict) -> None:
        self._count(pod, 1)

    def remove(self, pod: dict) -> None:
        """Undo add(pod) (the same pod as added)."""
        self._count(pod, -1)

    def _count(self, pod: dict, sign: int) -> None:
        self.pods += sign
        self.requested = _plus(self.requested, pod_requests(pod), sign)
        self.non_zero = _plus(self.non_zero, pod_requests(pod, non_zero=True), sign)
        for port in host_ports(pod):
            self.ports[port] += sign
            if self.ports[port] <= 0:
                del self.ports[port]
        if uid := owner_uid(pod):
            self.owners[uid] += sign
            if self.owners[uid] <= 0:
                del self.owners[uid]

    def copy(self, node: dict | None = None) -> NodeInfo:
        """The same sums, on their own (and on a newer version of the node if given)."""
        info = NodeInfo(self.node if node is None else node, self.pods, dict(self.requested),
                        dict(self.non_zero), Counter(self.ports), Counter(self.owners))
        if node is None:            # the node's derived facts stay valid
            for cached in ("name", "taints", "allocatable"):
                if cached in self.__dict__:
                    info.__dict__[cached] = self.__dict__[cached]
        return info

    @classmethod
    def build(cls, node: dict, pods: Iterable[dict] = ()) -> NodeInfo:
        info = cls(node)
        for pod in pods:
            info.add(pod)
        return info


def _plus(a: Resources, b: Resources, sign: int) -> Resources:
    out = dict(a)
    for k, v in b.items():
        out[k] = out.get(k, 0) + sign * v
    return out
