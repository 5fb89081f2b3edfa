"""Deployment: one ReplicaSet per pod template; roll to the new one, retire the old ones.

The skeleton rolls out with a full surge: the new ReplicaSet is scaled to spec.replicas at
once and old ones are scaled to zero when the new one is fully available, so a rollout
never drops below the wanted capacity. (maxSurge/maxUnavailable math comes later.)
"""

from __future__ import annotations

import copy

from gitops.controllers.base import Action, Create, Delete, SetStatus, Update
from gitops.model import key_of
from gitops.model.meta import owner_ref, stable_hash

REVISION = "deployment.kubernetes.io/revision"


def template_hash(deploy: dict) -> str:
    return stable_hash(deploy["spec"].get("template", {}))


def reconcile(deploy: dict, replicasets: list[dict]) -> list[Action]:
    """replicasets: the ReplicaSets this Deployment owns."""
    if deploy["metadata"].get("deletionTimestamp"):
        return []
    spec = deploy.get("spec", {})
    want = spec.get("replicas", 1)
    thash = template_hash(deploy)
    name = f"{deploy['metadata']['name']}-{thash}"
    current = next((rs for rs in replicasets if rs["metadata"]["name"] == name), None)
    old = [rs for rs in replicasets if rs is not current]
    actions: list[Action] = []
    revision = max((int(rs["metadata"].get("annotations", {}).get(REVISION, 0))
                    for rs in replicasets), default=0)

    if current is None:
        current = new_replicaset(deploy, name, thash, want, revision + 1)
        actions.append(Create(current))
    elif current["spec"].get("replicas") != want:
        actions.append(Update(_scaled(current, want)))

    new_available = current.get("status", {}).get("availableReplicas", 0)
    if new_available >= want:
        for rs in old:
            if rs["spec"].get("replicas", 0) != 0:
                actions.append(Update(_scaled(rs, 0)))
    history = spec.get("revisionHistoryLimit", 10)
    retired = sorted((rs for rs in old if rs["spec"].get("replicas", 0) == 0
                      and not rs.get("status", {}).get("replicas")),
                     key=lambda rs: int(rs["metadata"].get("annotations", {}).get(REVISION, 0)))
    for rs in retired[: max(0, len(retired) - history)]:
        actions.append(Delete(key_of(rs)))

    actions.append(SetStatus(key_of(deploy), status(deploy, current, old)))
    return actions


def new_replicaset(deploy: dict, name: str, thash: str, replicas: int, revision: int) -> dict:
    template = copy.deepcopy(deploy["spec"].get("template", {}))
    tmeta = template.setdefault("metadata", {})
    tmeta["labels"] = {**(tmeta.get("labels") or {}), "pod-template-hash": thash}
    selector = copy.deepcopy(deploy["spec"].get("selector", {}))
    selector["matchLabels"] = {**(selector.get("matchLabels") or {}), "pod-template-hash": thash}
    return {"apiVersion": "apps/v1", "kind": "ReplicaSet",
            "metadata": {"name": name, "namespace": deploy["metadata"]["namespace"],
                         "labels": dict(tmeta["labels"]),
                         "annotations": {REVISION: str(revision)},
                         "ownerReferences": [owner_ref(deploy)]},
            "spec": {"replicas": replicas, "selector": selector, "template": template}}


def _scaled(rs: dict, replicas: int) -> dict:
    rs = copy.deepcopy(rs)
    rs["spec"]["replicas"] = replicas
    rs["metadata"].pop("resourceVersion", None)
    return rs


def status(deploy: dict, current: dict, old: list[dict]) -> dict:
    want = deploy.get("spec", {}).get("replicas", 1)
    cur = current.get("status", {})
    every = [current, *old]
    replicas = sum(rs.get("status", {}).get("replicas", 0) for rs in every)
    ready = sum(rs.get("status", {}).get("readyReplicas", 0) for rs in every)
    available = sum(rs.get("status", {}).get("availableReplicas", 0) for rs in every)
    updated = cur.get("replicas", 0)
    complete = cur.get("availableReplicas", 0) >= want and replicas == updated
    return {
        "observedGeneration": deploy["metadata"].get("generation", 1),
        "replicas": replicas, "updatedReplicas": updated, "readyReplicas": ready,
        "availableReplicas": available, "unavailableReplicas": max(0, want - available),
        "conditions": [
            {"type": "Available", "status": "True" if available >= want else "False",
             "reason": "MinimumReplicasAvailable" if available >= want
             else "MinimumReplicasUnavailable"},
            {"type": "Progressing", "status": "True",
             "reason": "NewReplicaSetAvailable" if complete else "ReplicaSetUpdated"},
        ],
    }
