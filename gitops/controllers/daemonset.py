"""DaemonSet: one pod on every eligible node (pure).

Placement. A node should run the daemon pod when the template's nodeSelector and required
node affinity match it and it has no NoSchedule/NoExecute taint the pod does not tolerate;
daemon pods get Kubernetes' extra tolerations (not-ready and unreachable NoExecute,
unschedulable and the pressure taints NoSchedule). A NotReady node carries the not-ready
NoSchedule taint, so it keeps the pod it has but gets no new one; an untolerated NoExecute
taint, or a node that stops matching, removes the pod. Pods are created already bound
(`spec.nodeName`), named `<ds>-<5 random chars>`, and bypass the scheduler. A node
that stops matching the nodeSelector, or disappears, loses its pod; duplicates on one
node are cut back to the oldest; Failed pods are deleted and replaced. A node that goes
NotReady keeps the pod it has (Kubernetes' DaemonSet pods tolerate not-ready/unreachable)
but gets no new one, and such a pod counts as misscheduled in status, as upstream.

Deliberate difference: a replacement is created only once the node's previous pod is
gone (not while it terminates), so hostPorts and host paths never clash on one Docker
host.

Updates. Pods carry `controller-revision-hash` (the hash of the effective template,
config hash included when a lookup is given); each template has a ControllerRevision
`<ds>-<hash>` (see history.py), so `kubectl rollout history|undo ds/...` work. RollingUpdate (default): old pods are
deleted so that at most maxUnavailable (default 1; int or percent of
desiredNumberScheduled, rounded up; 0 counts as 1) eligible nodes lack an available,
updated pod; old pods that are not available anyway are replaced first and count against
the budget. maxSurge is not supported yet. OnDelete: pods are replaced only when deleted.
"""

from __future__ import annotations

import random
from collections import defaultdict

from gitops.controllers import history, replicaset
from gitops.controllers.rollout import (
    ConfigLookup,
    effective_template,
    resolve_int_or_percent,
    template_hash,
)
from gitops.model import key_of
from gitops.model.actions import Action, Create, Delete, SetStatus
from gitops.model.events import event_for
from gitops.model.meta import controller_of, is_deleting
from gitops.model.nodes import matches_affinity, untolerated
from gitops.model.pods import is_available, is_ready

COMPONENT = "daemonset-controller"
REVISION_LABEL = "controller-revision-hash"
# What the DaemonSet controller adds to every daemon pod (util.AddOrUpdateDaemonPodTolerations).
DAEMON_TOLERATIONS = (
    {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute"},
    {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute"},
    {"key": "node.kubernetes.io/disk-pressure", "operator": "Exists", "effect": "NoSchedule"},
    {"key": "node.kubernetes.io/memory-pressure", "operator": "Exists", "effect": "NoSchedule"},
    {"key": "node.kubernetes.io/pid-pressure", "operator": "Exists", "effect": "NoSchedule"},
    {"key": "node.kubernetes.io/unschedulable", "operator": "Exists", "effect": "NoSchedule"},
)


def _daemon_spec(template: dict) -> dict:
    spec = dict(template.get("spec") or {})
    tolerations = list(spec.get("tolerations") or [])
    spec["tolerations"] = tolerations + [t for t in DAEMON_TOLERATIONS if t not in tolerations]
    return spec


def should_continue(template: dict, node: dict) -> bool:
    """A daemon pod already here may stay."""
    pod = {"spec": _daemon_spec(template)}
    return matches_affinity(pod, node) and not untolerated(pod, node, ("NoExecute",))


def should_run(template: dict, node: dict) -> bool:
    """A new daemon pod may be placed here."""
    pod = {"spec": _daemon_spec(template)}
    return matches_affinity(pod, node) and not untolerated(pod, node)


def revision_of(pod: dict) -> str:
    return (pod.get("metadata", {}).get("labels") or {}).get(REVISION_LABEL, "")


def _terminal(pod: dict) -> bool:
    return pod.get("status", {}).get("phase") in ("Failed", "Succeeded")


def _age_key(pod: dict) -> tuple[str, str]:
    meta = pod["metadata"]
    return meta.get("creationTimestamp") or "", meta["name"]


def max_unavailable(ds: dict, desired: int) -> int:
    strategy = ds.get("spec", {}).get("updateStrategy") or {}
    value = (strategy.get("rollingUpdate") or {}).get("maxUnavailable")
    return max(1, resolve_int_or_percent(value, desired, True, 1,
                                         "spec.updateStrategy.rollingUpdate.maxUnavailable"))


def new_pod(ds: dict, template: dict, thash: str, node: str, rng: random.Random,
            taken: set[str]) -> dict:
    tmeta = template.get("metadata") or {}
    labelled = {**template, "metadata": {**tmeta, "labels": {
        **(tmeta.get("labels") or {}), REVISION_LABEL: thash}}}
    pod = replicaset.new_pod({**ds, "spec": {**ds.get("spec", {}), "template": labelled}},
                             rng, taken)
    pod["spec"] = {**_daemon_spec(pod), "nodeName": node}
    pod["status"]["conditions"] = [{"type": "PodScheduled", "status": "True"}]
    return pod


def reconcile(ds: dict, pods: list[dict], nodes: list[dict], now: float,
              rng: random.Random, lookup: ConfigLookup | None = None,
              revisions: list[dict] | None = None) -> list[Action]:
    """pods / revisions: those this DaemonSet controls (others in the lists are ignored);
    revisions None: the ControllerRevision history is not kept."""
    meta = ds["metadata"]
    if meta.get("deletionTimestamp"):
        return []
    spec = ds.get("spec", {})
    template = effective_template(ds, lookup)
    thash = template_hash(template)
    min_ready = int(spec.get("minReadySeconds") or 0)
    mine = [p for p in pods if (controller_of(p) or {}).get("uid") == meta.get("uid")]
    by_node: dict[str, list[dict]] = defaultdict(list)
    for pod in mine:
        by_node[pod.get("spec", {}).get("nodeName") or ""].append(pod)
    known = {n["metadata"]["name"]: n for n in nodes}

    actions: list[Action] = []
    taken = {p["metadata"]["name"] for p in mine}
    kept: dict[str, list[dict]] = {}        # eligible node -> live pods left after this pass

    def delete(pod: dict) -> None:
        actions.append(Delete(key_of(pod), _event(ds, "SuccessfulDelete",
                                                  f"Deleted pod: {pod['metadata']['name']}")))

    for node_name in sorted(by_node.keys() - known.keys()):
        for pod in by_node[node_name]:       # node gone (or never bound): nothing to run on
            if not is_deleting(pod):
                delete(pod)

    for node_name in sorted(known):
        node = known[node_name]
        on = by_node.get(node_name, [])
        live = sorted((p for p in on if not is_deleting(p) and not _terminal(p)), key=_age_key)
        leaving = [p for p in on if is_deleting(p) or _terminal(p)]
        for pod in leaving:
            if not is_deleting(pod):
                delete(pod)
        if not should_continue(template, node):
            for pod in live:
                delete(pod)
            continue
        for pod in live[1:]:                 # duplicates: keep the oldest
            delete(pod)
        if not should_run(template, node):
            continue                         # keep what runs; place nothing new
        if not live and not leaving:
            pod = new_pod(ds, template, thash, node_name, rng, taken)
            taken.add(pod["metadata"]["name"])
            actions.append(Create(pod, _event(ds, "SuccessfulCreate",
                                              f"Created pod: {pod['metadata']['name']}")))
        kept[node_name] = live

    if (spec.get("updateStrategy") or {}).get("type", "RollingUpdate") != "OnDelete":
        actions.extend(_rolling_update(ds, kept, thash, min_ready, now))
    if revisions is not None:
        name = meta["name"]
        in_use = {f"{name}-{revision_of(p)}" for p in mine if revision_of(p)}
        actions += history.reconcile(ds, revisions, f"{name}-{thash}", thash, in_use)
    actions.append(SetStatus(key_of(ds), status(ds, template, thash, by_node, nodes, now)))
    return actions


def _rolling_update(ds: dict, kept: dict[str, list[dict]], thash: str, min_ready: int,
                    now: float) -> list[Action]:
    """kept: eligible (Ready, matching) node -> its live pods before this pass."""
    unavailable = 0
    replace: list[dict] = []
    candidates: list[dict] = []
    for node_name in sorted(kept):
        live = kept[node_name]
        if len(live) != 1:                   # being created, or duplicates being removed
            unavailable += 1
            continue
        pod = live[0]
        available = is_available(pod, min_ready, now)
        if revision_of(pod) == thash:
            unavailable += 0 if available else 1
        elif not available:
            replace.append(pod)              # serves nobody: replace it now
            unavailable += 1
        else:
            candidates.append(pod)
    budget = max(0, max_unavailable(ds, len(kept)) - unavailable)
    return [Delete(key_of(p), _event(ds, "SuccessfulDelete",
                                     f"Deleted pod: {p['metadata']['name']}"))
            for p in [*replace, *candidates[:budget]]]


def _event(ds: dict, reason: str, message: str):
    return event_for(ds, reason, message, component=COMPONENT)


def status(ds: dict, template: dict, thash: str, by_node: dict[str, list[dict]],
           nodes: list[dict], now: float) -> dict:
    min_ready = int(ds.get("spec", {}).get("minReadySeconds") or 0)
    desired = current = ready = available = updated = misscheduled = 0
    for node in nodes:
        live = sorted((p for p in by_node.get(node["metadata"]["name"], [])
                       if not is_deleting(p) and not _terminal(p)), key=_age_key)
        if not should_run(template, node):
            misscheduled += 1 if live else 0
            continue
        desired += 1
        if not live:
            continue
        current += 1
        pod = live[0]
        ready += 1 if is_ready(pod) else 0
        available += 1 if is_available(pod, min_ready, now) else 0
        updated += 1 if revision_of(pod) == thash else 0
    return {"observedGeneration": ds["metadata"].get("generation", 1),
            "desiredNumberScheduled": desired, "currentNumberScheduled": current,
            "numberReady": ready, "numberAvailable": available,
            "numberUnavailable": max(0, desired - available),
            "updatedNumberScheduled": updated, "numberMisscheduled": misscheduled}
