"""InterPodAffinity: required terms filter, preferred terms score (fake nodes and pods)."""

from __future__ import annotations

import pytest

from gitops.scheduler import scheduler as S
from gitops.scheduler.interpod import Placement
from tests.unit.test_scheduler import NOW, node, pod

HOST = "kubernetes.io/hostname"
ZONE = "topology.kubernetes.io/zone"


def labelled(name, labels, namespace="default", **kw):
    p = pod(name, **kw)
    p["metadata"]["labels"] = labels
    p["metadata"]["namespace"] = namespace
    return p


def term(app, key=HOST, **extra):
    return {"labelSelector": {"matchLabels": {"app": app}}, "topologyKey": key, **extra}


def required(kind, *terms):
    return {kind: {"requiredDuringSchedulingIgnoredDuringExecution": list(terms)}}


def preferred(kind, weight, t):
    return {kind: {"preferredDuringSchedulingIgnoredDuringExecution": [
        {"weight": weight, "podAffinityTerm": t}]}}


def bind(pods, nodes, namespaces=()):
    actions = S.reconcile(pods, nodes, NOW, lambda: namespaces)
    return {a.obj["metadata"]["name"]: a.obj["spec"].get("nodeName") for a in actions}


def message(pods, nodes):
    return [a.event.message for a in S.reconcile(pods, nodes, NOW)
            if a.event.reason == "FailedScheduling"]


def test_required_anti_affinity_on_one_node_leaves_the_second_replica_pending():
    """As on a one-node Kubernetes cluster: replicas that must not share a host."""
    anti = required("podAntiAffinity", term("web"))
    pods = [labelled(f"web-{i}", {"app": "web"}, affinity=anti,
                     created=f"2027-01-01T00:00:0{i}Z") for i in range(3)]
    assert bind(pods, [node("n1")]) == {"web-0": "n1", "web-1": None, "web-2": None}
    assert message(pods, [node("n1")]) == [
        "0/1 nodes are available: 1 node(s) didn't match pod anti-affinity rules."] * 2
    # with three hosts, one replica each
    assert sorted(bind(pods, [node("n1"), node("n2"), node("n3")]).values()) == \
        ["n1", "n2", "n3"]


@pytest.mark.parametrize("existing_labels, existing_ns, t, fits", [
    ({"app": "db"}, "default", term("db"), True),
    ({"app": "cache"}, "default", term("db"), False),
    ({"app": "db"}, "other", term("db"), False),               # the pod's own namespace only
    ({"app": "db"}, "other", term("db", namespaces=["other"]), True),
    ({"app": "db"}, "other", term("db", namespaceSelector={}), True),     # every namespace
    ({"app": "db"}, "other", term("db", namespaceSelector={
        "matchLabels": {"kubernetes.io/metadata.name": "other"}}), True),
    ({"app": "db"}, "other", term("db", namespaceSelector={
        "matchLabels": {"team": "a"}}), True),                 # the Namespace's own labels
    ({"app": "db"}, "default", term("db", key=ZONE), False),   # the node has no zone label
])
def test_required_affinity(existing_labels, existing_ns, t, fits):
    nodes = [node("n1")]
    db = labelled("db-0", existing_labels, existing_ns, node_name="n1")
    web = labelled("web", {"app": "web"}, affinity=required("podAffinity", t))
    namespaces = [{"metadata": {"name": "other", "labels": {"team": "a"}}}]
    assert bind([db, web], nodes, namespaces) == {"web": "n1" if fits else None}


def test_affinity_follows_the_pod_it_names_across_nodes():
    nodes = [node("n1", labels={ZONE: "a"}), node("n2", labels={ZONE: "b"}),
             node("n3", labels={ZONE: "b"})]
    db = labelled("db-0", {"app": "db"}, node_name="n3")
    web = labelled("web", {"app": "web"}, affinity=required("podAffinity", term("db", ZONE)))
    assert bind([db, web], nodes) == {"web": "n2"}            # n2 shares n3's zone, and is idle


def test_the_first_pod_of_a_self_affine_group_is_not_stuck():
    t = term("web")
    first = labelled("web-0", {"app": "web"}, affinity=required("podAffinity", t))
    assert bind([first], [node("n1")]) == {"web-0": "n1"}
    # but a pod whose terms it does not match itself waits for such a pod
    other = labelled("api", {"app": "api"}, affinity=required("podAffinity", t))
    assert bind([other], [node("n1")]) == {"api": None}
    assert message([other], [node("n1")]) == [
        "0/1 nodes are available: 1 node(s) didn't match pod affinity rules."]


def test_an_existing_pods_anti_affinity_keeps_others_away():
    nodes = [node("n1"), node("n2")]
    loner = labelled("loner", {"app": "loner"}, node_name="n1",
                     affinity=required("podAntiAffinity", term("noisy")))
    noisy = labelled("noisy", {"app": "noisy"})
    assert bind([loner, noisy], nodes) == {"noisy": "n2"}
    assert message([loner, noisy], [nodes[0]]) == [
        "0/1 nodes are available: 1 node(s) didn't satisfy existing pods anti-affinity rules."]


def test_finished_pods_do_not_count():
    done = labelled("web-0", {"app": "web"}, node_name="n1")
    done["status"]["phase"] = "Succeeded"
    web = labelled("web-1", {"app": "web"}, affinity=required("podAntiAffinity", term("web")))
    assert bind([done, web], [node("n1")]) == {"web-1": "n1"}


def test_preferred_terms_steer_without_forbidding():
    nodes = [node("n1"), node("n2")]
    db = labelled("db-0", {"app": "db"}, node_name="n2", cpu="500m")
    near = labelled("near", {"app": "web"}, affinity=preferred("podAffinity", 100, term("db")))
    far = labelled("far", {"app": "web"}, affinity=preferred("podAntiAffinity", 100, term("db")))
    assert bind([db, near], nodes) == {"near": "n2"}          # despite n2 being busier
    assert bind([db, far], nodes) == {"far": "n1"}
    assert bind([db, far], [nodes[1]]) == {"far": "n2"}       # only preferred: still placed


def test_scores_count_existing_pods_terms_toward_the_pod():
    n1, n2 = node("n1"), node("n2")
    placement = Placement([n1, n2])
    placement.add(labelled("fan", {"app": "fan"},
                           affinity=preferred("podAffinity", 30, term("star"))), n1)
    placement.add(labelled("follower", {"app": "follower"},
                           affinity=required("podAffinity", term("star"))), n2)
    star = labelled("star", {"app": "star"})
    assert placement.scores(star, [n1, n2]) == {"n1": 30, "n2": 1}


def test_the_controller_manager_schedules_by_namespace_labels(tmp_path):
    """Through the store: the scheduler reads Namespaces only when an affinity needs them."""
    import random

    from gitops.model import ObjectKey
    from gitops.testing import memory_store
    from tests.control_plane import ControlPlane
    store = memory_store()
    n1 = node("n1")
    store.create({k: n1[k] for k in ("apiVersion", "kind", "metadata", "spec")})
    store.update_status(ObjectKey("Node", "", "n1"), n1["status"])
    store.create({"apiVersion": "v1", "kind": "Namespace",
                  "metadata": {"name": "data", "labels": {"tier": "data"}}})
    db = labelled("db", {"app": "db"}, "data")
    store.create({k: db[k] for k in ("apiVersion", "kind", "metadata", "spec")})
    near = term("db", namespaceSelector={"matchLabels": {"tier": "data"}})
    for name, affinity in (("with-db", required("podAffinity", near)),
                           ("without-db", required("podAntiAffinity", near))):
        p = labelled(name, {"app": "web"}, affinity=affinity)
        store.create({k: p[k] for k in ("apiVersion", "kind", "metadata", "spec")})
    mgr = ControlPlane(store, random.Random(0))
    for _ in range(2):
        mgr.run_once()
    placed = {p["metadata"]["name"]: p["spec"].get("nodeName") for p in store.list("Pod")}
    assert placed == {"db": "n1", "with-db": "n1", "without-db": None}
    store.close()
