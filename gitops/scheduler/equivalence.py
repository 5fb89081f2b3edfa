"""The equivalence cache (as kube-scheduler's once was): what a node's own facts say of a
pod, shared by every pod of one template.

NodeUnschedulable, TaintToleration and NodeAffinity read only the node and the parts of
the pod's spec named in `class_key` (tolerations, nodeSelector, node affinity); so do the
TaintToleration and NodeAffinity scores. Pods whose keys are equal (the replicas of one
template) get the same answer from a node, worked out once per node version. The answers
that depend on the pods already placed (resources, host ports, pod affinity, spread) are
never cached: they are worked out per pod from the node infos.

An entry is tied to the node object it was worked out from: a node's new version (the
informer replaces the object) finds no entry and works its answers out again, so a pass
never reads an answer about an older node even when a change races with it. `forget`
drops a changed or deleted node's entries at once (memory).
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass

from gitops.model.nodes import (
    UNSCHEDULABLE_TAINT,
    matches_affinity,
    tolerates,
    tolerations_of,
    untolerated,
)
from gitops.scheduler.resources import NodeInfo
from gitops.scheduler.scoring import prefer_no_schedule, preferred_affinity

MAX_CLASSES = 512        # per node: beyond it the node's entries start again (bounded memory)


@dataclass(frozen=True)
class Verdict:
    """A node's answer to a pod class: why the pod cannot go there (first failing plugin,
    [] : it may), and the raw TaintToleration and NodeAffinity scores."""
    reasons: tuple[str, ...]
    prefer_no_schedule: int
    preferred_affinity: int


def class_key(pod: dict) -> str:
    """The parts of a pod's spec the cached filters and scores read."""
    spec = pod.get("spec") or {}
    node_affinity = (spec.get("affinity") or {}).get("nodeAffinity")
    return json.dumps([spec.get("tolerations"), spec.get("nodeSelector"), node_affinity],
                      sort_keys=True, separators=(",", ":"))


def judge(pod: dict, info: NodeInfo) -> Verdict:
    """Worked out afresh: the node-only filters in the order the scheduler runs them."""
    return Verdict(tuple(static_reasons(pod, info)),
                   prefer_no_schedule(pod, info.node, info.taints),
                   preferred_affinity(pod, info.node))


def static_reasons(pod: dict, info: NodeInfo) -> list[str]:
    """NodeUnschedulable, TaintToleration, NodeAffinity: the first that fails decides."""
    node = info.node
    if (node.get("spec") or {}).get("unschedulable") and not any(
            tolerates(t, {"key": UNSCHEDULABLE_TAINT, "effect": "NoSchedule"})
            for t in tolerations_of(pod)):
        return ["node(s) were unschedulable"]
    if bad := untolerated(pod, node, node_taints=info.taints):
        return [f"node(s) had untolerated taint {{{bad[0].get('key', '')}: "
                f"{bad[0].get('value', '')}}}"]
    if not matches_affinity(pod, node):
        return ["node(s) didn't match Pod's node affinity/selector"]
    return []


class EquivalenceCache:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        # node name -> (the node object the answers are about, class key -> Verdict)
        self._by_node: dict[str, tuple[dict, dict[str, Verdict]]] = {}
        self.hits = 0
        self.misses = 0

    def verdict(self, pod: dict, key: str, info: NodeInfo) -> Verdict:
        entry = self._by_node.get(info.name)
        if entry is None or entry[0] is not info.node:
            entry = (info.node, {})
            with self._lock:
                self._by_node[info.name] = entry
        found = entry[1].get(key)
        if found is not None:
            self.hits += 1
            return found
        self.misses += 1
        if len(entry[1]) >= MAX_CLASSES:
            entry[1].clear()
        found = entry[1][key] = judge(pod, info)
        return found

    def forget(self, node_name: str) -> None:
        """The node changed or went: its answers are worked out again when next asked."""
        with self._lock:
            self._by_node.pop(node_name, None)

    def __len__(self) -> int:
        return sum(len(classes) for _, classes in list(self._by_node.values()))
