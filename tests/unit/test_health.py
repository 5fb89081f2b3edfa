"""Health per kind, and workloads judged with their pods."""

from __future__ import annotations

import pytest

from gitops.health import assess, assess_in
from gitops.model import key_of
from gitops.testing import memory_store


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


RUNNING = {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]}
DEPLOY_OK = {"kind": "Deployment", "metadata": {"name": "web", "namespace": "default",
                                                "uid": "d-uid", "generation": 2},
             "spec": {"replicas": 2},
             "status": {"observedGeneration": 2, "replicas": 2, "updatedReplicas": 2,
                        "availableReplicas": 2, "readyReplicas": 2}}


@pytest.mark.parametrize("obj, status, fragment", [
    (DEPLOY_OK, "Healthy", "2/2 available"),
    ({**DEPLOY_OK, "status": {**DEPLOY_OK["status"], "observedGeneration": 1}},
     "Progressing", "observed"),
    ({**DEPLOY_OK, "status": {**DEPLOY_OK["status"], "updatedReplicas": 1}},
     "Progressing", "1 of 2 updated"),
    ({**DEPLOY_OK, "status": {**DEPLOY_OK["status"], "replicas": 3}},
     "Progressing", "old replicas pending termination"),
    ({**DEPLOY_OK, "status": {**DEPLOY_OK["status"], "conditions": [
        {"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded",
         "message": 'ReplicaSet "web-1" has timed out progressing.'}]}},
     "Degraded", "timed out"),
    ({**DEPLOY_OK, "spec": {"replicas": 2, "paused": True}}, "Suspended", "paused"),
    ({"kind": "Service", "metadata": {"name": "s"}, "spec": {"type": "ClusterIP"}},
     "Progressing", "cluster IP"),
    ({"kind": "Service", "metadata": {"name": "s"}, "spec": {"clusterIP": "None"}},
     "Healthy", ""),
    ({"kind": "Service", "metadata": {"name": "s"},
      "spec": {"type": "NodePort", "clusterIP": "10.0.0.1", "ports": [{"port": 80}]}},
     "Progressing", "node port"),
    ({"kind": "Service", "metadata": {"name": "s"},
      "spec": {"type": "ExternalName", "externalName": "example.invalid"}}, "Healthy", ""),
    ({"kind": "PersistentVolumeClaim", "metadata": {"name": "c"}, "status": {"phase": "Bound"}},
     "Healthy", "bound"),
    ({"kind": "PersistentVolumeClaim", "metadata": {"name": "c"}, "status": {"phase": "Lost"}},
     "Degraded", "lost"),
    ({"kind": "PersistentVolumeClaim", "metadata": {"name": "c"}}, "Progressing", "Pending"),
    ({"kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"a": "1", "b": "2"}},
     "Healthy", "2 key(s)"),
    ({"kind": "Secret", "metadata": {"name": "c"}, "data": {"password": "aHVudGVyMg=="}},
     "Healthy", "1 key(s)"),
    ({"kind": "Node", "metadata": {"name": "n"}, "status": {"conditions": [
        {"type": "Ready", "status": "True"}]}}, "Healthy", "ready"),
    ({"kind": "Node", "metadata": {"name": "n"}, "status": {"conditions": [
        {"type": "Ready", "status": "False", "message": "kubelet stopped"}]}},
     "Degraded", "kubelet stopped"),
    (pod("p", waiting("CrashLoopBackOff")), "Degraded", "CrashLoopBackOff"),
    (pod("p", waiting("ImagePullBackOff")), "Degraded", "ImagePullBackOff"),
    (pod("p", RUNNING), "Healthy", ""),
    (pod("p", {"phase": "Succeeded"}), "Healthy", "completed"),
    (pod("p", {"phase": "Failed"}), "Degraded", "failed"),
    (pod("p", {"phase": "Pending", "conditions": [
        {"type": "PodScheduled", "status": "False", "reason": "Unschedulable",
         "message": "0/1 nodes are available: 1 Insufficient memory."}]}),
     "Progressing", "Insufficient memory"),
])
def test_assess(obj, status, fragment):
    health = assess(obj)
    assert health.status == status
    assert fragment in health.message
    assert "aHVudGVyMg" not in health.message


@pytest.mark.parametrize("pods, status, fragment", [
    ([pod("web-a", RUNNING), pod("web-b", RUNNING)], "Healthy", ""),
    ([pod("web-a", RUNNING), pod("web-b", waiting("CrashLoopBackOff"))],
     "Degraded", "pod web-b: web: CrashLoopBackOff"),
    # a crash-looping pod on its way out does not count
    ([pod("web-a", RUNNING), pod("web-b", waiting("CrashLoopBackOff"), deleting=True)],
     "Healthy", ""),
])
def test_workload_health_sees_crash_looping_pods(pods, status, fragment):
    for kind in ("Deployment", "StatefulSet", "DaemonSet", "ReplicaSet"):
        obj = {**DEPLOY_OK, "kind": kind}
        if kind != "Deployment":
            obj["status"] = {"readyReplicas": 2, "availableReplicas": 2, "replicas": 2,
                             "observedGeneration": 2, "currentRevision": "r",
                             "updateRevision": "r", "desiredNumberScheduled": 2,
                             "numberAvailable": 2, "updatedNumberScheduled": 2}
        health = assess(obj, pods)
        assert health.status == status, kind
        assert fragment in health.message


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
