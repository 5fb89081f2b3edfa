"""Bind pending pods to nodes: filter, score, bind; explain the pods that fit nowhere.

Pods are taken one by one (oldest first); each binding counts against its node for the
pods after it in the same pass, as the scheduler's cache of assumed pods does. A pod that
fits nowhere stays Pending with PodScheduled=False (reason Unschedulable) and a
FailedScheduling event whose message is the scheduler's: `0/3 nodes are available:
1 Insufficient memory, 2 node(s) didn't match Pod's node affinity/selector.`; both are
written again only when that message changes (the pod is retried on every pass).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable

from gitops.model.actions import Action, Update
from gitops.model.events import WARNING, event_for
from gitops.model.meta import is_deleting
from gitops.model.times import rfc3339 as _iso
from gitops.scheduler.equivalence import EquivalenceCache, Verdict, class_key
from gitops.scheduler.interpod import Placement, depends_on_others
from gitops.scheduler.predicates import node_ready, placed_reasons, wanted_resources
from gitops.scheduler.resources import NodeInfo, counts_on_node, host_ports
from gitops.scheduler.scoring import score

COMPONENT = "default-scheduler"

__all__ = ["node_ready", "fit_error", "choose_node", "reconcile", "schedule"]


def fit_error(total: int, reasons: dict[str, list[str]]) -> str:
    """FitError.Error(): a histogram of reasons over the nodes, sorted."""
    if total == 0:
        return "no nodes available to schedule pods"
    histogram = Counter(r for node_reasons in reasons.values() for r in node_reasons)
    parts = sorted(f"{count} {reason}" for reason, count in histogram.items())
    return f"0/{total} nodes are available" + (f": {', '.join(parts)}." if parts else ".")


MIN_FEASIBLE_NODES = 100         # kube-scheduler's minFeasibleNodesToFind
MIN_FEASIBLE_PERCENT = 5


def feasible_nodes_to_find(total: int) -> int:
    """numFeasibleNodesToFind with the adaptive percentageOfNodesToScore: all of a small
    cluster; in a large one, once this many nodes fit, the rest are not looked at."""
    if total < MIN_FEASIBLE_NODES:
        return total
    percent = max(MIN_FEASIBLE_PERCENT, 50 - total // 125)
    return max(MIN_FEASIBLE_NODES, total * percent // 100)


def choose_node(pod: dict, infos: list[NodeInfo], placement: Placement | None = None,
                start: int = 0) -> tuple[NodeInfo | None, dict[str, list[str]]]:
    """(best node or None, reasons per rejected node)."""
    info, reasons, _ = _choose(pod, infos, placement, start, EquivalenceCache())
    return info, reasons


def _choose(pod: dict, infos: list[NodeInfo], placement: Placement | None, start: int,
            verdicts: EquivalenceCache) -> tuple[NodeInfo | None, dict[str, list[str]], int]:
    """Nodes are looked at from `start` round the list (the next pod starts where this
    one stopped, as kube-scheduler's nextStartNodeIndex), until enough fit. What the
    node alone decides comes from the equivalence cache, the rest is worked out here."""
    reasons: dict[str, list[str]] = {}
    feasible: list[NodeInfo] = []
    answers: list[Verdict] = []
    wanted = wanted_resources(pod)
    ports = host_ports(pod)
    key = class_key(pod)
    total = len(infos)
    enough = feasible_nodes_to_find(total)
    examined = 0
    for offset in range(total):
        info = infos[(start + offset) % total]
        examined += 1
        verdict = verdicts.verdict(pod, key, info)
        why = list(verdict.reasons) or placed_reasons(pod, info, wanted, ports) or (
            placement.filter_reasons(pod, info.node) if placement is not None else [])
        if why:
            reasons[info.name] = why
        else:
            feasible.append(info)
            answers.append(verdict)
            if len(feasible) >= enough:
                break
    if not feasible:
        return None, reasons, examined
    scores = score(pod, feasible, placement, answers)
    best = feasible[0]
    best_score = scores[best.name]
    for info in feasible:                   # ties: the first name wins
        value = scores[info.name]
        if value > best_score or (value == best_score and info.name < best.name):
            best, best_score = info, value
    return best, reasons, examined


def _condition(pod: dict) -> dict | None:
    return next((c for c in (pod.get("status") or {}).get("conditions") or []
                 if c.get("type") == "PodScheduled"), None)


def reconcile(pods: list[dict], nodes: list[dict], now: float = 0.0,
              namespaces: Callable[[], Iterable[dict]] = tuple) -> list[Action]:
    """namespaces: read only when a pod's affinity may select them by their labels."""
    if all(p.get("spec", {}).get("nodeName") or is_deleting(p) for p in pods):
        return []                       # nothing pending: no need to add up the nodes
    infos = {n["metadata"]["name"]: NodeInfo(n) for n in nodes}
    placed = []
    for pod in pods:
        bound = pod.get("spec", {}).get("nodeName")
        if bound in infos and counts_on_node(pod):
            infos[bound].add(pod)
            placed.append((pod, infos[bound].node))
    pending = [p for p in pods if not p.get("spec", {}).get("nodeName") and not is_deleting(p)]
    # Where the other pods are matters only once some pod's affinity or spread names them.
    placement = None
    if any(depends_on_others(p) for p in pods):
        placement = Placement(nodes, namespaces())
        for pod, node in placed:
            placement.add(pod, node)
    return schedule(pending, infos, now, placement, EquivalenceCache())


def schedule(pending: list[dict], infos: dict[str, NodeInfo], now: float,
             placement: Placement | None, verdicts: EquivalenceCache) -> list[Action]:
    """Bind pending pods, oldest first, to the nodes of `infos` (by name, in name order;
    their sums are not changed: a binding counts against a copy) or explain why not.
    placement: where the bound pods are, when some pod's place depends on them (it
    learns of this pass's bindings)."""
    pending = sorted(pending, key=lambda p: (p["metadata"].get("creationTimestamp", ""),
                                             p["metadata"]["name"]))
    candidates = list(infos.values())
    position = {c.name: i for i, c in enumerate(candidates)}
    copied: set[str] = set()
    actions: list[Action] = []
    start = 0
    for pod in pending:
        info, reasons, examined = _choose(pod, candidates, placement, start, verdicts)
        start = (start + examined) % max(1, len(candidates))
        meta = pod["metadata"]
        # the parts written are copies; the rest is shared with the cache, never changed
        status = {"phase": "Pending", **(pod.get("status") or {})}
        bound = {**pod, "spec": dict(pod.get("spec") or {}), "status": status}
        others = [c for c in status.get("conditions") or [] if c.get("type") != "PodScheduled"]
        if info is None:
            message = fit_error(len(candidates), reasons)
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
        node = info.name
        bound["spec"]["nodeName"] = node
        if node not in copied:          # the pass assumes the pod on its own copy
            copied.add(node)
            info = candidates[position[node]] = info.copy()
        info.add(bound)
        if placement is not None:
            placement.add(bound, info.node)
        status["conditions"] = [*others, {"type": "PodScheduled", "status": "True",
                                          "lastProbeTime": None,
                                          "lastTransitionTime": _iso(now)}]
        actions.append(Update(bound, event_for(
            pod, "Scheduled", f"Successfully assigned {meta.get('namespace', 'default')}/"
            f"{meta['name']} to {node}", component=COMPONENT)))
    return actions
