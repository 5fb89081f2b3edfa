"""ReplicationController: pods kept at spec.replicas through its label-map selector (pure
reconcile, table-driven) and through the controllers' work queues."""

from __future__ import annotations

import random

import pytest

from gitops.controllers import replicationcontroller
from gitops.model import ObjectKey
from gitops.model.actions import Create, Delete, SetStatus
from gitops.testing import memory_store
from tests.control_plane import ControlPlane

NOW = 1_800_000_000.0


def rc(replicas=2, selector=None, labels=None, **spec):
    body = {"template": {"metadata": {"labels": labels or {"app": "web"}},
                         "spec": {"containers": [{"name": "c", "image": "img:1"}]}}, **spec}
    if replicas is not None:
        body["replicas"] = replicas
    if selector is not None:
        body["selector"] = selector
    return {"apiVersion": "v1", "kind": "ReplicationController",
            "metadata": {"name": "web", "namespace": "default", "uid": "rc-uid",
                         "generation": 1}, "spec": body}


def pod(name, ready=True, phase="Running"):
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": "default", "uid": f"{name}-uid",
                         "labels": {"app": "web"}, "creationTimestamp": "2026-01-01T00:00:00Z",
                         "ownerReferences": [{"apiVersion": "v1",
                                              "kind": "ReplicationController", "name": "web",
                                              "uid": "rc-uid", "controller": True}]},
            "spec": {"nodeName": "n1", "containers": [{"name": "c", "image": "img:1"}]},
            "status": {"phase": phase,
                       "conditions": [{"type": "Ready", "status": str(ready)}]}}


@pytest.mark.parametrize("obj, selector", [
    (rc(selector={"app": "web"}), {"matchLabels": {"app": "web"}}),
    (rc(labels={"app": "x", "tier": "y"}), {"matchLabels": {"app": "x", "tier": "y"}}),
    (rc(selector={}, labels={"app": "x"}), {"matchLabels": {"app": "x"}}),   # defaulted
])
def test_selector_is_the_label_map_or_the_template_labels(obj, selector):
    assert replicationcontroller.selector(obj) == selector


@pytest.mark.parametrize("replicas, pods, creates, deletes, status", [
    (2, [], 2, 0, (0, 0)),
    (None, [], 1, 0, (0, 0)),                                  # replicas defaults to 1
    (2, [pod("a"), pod("b", ready=False)], 0, 0, (2, 1)),
    (1, [pod("a"), pod("b", ready=False)], 0, 1, (2, 1)),      # the unready one goes
    (2, [pod("a"), pod("f", phase="Failed")], 1, 0, (1, 1)),   # a finished pod is replaced
    (0, [pod("a")], 0, 1, (1, 1)),
])
def test_reconcile_keeps_replicas(replicas, pods, creates, deletes, status):
    actions = replicationcontroller.reconcile(rc(replicas), pods, random.Random(0), NOW)
    made = [a for a in actions if isinstance(a, Create)]
    gone = [a for a in actions if isinstance(a, Delete)]
    assert (len(made), len(gone)) == (creates, deletes)
    if deletes == 1 and len(pods) == 2 and replicas == 1:
        assert gone[0].key.name == "b"
    for a in made:
        ref = a.obj["metadata"]["ownerReferences"][0]
        assert (ref["kind"], ref["apiVersion"], ref["controller"]) == \
            ("ReplicationController", "v1", True)
        assert a.obj["metadata"]["name"].startswith("web-")
        assert a.event.reason == "SuccessfulCreate" and a.event.component == \
            "replication-controller"
    [st] = [a for a in actions if isinstance(a, SetStatus)]
    assert (st.status["replicas"], st.status["readyReplicas"]) == status
    assert st.status["observedGeneration"] == 1


def test_control_plane_runs_pods_adopts_orphans_and_follows_scale():
    store = memory_store()
    store.create({"apiVersion": "v1", "kind": "Node",
                  "metadata": {"name": "n1"},
                  "status": {"allocatable": {"cpu": "4", "memory": "8Gi", "pods": "110"},
                             "conditions": [{"type": "Ready", "status": "True"}]}})
    orphan = pod("orphan")
    del orphan["metadata"]["ownerReferences"], orphan["metadata"]["uid"]
    store.create(orphan)
    obj = rc(3, selector={"app": "web"})
    del obj["metadata"]["uid"]
    store.create(obj)
    plane = ControlPlane(store, random.Random(0))
    for _ in range(3):
        plane.run_once()
    pods = store.list("Pod")
    assert len(pods) == 3 and all(p["spec"].get("nodeName") == "n1" for p in pods)
    owners = {p["metadata"]["ownerReferences"][0]["kind"] for p in pods}
    assert owners == {"ReplicationController"}
    assert "orphan" in {p["metadata"]["name"] for p in pods}          # adopted, not doubled
    live = store.get(ObjectKey("ReplicationController", "default", "web"))
    assert live["status"]["replicas"] == 3
    store.update({**live, "spec": {**live["spec"], "replicas": 1}})
    for _ in range(2):
        plane.run_once()
    alive = [p for p in store.list("Pod") if not p["metadata"].get("deletionTimestamp")]
    assert len(alive) == 1
    store.close()
