"""PodTopologySpread's filter: topologySpreadConstraints with whenUnsatisfiable
DoNotSchedule (pure). ScheduleAnyway constraints only steer, which the spreading score
already does for replicas of one owner.

Per constraint, the domains are the values of its topologyKey on the nodes the pod could
go to (its nodeSelector and required node affinity honoured, taints ignored: the
defaults of nodeAffinityPolicy and nodeTaintsPolicy). Placing the pod must not make its
domain exceed the emptiest one by more than maxSkew.
"""

from __future__ import annotations

from collections import Counter

from gitops.model.meta import is_deleting
from gitops.model.nodes import matches_affinity
from gitops.model.selectors import matches

MISSING_LABEL = "node(s) didn't match pod topology spread constraints (missing required label)"
SKEWED = "node(s) didn't match pod topology spread constraints"


def hard_constraints(pod: dict) -> list[dict]:
    return [c for c in (pod.get("spec") or {}).get("topologySpreadConstraints") or []
            if c.get("whenUnsatisfiable", "DoNotSchedule") == "DoNotSchedule"]


def _selector(constraint: dict, pod: dict) -> dict | None:
    """labelSelector, narrowed by matchLabelKeys to the incoming pod's values."""
    selector = constraint.get("labelSelector")
    keys = constraint.get("matchLabelKeys") or []
    if selector is None or not keys:
        return selector
    labels = (pod.get("metadata") or {}).get("labels") or {}
    extra = [{"key": k, "operator": "In", "values": [labels[k]]} for k in keys if k in labels]
    return {**selector, "matchExpressions": [*(selector.get("matchExpressions") or []), *extra]}


def node_label(node: dict, key: str) -> str | None:
    return ((node.get("metadata") or {}).get("labels") or {}).get(key)


def namespace_of(obj: dict) -> str:
    return (obj.get("metadata") or {}).get("namespace") or "default"


def spread_reason(pod: dict, node: dict, nodes: list[dict],
                  placed: list[tuple[dict, dict]]) -> str:
    """Why `pod` cannot go to `node` under its DoNotSchedule constraints ("" : it can)."""
    constraints = hard_constraints(pod)
    if not constraints:
        return ""
    keys = [c.get("topologyKey", "") for c in constraints]
    if any(node_label(node, k) is None for k in keys):
        return MISSING_LABEL
    eligible = [n for n in nodes
                if all(node_label(n, k) is not None for k in keys) and matches_affinity(pod, n)]
    names = {n["metadata"]["name"] for n in eligible}
    namespace = namespace_of(pod)
    for constraint, key in zip(constraints, keys):
        selector = _selector(constraint, pod)
        counts: Counter = Counter({node_label(n, key): 0 for n in eligible})
        for other, other_node in placed:
            if other_node["metadata"]["name"] in names and not is_deleting(other) \
                    and namespace_of(other) == namespace \
                    and matches(selector, (other.get("metadata") or {}).get("labels")):
                counts[node_label(other_node, key)] += 1
        lowest = min(counts.values(), default=0)
        if len(counts) < int(constraint.get("minDomains") or 1):
            lowest = 0       # fewer domains than asked for: the missing ones count as empty
        itself = 1 if matches(selector, (pod.get("metadata") or {}).get("labels")) else 0
        if counts[node_label(node, key)] + itself - lowest > int(constraint.get("maxSkew") or 1):
            return SKEWED
    return ""
