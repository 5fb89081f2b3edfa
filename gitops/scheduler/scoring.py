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
_W_FIT, _W_BALANCED = WEIGHTS["NodeResourcesFit"], WEIGHTS["NodeResourcesBalancedAllocation"]


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


def _normalize(raw: list[int], reverse: bool) -> list[int]:
    """DefaultNormalizeScore: scale to 0..100 by the highest; reversed, fewer is better."""
    top = max(raw, default=0)
    if top == 0:
        return [MAX_SCORE if reverse else 0] * len(raw)
    return [(MAX_SCORE - v * MAX_SCORE // top) if reverse else v * MAX_SCORE // top
            for v in raw]


def _min_max(raw: dict[str, int]) -> dict[str, int]:
    """InterPodAffinity's normalisation: lowest 0, highest 100 (all 0 when equal)."""
    low, high = min(raw.values(), default=0), max(raw.values(), default=0)
    if high == low:
        return {n: 0 for n in raw}
    return {n: MAX_SCORE * (v - low) // (high - low) for n, v in raw.items()}


def resource_fit(cpu: int, memory: int, info: R.NodeInfo) -> int:
    """least_allocated and balanced_allocation, weighted, in one go with the same
    arithmetic (the scheduler scores hundreds of nodes per pod)."""
    offered, placed = info.allocatable, info.non_zero
    cap_cpu, cap_mem = offered.get(R.CPU, 0), offered.get(R.MEMORY, 0)
    used_cpu, used_mem = placed.get(R.CPU, 0) + cpu, placed.get(R.MEMORY, 0) + memory
    least = ((0 if not cap_cpu or used_cpu > cap_cpu
              else (cap_cpu - used_cpu) * MAX_SCORE // cap_cpu)
             + (0 if not cap_mem or used_mem > cap_mem
                else (cap_mem - used_mem) * MAX_SCORE // cap_mem)) // 2
    f_cpu = min(used_cpu / cap_cpu, 1.0) if cap_cpu else 1.0
    f_mem = min(used_mem / cap_mem, 1.0) if cap_mem else 1.0
    mean = (f_cpu + f_mem) / 2
    std = (((f_cpu - mean) ** 2 + (f_mem - mean) ** 2) / 2) ** 0.5
    return least * _W_FIT + int((1 - std) * MAX_SCORE) * _W_BALANCED


def score(pod: dict, infos: list[R.NodeInfo], placement: Placement | None = None,
          verdicts: list | None = None) -> dict[str, int]:
    """Weighted total per node name. verdicts: the equivalence cache's answers for these
    nodes (their raw TaintToleration and NodeAffinity scores), worked out here if None."""
    request = R.pod_requests(pod, non_zero=True)
    cpu, memory = request.get(R.CPU, 0), request.get(R.MEMORY, 0)
    if verdicts is None:
        taint_raw = [prefer_no_schedule(pod, i.node, i.taints) for i in infos]
        affinity_raw = [preferred_affinity(pod, i.node) for i in infos]
    else:
        taint_raw = [v.prefer_no_schedule for v in verdicts]
        affinity_raw = [v.preferred_affinity for v in verdicts]
    uid = R.owner_uid(pod)
    spread_raw = [i.owners.get(uid, 0) for i in infos] if uid else [0] * len(infos)
    taint = _normalize(taint_raw, reverse=True)
    affinity = _normalize(affinity_raw, reverse=False)
    spread = _normalize(spread_raw, reverse=True)
    w = WEIGHTS
    totals = {i.name: resource_fit(cpu, memory, i)
              + w["TaintToleration"] * t + w["NodeAffinity"] * a + w["PodTopologySpread"] * s
              for i, t, a, s in zip(infos, taint, affinity, spread)}
    if placement is not None:
        interpod = _min_max(placement.scores(pod, [i.node for i in infos]))
        for name, value in interpod.items():
            totals[name] += w["InterPodAffinity"] * value
    return totals
