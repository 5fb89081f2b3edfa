"""The scheduler's cache: node infos kept current from the informer's events, instead of
adding up every bound pod on every pass (kube-scheduler's cache and its snapshot).

Each Node and each pod that holds its node's resources (bound, not finished) is folded
into its node's NodeInfo as its event arrives; a pod's old version is taken out before
its new one goes in, so the sums are always those of the pods as they are. A NodeInfo is
never changed once a snapshot may hold it (a change replaces it with a changed copy), so
a pass reads a consistent picture while events keep coming, and the pass itself counts
its bindings against copies of its own.
"""

from __future__ import annotations

import bisect
import threading

from gitops.model import ObjectKey, key_of
from gitops.scheduler.interpod import depends_on_others
from gitops.scheduler.resources import NodeInfo, counts_on_node


class ClusterCache:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._nodes: dict[str, dict] = {}
        self._names: list[str] = []                          # node names, sorted
        self._infos: dict[str, NodeInfo] = {}                # also for nodes not seen yet
        self._placed: dict[ObjectKey, tuple[str, dict]] = {}  # pod -> (node name, pod)
        self._depending = 0          # placed pods with pod (anti-)affinity or hard spread

    # -- events ------------------------------------------------------------------------
    def node_changed(self, old: dict | None, new: dict | None) -> None:
        name = (new or old or {}).get("metadata", {}).get("name", "")
        with self._lock:
            info = self._infos.get(name) or NodeInfo({"metadata": {"name": name}})
            if new is None:
                self._nodes.pop(name, None)
                at = bisect.bisect_left(self._names, name)
                if at < len(self._names) and self._names[at] == name:
                    del self._names[at]
                if info.pods:
                    self._infos[name] = info.copy({"metadata": {"name": name}})
                else:
                    self._infos.pop(name, None)
                return
            if name not in self._nodes:
                bisect.insort(self._names, name)
            self._nodes[name] = new
            self._infos[name] = info.copy(new)

    def pod_changed(self, old: dict | None, new: dict | None) -> None:
        key = key_of(new or old)
        with self._lock:
            before = self._placed.pop(key, None)
            if before is not None:
                self._move(before[0], before[1], -1)
            node = ((new or {}).get("spec") or {}).get("nodeName")
            if new is not None and node and counts_on_node(new):
                self._placed[key] = (node, new)
                self._move(node, new, 1)

    def _move(self, node: str, pod: dict, sign: int) -> None:
        info = self._infos.get(node) or NodeInfo({"metadata": {"name": node}})
        info = self._infos[node] = info.copy()
        if sign > 0:
            info.add(pod)
        else:
            info.remove(pod)
        if depends_on_others(pod):
            self._depending += sign
        if not info.pods and node not in self._nodes:
            del self._infos[node]

    # -- reading -----------------------------------------------------------------------
    def snapshot(self, with_placed: bool = False
                 ) -> tuple[list[dict], dict[str, NodeInfo], list[tuple[dict, dict]]]:
        """(the nodes, their infos by name in name order, and with_placed: (pod, its node)
        for every pod holding a known node's resources), all as of one instant."""
        with self._lock:
            placed = [(pod, self._nodes[node]) for node, pod in self._placed.values()
                      if node in self._nodes] if with_placed else []
            return ([self._nodes[n] for n in self._names],
                    {n: self._infos[n] for n in self._names}, placed)

    @property
    def has_dependent_pods(self) -> bool:
        """Some placed pod's affinity or spread makes the others' places matter."""
        return self._depending > 0
