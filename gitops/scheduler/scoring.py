"""Scores: among the nodes a pod fits, which is best (0-100 per plugin, weighted as the
default scheduler profile weighs them) (pure)."""

from __future__ import annotations

from gitops.scheduler import resources as R
from gitops.scheduler.predicates import _node_affinity, term_matches, untolerated

MAX_SCORE = 100
WEIGHTS = {"NodeResourcesFit": 1, "NodeResourcesBalancedAllocation": 1,
           "TaintToleration": 3, "NodeAffinity": 2, "PodTopologySpread": 2}


def _fractions(pod: dict, node: dict, on_node: list[dict]) -> dict[str, float]:
    offered = R.allocatable(node)
    used = R.requested([*on_node, pod], non_zero=True)
    return {name: (used.get(name, 0) / offered[name]) if offered.get(name) else 1.0
            for name in (R.CPU, R.MEMORY)}


def least_allocated(pod: dict, node: dict, on_node: list[dict]) -> int:
    """Free share of CPU and memory once the pod is placed, averaged."""
    offered = R.allocatable(node)
    used = R.requested([*on_node, pod], non_zero=True)
    scores = []
    for name in (R.CPU, R.MEMORY):
        cap, req = offered.get(name, 0), used.get(name, 0)
        scores.append(0 if not cap or req > cap else (cap - req) * MAX_SCORE // cap)
    return sum(scores) // len(scores)


def balanced_allocation(pod: dict, node: dict, on_node: list[dict]) -> int:
    """CPU and memory used in similar shares score high."""
    f = [min(v, 1.0) for v in _fractions(pod, node, on_node).values()]
    mean = sum(f) / len(f)
    std = (sum((x - mean) ** 2 for x in f) / len(f)) ** 0.5
    return int((1 - std) * MAX_SCORE)


def preferred_affinity(pod: dict, node: dict) -> int:
    """Sum of the weights of the preferred node affinity terms the node matches (raw)."""
    terms = _node_affinity(pod).get("preferredDuringSchedulingIgnoredDuringExecution") or []
    return sum(int(t.get("weight") or 0) for t in terms
               if term_matches(t.get("preference") or {}, node))


def prefer_no_schedule(pod: dict, node: dict) -> int:
    """PreferNoSchedule taints the pod does not tolerate (raw: fewer is better)."""
    return len(untolerated(pod, node, ("PreferNoSchedule",)))


def owner_uid(pod: dict) -> str:
    for ref in pod["metadata"].get("ownerReferences") or []:
        if ref.get("controller"):
            return ref.get("uid", "")
    return ""


def siblings(pod: dict, on_node: list[dict]) -> int:
    """Pods of the same controller already on the node (raw: fewer is better)."""
    uid = owner_uid(pod)
    return sum(1 for p in on_node if uid and owner_uid(p) == uid)


def _normalize(raw: dict[str, int], reverse: bool) -> dict[str, int]:
    """DefaultNormalizeScore: scale to 0..100 by the highest; reversed, fewer is better."""
    top = max(raw.values(), default=0)
    if top == 0:
        return {n: MAX_SCORE if reverse else 0 for n in raw}
    return {n: (MAX_SCORE - v * MAX_SCORE // top) if reverse else v * MAX_SCORE // top
            for n, v in raw.items()}


def score(pod: dict, nodes: list[dict], on_node: dict[str, list[dict]]) -> dict[str, int]:
    """Weighted total per node name."""
    names = [n["metadata"]["name"] for n in nodes]
    by_name = {n["metadata"]["name"]: n for n in nodes}
    plugins = {
        "NodeResourcesFit": {n: least_allocated(pod, by_name[n], on_node.get(n, []))
                             for n in names},
        "NodeResourcesBalancedAllocation": {
            n: balanced_allocation(pod, by_name[n], on_node.get(n, [])) for n in names},
        "TaintToleration": _normalize({n: prefer_no_schedule(pod, by_name[n]) for n in names},
                                      reverse=True),
        "NodeAffinity": _normalize({n: preferred_affinity(pod, by_name[n]) for n in names},
                                   reverse=False),
        "PodTopologySpread": _normalize({n: siblings(pod, on_node.get(n, [])) for n in names},
                                        reverse=True),
    }
    return {n: sum(WEIGHTS[p] * s[n] for p, s in plugins.items()) for n in names}
