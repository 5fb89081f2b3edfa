"""describe / events text views."""

from __future__ import annotations

import base64

import pytest

from gitops.cli import describe as V
from gitops.model.events import iso

NOW = 1_800_000_000.0


def ev(name, reason, message, kind="Pod", obj="web-1", uid="u1", ago=10, count=1,
       first_ago=None, type_="Normal", component="kubelet"):
    return {"apiVersion": "v1", "kind": "Event",
            "metadata": {"name": name, "namespace": "default"},
            "involvedObject": {"kind": kind, "name": obj, "namespace": "default", "uid": uid},
            "reason": reason, "message": message, "type": type_, "count": count,
            "source": {"component": component},
            "firstTimestamp": iso(NOW - (first_ago if first_ago is not None else ago)),
            "lastTimestamp": iso(NOW - ago)}


@pytest.mark.parametrize("seconds, want", [
    (5, "5s"), (119, "119s"), (150, "2m30s"), (600, "10m"), (7200, "120m"),
    (4 * 3600, "4h"), (3 * 3600 + 720, "3h12m"), (3 * 86400, "3d"), (2 * 86400 + 5 * 3600, "2d5h")])
def test_human_age_is_kubectl_describes(seconds, want):
    """kubectl describe prints ages with the same HumanDuration as `kubectl get`."""
    assert V.human_age(seconds) == want


def test_event_age_shows_repeats():
    assert V.event_age(ev("a", "BackOff", "x", ago=30, count=5, first_ago=600), NOW) == \
        "30s (x5 over 10m)"


def test_describe_pod_lists_containers_conditions_and_its_events_only():
    pod = {"apiVersion": "v1", "kind": "Pod",
           "metadata": {"name": "web-1", "namespace": "default", "uid": "u1",
                        "labels": {"app": "web"},
                        "ownerReferences": [{"kind": "ReplicaSet", "name": "web-abc",
                                             "controller": True}]},
           "spec": {"nodeName": "n1", "containers": [{
               "name": "web", "image": "busybox:1", "ports": [{"containerPort": 8080}],
               "env": [{"name": "PASSWORD", "valueFrom": {"secretKeyRef": {
                   "name": "db", "key": "password"}}}],
               "resources": {"requests": {"memory": "64Mi"}}}]},
           "status": {"phase": "Running", "podIP": "10.213.0.5",
                      "containerStatuses": [{"name": "web", "ready": True, "restartCount": 2,
                                             "state": {"running": {"startedAt": iso(NOW)}}}],
                      "conditions": [{"type": "Ready", "status": "True"}]}}
    events = [ev("1", "Scheduled", "Successfully assigned default/web-1 to n1",
                 component="default-scheduler", ago=100),
              ev("2", "Started", "Started container web", ago=50),
              ev("3", "Started", "someone else's", obj="web-2", uid="u2")]
    text = V.describe(pod, events, {}, NOW)
    for fragment in ("Name:               web-1", "Node:               n1",
                     "Controlled By:      ReplicaSet/web-abc", "Image:          busybox:1",
                     "Restart Count:  2", "memory:  64Mi",
                     "PASSWORD:  <set to the key 'password' in secret 'db'>",
                     "Conditions:", "Ready", "Events:", "default-scheduler",
                     "Started container web"):
        assert fragment in text, fragment
    assert "someone else's" not in text
    assert text.index("Successfully assigned") < text.index("Started container web")


def test_describe_deployment_names_old_and_new_replicasets():
    d = {"kind": "Deployment", "metadata": {"name": "web", "namespace": "default", "uid": "d",
                                            "annotations": {
                                                "deployment.kubernetes.io/revision": "2"}},
         "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web"}},
                  "strategy": {"rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}},
                  "template": {"metadata": {"labels": {"app": "web"}},
                               "spec": {"containers": [{"name": "c", "image": "img:2"}]}}},
         "status": {"replicas": 4, "updatedReplicas": 1, "availableReplicas": 3,
                    "unavailableReplicas": 1, "conditions": [
                        {"type": "Progressing", "status": "True",
                         "reason": "ReplicaSetUpdated",
                         "message": 'ReplicaSet "web-new" is progressing.'}]}}
    rses = [{"metadata": {"name": "web-old", "annotations": {
        "deployment.kubernetes.io/revision": "1"}}, "spec": {"replicas": 3},
        "status": {"replicas": 3}},
        {"metadata": {"name": "web-new", "annotations": {
            "deployment.kubernetes.io/revision": "2"}}, "spec": {"replicas": 1},
         "status": {"replicas": 1}}]
    text = V.describe(d, [ev("1", "ScalingReplicaSet", "Scaled up replica set web-new from 0 "
                             "to 1", kind="Deployment", obj="web", uid="d",
                             component="deployment-controller")], {"ReplicaSet": rses}, NOW)
    assert "Replicas:           3 desired | 1 updated | 4 total | 3 available | " \
           "1 unavailable" in text
    assert "RollingUpdateStrategy:0 max unavailable, 1 max surge" in text
    assert "OldReplicaSets:     web-old (3/3 replicas created)" in text
    assert "NewReplicaSet:      web-new (1/1 replicas created)" in text
    assert "ReplicaSetUpdated" in text and "deployment-controller" in text


def test_describe_secret_shows_sizes_never_values():
    secret = {"kind": "Secret", "metadata": {"name": "db", "namespace": "default"},
              "type": "Opaque", "data": {"password": base64.b64encode(b"hunter2").decode()}}
    text = V.describe(secret, [], {}, NOW)
    assert "password:  7 bytes" in text
    assert "hunter2" not in text and "aHVudGVyMg" not in text


def test_describe_node_shows_allocation():
    node = {"kind": "Node", "metadata": {"name": "n1", "uid": "n"},
            "status": {"capacity": {"cpu": "2", "memory": "4Gi", "pods": "110"},
                       "allocatable": {"cpu": "2", "memory": "4Gi", "pods": "110"},
                       "conditions": [{"type": "Ready", "status": "True"}]}}
    pods = [{"metadata": {"name": "p", "namespace": "default"},
             "spec": {"nodeName": "n1", "containers": [
                 {"name": "c", "resources": {"requests": {"cpu": "500m", "memory": "1Gi"}}}]},
             "status": {"phase": "Running"}}]
    text = V.describe(node, [], {"Pod": pods}, NOW)
    assert "cpu:  500m (25%)" in text and "memory:  1024Mi (25%)" in text
    assert "Non-terminated Pods:  (1 in total)" in text


def test_render_and_select_events():
    events = [ev("b", "BackOff", "Back-off restarting", ago=5, count=3, first_ago=60,
                 type_="Warning"),
              ev("a", "Scheduled", "Successfully assigned", ago=100, component="x"),
              ev("c", "ScalingReplicaSet", "Scaled up", kind="Deployment", obj="web", ago=1)]
    text = V.render_events(events, NOW, show_namespace=False)
    lines = text.splitlines()
    assert lines[0].split() == ["LAST", "SEEN", "TYPE", "REASON", "OBJECT", "MESSAGE"]
    assert "pod/web-1" in lines[1] and "Scheduled" in lines[1]          # oldest first
    assert "5s (x3 over 60s)" in lines[2]
    assert [e["metadata"]["name"] for e in V.select_events(events, "Deployment", "web")] == \
        ["c"]
    assert [e["metadata"]["name"] for e in V.select_events(events, types=["warning"])] == ["b"]
    assert V.render_events([], NOW, False) == "No events found."


def test_gather_related_objects():
    d = {"kind": "Deployment", "metadata": {"name": "web", "namespace": "default", "uid": "d"}}
    mine = {"metadata": {"name": "web-1", "ownerReferences": [{"uid": "d", "controller": True}]}}
    other = {"metadata": {"name": "x-1", "ownerReferences": [{"uid": "x", "controller": True}]}}
    calls = []

    def list_fn(kind, ns):
        calls.append((kind, ns))
        return [mine, other]
    assert V.gather(d, list_fn) == {"ReplicaSet": [mine]}
    assert calls == [("ReplicaSet", "default")]
