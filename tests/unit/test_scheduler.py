"""Scheduler: filters, scores and the FailedScheduling message, with several fake nodes."""

from __future__ import annotations

import pytest

from gitops.model.actions import Update
from gitops.scheduler import predicates as P
from gitops.scheduler import resources as R
from gitops.scheduler import scheduler as S
from gitops.scheduler import scoring

NOW = 1_800_000_000.0


def node(name, cpu="4", memory="8Gi", pods="110", labels=None, taints=None, ready=True,
         unschedulable=False):
    n = {"apiVersion": "v1", "kind": "Node",
         "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name, **(labels or {})}},
         "spec": {},
         "status": {"capacity": {"cpu": cpu, "memory": memory, "pods": pods},
                    "allocatable": {"cpu": cpu, "memory": memory, "pods": pods},
                    "conditions": [{"type": "Ready", "status": str(ready)}]}}
    if taints:
        n["spec"]["taints"] = taints
    if unschedulable:
        n["spec"]["unschedulable"] = True
    return n


def pod(name, cpu=None, memory=None, node_name=None, owner=None, created="2027-01-01T00:00:00Z",
        **spec):
    requests = {k: v for k, v in (("cpu", cpu), ("memory", memory)) if v}
    container = {"name": "c", "image": "img:1"}
    if requests:
        container["resources"] = {"requests": requests}
    p = {"apiVersion": "v1", "kind": "Pod",
         "metadata": {"name": name, "namespace": "default", "uid": f"{name}-uid",
                      "creationTimestamp": created},
         "spec": {"containers": [container], **spec}, "status": {"phase": "Pending"}}
    if node_name:
        p["spec"]["nodeName"] = node_name
        p["status"]["phase"] = "Running"
    if owner:
        p["metadata"]["ownerReferences"] = [{"uid": owner, "controller": True,
                                             "kind": "ReplicaSet", "name": owner}]
    return p


@pytest.mark.parametrize("spec, want", [
    ({"containers": [{"name": "a", "resources": {"requests": {"cpu": "250m",
                                                              "memory": "64Mi"}}},
                     {"name": "b", "resources": {"limits": {"cpu": "1", "memory": "1Gi"}}}]},
     {"cpu": 1250, "memory": 64 * 2**20 + 2**30}),
    # an init container alone may need more than all containers together
    ({"initContainers": [{"name": "i", "resources": {"requests": {"cpu": "2"}}}],
      "containers": [{"name": "a", "resources": {"requests": {"cpu": "500m"}}}]},
     {"cpu": 2000}),
    # a sidecar (restartPolicy Always) adds to what runs after it
    ({"initContainers": [{"name": "s", "restartPolicy": "Always",
                          "resources": {"requests": {"cpu": "100m"}}}],
      "containers": [{"name": "a", "resources": {"requests": {"cpu": "500m"}}}]},
     {"cpu": 600}),
    ({"containers": [{"name": "a"}], "overhead": {"memory": "10Mi"}}, {"memory": 10 * 2**20}),
    ({"containers": [{"name": "a", "resources": {"requests": {"example.com/gpu": "1"}}}]},
     {"example.com/gpu": 1}),
])
def test_pod_requests(spec, want):
    assert R.pod_requests({"spec": spec}) == want


def test_non_zero_requests_for_scoring():
    assert R.pod_requests(pod("a"), non_zero=True) == {"cpu": 100, "memory": 200 * 2**20}


@pytest.mark.parametrize("p, n, on_node, want", [
    (pod("p", cpu="1"), node("n"), [], []),
    (pod("p", memory="16Gi"), node("n"), [], ["Insufficient memory"]),
    (pod("p", cpu="3", memory="9Gi"), node("n"), [pod("o", cpu="2", node_name="n")],
     ["Insufficient cpu", "Insufficient memory"]),
    (pod("p"), node("n", pods="1"), [pod("o", node_name="n")], ["Too many pods"]),
    (pod("p", containers=[{"name": "c", "resources": {"limits": {"example.com/gpu": "1"}}}]),
     node("n"), [], ["Insufficient example.com/gpu"]),
    (pod("p"), node("n", unschedulable=True), [], ["node(s) were unschedulable"]),
    (pod("p", tolerations=[{"key": "node.kubernetes.io/unschedulable", "operator": "Exists",
                            "effect": "NoSchedule"}]), node("n", unschedulable=True), [], []),
    (pod("p"), node("n", taints=[{"key": "dedicated", "value": "gpu", "effect": "NoSchedule"}]),
     [], ["node(s) had untolerated taint {dedicated: gpu}"]),
    (pod("p", tolerations=[{"key": "dedicated", "value": "gpu", "effect": "NoSchedule"}]),
     node("n", taints=[{"key": "dedicated", "value": "gpu", "effect": "NoSchedule"}]), [], []),
    (pod("p", tolerations=[{"key": "dedicated", "operator": "Exists"}]),
     node("n", taints=[{"key": "dedicated", "value": "x", "effect": "NoExecute"}]), [], []),
    (pod("p", tolerations=[{"key": "dedicated", "value": "cpu", "effect": "NoSchedule"}]),
     node("n", taints=[{"key": "dedicated", "value": "gpu", "effect": "NoSchedule"}]), [],
     ["node(s) had untolerated taint {dedicated: gpu}"]),
    (pod("p", tolerations=[{"operator": "Exists"}]),       # tolerates everything
     node("n", taints=[{"key": "a", "effect": "NoSchedule"}]), [], []),
    # PreferNoSchedule never filters
    (pod("p"), node("n", taints=[{"key": "a", "effect": "PreferNoSchedule"}]), [], []),
    (pod("p"), node("n", ready=False), [],
     ["node(s) had untolerated taint {node.kubernetes.io/not-ready: }"]),
    (pod("p", nodeSelector={"disk": "ssd"}), node("n"), [],
     ["node(s) didn't match Pod's node affinity/selector"]),
    (pod("p", nodeSelector={"disk": "ssd"}), node("n", labels={"disk": "ssd"}), [], []),
    (pod("p", containers=[{"name": "c", "ports": [{"containerPort": 80, "hostPort": 8080}]}]),
     node("n"), [pod("o", node_name="n", containers=[
         {"name": "c", "ports": [{"containerPort": 80, "hostPort": 8080}]}])],
     ["node(s) didn't have free ports for the requested pod ports"]),
    # the first failing plugin decides: a tainted node is not also "Insufficient"
    (pod("p", memory="99Gi"), node("n", taints=[{"key": "a", "effect": "NoSchedule"}]), [],
     ["node(s) had untolerated taint {a: }"]),
])
def test_filters(p, n, on_node, want):
    assert P.filter_reasons(p, R.NodeInfo.build(n, on_node)) == want


def _affinity(*terms, preferred=None):
    aff = {}
    if terms:
        aff["requiredDuringSchedulingIgnoredDuringExecution"] = {"nodeSelectorTerms": list(terms)}
    if preferred:
        aff["preferredDuringSchedulingIgnoredDuringExecution"] = preferred
    return {"nodeAffinity": aff}


@pytest.mark.parametrize("terms, labels, name, want", [
    ([{"matchExpressions": [{"key": "zone", "operator": "In", "values": ["a", "b"]}]}],
     {"zone": "b"}, "n", True),
    ([{"matchExpressions": [{"key": "zone", "operator": "In", "values": ["a"]}]}],
     {"zone": "b"}, "n", False),
    ([{"matchExpressions": [{"key": "zone", "operator": "NotIn", "values": ["a"]}]}],
     {}, "n", True),
    ([{"matchExpressions": [{"key": "gpu", "operator": "Exists"}]}], {"gpu": ""}, "n", True),
    ([{"matchExpressions": [{"key": "gpu", "operator": "DoesNotExist"}]}], {"gpu": "1"}, "n",
     False),
    ([{"matchExpressions": [{"key": "cores", "operator": "Gt", "values": ["8"]}]}],
     {"cores": "16"}, "n", True),
    ([{"matchExpressions": [{"key": "cores", "operator": "Lt", "values": ["8"]}]}],
     {"cores": "16"}, "n", False),
    # terms are ORed, expressions within a term ANDed
    ([{"matchExpressions": [{"key": "zone", "operator": "In", "values": ["a"]}]},
      {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["b"]},
                            {"key": "gpu", "operator": "Exists"}]}],
     {"zone": "b", "gpu": "1"}, "n", True),
    ([{"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["n2"]}]}],
     {}, "n1", False),
    ([{}], {}, "n", False),                       # an empty term matches nothing
])
def test_required_node_affinity(terms, labels, name, want):
    p = pod("p", affinity=_affinity(*terms))
    assert P.matches_affinity(p, node(name, labels=labels)) is want


def _bind(pods, nodes):
    actions = S.reconcile(pods, nodes, NOW)
    return {a.obj["metadata"]["name"]: a.obj["spec"].get("nodeName") for a in actions}


def test_least_allocated_node_wins():
    nodes = [node("busy"), node("idle"), node("small", cpu="1", memory="1Gi")]
    running = [pod("r1", cpu="3", memory="6Gi", node_name="busy")]
    assert _bind([*running, pod("new", cpu="500m", memory="512Mi")], nodes) == {"new": "idle"}


def test_replicas_of_one_owner_spread_over_nodes():
    nodes = [node("n1"), node("n2"), node("n3")]
    pending = [pod(f"web-{i}", cpu="100m", owner="rs-1") for i in range(3)]
    assert sorted(_bind(pending, nodes).values()) == ["n1", "n2", "n3"]


def test_spreading_counts_pods_already_bound():
    nodes = [node("n1"), node("n2")]
    bound = [pod("web-a", cpu="10m", owner="rs-1", node_name="n1")]
    # n1 is otherwise emptier, but it already runs a replica of the same owner
    other = [pod("x", cpu="1", memory="1Gi", node_name="n2")]
    assert _bind([*bound, *other, pod("web-b", cpu="10m", owner="rs-1")], nodes) == \
        {"web-b": "n2"}


def test_preferred_affinity_and_prefer_no_schedule_steer_placement():
    nodes = [node("plain"), node("ssd", labels={"disk": "ssd"}),
             node("tainted", labels={"disk": "ssd"},
                  taints=[{"key": "spot", "effect": "PreferNoSchedule"}])]
    p = pod("p", affinity=_affinity(preferred=[{"weight": 50, "preference": {
        "matchExpressions": [{"key": "disk", "operator": "In", "values": ["ssd"]}]}}]))
    assert _bind([p], nodes) == {"p": "ssd"}


def test_bindings_in_one_pass_count_against_the_node():
    nodes = [node("n1", cpu="1", memory="2Gi")]
    pending = [pod("a", cpu="600m", created="2027-01-01T00:00:00Z"),
               pod("b", cpu="600m", created="2027-01-01T00:00:01Z")]
    actions = S.reconcile(pending, nodes, NOW)
    assert [a.obj["spec"].get("nodeName") for a in actions] == ["n1", None]
    failed = actions[1]
    assert failed.obj["status"]["conditions"][-1]["message"] == \
        "0/1 nodes are available: 1 Insufficient cpu."


def test_unschedulable_pod_stays_pending_with_condition_and_event():
    nodes = [node("n1", memory="1Gi")]
    [action] = S.reconcile([pod("big", memory="2Gi")], nodes, NOW)
    assert isinstance(action, Update) and "nodeName" not in action.obj["spec"]
    cond = action.obj["status"]["conditions"][-1]
    assert (cond["type"], cond["status"], cond["reason"]) == ("PodScheduled", "False",
                                                              "Unschedulable")
    assert cond["message"] == "0/1 nodes are available: 1 Insufficient memory."
    assert action.obj["status"]["phase"] == "Pending"
    ev = action.event
    assert (ev.type, ev.reason, ev.component) == ("Warning", "FailedScheduling",
                                                  "default-scheduler")
    assert ev.message == cond["message"]
    # the next pass finds the same reasons: nothing is written again
    assert S.reconcile([action.obj], nodes, NOW + 5) == []
    # a node that fits appears: the pod is bound, with a Scheduled event
    [bound] = S.reconcile([action.obj], [*nodes, node("n2")], NOW + 10)
    assert bound.obj["spec"]["nodeName"] == "n2"
    assert bound.obj["status"]["conditions"][-1]["status"] == "True"
    assert bound.event.reason == "Scheduled"
    assert bound.event.message == "Successfully assigned default/big to n2"


def test_fit_error_histogram_over_several_nodes():
    nodes = [node("a", memory="1Gi"), node("b", labels={"disk": "hdd"}),
             node("c", taints=[{"key": "gpu", "value": "true", "effect": "NoSchedule"}]),
             node("d", memory="1Gi", unschedulable=True)]
    p = pod("p", memory="2Gi", nodeSelector={"kubernetes.io/hostname": "a"})
    [action] = S.reconcile([p], nodes, NOW)
    assert action.event.message == (      # sorted as strings, as Kubernetes sorts them
        "0/4 nodes are available: 1 Insufficient memory, 1 node(s) didn't match Pod's "
        "node affinity/selector, 1 node(s) had untolerated taint {gpu: true}, "
        "1 node(s) were unschedulable.")


def test_no_nodes_at_all():
    [action] = S.reconcile([pod("p")], [], NOW)
    assert action.event.message == "no nodes available to schedule pods"


def test_finished_pods_free_their_node():
    nodes = [node("n1", pods="1")]
    done = pod("done", node_name="n1")
    done["status"]["phase"] = "Succeeded"
    assert _bind([done, pod("new")], nodes) == {"new": "n1"}


def test_scores_are_bounded():
    info = R.NodeInfo.build(node("n"))
    for p in (pod("a"), pod("b", cpu="4", memory="8Gi"), pod("c", cpu="9", memory="99Gi")):
        request = R.pod_requests(p, non_zero=True)
        assert 0 <= scoring.least_allocated(request, info) <= 100
        assert 0 <= scoring.balanced_allocation(request, info) <= 100


def test_a_large_cluster_is_searched_only_until_enough_nodes_fit_round_the_list():
    assert [S.feasible_nodes_to_find(n) for n in (50, 100, 1000, 5000, 100_000)] == \
        [50, 100, 420, 500, 5000]
    nodes = [node(f"n-{i:03d}") for i in range(200)]
    actions = S.reconcile([pod("a", created="2027-01-01T00:00:00Z"),
                           pod("b", created="2027-01-01T00:00:01Z"),
                           pod("c", created="2027-01-01T00:00:02Z")], nodes)
    # each pod looks at the next 100 nodes from where the one before stopped
    assert [a.obj["spec"]["nodeName"] for a in actions] == ["n-000", "n-100", "n-001"]


def test_a_pod_that_fits_nowhere_in_a_large_cluster_names_every_node():
    nodes = [node(f"n-{i:03d}", memory="1Gi") for i in range(150)]
    [action] = S.reconcile([pod("big", memory="2Gi")], nodes)
    message = action.obj["status"]["conditions"][-1]["message"]
    assert message == "0/150 nodes are available: 150 Insufficient memory."
