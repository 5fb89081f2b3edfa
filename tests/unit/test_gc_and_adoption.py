"""Garbage collection by ownerReferences, propagation policies, adoption and release, and
the order a ReplicaSet deletes pods in."""

from __future__ import annotations

import random

import pytest

from gitops.controllers import gc, replicaset
from gitops.controllers.claims import claim
from gitops.controllers.manager import ControllerManager
from gitops.model import ObjectKey
from gitops.model.actions import Delete, Update
from gitops.model.pods import deletion_order
from gitops.store.registry import execute
from gitops.testing import memory_store

NOW = 1_800_000_000.0


def obj(kind, name, uid, owners=(), labels=None, deleting=False, finalizers=None,
        block=True):
    meta = {"name": name, "namespace": "default", "uid": uid, "labels": labels or {}}
    if owners:
        meta["ownerReferences"] = [{"apiVersion": "apps/v1", "kind": "X", "name": o,
                                    "uid": o, "controller": i == 0,
                                    "blockOwnerDeletion": block}
                                   for i, o in enumerate(owners)]
    if deleting:
        meta["deletionTimestamp"] = "2027-01-01T00:00:00Z"
    if finalizers:
        meta["finalizers"] = finalizers
    return {"apiVersion": "v1", "kind": kind, "metadata": meta, "spec": {}}


def _summary(actions):
    out = []
    for a in actions:
        if isinstance(a, Delete):
            out.append(("delete", a.key.name, a.propagation))
        elif isinstance(a, Update):
            refs = [r["uid"] for r in a.obj["metadata"].get("ownerReferences") or []]
            out.append(("update", a.obj["metadata"]["name"], tuple(refs),
                        tuple(a.obj["metadata"].get("finalizers") or ())))
    return out


@pytest.mark.parametrize("objects, want", [
    # owner alive: nothing
    ([obj("ReplicaSet", "rs", "rs"), obj("Pod", "p", "p", ["rs"])], []),
    # owner gone: the dependent goes (background)
    ([obj("Pod", "p", "p", ["gone"])], [("delete", "p", "Background")]),
    # one of two owners gone: only the dangling reference goes
    ([obj("ConfigMap", "a", "a"), obj("Pod", "p", "p", ["a", "gone"])],
     [("update", "p", ("a",), ())]),
    # no owners at all: never collected
    ([obj("Pod", "free", "free")], []),
    # already being deleted: left to whoever deletes it
    ([obj("Pod", "p", "p", ["gone"], deleting=True)], []),
    # orphan deletion: dependents are freed first, then the owner goes
    ([obj("ReplicaSet", "rs", "rs", deleting=True, finalizers=["orphan"]),
      obj("Pod", "p", "p", ["rs"])], [("update", "p", (), ())]),
    ([obj("ReplicaSet", "rs", "rs", deleting=True, finalizers=["orphan"])],
     [("delete", "rs", "Background")]),
    # another finalizer still holds the owner: only ours is removed
    ([obj("ReplicaSet", "rs", "rs", deleting=True, finalizers=["orphan", "x/keep"])],
     [("update", "rs", (), ("x/keep",))]),
    # foreground: dependents first (foreground again if they own things), owner waits
    ([obj("Deployment", "d", "d", deleting=True, finalizers=["foregroundDeletion"]),
      obj("ReplicaSet", "rs", "rs", ["d"]), obj("Pod", "p", "p", ["rs"])],
     [("delete", "rs", "Foreground")]),
    ([obj("Deployment", "d", "d", deleting=True, finalizers=["foregroundDeletion"]),
      obj("ReplicaSet", "rs", "rs", ["d"], deleting=True)], []),
    # dependents that do not block the owner's deletion do not hold it
    ([obj("Deployment", "d", "d", deleting=True, finalizers=["foregroundDeletion"]),
      obj("ReplicaSet", "rs", "rs", ["d"], deleting=True, block=False)],
     [("delete", "d", "Background")]),
])
def test_garbage_collector(objects, want):
    assert _summary(gc.reconcile(objects)) == want


@pytest.fixture
def store(tmp_path):
    s = memory_store()
    yield s
    s.close()


def _run_gc(store, passes=4):
    for _ in range(passes):
        execute(store, gc.reconcile(store.all_objects()), "garbage-collector")


def _tree(store):
    d = store.create(obj("Deployment", "d", "d"))
    rs = store.create(obj("ReplicaSet", "rs", "rs", ["d"]))
    store.create(obj("ConfigMap", "c", "c", ["rs"]))
    return d, rs


@pytest.mark.parametrize("policy, left", [
    ("Background", set()),
    ("Foreground", set()),
    ("Orphan", {"rs"}),
])
def test_propagation_policies_through_the_store(store, policy, left):
    _tree(store)
    store.request_delete(ObjectKey("Deployment", "default", "d"), policy)
    if policy != "Background":       # only marked until the collector has done its part
        assert store.get(ObjectKey("Deployment", "default", "d"))["metadata"][
            "deletionTimestamp"]
    _run_gc(store)
    assert store.get(ObjectKey("Deployment", "default", "d")) is None
    remaining = {o["metadata"]["name"] for o in store.list("ReplicaSet")}
    assert remaining == left
    if policy == "Orphan":
        rs = store.get(ObjectKey("ReplicaSet", "default", "rs"))
        assert "ownerReferences" not in rs["metadata"]
        assert store.get(ObjectKey("ConfigMap", "default", "c")) is not None
    else:
        assert store.get(ObjectKey("ConfigMap", "default", "c")) is None


def test_annotation_chooses_the_propagation_of_a_prune(store):
    d, _ = _tree(store)
    d["metadata"]["annotations"] = {"gitops.io/delete-propagation": "orphan"}
    store.update(d)
    store.request_delete(ObjectKey("Deployment", "default", "d"))
    _run_gc(store)
    assert store.get(ObjectKey("ReplicaSet", "default", "rs")) is not None


def rs_obj(uid="rs-1", selector=None, deleting=False):
    o = obj("ReplicaSet", "web-abc", uid, deleting=deleting)
    o["apiVersion"] = "apps/v1"
    o["spec"] = {"replicas": 1, "selector": selector if selector is not None else
                 {"matchLabels": {"app": "web"}},
                 "template": {"metadata": {"labels": {"app": "web"}},
                              "spec": {"containers": [{"name": "c", "image": "i"}]}}}
    return o


@pytest.mark.parametrize("candidate, owner, adopted, released", [
    (obj("Pod", "orphan", "p", labels={"app": "web"}), rs_obj(), True, False),
    (obj("Pod", "other-app", "p", labels={"app": "db"}), rs_obj(), False, False),
    (obj("Pod", "owned-elsewhere", "p", ["other"], labels={"app": "web"}), rs_obj(), False,
     False),
    (obj("Pod", "deleting", "p", labels={"app": "web"}, deleting=True), rs_obj(), False, False),
    (obj("Pod", "orphan", "p", labels={"app": "web"}), rs_obj(deleting=True), False, False),
    (obj("Pod", "orphan", "p", labels={"app": "web"}), rs_obj(selector={}), False, False),
    # a pod we control whose labels no longer match is released
    (obj("Pod", "relabelled", "p", ["rs-1"], labels={"app": "debug"}), rs_obj(), False, True),
])
def test_claim(candidate, owner, adopted, released):
    owned, actions = claim(owner, owner["spec"]["selector"], [candidate])
    assert len(owned) == (1 if adopted else 0)
    refs = [a.obj["metadata"].get("ownerReferences") for a in actions]
    if adopted:
        assert refs == [[{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-abc",
                          "uid": "rs-1", "controller": True, "blockOwnerDeletion": True}]]
    elif released:
        assert refs == [None] and owned == []
    else:
        assert actions == []


def test_orphaned_pods_are_adopted_by_a_new_replicaset(store):
    """Orphan-delete a ReplicaSet, create it again: it adopts the pods, makes none new."""
    store.create({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n1"},
                  "status": {"allocatable": {"cpu": "4", "memory": "8Gi", "pods": "110"},
                             "conditions": [{"type": "Ready", "status": "True"}]}})
    rs = rs_obj(uid="")
    del rs["metadata"]["uid"]
    rs["spec"]["replicas"] = 2
    store.create(rs)
    mgr = ControllerManager(store, random.Random(0), clock=lambda: NOW)
    mgr.run_once()
    first = sorted(p["metadata"]["name"] for p in store.list("Pod"))
    assert len(first) == 2
    store.request_delete(ObjectKey("ReplicaSet", "default", "web-abc"), "Orphan")
    mgr.run_once()
    mgr.run_once()
    assert store.list("ReplicaSet") == []
    assert all("ownerReferences" not in p["metadata"] for p in store.list("Pod"))
    store.create(rs)
    mgr.run_once()
    pods = store.list("Pod")
    assert sorted(p["metadata"]["name"] for p in pods) == first
    uid = store.get(ObjectKey("ReplicaSet", "default", "web-abc"))["metadata"]["uid"]
    assert all(p["metadata"]["ownerReferences"][0]["uid"] == uid for p in pods)
    events = {(e["reason"], e["message"]) for e in store.list("Event")}
    assert ("SuccessfulCreate", f"Created pod: {first[0]}") in events


def pod(name, node="n1", phase="Running", ready=True, created="2027-01-01T00:00:00Z",
        ready_at="2027-01-01T00:00:10Z", restarts=0, cost=None):
    p = {"kind": "Pod", "metadata": {"name": name, "uid": name, "creationTimestamp": created},
         "spec": {"nodeName": node} if node else {},
         "status": {"phase": phase,
                    "conditions": [{"type": "Ready", "status": str(ready),
                                    "lastTransitionTime": ready_at}],
                    "containerStatuses": [{"name": "c", "restartCount": restarts}]}}
    if cost is not None:
        p["metadata"]["annotations"] = {"controller.kubernetes.io/pod-deletion-cost": str(cost)}
    return p


@pytest.mark.parametrize("pods, first", [
    ([pod("bound"), pod("unbound", node=None)], "unbound"),
    ([pod("running"), pod("pending", phase="Pending")], "pending"),
    ([pod("ready"), pod("unready", ready=False)], "unready"),
    ([pod("cheap", cost=-10), pod("dear", cost=100)], "cheap"),
    # ready more recently goes first
    ([pod("early", ready_at="2027-01-01T00:00:00Z"),
      pod("late", ready_at="2027-01-01T06:00:00Z")], "late"),
    ([pod("stable"), pod("crashy", restarts=5)], "crashy"),
    ([pod("old", created="2026-01-01T00:00:00Z"), pod("new", created="2027-01-01T00:00:00Z")],
     "new"),
    # not ready beats newer: unhealthy first
    ([pod("new", created="2027-06-01T00:00:00Z"),
      pod("old-unready", ready=False, created="2025-01-01T00:00:00Z")], "old-unready"),
])
def test_deletion_order(pods, first):
    assert deletion_order(pods)[0]["metadata"]["name"] == first
    assert deletion_order(list(reversed(pods)))[0]["metadata"]["name"] == first


def test_crowded_nodes_lose_pods_first():
    pods = [pod("a", node="n1"), pod("b", node="n1"), pod("c", node="n2")]
    related = [*pods, pod("other-rs", node="n2"), pod("other-rs2", node="n2")]
    assert deletion_order(pods)[0]["metadata"]["name"] in ("a", "b")     # 2 on n1
    assert deletion_order(pods, related)[0]["metadata"]["name"] == "c"


def test_ready_times_compare_on_a_log_scale():
    # 100 s and 110 s ago fall in the same power-of-two bucket: the uid decides
    now = 1_800_000_000.0
    from gitops.model.events import iso
    a = pod("b-uid", ready_at=iso(now - 100))
    b = pod("a-uid", ready_at=iso(now - 110))
    assert deletion_order([a, b], now=now)[0]["metadata"]["name"] == "a-uid"
    assert deletion_order([a, b])[0]["metadata"]["name"] == "b-uid"    # exact: newest


def test_replicaset_scale_down_events():
    rs = rs_obj()
    rs["spec"]["replicas"] = 1
    pods = [pod("keep"), pod("drop", ready=False)]
    for p in pods:
        p["metadata"]["ownerReferences"] = [{"uid": "rs-1", "controller": True}]
    actions = replicaset.reconcile(rs, pods, random.Random(0), NOW)
    [d] = [a for a in actions if isinstance(a, Delete)]
    assert d.key.name == "drop"
    assert (d.event.reason, d.event.message, d.event.component) == (
        "SuccessfulDelete", "Deleted pod: drop", "replicaset-controller")


@pytest.mark.parametrize("kind", ["StatefulSet", "DaemonSet"])
def test_statefulset_and_daemonset_adopt_orphaned_pods(store, kind):
    store.create({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n1"},
                  "status": {"allocatable": {"cpu": "4", "memory": "8Gi", "pods": "110"},
                             "conditions": [{"type": "Ready", "status": "True"}]}})
    owner = {"apiVersion": "apps/v1", "kind": kind,
             "metadata": {"name": "db", "namespace": "default"},
             "spec": {"replicas": 1, "serviceName": "db",
                      "selector": {"matchLabels": {"app": "db"}},
                      "template": {"metadata": {"labels": {"app": "db"}},
                                   "spec": {"containers": [{"name": "c", "image": "i"}]}}}}
    store.create(owner)
    mgr = ControllerManager(store, random.Random(0), clock=lambda: NOW)
    mgr.run_once()
    [first] = store.list("Pod")
    store.request_delete(ObjectKey(kind, "default", "db"), "Orphan")
    mgr.run_once()
    mgr.run_once()
    assert store.list(kind) == [] and "ownerReferences" not in store.list("Pod")[0]["metadata"]
    store.create(owner)
    mgr.run_once()
    [pod] = store.list("Pod")
    assert pod["metadata"]["uid"] == first["metadata"]["uid"]          # adopted, not remade
    assert pod["metadata"]["ownerReferences"][0]["uid"] == \
        store.get(ObjectKey(kind, "default", "db"))["metadata"]["uid"]
