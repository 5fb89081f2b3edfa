"""Bind pending pods to a node: filter feasible nodes (ready, schedulable, nodeSelector,
room for the pod's resource requests), then pick the least loaded."""

from __future__ import annotations

import copy
from decimal import Decimal

from gitops.controllers.base import Action, Update
from gitops.model import quantity
from gitops.model.meta import is_deleting


def node_ready(node: dict) -> bool:
    return any(c.get("type") == "Ready" and c.get("status") == "True"
               for c in node.get("status", {}).get("conditions", []) or [])


RESOURCES = ("cpu", "memory")


def pod_requests(pod: dict) -> dict[str, Decimal]:
    """What the pod asks of a node, as Kubernetes counts it: the sum over its containers,
    or the largest init container's if that is more (they run one at a time)."""
    spec = pod.get("spec", {})

    def of(c: dict) -> dict[str, Decimal]:
        req = (c.get("resources") or {}).get("requests") or {}
        out = {}
        for r in RESOURCES:
            try:
                out[r] = quantity.parse(req[r]) if r in req else Decimal(0)
            except ValueError:
                out[r] = Decimal(0)   # validation reports bad quantities
        return out
    apps = [of(c) for c in spec.get("containers") or []]
    inits = [of(c) for c in spec.get("initContainers") or []]
    return {r: max(sum((a[r] for a in apps), Decimal(0)),
                   max((i[r] for i in inits), default=Decimal(0))) for r in RESOURCES}


def allocatable(node: dict) -> dict[str, Decimal | None]:
    status = node.get("status", {})
    have = status.get("allocatable") or status.get("capacity") or {}
    return {r: quantity.parse(have[r]) if r in have else None for r in RESOURCES}


def insufficient(pod: dict, node: dict, used: dict[str, Decimal]) -> list[str]:
    """Resources the node cannot give the pod on top of what bound pods requested."""
    want, have = pod_requests(pod), allocatable(node)
    return [r for r in RESOURCES if want[r] and have[r] is not None
            and used.get(r, Decimal(0)) + want[r] > have[r]]


def feasible(pod: dict, node: dict, used: dict[str, Decimal] | None = None) -> bool:
    if not node_ready(node) or node.get("spec", {}).get("unschedulable"):
        return False
    if insufficient(pod, node, used or {}):
        return False
    wanted = pod.get("spec", {}).get("nodeSelector") or {}
    labels = node["metadata"].get("labels") or {}
    return all(labels.get(k) == v for k, v in wanted.items())


def choose_node(pod: dict, nodes: list[dict], load: dict[str, int],
                used: dict[str, dict[str, Decimal]] | None = None) -> str | None:
    used = used or {}
    candidates = [n for n in nodes if feasible(pod, n, used.get(n["metadata"]["name"]))]
    if not candidates:
        return None
    best = min(candidates, key=lambda n: (load.get(n["metadata"]["name"], 0),
                                          n["metadata"]["name"]))
    return best["metadata"]["name"]


def _add(used: dict[str, dict[str, Decimal]], node: str, pod: dict) -> None:
    totals = used.setdefault(node, {})
    for r, amount in pod_requests(pod).items():
        totals[r] = totals.get(r, Decimal(0)) + amount


def _why_not(pod: dict, nodes: list[dict], used: dict[str, dict[str, Decimal]]) -> str:
    short: dict[str, int] = {}
    for n in nodes:
        for r in insufficient(pod, n, used.get(n["metadata"]["name"], {})):
            short[r] = short.get(r, 0) + 1
    reasons = "".join(f" {count} Insufficient {r}." for r, count in sorted(short.items()))
    return f"0/{len(nodes)} nodes are available:{reasons}" if reasons else \
        f"0/{len(nodes)} nodes are available"


def reconcile(pods: list[dict], nodes: list[dict]) -> list[Action]:
    load: dict[str, int] = {}
    used: dict[str, dict[str, Decimal]] = {}    # requests of the pods bound to each node
    for pod in pods:
        if bound := pod.get("spec", {}).get("nodeName"):
            load[bound] = load.get(bound, 0) + 1
            if pod.get("status", {}).get("phase") not in ("Succeeded", "Failed"):
                _add(used, bound, pod)
    actions: list[Action] = []
    for pod in pods:
        if pod.get("spec", {}).get("nodeName") or is_deleting(pod):
            continue
        node = choose_node(pod, nodes, load, used)
        bound = copy.deepcopy(pod)
        bound["metadata"].pop("resourceVersion", None)
        status = bound.setdefault("status", {"phase": "Pending"})
        if node is None:
            status["conditions"] = [{"type": "PodScheduled", "status": "False",
                                     "reason": "Unschedulable",
                                     "message": _why_not(pod, nodes, used)}]
        else:
            bound["spec"]["nodeName"] = node
            load[node] = load.get(node, 0) + 1
            _add(used, node, pod)
            status["conditions"] = [{"type": "PodScheduled", "status": "True"}]
        if bound != pod:
            actions.append(Update(bound))
    return actions
