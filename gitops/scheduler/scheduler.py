"""Bind pending pods to a node: filter feasible nodes, then pick the least loaded."""

from __future__ import annotations

import copy

from gitops.controllers.base import Action, Update
from gitops.model.meta import is_deleting


def node_ready(node: dict) -> bool:
    return any(c.get("type") == "Ready" and c.get("status") == "True"
               for c in node.get("status", {}).get("conditions", []) or [])


def feasible(pod: dict, node: dict) -> bool:
    if not node_ready(node) or node.get("spec", {}).get("unschedulable"):
        return False
    wanted = pod.get("spec", {}).get("nodeSelector") or {}
    labels = node["metadata"].get("labels") or {}
    return all(labels.get(k) == v for k, v in wanted.items())


def choose_node(pod: dict, nodes: list[dict], load: dict[str, int]) -> str | None:
    candidates = [n for n in nodes if feasible(pod, n)]
    if not candidates:
        return None
    best = min(candidates, key=lambda n: (load.get(n["metadata"]["name"], 0),
                                          n["metadata"]["name"]))
    return best["metadata"]["name"]


def reconcile(pods: list[dict], nodes: list[dict]) -> list[Action]:
    load: dict[str, int] = {}
    for pod in pods:
        if bound := pod.get("spec", {}).get("nodeName"):
            load[bound] = load.get(bound, 0) + 1
    actions: list[Action] = []
    for pod in pods:
        if pod.get("spec", {}).get("nodeName") or is_deleting(pod):
            continue
        node = choose_node(pod, nodes, load)
        bound = copy.deepcopy(pod)
        bound["metadata"].pop("resourceVersion", None)
        status = bound.setdefault("status", {"phase": "Pending"})
        if node is None:
            status["conditions"] = [{"type": "PodScheduled", "status": "False",
                                     "reason": "Unschedulable",
                                     "message": f"0/{len(nodes)} nodes are available"}]
        else:
            bound["spec"]["nodeName"] = node
            load[node] = load.get(node, 0) + 1
            status["conditions"] = [{"type": "PodScheduled", "status": "True"}]
        if bound != pod:
            actions.append(Update(bound))
    return actions
