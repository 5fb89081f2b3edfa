"""A cluster's status writes that change nothing stay quiet: no new resourceVersion on the
server (managedFields keep their time), no write from the node (its cache has that
status), no wake-up from the echo of its own write, and a node's loop wakes only for the
pods bound to it. Without these, every node's pass wrote every pod's status, each write
woke every node's pass again, and a 6-pod rollout ran hundreds of writes a second."""

from __future__ import annotations

import pytest

from gitops.agent.status import pod_status
from gitops.api.kube import managed
from gitops.api.kube.openapi import kind_schema
from gitops.api.kube.registry import for_kind
from gitops.api.remote import RemoteStore
from gitops.cluster.node import bound_to
from gitops.model import ObjectKey

POD = kind_schema(for_kind("Pod"))


def pod(rv: str = "5", phase: str = "Running", node: str = "h2") -> dict:
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "p", "namespace": "default", "uid": "u",
                         "resourceVersion": rv},
            "spec": {"nodeName": node, "containers": [{"name": "app", "image": "i"}]},
            "status": {"phase": phase, "qosClass": "BestEffort"}}


# -- the server: managedFields of a write that changes nothing ---------------------------
def test_a_status_write_that_changes_nothing_keeps_its_managed_fields(monkeypatch):
    first = pod(phase="Pending")
    monkeypatch.setattr(managed, "now_iso", lambda: "2026-01-01T00:00:00Z")
    first["metadata"]["managedFields"] = managed.record_update(None, first, "kubelet", "v1",
                                                               POD, "status")
    running = pod()
    running["metadata"]["managedFields"] = managed.record_update(first, running, "kubelet",
                                                                 "v1", POD, "status")
    monkeypatch.setattr(managed, "now_iso", lambda: "2026-01-01T00:00:07Z")
    again = managed.record_update(running, pod(), "kubelet", "v1", POD, "status")
    assert again == running["metadata"]["managedFields"]     # same time: a no-op write
    changed = managed.record_update(running, pod(phase="Failed"), "kubelet", "v1", POD,
                                    "status")
    assert [e["time"] for e in changed] == ["2026-01-01T00:00:07Z"]


def test_a_no_op_write_keeps_the_entry_in_its_place(monkeypatch):
    monkeypatch.setattr(managed, "now_iso", lambda: "2026-01-01T00:00:00Z")
    base = pod()
    base["metadata"]["managedFields"] = [
        *managed.record_update(None, base, "kubelet", "v1", POD, "status"),
        {"manager": "other", "operation": "Update", "apiVersion": "v1", "time": "t",
         "fieldsType": "FieldsV1", "fieldsV1": {"f:metadata": {"f:labels": {}}}}]
    monkeypatch.setattr(managed, "now_iso", lambda: "2026-01-01T00:00:09Z")
    assert managed.record_update(base, pod(), "kubelet", "v1", POD, "status") == \
        base["metadata"]["managedFields"]


# -- the node: its remote store ----------------------------------------------------------
class FakeClient:
    """The API as the remote store calls it; answers status PUTs with a new version."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, str]] = []
        self.rv = 5

    def request(self, method: str, path: str, body: dict | None = None) -> dict:
        self.requests.append((method, path))
        self.rv += 1
        return {**body, "metadata": {**body["metadata"], "resourceVersion": str(self.rv)}}


@pytest.fixture
def remote():
    store = RemoteStore(FakeClient())
    told: list[tuple[str, str]] = []
    store.watch(lambda event, obj: told.append((event, obj["metadata"]["resourceVersion"])))
    store._apply_event("ADDED", pod())
    told.clear()
    return store, told


def test_an_unchanged_status_is_not_written(remote):
    store, told = remote
    store.update_status(ObjectKey("Pod", "default", "p"), pod()["status"])
    assert store.client.requests == [] and told == []
    store.update_status(ObjectKey("Pod", "default", "p"), pod(phase="Succeeded")["status"])
    assert store.client.requests == [("PUT", "/api/v1/namespaces/default/pods/p/status")]
    assert told == [("MODIFIED", "6")]      # the write's answer: one wake-up


def test_the_echo_of_a_version_the_cache_has_wakes_nobody(remote):
    store, told = remote
    store._apply_event("MODIFIED", pod(rv="5"))      # the same version again
    store._apply_event("MODIFIED", pod(rv="4"))      # an older one
    assert told == []
    store._apply_event("MODIFIED", pod(rv="7", phase="Succeeded"))
    assert told == [("MODIFIED", "7")]
    assert store.get(ObjectKey("Pod", "default", "p"))["status"]["phase"] == "Succeeded"
    store._apply_event("DELETED", pod(rv="8"))
    assert told[-1] == ("DELETED", "8")


def test_a_node_wakes_for_its_own_pods_only():
    assert bound_to(pod(node="h2"), "h2")
    assert not bound_to(pod(node="h3"), "h2")
    assert not bound_to({"kind": "Pod", "metadata": {"name": "pending"}, "spec": {}}, "h2")


def test_the_node_keeps_the_qos_class_the_server_set():
    """A node's status PUT replaces the whole status: qosClass must stay in it."""
    status = pod_status(pod(), [], {}, {}, {}, "10.0.0.2", "2026-01-01T00:00:00Z")
    assert status["qosClass"] == "BestEffort"
    fresh = pod()
    del fresh["status"]
    assert "qosClass" not in pod_status(fresh, [], {}, {}, {}, "10.0.0.2")
