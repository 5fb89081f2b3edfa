"""Bind pending pods to nodes: filter, score, bind; explain the pods that fit nowhere.

Pods are taken one by one (oldest first); each binding counts against its node for the
pods after it in the same pass, as the scheduler's cache of assumed pods does. A pod that
fits nowhere stays Pending with PodScheduled=False (reason Unschedulable) and a
FailedScheduling event whose message is the scheduler's: `0/3 nodes are available:
1 Insufficient memory, 2 node(s) didn't match Pod's node affinity/selector.`; both are
written again only when that message changes (the pod is retried on every pass).
"""

from __future__ import annotations

import copy
from collections import Counter, defaultdict
from datetime import UTC, datetime

from gitops.controllers.base import Action, Update
from gitops.events import WARNING, event_for
from gitops.model.meta import is_deleting
from gitops.scheduler.predicates import filter_reasons, node_ready
from gitops.scheduler.resources import counts_on_node
from gitops.scheduler.scoring import score

COMPONENT = "default-scheduler"

__all__ = ["node_ready", "fit_error", "choose_node", "reconcile"]


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def fit_error(total: int, reasons: dict[str, list[str]]) -> str:
    """FitError.Error(): a histogram of reasons over the nodes, sorted."""
    if total == 0:
        return "no nodes available to schedule pods"
    histogram = Counter(r for node_reasons in reasons.values() for r in node_reasons)
    parts = sorted(f"{count} {reason}" for reason, count in histogram.items())
    return f"0/{total} nodes are available" + (f": {', '.join(parts)}." if parts else ".")


def choose_node(pod: dict, nodes: list[dict], on_node: dict[str, list[dict]]
                ) -> tuple[str | None, dict[str, list[str]]]:
    """(best node or None, reasons per rejected node)."""
    reasons: dict[str, list[str]] = {}
    feasible = []
    for node in nodes:
        name = node["metadata"]["name"]
        why = filter_reasons(pod, node, on_node.get(name, []))
        if why:
            reasons[name] = why
        else:
            feasible.append(node)
    if not feasible:
        return None, reasons
    scores = score(pod, feasible, on_node)
    best = max(feasible, key=lambda n: (scores[n["metadata"]["name"]],
                                        _neg(n["metadata"]["name"])))
    return best["metadata"]["name"], reasons


def _neg(name: str) -> tuple:
    return tuple(-ord(c) for c in name)      # ties: the first name wins


def _condition(pod: dict) -> dict | None:
    return next((c for c in (pod.get("status") or {}).get("conditions") or []
                 if c.get("type") == "PodScheduled"), None)


def reconcile(pods: list[dict], nodes: list[dict], now: float = 0.0) -> list[Action]:
    on_node: dict[str, list[dict]] = defaultdict(list)
    for pod in pods:
        if (bound := pod.get("spec", {}).get("nodeName")) and counts_on_node(pod):
            on_node[bound].append(pod)
    pending = sorted((p for p in pods if not p.get("spec", {}).get("nodeName")
                      and not is_deleting(p)),
                     key=lambda p: (p["metadata"].get("creationTimestamp", ""),
                                    p["metadata"]["name"]))
    actions: list[Action] = []
    for pod in pending:
        node, reasons = choose_node(pod, nodes, on_node)
        meta = pod["metadata"]
        bound = copy.deepcopy(pod)
        status = bound.setdefault("status", {})
        status.setdefault("phase", "Pending")
        others = [c for c in status.get("conditions") or [] if c.get("type") != "PodScheduled"]
        if node is None:
            message = fit_error(len(nodes), reasons)
            before = _condition(pod)
            if before and before.get("status") == "False" and before.get("message") == message:
                continue
            status["conditions"] = [*others, {
                "type": "PodScheduled", "status": "False", "reason": "Unschedulable",
                "message": message, "lastProbeTime": None,
                "lastTransitionTime": (before or {}).get("lastTransitionTime")
                if before and before.get("status") == "False" else _iso(now)}]
            actions.append(Update(bound, event_for(pod, "FailedScheduling", message, WARNING,
                                                   COMPONENT)))
            continue
        bound["spec"]["nodeName"] = node
        on_node[node].append(bound)
        status["conditions"] = [*others, {"type": "PodScheduled", "status": "True",
                                          "lastProbeTime": None,
                                          "lastTransitionTime": _iso(now)}]
        actions.append(Update(bound, event_for(
            pod, "Scheduled", f"Successfully assigned {meta.get('namespace', 'default')}/"
            f"{meta['name']} to {node}", component=COMPONENT)))
    return actions
