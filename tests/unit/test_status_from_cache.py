"""The agent's status (what `gitops status` and `up --wait` poll) read from the informer's
cache: the same answer as from the store, without listing or decoding the store."""

from __future__ import annotations

import pytest

from gitops.api.server import object_health, unmanaged_objects
from gitops.model import ObjectKey
from gitops.store.base import InventoryEntry
from gitops.store.informer import Informer
from gitops.testing import memory_store


class CountingStore:
    """A store that counts list and whole-store reads: the cached path makes none."""

    def __init__(self, store) -> None:
        self._store = store
        self.scans = 0

    def __getattr__(self, name):
        return getattr(self._store, name)

    def list(self, kind, namespace=None):
        self.scans += 1
        return self._store.list(kind, namespace)

    def all_objects(self):
        self.scans += 1
        return self._store.all_objects()


def owned(kind, name, owner, **extra):
    ref = {"apiVersion": "apps/v1", "kind": owner["kind"], "name": owner["metadata"]["name"],
           "uid": owner["metadata"]["uid"], "controller": True}
    return {"apiVersion": "v1", "kind": kind,
            "metadata": {"name": name, "namespace": "default", "ownerReferences": [ref]},
            **extra}


@pytest.fixture
def store():
    s = memory_store()
    yield s
    s.close()


def deployment_with_a_crashing_pod(store) -> None:
    deploy = store.create({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "default", "generation": 1},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "web"}}},
        "status": {"observedGeneration": 1, "replicas": 1, "updatedReplicas": 1}})
    rs = store.create(owned("ReplicaSet", "web-1", deploy))
    store.create(owned("Pod", "web-1-a", rs, status={
        "phase": "Running", "containerStatuses": [{
            "name": "app", "ready": False, "restartCount": 4,
            "state": {"waiting": {"reason": "CrashLoopBackOff", "message": "back-off"}}}]}))
    store.create({"apiVersion": "v1", "kind": "ConfigMap",
                  "metadata": {"name": "made-by-kubectl", "namespace": "default",
                               "managedFields": [{"manager": "kubectl-client-side-apply"}]}})
    store.create({"apiVersion": "v1", "kind": "Event",
                  "metadata": {"name": "e", "namespace": "default",
                               "managedFields": [{"manager": "kubectl"}]}})
    store.set_inventory([InventoryEntry(ObjectKey("Deployment", "default", "web"),
                                        "apps/v1", "web.yaml", 1)])


def test_health_from_the_cache_is_the_stores_and_scans_nothing(store):
    deployment_with_a_crashing_pod(store)
    counting = CountingStore(store)
    from_store = object_health(counting)
    assert counting.scans > 0                       # the store's path lists pods
    counting.scans = 0
    from_cache = object_health(counting, Informer(store))
    assert from_cache == from_store
    assert from_cache[0]["health"] == "Degraded" and "web-1-a" in from_cache[0]["message"]
    assert counting.scans == 0


def test_unmanaged_from_the_cache_leaves_events_out(store):
    deployment_with_a_crashing_pod(store)
    cache = Informer(store)
    names = [o["name"] for o in unmanaged_objects(store, live=cache)]
    assert names == ["made-by-kubectl"]
    assert "e" in [o["name"] for o in unmanaged_objects(store)]   # the store's: records too


def test_the_cache_reads_what_it_does_not_keep_from_the_store(store):
    cache = Informer(store)
    store.create({"apiVersion": "v1", "kind": "Event",
                  "metadata": {"name": "e", "namespace": "default"}})
    assert cache.get(ObjectKey("Event", "default", "e"))["metadata"]["name"] == "e"
