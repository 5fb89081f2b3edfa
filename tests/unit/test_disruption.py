"""PodDisruptionBudget arithmetic and status (pure), as the disruption controller does it."""

from __future__ import annotations

import pytest

from gitops.controllers import disruption as D
from gitops.model.actions import SetStatus

NOW = "2027-01-01T00:00:00Z"


def pdb(**spec):
    return {"apiVersion": "policy/v1", "kind": "PodDisruptionBudget",
            "metadata": {"name": "web", "namespace": "default", "generation": 2},
            "spec": {"selector": {"matchLabels": {"app": "web"}}, **spec}}


def pod(name, ready=True, owner=None, app="web", ns="default", deleting=False, phase="Running"):
    meta = {"name": name, "namespace": ns, "labels": {"app": app}}
    if owner:
        meta["ownerReferences"] = [{"kind": owner[0], "name": owner[1], "controller": True}]
    if deleting:
        meta["deletionTimestamp"] = NOW
    return {"kind": "Pod", "metadata": meta, "status": {"phase": phase, "conditions": [
        {"type": "Ready", "status": str(ready)}]}}


OBJECTS = {
    ("ReplicaSet", "web-1"): {"kind": "ReplicaSet", "metadata": {
        "name": "web-1", "ownerReferences": [{"kind": "Deployment", "name": "web",
                                               "controller": True}]}, "spec": {"replicas": 3}},
    ("Deployment", "web"): {"kind": "Deployment", "metadata": {"name": "web"},
                            "spec": {"replicas": 4}},
    ("StatefulSet", "db"): {"kind": "StatefulSet", "metadata": {"name": "db"},
                            "spec": {"replicas": 5}},
}


def lookup(kind, ns, name):
    return OBJECTS.get((kind, name))


THREE = [pod("a", owner=("ReplicaSet", "web-1")), pod("b", owner=("ReplicaSet", "web-1")),
         pod("c", ready=False, owner=("ReplicaSet", "web-1"))]


@pytest.mark.parametrize("spec, pods, expected, healthy, desired, allowed", [
    ({"minAvailable": 1}, THREE, 3, 2, 1, 1),
    ({"minAvailable": 2}, THREE, 3, 2, 2, 0),
    ({"minAvailable": "50%"}, THREE, 4, 2, 2, 0),          # of the Deployment's 4
    ({"minAvailable": "25%"}, THREE, 4, 2, 1, 1),
    ({"maxUnavailable": 1}, THREE, 4, 2, 3, 0),
    ({"maxUnavailable": "50%"}, THREE, 4, 2, 2, 0),
    ({"maxUnavailable": 3}, THREE, 4, 2, 1, 1),
    ({"maxUnavailable": 1}, [pod("d", owner=("StatefulSet", "db"))], 5, 1, 4, 0),
    ({"maxUnavailable": 1}, [pod("x"), pod("y")], 2, 2, 1, 1),    # no controller: itself
    # other apps, other namespaces, deleted and finished pods do not count as healthy
    ({"minAvailable": 1}, [pod("o", app="db"), pod("n", ns="other"), pod("g", deleting=True),
                           pod("s", phase="Succeeded")], 1, 0, 1, 0),
])
def test_budget(spec, pods, expected, healthy, desired, allowed):
    b = D.budget(pdb(**spec), pods, lookup)
    assert (b.expected, b.healthy, b.desired, b.allowed) == (expected, healthy, desired, allowed)


def test_status_is_written_only_when_it_changes():
    p = pdb(minAvailable=1)
    [action] = D.reconcile([p], THREE, lookup, NOW)
    assert isinstance(action, SetStatus)
    st = action.status
    assert (st["expectedPods"], st["currentHealthy"], st["desiredHealthy"],
            st["disruptionsAllowed"], st["observedGeneration"]) == (3, 2, 1, 1, 2)
    cond = st["conditions"][0]
    assert (cond["type"], cond["status"], cond["reason"]) == ("DisruptionAllowed", "True",
                                                              "SufficientPods")
    p["status"] = st
    assert D.reconcile([p], THREE, lookup, "2027-01-01T00:05:00Z") == []
    [action] = D.reconcile([p], THREE[:1], lookup, "2027-01-01T00:06:00Z")
    cond = action.status["conditions"][0]
    assert (cond["status"], cond["reason"], cond["lastTransitionTime"]) == \
        ("False", "InsufficientPods", "2027-01-01T00:06:00Z")


def test_the_controller_manager_keeps_the_status(tmp_path):
    import random

    from gitops.controllers.manager import ControllerManager
    from gitops.model import ObjectKey
    from gitops.testing import memory_store
    store = memory_store()
    store.create(pdb(maxUnavailable=1))
    for name in ("a", "b"):
        p = pod(name)
        store.create({"apiVersion": "v1", "kind": "Pod", "metadata": p["metadata"],
                      "spec": {"containers": [{"name": "c", "image": "i:1"}]}})
        store.update_status(ObjectKey("Pod", "default", name), p["status"])
    mgr = ControllerManager(store, random.Random(0), clock=lambda: 1_800_000_000.0)
    mgr.run_once()
    st = store.get(ObjectKey("PodDisruptionBudget", "default", "web"))["status"]
    assert (st["expectedPods"], st["currentHealthy"], st["disruptionsAllowed"]) == (2, 2, 1)
    store.close()
