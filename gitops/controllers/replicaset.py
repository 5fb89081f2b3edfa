"""ReplicaSet: keep exactly spec.replicas active pods; delete the least useful first."""

from __future__ import annotations

import copy
import random

from gitops.model import key_of
from gitops.model.actions import Action, Create, Delete, SetStatus
from gitops.model.events import event_for
from gitops.model.meta import owner_ref
from gitops.model.pods import deletion_order, is_active, is_available, is_ready

COMPONENT = "replicaset-controller"
_SUFFIX_CHARS = "bcdfghjklmnpqrstvwxz2456789"   # Kubernetes' vowel-free alphabet


def reconcile(rs: dict, pods: list[dict], rng: random.Random, now: float,
              related: list[dict] | None = None, component: str = COMPONENT) -> list[Action]:
    """pods: the pods this ReplicaSet owns (by controller ownerReference); related: the
    pods of every ReplicaSet of the same Deployment, to rank crowded nodes first."""
    if rs["metadata"].get("deletionTimestamp"):
        return []
    want = rs.get("spec", {}).get("replicas", 1)
    active = [p for p in pods if is_active(p)]
    actions: list[Action] = []
    if len(active) < want:
        taken = {p["metadata"]["name"] for p in pods}
        for _ in range(want - len(active)):
            pod = new_pod(rs, rng, taken)
            taken.add(pod["metadata"]["name"])
            actions.append(Create(pod, event_for(rs, "SuccessfulCreate",
                                                 f"Created pod: {pod['metadata']['name']}",
                                                 component=component)))
    elif len(active) > want:
        for pod in deletion_order(active, related, now)[: len(active) - want]:
            actions.append(Delete(key_of(pod), event_for(
                rs, "SuccessfulDelete", f"Deleted pod: {pod['metadata']['name']}",
                component=component)))
    actions.append(SetStatus(key_of(rs), status(rs, active, now)))
    return actions


def new_pod(rs: dict, rng: random.Random, taken: set[str]) -> dict:
    template = copy.deepcopy(rs["spec"]["template"])
    base = rs["metadata"]["name"]
    while True:
        name = f"{base}-{''.join(rng.choice(_SUFFIX_CHARS) for _ in range(5))}"
        if name not in taken:
            break
    meta = template.get("metadata") or {}
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": rs["metadata"]["namespace"],
                         "labels": dict(meta.get("labels") or {}),
                         "annotations": dict(meta.get("annotations") or {}),
                         "ownerReferences": [owner_ref(rs)]},
            "spec": template.get("spec", {}),
            "status": {"phase": "Pending"}}


def status(rs: dict, active: list[dict], now: float) -> dict:
    min_ready = rs.get("spec", {}).get("minReadySeconds", 0)
    ready = sum(1 for p in active if is_ready(p))
    available = sum(1 for p in active if is_available(p, min_ready, now))
    return {"replicas": len(active), "fullyLabeledReplicas": len(active),
            "readyReplicas": ready, "availableReplicas": available,
            "observedGeneration": rs["metadata"].get("generation", 1)}
