"""The controllers on work queues: a pass reconciles what changed and nothing else, a
reconcile comes back on its own when the clock alone matters, a failing key backs off, a
long resync catches the rest; the scheduler sets aside pods that fit nowhere."""

from __future__ import annotations

import random

import pytest

from gitops.controllers.manager import RESYNC
from gitops.model import ObjectKey, key_of
from gitops.model.times import rfc3339
from gitops.testing import memory_store
from tests.control_plane import ControlPlane

NOW = 1_800_000_000.0


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> float:
        return self.now


def node(name: str, pods: str = "110") -> dict:
    return {"apiVersion": "v1", "kind": "Node", "metadata": {"name": name},
            "status": {"allocatable": {"cpu": "4", "memory": "8Gi", "pods": pods},
                       "conditions": [{"type": "Ready", "status": "True"}]}}


def deployment(name: str, replicas: int = 1, **spec) -> dict:
    return {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": name, "namespace": "default"},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
                     "template": {"metadata": {"labels": {"app": name}},
                                  "spec": {"containers": [{"name": "c", "image": "i:1"}]}},
                     **spec}}


def service(name: str) -> dict:
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name,
                                                               "namespace": "default"},
            "spec": {"selector": {"app": name}, "ports": [{"port": 80}]}}


def run_pods(store, clock: Clock, ready: bool = True) -> None:
    """A kubelet: bound pods run (Ready or not) with an IP."""
    for i, pod in enumerate(store.list("Pod")):
        if pod["spec"].get("nodeName") and pod.get("status", {}).get("phase") != "Running":
            store.update_status(key_of(pod), {
                "phase": "Running", "podIP": f"10.0.0.{i + 2}",
                "conditions": [{"type": "Ready", "status": str(ready),
                                "lastTransitionTime": rfc3339(clock())}]})


class Counting:
    """Counts the keys each controller reconciles."""

    def __init__(self, plane: ControlPlane) -> None:
        self.calls: list[tuple[str, object]] = []
        for controller in plane.controllers.controllers:
            controller.sync = self._wrap(controller.name, controller.sync)

    def _wrap(self, name, sync):
        def counted(key):
            self.calls.append((name, key))
            return sync(key)
        return counted

    def take(self) -> list[tuple[str, object]]:
        calls, self.calls = self.calls, []
        return calls


@pytest.fixture
def store():
    s = memory_store()
    yield s
    s.close()


def converge(plane: ControlPlane, store, clock: Clock, passes: int = 6) -> None:
    for _ in range(passes):
        plane.run_once()
        run_pods(store, clock)


def test_a_pass_after_convergence_reconciles_nothing(store):
    clock = Clock()
    store.create(node("n1"))
    for name in ("a", "b", "c"):
        store.create(deployment(name))
        store.create(service(name))
    plane = ControlPlane(store, random.Random(0), clock)
    counting = Counting(plane)
    converge(plane, store, clock)
    assert len(store.list("Pod")) == 3 and all(p["status"]["phase"] == "Running"
                                               for p in store.list("Pod"))
    counting.take()
    plane.run_once()
    assert counting.take() == []


def test_a_pod_change_reconciles_its_owners_and_its_service_only(store):
    clock = Clock()
    store.create(node("n1"))
    for name in ("a", "b"):
        store.create(deployment(name))
        store.create(service(name))
    plane = ControlPlane(store, random.Random(0), clock)
    counting = Counting(plane)
    converge(plane, store, clock)
    plane.run_once()
    counting.take()
    [pod] = [p for p in store.list("Pod") if p["metadata"]["labels"]["app"] == "a"]
    store.update_status(key_of(pod), {**pod["status"], "conditions": [
        {"type": "Ready", "status": "False", "lastTransitionTime": rfc3339(clock())}]})
    plane.run_once()
    rs = pod["metadata"]["ownerReferences"][0]["name"]
    assert sorted(counting.take()) == [
        ("deployment", ObjectKey("Deployment", "default", "a")),
        ("endpoints", ObjectKey("Service", "default", "a")),
        ("replicaset", ObjectKey("ReplicaSet", "default", rs))]
    ep = store.get(ObjectKey("Endpoints", "default", "a"))
    assert "addresses" not in ep["subsets"][0] and ep["subsets"][0]["notReadyAddresses"]


def test_min_ready_seconds_come_back_without_a_change(store):
    """A pod Ready for less than minReadySeconds is not available yet; its ReplicaSet is
    reconciled again when it becomes so, with nothing else changing."""
    clock = Clock()
    store.create(node("n1"))
    store.create(deployment("web", minReadySeconds=30))
    plane = ControlPlane(store, random.Random(0), clock)
    converge(plane, store, clock)
    [rs] = store.list("ReplicaSet")
    assert rs["status"].get("availableReplicas", 0) == 0 and rs["status"]["readyReplicas"] == 1
    assert plane.next_wakeup() == NOW + 30
    clock.now = NOW + 29
    plane.run_once()
    assert store.list("ReplicaSet")[0]["status"].get("availableReplicas", 0) == 0
    clock.now = NOW + 30
    plane.run_once()
    assert store.list("ReplicaSet")[0]["status"]["availableReplicas"] == 1
    plane.run_once()                  # the Deployment follows its ReplicaSet's status
    assert store.get(ObjectKey("Deployment", "default", "web"))["status"][
        "availableReplicas"] == 1


def test_a_stuck_rollout_times_out_at_its_progress_deadline(store):
    clock = Clock()
    store.create(node("n1"))
    store.create(deployment("web", progressDeadlineSeconds=60))
    plane = ControlPlane(store, random.Random(0), clock)
    for _ in range(4):
        plane.run_once()
        run_pods(store, clock, ready=False)         # it never gets Ready

    def progressing():
        status = store.get(ObjectKey("Deployment", "default", "web"))["status"]
        return next(c for c in status["conditions"] if c["type"] == "Progressing")
    assert progressing()["status"] == "True"
    due = plane.next_wakeup()
    assert due is not None and NOW + 60 < due <= NOW + 62
    clock.now = due
    plane.run_once()
    assert (progressing()["status"], progressing()["reason"]) == \
        ("False", "ProgressDeadlineExceeded")


def test_a_failing_key_backs_off_and_is_told_once(store):
    clock = Clock()
    store.create(node("n1"))
    bad = deployment("bad")
    bad["spec"]["strategy"] = {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "abc"}}
    store.create(bad)
    plane = ControlPlane(store, random.Random(0), clock)
    counting = Counting(plane)
    plane.run_once()
    key = ObjectKey("Deployment", "default", "bad")
    assert counting.take() == [("deployment", key)]
    queue = plane.controllers.controllers[3].queue
    assert queue.next_due() == NOW + 0.5
    plane.run_once()                                  # not yet: no retry
    assert counting.take() == []
    clock.now = NOW + 0.5
    plane.run_once()
    assert counting.take() == [("deployment", key)]
    assert queue.next_due() == NOW + 1.5              # twice as long
    [warning] = [e for e in store.list("Event") if e["reason"] == "ReconcileFailed"]
    assert warning["count"] == 1


def test_the_long_resync_reconciles_every_key(store):
    clock = Clock()
    store.create(node("n1"))
    store.create(deployment("web"))
    plane = ControlPlane(store, random.Random(0), clock)
    counting = Counting(plane)
    converge(plane, store, clock)
    plane.run_once()
    counting.take()
    clock.now = NOW + RESYNC
    plane.run_once()
    reconciled = {name for name, _ in counting.take()}
    assert {"garbage-collector", "service", "deployment", "replicaset"} <= reconciled


def test_the_scheduler_sets_aside_pods_that_fit_nowhere_until_room_is_made(store):
    clock = Clock()
    store.create(node("n1", pods="1"))
    store.create(deployment("web", replicas=2))
    plane = ControlPlane(store, random.Random(0), clock)
    for _ in range(3):
        plane.run_once()
    pods = store.list("Pod")
    assert sorted(bool(p["spec"].get("nodeName")) for p in pods) == [False, True]
    assert plane.scheduler.queue.unschedulable == 1 and plane.scheduler.queue.active == 0
    [waiting] = [p for p in pods if not p["spec"].get("nodeName")]
    assert "0/1 nodes are available: 1 Too many pods." in [
        c.get("message") for c in waiting["status"]["conditions"]]
    store.create(node("n2"))                          # room appears: tried again at once
    assert plane.scheduler.queue.active == 1
    plane.scheduler.run_once()
    assert store.get(key_of(waiting))["spec"]["nodeName"] == "n2"


def test_a_pod_that_goes_makes_room_for_one_set_aside(store):
    clock = Clock()
    store.create(node("n1", pods="1"))
    plane = ControlPlane(store, random.Random(0), clock)
    for name in ("first", "second"):
        store.create({"apiVersion": "v1", "kind": "Pod",
                      "metadata": {"name": name, "namespace": "default",
                                   "creationTimestamp": rfc3339(NOW)},
                      "spec": {"containers": [{"name": "c", "image": "i"}]}})
    plane.run_once()
    assert store.get(ObjectKey("Pod", "default", "second"))["spec"].get("nodeName") is None
    store.delete(ObjectKey("Pod", "default", "first"))
    plane.run_once()
    assert store.get(ObjectKey("Pod", "default", "second"))["spec"]["nodeName"] == "n1"


def test_a_service_has_its_address_when_stored_so_pods_bind_at_once(store):
    """A pod started before a Service has its ClusterIP would miss it in its environment:
    the registry allocates it with the write, so the scheduler never waits."""
    clock = Clock()
    store.create(node("n1"))
    plane = ControlPlane(store, random.Random(0), clock)
    made = store.create(service("web"))
    assert made["spec"]["clusterIP"] and made["spec"]["clusterIPs"] == [made["spec"][
        "clusterIP"]]
    store.create({"apiVersion": "v1", "kind": "Pod",
                  "metadata": {"name": "client", "namespace": "default"},
                  "spec": {"containers": [{"name": "c", "image": "i"}]}})
    plane.scheduler.run_once()                      # before any controller pass
    assert store.get(ObjectKey("Pod", "default", "client"))["spec"]["nodeName"] == "n1"
