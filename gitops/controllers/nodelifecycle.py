"""Node lifecycle, as kube-controller-manager's node lifecycle controller and taint
manager keep it (pure).

A node heartbeats by renewing its Lease in kube-node-lease (and by its Ready condition).
Silent past the grace period, its Ready condition becomes Unknown, it is tainted
`node.kubernetes.io/unreachable:NoExecute` and its pods are marked not Ready at once (so
Endpoints drop them). A pod on a NoExecute-tainted node is deleted once its toleration
runs out: no matching toleration, at once; a toleration without tolerationSeconds, never;
pods without their own toleration get the default (DefaultTolerationSeconds). Deleting a
bound pod only marks it: its controller replaces it elsewhere (a StatefulSet waits until
the old one is really gone, as Kubernetes does), and the node finishes the job if it comes
back. A node heard from again loses the taint. Pods bound to a node that no longer exists
are removed (pod GC).
"""

from __future__ import annotations

from dataclasses import dataclass

from gitops.model import ObjectKey, key_of
from gitops.model.actions import Action, Delete, SetStatus, Update
from gitops.model.events import EventSpec, event_for
from gitops.model.meta import is_deleting
from gitops.model.nodes import node_ready, tolerates
from gitops.model.times import parse_ts, rfc3339

UNREACHABLE_TAINT = "node.kubernetes.io/unreachable"
LEASE_NAMESPACE = "kube-node-lease"


@dataclass(frozen=True)
class Settings:
    grace: float = 40.0                 # --node-monitor-grace-period
    default_toleration: int = 300       # --default-unreachable-toleration-seconds


def last_heard(node: dict, lease: dict | None) -> float:
    """When the node last said it is alive: its Lease's renewTime or its Ready condition's
    lastHeartbeatTime, whichever is later (its creation if neither)."""
    times = [parse_ts(node["metadata"].get("creationTimestamp", ""), 0.0)]
    if lease is not None:
        times.append(parse_ts((lease.get("spec") or {}).get("renewTime", ""), 0.0))
    for cond in (node.get("status") or {}).get("conditions") or []:
        if cond.get("type") == "Ready":
            times.append(parse_ts(cond.get("lastHeartbeatTime", ""), 0.0))
    return max(times)


def _tainted(node: dict) -> dict | None:
    return next((t for t in (node.get("spec") or {}).get("taints") or []
                 if t.get("key") == UNREACHABLE_TAINT and t.get("effect") == "NoExecute"),
                None)


class Observed:
    """When this controller saw each node's heartbeat change, by its own clock, as the
    node lifecycle controller keeps probe timestamps: a restarted control plane (which
    heard nothing while it was down) gives every node a full grace period again."""

    def __init__(self) -> None:
        self._seen: dict[str, tuple[float, float]] = {}     # node -> (heartbeat, seen at)

    def silent_for(self, node: dict, lease: dict | None, now: float) -> float:
        name = node["metadata"]["name"]
        heard = last_heard(node, lease)
        have = self._seen.get(name)
        if have is None or have[0] != heard:
            self._seen[name] = (heard, now)
            return 0.0
        return now - have[1]

    def forget(self, names: set[str]) -> None:
        for name in set(self._seen) - names:
            del self._seen[name]


def reconcile_node(node: dict, silent_for: float, now: float, s: Settings) -> list[Action]:
    name = node["metadata"]["name"]
    silent = silent_for > s.grace
    actions: list[Action] = []
    taint = _tainted(node)
    if silent:
        if taint is None:       # the spec first: the status write moves resourceVersion
            spec = dict(node.get("spec") or {})
            spec["taints"] = [*(spec.get("taints") or []),
                              {"key": UNREACHABLE_TAINT, "effect": "NoExecute",
                               "timeAdded": rfc3339(now)}]
            actions.append(Update({**node, "spec": spec}))
        status = node.get("status") or {}
        conds = status.get("conditions") or []
        ready = next((c for c in conds if c.get("type") == "Ready"), None)
        if ready is None or ready.get("status") != "Unknown":
            stamp = rfc3339(now)
            unknown = {"type": "Ready", "status": "Unknown", "reason": "NodeStatusUnknown",
                       "message": "Kubelet stopped posting node status.",
                       "lastHeartbeatTime": (ready or {}).get("lastHeartbeatTime", stamp),
                       "lastTransitionTime": stamp}
            others = [c for c in conds if c.get("type") != "Ready"]
            actions.append(SetStatus(ObjectKey("Node", "", name),
                                     {**status, "conditions": [unknown, *others]},
                                     _node_event(node, "NodeNotReady",
                                                 f"Node {name} status is now: NodeNotReady")))
    elif taint is not None and node_ready(node):
        spec = dict(node.get("spec") or {})
        spec["taints"] = [t for t in spec.get("taints") or [] if t is not taint]
        actions.append(Update({**node, "spec": spec}))
    return actions


def _unready(pod: dict, now: float) -> dict | None:
    """The pod's status with Ready False, or None when it already is."""
    status = dict(pod.get("status") or {})
    conds = status.get("conditions") or []
    if not any(c.get("type") == "Ready" and c.get("status") == "True" for c in conds):
        return None
    stamp = rfc3339(now)
    status["conditions"] = [
        {**c, "status": "False", "reason": "NodeNotReady", "lastTransitionTime": stamp}
        if c.get("type") in ("Ready", "ContainersReady") else c for c in conds]
    return status


def toleration_left(pod: dict, taint: dict, now: float, default: int) -> float | None:
    """Seconds until the pod is evicted from a node with this taint (0: now); None when
    it tolerates it for ever."""
    tols = [t for t in (pod.get("spec") or {}).get("tolerations") or []
            if tolerates(t, taint)]
    if not tols:
        # DefaultTolerationSeconds: a pod that says nothing about these taints tolerates
        # them for the default time.
        says = any(t.get("key") in (UNREACHABLE_TAINT, "node.kubernetes.io/not-ready")
                   for t in (pod.get("spec") or {}).get("tolerations") or [])
        if says:
            return 0.0
        seconds: float | None = float(default)
    else:
        bounded = [t.get("tolerationSeconds") for t in tols
                   if t.get("tolerationSeconds") is not None]
        if len(bounded) < len(tols):
            return None
        seconds = float(min(int(b) for b in bounded))
    added = parse_ts(taint.get("timeAdded", ""), now)
    return max(0.0, added + seconds - now)


def reconcile_pods(nodes: list[dict], pods: list[dict], now: float,
                   s: Settings) -> tuple[list[Action], float | None]:
    """Actions on pods, and when to look again (the next toleration to run out)."""
    by_name = {n["metadata"]["name"]: n for n in nodes}
    actions: list[Action] = []
    next_due: float | None = None
    for pod in pods:
        node_name = (pod.get("spec") or {}).get("nodeName")
        if not node_name:
            continue
        node = by_name.get(node_name)
        if node is None:
            actions.append(Delete(key_of(pod), _pod_event(
                pod, "NodeGone", f"Node {node_name} no longer exists: deleting pod")))
            continue
        taint = _tainted(node)
        if taint is None or is_deleting(pod):
            continue
        unready = _unready(pod, now)
        if unready is not None:
            actions.append(SetStatus(key_of(pod), unready))
        left = toleration_left(pod, taint, now, s.default_toleration)
        if left is None:
            continue
        if left <= 0:
            actions.append(Delete(key_of(pod), _pod_event(
                pod, "TaintManagerEviction", f"Marking for deletion Pod "
                f"{pod['metadata']['namespace']}/{pod['metadata']['name']}")))
        else:
            next_due = left if next_due is None else min(next_due, left)
    return actions, next_due


def _node_event(node: dict, reason: str, message: str) -> EventSpec:
    return event_for(node, reason, message, component="node-controller")


def _pod_event(pod: dict, reason: str, message: str) -> EventSpec:
    return event_for(pod, reason, message, component="taint-eviction-controller")
