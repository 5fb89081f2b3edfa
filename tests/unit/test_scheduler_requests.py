"""The scheduler counts resource requests against what a node can give (Kubernetes'
NodeResourcesFit): requests add up per node, init containers count by their largest."""

from __future__ import annotations

from gitops.scheduler import scheduler


def node(name, cpu="2", memory="1Gi"):
    return {"metadata": {"name": name, "labels": {}},
            "status": {"capacity": {"cpu": cpu, "memory": memory, "pods": "110"},
                       "conditions": [{"type": "Ready", "status": "True"}]}}


def pod(name, cpu=None, memory=None, node_name=None, phase="Running", init=None):
    req = {k: v for k, v in (("cpu", cpu), ("memory", memory)) if v}
    spec = {"containers": [{"name": "c", "image": "i:1", "resources": {"requests": req}}]}
    if init:
        spec["initContainers"] = [{"name": "i", "image": "i:1",
                                   "resources": {"requests": {"cpu": init}}}]
    if node_name:
        spec["nodeName"] = node_name
    return {"metadata": {"name": name, "namespace": "default", "uid": name},
            "spec": spec, "status": {"phase": phase}}


def test_a_pod_goes_where_its_requests_fit_or_stays_pending_saying_why():
    nodes = [node("small", cpu="1"), node("big", cpu="4")]
    bound = [pod("a", "800m", node_name="small"), pod("done", "3", node_name="big",
                                                      phase="Succeeded")]
    [action] = scheduler.reconcile([*bound, pod("new", "500m")], nodes)
    assert action.obj["spec"]["nodeName"] == "big"        # small has only 200m left
    [action] = scheduler.reconcile([*bound, pod("huge", "5")], nodes)
    cond = action.obj["status"]["conditions"][0]
    assert "nodeName" not in action.obj["spec"] and cond["reason"] == "Unschedulable"
    assert cond["message"] == "0/2 nodes are available: 2 Insufficient cpu."


def test_pods_bound_in_one_pass_use_up_room_for_the_next():
    actions = scheduler.reconcile([pod("x", "600m"), pod("y", "600m")], [node("n", cpu="1")])
    assert [a.obj["spec"].get("nodeName") for a in actions] == ["n", None]


def test_pods_without_requests_always_fit():
    [action] = scheduler.reconcile([pod("free")], [node("n", cpu="0", memory="0")])
    assert action.obj["spec"]["nodeName"] == "n"
