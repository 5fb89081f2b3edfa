"""Small facts about pods that several controllers need, and the order Kubernetes deletes
them in (controller.ActivePodsWithRanks)."""

from __future__ import annotations

import functools
import math
from collections import Counter
from collections.abc import Iterable

from gitops.model.times import parse_rfc3339 as _ts

DELETION_COST = "controller.kubernetes.io/pod-deletion-cost"
_PHASE_ORDER = {"Pending": 0, "Unknown": 1, "Running": 2}


def is_ready(pod: dict) -> bool:
    for cond in pod.get("status", {}).get("conditions", []) or []:
        if cond.get("type") == "Ready":
            return cond.get("status") == "True"
    return False


def ready_since(pod: dict) -> float | None:
    for cond in pod.get("status", {}).get("conditions", []) or []:
        if cond.get("type") == "Ready" and cond.get("status") == "True":
            return _ts(cond.get("lastTransitionTime"))
    return None


def has_finished(pod: dict) -> bool:
    return (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed")


def is_active(pod: dict) -> bool:
    """Counts toward replicas: not being deleted and not finished."""
    if pod.get("metadata", {}).get("deletionTimestamp"):
        return False
    return not has_finished(pod)


def is_available(pod: dict, min_ready_seconds: int, now: float) -> bool:
    """Ready for at least minReadySeconds (Kubernetes' definition of available)."""
    if not is_ready(pod):
        return False
    if not min_ready_seconds:
        return True
    since = ready_since(pod)
    return since is not None and now - since >= min_ready_seconds


def max_restarts(pod: dict) -> int:
    return max((int(cs.get("restartCount") or 0)
                for cs in (pod.get("status") or {}).get("containerStatuses") or []), default=0)


def _deletion_cost(pod: dict) -> int:
    try:
        return int(((pod.get("metadata") or {}).get("annotations") or {}).get(DELETION_COST, 0))
    except (TypeError, ValueError):
        return 0


def _log_rank(ts: float, now: float) -> int:
    """LogarithmicScaleDown: times compare by the power of two of their age."""
    age = now - ts
    return int(math.log2(age)) if age > 0 else -1


def _compare_times(a: float | None, b: float | None, now: float | None,
                   uid_a: str, uid_b: str) -> int:
    """<0 when a goes first: empty first, then the more recent one."""
    if a == b:
        return 0
    if now is None or a is None or b is None:
        if a is None:
            return -1
        if b is None:
            return 1
        return -1 if a > b else 1
    diff = _log_rank(a, now) - _log_rank(b, now)
    if diff == 0:
        return -1 if uid_a < uid_b else (1 if uid_a > uid_b else 0)
    return diff


def deletion_order(pods: Iterable[dict], related: Iterable[dict] | None = None,
                   now: float | None = None) -> list[dict]:
    """Pods in the order a ReplicaSet deletes them, least useful first:
    unscheduled, then Pending < Unknown < Running, not ready, lower pod-deletion-cost,
    more siblings on the same node (from `related`), ready more recently, more restarts,
    created more recently (ages compared on a log2 scale when `now` is given)."""
    pods = list(pods)
    per_node = Counter(p.get("spec", {}).get("nodeName", "")
                       for p in (pods if related is None else related) if is_active(p))

    def compare(a: dict, b: dict) -> int:
        na, nb = a.get("spec", {}).get("nodeName", ""), b.get("spec", {}).get("nodeName", "")
        if na != nb and (not na or not nb):
            return -1 if not na else 1
        pa = _PHASE_ORDER.get(a.get("status", {}).get("phase", "Pending"), 0)
        pb = _PHASE_ORDER.get(b.get("status", {}).get("phase", "Pending"), 0)
        if pa != pb:
            return pa - pb
        if is_ready(a) != is_ready(b):
            return -1 if not is_ready(a) else 1
        if _deletion_cost(a) != _deletion_cost(b):
            return _deletion_cost(a) - _deletion_cost(b)
        ra, rb = per_node[na], per_node[nb]
        if ra != rb:
            return rb - ra
        ua, ub = a["metadata"].get("uid", ""), b["metadata"].get("uid", "")
        if is_ready(a) and is_ready(b):
            if c := _compare_times(ready_since(a), ready_since(b), now, ua, ub):
                return c
        if max_restarts(a) != max_restarts(b):
            return max_restarts(b) - max_restarts(a)
        if c := _compare_times(_ts(a["metadata"].get("creationTimestamp")),
                               _ts(b["metadata"].get("creationTimestamp")), now, ua, ub):
            return c
        return 0
    return sorted(pods, key=functools.cmp_to_key(compare))


def resolve_target_port(port: dict, pod: dict) -> int | None:
    """targetPort may be a number or the name of a container port in this pod."""
    target = port.get("targetPort", port.get("port"))
    if isinstance(target, int):
        return target
    if isinstance(target, str) and target.isdigit():
        return int(target)
    for c in pod.get("spec", {}).get("containers", []):
        for p in c.get("ports", []) or []:
            if p.get("name") == target:
                return p.get("containerPort")
    return None


def pod_display_status(pod: dict) -> str:
    """The STATUS column of `kubectl get pods` (its printer's reasoning)."""
    if pod["metadata"].get("deletionTimestamp"):
        return "Terminating"
    st = pod.get("status", {})
    inits = st.get("initContainerStatuses") or []
    if any(not c.get("ready") for c in inits) and not any(
            "running" in c.get("state", {}) for c in st.get("containerStatuses") or []):
        for cs in inits:
            state = cs.get("state", {})
            if "waiting" in state and state["waiting"].get("reason") != "ContainerCreating":
                return f"Init:{state['waiting']['reason']}"
            if state.get("terminated", {}).get("exitCode", 0) != 0:
                return f"Init:{state['terminated'].get('reason', 'Error')}"
        return f"Init:{sum(1 for c in inits if c.get('ready'))}/{len(inits)}"
    for cs in st.get("containerStatuses", []) or []:
        state = cs.get("state", {})
        if "waiting" in state and state["waiting"].get("reason") != "ContainerCreating":
            return state["waiting"]["reason"]
        if "terminated" in state and st.get("phase") == "Running":
            return state["terminated"].get("reason", "Error")
    if st.get("phase") == "Pending" and st.get("containerStatuses"):
        return "ContainerCreating"
    return st.get("phase", "Pending")
