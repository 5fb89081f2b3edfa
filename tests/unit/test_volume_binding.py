"""PersistentVolumeClaims bound to PersistentVolumes (controllers/pvc.py), converged through
the registry as the controller manager's executor does."""

from __future__ import annotations

from gitops.controllers import pvc
from gitops.model import ObjectKey
from gitops.store.registry import execute
from gitops.testing import memory_store


def claim(name: str, size: str = "1Gi", **spec) -> dict:
    return {"apiVersion": "v1", "kind": "PersistentVolumeClaim",
            "metadata": {"name": name, "namespace": "default"},
            "spec": {"accessModes": ["ReadWriteOnce"],
                     "resources": {"requests": {"storage": size}}, **spec}}


def volume(name: str, size: str = "5Gi", **spec) -> dict:
    return {"apiVersion": "v1", "kind": "PersistentVolume", "metadata": {"name": name},
            "spec": {"capacity": {"storage": size}, "accessModes": ["ReadWriteOnce"],
                     "hostPath": {"path": f"/srv/{name}"}, **spec}}


def converge(store, passes: int = 3) -> None:
    for _ in range(passes):
        execute(store, pvc.reconcile(store.list("PersistentVolumeClaim"),
                                     store.list("PersistentVolume")), "test")


def get(store, kind: str, name: str) -> dict:
    return store.get(ObjectKey(kind, "" if kind == "PersistentVolume" else "default", name))


def test_a_claim_gets_a_provisioned_volume_and_the_volume_column():
    store = memory_store()
    created = store.create(claim("data"))
    converge(store)
    got = get(store, "PersistentVolumeClaim", "data")
    name = f"pvc-{created['metadata']['uid']}"
    assert got["spec"]["volumeName"] == name
    assert got["status"] == {"phase": "Bound", "accessModes": ["ReadWriteOnce"],
                             "capacity": {"storage": "1Gi"}}
    pv = get(store, "PersistentVolume", name)
    assert pv["status"]["phase"] == "Bound"
    assert pv["spec"]["claimRef"]["uid"] == created["metadata"]["uid"]
    assert pv["spec"]["persistentVolumeReclaimPolicy"] == "Retain"
    assert pv["spec"]["csi"] == {"driver": pvc.DRIVER, "volumeHandle": "default/data"}
    assert pvc.reconcile(store.list("PersistentVolumeClaim"),
                         store.list("PersistentVolume")) == []          # settled


def test_a_claim_binds_the_smallest_available_volume_that_fits():
    store = memory_store()
    for v in (volume("small", "512Mi"), volume("big", "10Gi"), volume("fit", "2Gi"),
              volume("rwx", "1Gi", accessModes=["ReadWriteMany"]),
              volume("fast", "1Gi", storageClassName="fast")):
        store.create(v)
    store.create(claim("data"))
    converge(store)
    assert get(store, "PersistentVolumeClaim", "data")["spec"]["volumeName"] == "fit"
    assert get(store, "PersistentVolumeClaim", "data")["status"]["capacity"] == \
        {"storage": "2Gi"}
    phases = {v["metadata"]["name"]: v["status"]["phase"]
              for v in store.list("PersistentVolume")}
    assert phases == {"small": "Available", "big": "Available", "fit": "Bound",
                      "rwx": "Available", "fast": "Available"}


def test_no_storage_class_means_static_binding_only():
    store = memory_store()
    store.create(claim("static", storageClassName=""))
    converge(store)
    assert get(store, "PersistentVolumeClaim", "static")["status"]["phase"] == "Pending"
    assert store.list("PersistentVolume") == []
    store.create(volume("manual", "1Gi", storageClassName=""))
    converge(store)
    assert get(store, "PersistentVolumeClaim", "static")["spec"]["volumeName"] == "manual"


def test_a_deleted_claims_volume_is_released_kept_and_bound_again_by_its_name():
    store = memory_store()
    first = store.create(claim("data"))
    converge(store)
    name = f"pvc-{first['metadata']['uid']}"
    store.request_delete(ObjectKey("PersistentVolumeClaim", "default", "data"))
    converge(store)
    assert get(store, "PersistentVolume", name)["status"]["phase"] == "Released"
    store.create(claim("data"))              # the same Docker volume: its data comes back
    converge(store)
    assert get(store, "PersistentVolumeClaim", "data")["spec"]["volumeName"] == name
    assert get(store, "PersistentVolume", name)["status"]["phase"] == "Bound"
    assert len(store.list("PersistentVolume")) == 1


def test_a_claim_naming_its_volume_waits_for_it():
    store = memory_store()
    store.create(claim("data", volumeName="later"))
    converge(store)
    assert get(store, "PersistentVolumeClaim", "data")["status"]["phase"] == "Pending"
    store.create(volume("later"))
    converge(store)
    got = get(store, "PersistentVolumeClaim", "data")
    assert got["status"]["phase"] == "Bound" and got["status"]["capacity"] == {"storage": "5Gi"}
