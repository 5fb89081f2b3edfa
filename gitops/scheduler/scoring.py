"""Scores: among the nodes a pod fits, which is best (0-100 per plugin, weighted as the
default scheduler profile weighs them) (pure)."""

from __future__ import annotations

from gitops.model.nodes import node_affinity, term_matches, untolerated
from gitops.scheduler import resources as R
from gitops.scheduler.interpod import Placement

MAX_SCORE = 100
WEIGHTS = {"NodeResourcesFit": 1, "NodeResourcesBalancedAllocation": 1,
           "TaintToleration": 3, "NodeAffinity": 2, "PodTopologySpread": 2,
           "InterPodAffinity": 2}


def _used(pod_request: R.Resources, info: R.NodeInfo) -> R.Resources:
    return {k: info.non_zero.get(k, 0) + pod_request.get(k, 0) for k in (R.CPU, R.MEMORY)}


def _fractions(pod_request: R.Resources, info: R.NodeInfo) -> dict[str, float]:
    offered, used = info.allocatable, _used(pod_request, info)
    return {name: (used.get(name, 0) / offered[name]) if offered.get(name) else 1.0
            for name in (R.CPU, R.MEMORY)}


def least_allocated(pod_request: R.Resources, info: R.NodeInfo) -> int:
    """Free share of CPU and memory once the pod is placed, averaged (pod_request: the
    pod's non-zero requests)."""
    offered, used = info.allocatable, _used(pod_request, info)
    scores = []
    for name in (R.CPU, R.MEMORY):
        cap, req = offered.get(name, 0), used.get(name, 0)
        scores.append(0 if not cap or req > cap else (cap - req) * MAX_SCORE // cap)
    return sum(scores) // len(scores)


def balanced_allocation(pod_request: R.Resources, info: R.NodeInfo) -> int:
    """CPU and memory used in similar shares score high."""
    f = [min(v, 1.0) for v in _fractions(pod_request, info).values()]
    mean = sum(f) / len(f)
    std = (sum((x - mean) ** 2 for x in f) / len(f)) ** 0.5
    return int((1 - std) * MAX_SCORE)


def preferred_affinity(pod: dict, node: dict) -> int:
    """Sum of the weights of the preferred node affinity terms the node matches (raw)."""
    terms = node_affinity(pod).get("preferredDuringSchedulingIgnoredDuringExecution") or []
    return sum(int(t.get("weight") or 0) for t in terms
               if term_matches(t.get("preference") or {}, node))


def prefer_no_schedule(pod: dict, node: dict, node_taints: list[dict] | None = None) -> int:
    """PreferNoSchedule taints the pod does not tolerate (raw: fewer is better)."""
    return len(untolerated(pod, node, ("PreferNoSchedule",), node_taints))


def siblings(pod: dict, info: R.NodeInfo) -> int:
    """Pods of the same controller already on the node (raw: fewer is better)."""
    uid = R.owner_uid(pod)
    return info.owners[uid] if uid else 0


def _normalize(raw: dict[str, int], reverse: bool) -> dict[str, int]:
    """DefaultNormalizeScore: scale to 0..100 by the highest; reversed, fewer is better."""
    top = max(raw.values(), default=0)
    if top == 0:
        return {n: MAX_SCORE if reverse else 0 for n in raw}
    return {n: (MAX_SCORE - v * MAX_SCORE // top) if reverse else v * MAX_SCORE // top
            for n, v in raw.items()}


def _min_max(raw: dict[str, int]) -> dict[str, int]:
    """InterPodAffinity's normalisation: lowest 0, highest 100 (all 0 when equal)."""
    low, high = min(raw.values(), default=0), max(raw.values(), default=0)
    if high == low:
        return {n: 0 for n in raw}
    return {n: MAX_SCORE * (v - low) // (high - low) for n, v in raw.items()}


def score(pod: dict, infos: list[R.NodeInfo],
          placement: Placement | None = None) -> dict[str, int]:
    """Weighted total per node name."""
    request = R.pod_requests(pod, non_zero=True)
    plugins = {
        "NodeResourcesFit": {i.name: least_allocated(request, i) for i in infos},
        "NodeResourcesBalancedAllocation": {i.name: balanced_allocation(request, i)
                                            for i in infos},
        "TaintToleration": _normalize({i.name: prefer_no_schedule(pod, i.node, i.taints)
                                       for i in infos}, reverse=True),
        "NodeAffinity": _normalize({i.name: preferred_affinity(pod, i.node) for i in infos},
                                   reverse=False),
        "PodTopologySpread": _normalize({i.name: siblings(pod, i) for i in infos},
                                        reverse=True),
    }
    if placement is not None:
        plugins["InterPodAffinity"] = _min_max(placement.scores(pod, [i.node for i in infos]))
    return {i.name: sum(WEIGHTS[p] * s[i.name] for p, s in plugins.items()) for i in infos}
