"""The registry, the one write path: rules every writer gets, whatever the backend."""

from __future__ import annotations

import pytest

from gitops.model import ObjectKey
from gitops.store import InventoryEntry, MemoryStore
from gitops.store.registry import (
    DeleteOptions,
    Forbidden,
    PreconditionFailed,
    Refused,
    Registry,
)
from gitops.testing import memory_store

CM = ObjectKey("ConfigMap", "default", "c")


def cm(name="c", **meta) -> dict:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, **meta},
            "data": {"a": "1"}}


def service(**spec) -> dict:
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s"},
            "spec": {"ports": [{"port": 80}], **spec}}


def owned_by(owner: dict, name: str) -> dict:
    ref = {"apiVersion": "v1", "kind": "ConfigMap", "name": owner["metadata"]["name"],
           "uid": owner["metadata"]["uid"]}
    return cm(name, ownerReferences=[ref])


def test_a_writer_never_chooses_identity_and_the_caller_keeps_its_object():
    store = memory_store()
    mine = cm(uid="../../etc", resourceVersion="99")
    made = store.create(mine)
    assert made["metadata"]["uid"] != "../../etc" and made["metadata"]["generation"] == 1
    assert mine["metadata"] == {"name": "c", "uid": "../../etc", "resourceVersion": "99"}
    again = store.update({**cm(), "metadata": {"name": "c", "uid": "other",
                                               "creationTimestamp": "1970-01-01T00:00:00Z"}})
    assert again["metadata"]["uid"] == made["metadata"]["uid"]
    assert again["metadata"]["creationTimestamp"] == made["metadata"]["creationTimestamp"]


def test_removing_the_last_finalizer_of_a_deleting_object_deletes_it():
    store = memory_store()
    store.create(cm(finalizers=["example.com/hold"]))
    store.delete_with_options(CM, DeleteOptions())
    held = store.get(CM)
    assert held["metadata"]["deletionTimestamp"]           # marked, held by the finalizer
    held["metadata"]["finalizers"] = []
    store.update(held)
    assert store.get(CM) is None


def test_a_service_keeps_its_allocations_when_a_writer_leaves_them_out():
    store = memory_store()
    made = service(type="NodePort")
    made["spec"]["ports"][0]["nodePort"] = 30080
    store.create({**made, "spec": {**made["spec"], "clusterIP": "10.96.0.10",
                                   "clusterIPs": ["10.96.0.10"]}})
    key = ObjectKey("Service", "default", "s")
    kept = store.update(service(type="NodePort"))     # git, `kubectl replace`
    assert kept["spec"]["clusterIP"] == "10.96.0.10"
    assert kept["spec"]["clusterIPs"] == ["10.96.0.10"]
    assert kept["spec"]["ports"][0]["nodePort"] == 30080
    plain = store.update(service(type="ClusterIP"))   # no node port needed any more
    assert "nodePort" not in plain["spec"]["ports"][0]
    assert plain["spec"]["clusterIP"] == "10.96.0.10" and store.get(key) == plain


def test_admission_and_defaults_judge_every_create_and_update():
    seen = []

    def no_big_data(obj, old):
        seen.append(old is not None)
        if obj.get("data", {}).get("a") == "big":
            raise Refused("too big")

    store = Registry(MemoryStore(), admission=[no_big_data],
                     defaults=[lambda obj: obj.setdefault("data", {}).setdefault("b", "2")])
    assert store.create(cm())["data"] == {"a": "1", "b": "2"}
    with pytest.raises(Refused):
        store.update({**cm(), "data": {"a": "big"}})
    assert store.get(CM)["data"] == {"a": "1", "b": "2"}
    assert seen == [False, True]


def test_managed_fields_are_recorded_against_the_stored_object():
    store = memory_store()
    store.create(cm(), record_fields=lambda old, new: [{"manager": "a", "had": old}])
    assert store.get(CM)["metadata"]["managedFields"] == [{"manager": "a", "had": None}]
    seen = []
    store.update({**cm(), "data": {"a": "2"}},
                 record_fields=lambda old, new: seen.append(old["data"]) or [])
    assert seen == [{"a": "1"}] and store.get(CM)["metadata"]["managedFields"] == []


def test_a_client_delete_checks_preconditions_and_spares_the_default_namespace():
    store = memory_store()
    made = store.create(cm())
    with pytest.raises(PreconditionFailed, match="UID in precondition: nope"):
        store.delete_with_options(CM, DeleteOptions(uid="nope"))
    with pytest.raises(PreconditionFailed, match="ResourceVersion in precondition: 0"):
        store.delete_with_options(CM, DeleteOptions(resource_version="0"))
    assert store.delete_with_options(CM, DeleteOptions(dry_run=True)) == made
    assert store.get(CM) == made
    store.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "default"}})
    with pytest.raises(Forbidden):
        store.delete_with_options(ObjectKey("Namespace", "", "default"), DeleteOptions())


def test_a_client_delete_orphans_or_deletes_dependents_at_once():
    store = memory_store()
    owner = store.create(cm("owner"))
    store.create(owned_by(owner, "kept"))
    store.delete_with_options(ObjectKey("ConfigMap", "default", "owner"),
                              DeleteOptions(propagation="Orphan"))
    kept = store.get(ObjectKey("ConfigMap", "default", "kept"))
    assert "ownerReferences" not in kept["metadata"]
    owner = store.create(cm("owner"))
    store.create(owned_by(owner, "gone"))
    store.delete_with_options(ObjectKey("ConfigMap", "default", "owner"),
                              DeleteOptions(propagation="Foreground"))
    assert [o["metadata"]["name"] for o in store.list("ConfigMap")] == ["kept"]


def test_a_bound_pod_is_only_marked_unless_forced():
    store = memory_store()
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
           "spec": {"nodeName": "n1", "containers": [{"name": "c", "image": "i"}]}}
    key = ObjectKey("Pod", "default", "p")
    store.create(pod)
    store.request_delete(key)
    assert store.get(key)["metadata"]["deletionTimestamp"]
    store.delete_with_options(key, DeleteOptions(grace_period=0))
    assert store.get(key) is None


def test_the_memory_backend_rolls_back_everything_a_transaction_wrote():
    store = memory_store()
    store.create(cm("before"))
    rv = store.resource_version()
    with pytest.raises(RuntimeError):
        with store.transaction():
            store.create(cm())
            store.update({**cm("before"), "data": {"a": "2"}})
            store.delete(ObjectKey("ConfigMap", "default", "before"))
            store.set_inventory([InventoryEntry(CM, "v1", "cm.yaml", 1)])
            store.set_applied({CM: cm()})
            store.set_state("applied_revision", "abc")
            store.record_sync({"result": "synced"})
            raise RuntimeError("boom")
    assert [o["metadata"]["name"] for o in store.list("ConfigMap")] == ["before"]
    assert store.get(ObjectKey("ConfigMap", "default", "before"))["data"] == {"a": "1"}
    assert store.resource_version() == rv and store.changes.since(rv) == []
    assert store.inventory() == {} and store.applied(CM) is None
    assert store.get_state("applied_revision") is None and store.history() == []
    uid = store.get(ObjectKey("ConfigMap", "default", "before"))["metadata"]["uid"]
    assert store.get_by_uid(uid)["metadata"]["name"] == "before"
