"""ReplicationController: the ReplicaSet's controller over a plain label-map selector (pure).

Kubernetes defaults an empty selector to the template's labels; the pods, their names,
the order they are deleted in and the status are the ReplicaSet's.
"""

from __future__ import annotations

import random

from gitops.controllers import replicaset
from gitops.model.actions import Action

COMPONENT = "replication-controller"


def selector(rc: dict) -> dict | None:
    """The RC's selector as a LabelSelector (None when neither it nor the template has
    labels: nothing is adopted then, as Kubernetes refuses such an RC)."""
    spec = rc.get("spec") or {}
    labels = spec.get("selector") or \
        ((spec.get("template") or {}).get("metadata") or {}).get("labels")
    return {"matchLabels": dict(labels)} if labels else None


def reconcile(rc: dict, pods: list[dict], rng: random.Random, now: float) -> list[Action]:
    """pods: the pods this RC controls (after adoption)."""
    spec = rc.get("spec") or {}
    if not isinstance(spec.get("template"), dict):
        return []
    want = spec.get("replicas")
    rc = {**rc, "spec": {**spec, "replicas": 1 if want is None else want}}
    return replicaset.reconcile(rc, pods, rng, now, component=COMPONENT)
