"""Health per kind, from the YAML cases in tests/unit/cases/health/ (one file per kind: an
object, maybe its pods, the status and message expected), and workloads judged with their
pods found in a store."""

from __future__ import annotations

import base64

import pytest

from gitops.health import assess, assess_in
from gitops.model import key_of
from gitops.testing import memory_store
from tests.unit.cases import load


@pytest.mark.parametrize("case", load("health"))
def test_assess(case):
    health = assess(case["object"], case.get("pods"))
    assert (health.status, health.message) == (case["status"], case["message"])
    for value in filter(None, _secret_values(case["object"])):
        assert value not in health.message


def _secret_values(obj: dict | None) -> list[str]:
    if not obj or obj.get("kind") != "Secret":
        return []
    data = obj.get("data") or {}
    return [*data.values(), *(base64.b64decode(v).decode() for v in data.values()),
            *(obj.get("stringData") or {}).values()]


def waiting(reason):
    return {"phase": "Running", "containerStatuses": [
        {"name": "web", "restartCount": 4, "state": {"waiting": {"reason": reason,
                                                                  "message": "back-off 40s"}}}]}


def pod(name, status, owner="rs-uid", deleting=False):
    meta = {"name": name, "namespace": "default", "uid": f"{name}-uid",
            "ownerReferences": [{"uid": owner, "controller": True}]}
    if deleting:
        meta["deletionTimestamp"] = "2027-01-01T00:00:00Z"
    return {"kind": "Pod", "metadata": meta, "status": status}


def test_assess_in_follows_deployment_to_replicaset_to_pods(tmp_path):
    store = memory_store()
    d = store.create({"apiVersion": "apps/v1", "kind": "Deployment",
                      "metadata": {"name": "web", "namespace": "default"},
                      "spec": {"replicas": 1}})
    d = store.update_status(key_of(d), {"observedGeneration": 1, "replicas": 1,
                                        "updatedReplicas": 1, "availableReplicas": 1})
    rs = store.create({"apiVersion": "apps/v1", "kind": "ReplicaSet",
                       "metadata": {"name": "web-1", "namespace": "default",
                                    "ownerReferences": [{"uid": d["metadata"]["uid"],
                                                         "controller": True}]},
                       "spec": {"replicas": 1}})
    store.create(pod("web-1-x", waiting("CrashLoopBackOff"), owner=rs["metadata"]["uid"]))
    store.create(pod("stranger", waiting("CrashLoopBackOff"), owner="someone-else"))
    health = assess_in(store, d)
    assert health.status == "Degraded" and "web-1-x" in health.message
    assert assess(d).status == "Healthy"           # the object alone looks fine
    store.close()
