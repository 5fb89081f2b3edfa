"""Why an object is not healthy: pods found through the workload's selector, and each pod
state turned into the reason a CI log reader acts on (table-driven, no Docker)."""

from __future__ import annotations

import pytest

from gitops import diagnose
from gitops.diagnose import explain, explain_pod, pods_of


def pod(name="web-1", labels=None, ns="default", phase="Running", statuses=(),
        conditions=None, containers=None):
    containers = containers or [{"name": "c", "image": "img:1"}]
    return {"kind": "Pod",
            "metadata": {"name": name, "namespace": ns, "labels": labels or {"app": "web"}},
            "spec": {"containers": containers},
            "status": {"phase": phase, "containerStatuses": list(statuses),
                       "conditions": conditions or [{"type": "PodScheduled", "status": "True"}]}}


def cs(state, ready=False, restarts=0, last=None, name="c", image="img:1"):
    return {"name": name, "image": image, "ready": ready, "restartCount": restarts,
            "state": state, "lastState": last or {}}


WAIT_PULL = {"waiting": {"reason": "ErrImagePull", "message": "no such image"}}
CRASH = {"waiting": {"reason": "CrashLoopBackOff"}}
RUNNING = {"running": {"startedAt": "2026-01-01T00:00:00Z"}}
PROBE = {"httpGet": {"path": "/healthz", "port": 8000}}


@pytest.mark.parametrize("p, reason, fragment", [
    (pod(statuses=[cs(WAIT_PULL)], phase="Pending"), diagnose.IMAGE_MISSING,
     "image img:1 is not on the node (ErrImagePull)"),
    (pod(statuses=[cs({"waiting": {"reason": "ImagePullBackOff"}})], phase="Pending"),
     diagnose.IMAGE_MISSING, "ImagePullBackOff"),
    (pod(statuses=[cs(CRASH, restarts=4, last={"terminated": {"exitCode": 3,
                                                               "reason": "Error"}})]),
     diagnose.CRASH_LOOP, "crash loop, 4 restart(s), last exit code 3 (Error)"),
    (pod(statuses=[cs(RUNNING)], containers=[{"name": "c", "readinessProbe": PROBE}]),
     diagnose.NOT_READY, "readiness probe httpGet /healthz port 8000 failing"),
    (pod(phase="Pending", conditions=[{"type": "PodScheduled", "status": "False",
                                       "reason": "Unschedulable",
                                       "message": "0/1 nodes: insufficient memory"}]),
     diagnose.UNSCHEDULABLE, "0/1 nodes: insufficient memory"),
    (pod(statuses=[cs({"waiting": {"reason": "CreateContainerConfigError",
                                   "message": 'configmap "x" not found'}})], phase="Pending"),
     diagnose.CONFIG, 'configmap "x" not found'),
    (pod(phase="Failed", statuses=[cs({"terminated": {"exitCode": 1, "reason": "Error"}})]),
     diagnose.FAILED, "exited with code 1 (Error)"),
    (pod(phase="Pending", statuses=[cs({"waiting": {"reason": "ContainerCreating"}})]),
     diagnose.WAITING, "c: ContainerCreating"),
])
def test_explain_pod(p, reason, fragment):
    found = explain_pod(p)
    assert [f.reason for f in found] == [reason]
    assert fragment in found[0].message
    assert found[0].pod == p["metadata"]["name"]


def test_a_ready_running_pod_has_no_findings():
    assert explain_pod(pod(statuses=[cs(RUNNING, ready=True)])) == []


def test_pods_of_uses_the_selector_and_namespace():
    deploy = {"kind": "Deployment", "metadata": {"name": "web", "namespace": "default"},
              "spec": {"selector": {"matchLabels": {"app": "web"}}}}
    pods = [pod("web-1"), pod("web-2", ns="other"), pod("db-1", labels={"app": "db"})]
    assert [p["metadata"]["name"] for p in pods_of(deploy, pods)] == ["web-1"]
    job = {"kind": "Job", "metadata": {"name": "backup", "namespace": "default"}, "spec": {}}
    assert pods_of(job, [pod("b-1", labels={"job-name": "backup"})])[0]["metadata"]["name"] \
        == "b-1"
    assert pods_of({"kind": "ConfigMap", "metadata": {"name": "x"}}, pods) == []


def test_explain_a_workload_through_its_pods_or_its_own_message():
    deploy = {"kind": "Deployment", "metadata": {"name": "web", "namespace": "default"},
              "spec": {"selector": {"matchLabels": {"app": "web"}}}}
    entry = {"kind": "Deployment", "name": "web", "health": "Progressing",
             "message": "0 of 2 updated replicas are available"}
    found = explain(entry, deploy, [pod(statuses=[cs(WAIT_PULL)], phase="Pending")])
    assert [f.reason for f in found] == [diagnose.IMAGE_MISSING]
    none = explain(entry, deploy, [])
    assert none[0].reason == diagnose.WAITING and "no pods yet" in none[0].message
    missing = explain({"kind": "Service", "name": "x", "health": "Missing",
                       "message": "not in the store"}, None, [])
    assert "not created yet" in missing[0].message
