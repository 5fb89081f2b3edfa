"""The scheduler's caches: the equivalence cache (node-only answers shared by the pods of
one template) and the node infos kept current from the informer, with what invalidates
them; and that the loop, which schedules from them, still honours every change."""

from __future__ import annotations

import random

from gitops.model import ObjectKey
from gitops.scheduler import resources as R
from gitops.scheduler import scoring
from gitops.scheduler.cache import ClusterCache
from gitops.scheduler.equivalence import EquivalenceCache, class_key
from gitops.scheduler.loop import SchedulerLoop
from gitops.store.informer import Informer
from gitops.store.registry import execute
from gitops.testing import memory_store
from tests.unit.test_scheduler import node, pod

TAINT = {"key": "dedicated", "value": "db", "effect": "NoSchedule"}


def test_pods_of_one_template_share_a_node_answer():
    cache = EquivalenceCache()
    info = R.NodeInfo(node("n1", taints=[TAINT]))
    a, b = pod("a"), pod("b")
    assert class_key(a) == class_key(b)
    first = cache.verdict(a, class_key(a), info)
    assert first.reasons == ("node(s) had untolerated taint {dedicated: db}",)
    assert cache.verdict(b, class_key(b), info) is first
    assert (cache.hits, cache.misses) == (1, 1)
    # a pod that tolerates the taint is another class, with its own answer
    tolerant = pod("c", tolerations=[{"key": "dedicated", "operator": "Exists"}])
    assert class_key(tolerant) != class_key(a)
    assert cache.verdict(tolerant, class_key(tolerant), info).reasons == ()


def test_a_new_version_of_the_node_is_judged_again_even_unforgotten():
    cache = EquivalenceCache()
    p = pod("p", nodeSelector={"disk": "ssd"})
    old = R.NodeInfo(node("n1"))
    assert cache.verdict(p, class_key(p), old).reasons == (
        "node(s) didn't match Pod's node affinity/selector",)
    relabelled = R.NodeInfo(node("n1", labels={"disk": "ssd"}))   # a new node object
    assert cache.verdict(p, class_key(p), relabelled).reasons == ()
    # and forget() drops what a node answered
    cache.forget("n1")
    assert len(cache) == 0


def test_the_answer_holds_the_node_only_parts_not_the_pods_placed():
    """Resources are never cached: a full node refuses the next pod of the same class."""
    cache = EquivalenceCache()
    info = R.NodeInfo(node("n1", cpu="1"))
    p = pod("p", cpu="600m")
    assert cache.verdict(p, class_key(p), info).reasons == ()
    info.add(pod("q", cpu="600m", node_name="n1"))
    assert cache.verdict(p, class_key(p), info).reasons == ()      # still node-only
    from gitops.scheduler.predicates import placed_reasons
    assert placed_reasons(p, info, None, set()) == ["Insufficient cpu"]


def test_node_infos_follow_pods_as_they_are_bound_finish_move_and_go():
    cache = ClusterCache()
    cache.node_changed(None, node("n1"))
    cache.node_changed(None, node("n2"))
    p = pod("p", cpu="500m", memory="1Gi", owner="rs", node_name="n1")
    cache.pod_changed(None, p)
    _, before, _ = cache.snapshot()
    assert (before["n1"].pods, before["n1"].requested["cpu"], before["n1"].owners["rs"]) == \
        (1, 500, 1)
    moved = {**p, "spec": {**p["spec"], "nodeName": "n2"}}
    cache.pod_changed(p, moved)
    _, after, _ = cache.snapshot()
    assert (after["n1"].pods, after["n1"].requested["cpu"], after["n1"].owners) == (0, 0, {})
    assert after["n2"].pods == 1
    # a snapshot already taken is not changed by later events
    assert before["n1"].pods == 1 and "rs" not in before["n2"].owners
    done = {**moved, "status": {"phase": "Succeeded"}}
    cache.pod_changed(moved, done)
    assert cache.snapshot()[1]["n2"].pods == 0
    cache.pod_changed(done, None)
    assert cache.snapshot()[1]["n2"].pods == 0


def test_pods_bound_to_a_node_not_seen_yet_count_once_it_appears():
    cache = ClusterCache()
    cache.pod_changed(None, pod("p", cpu="1", node_name="late"))
    nodes, infos, _ = cache.snapshot()
    assert nodes == [] and infos == {}
    cache.node_changed(None, node("late"))
    assert cache.snapshot()[1]["late"].requested["cpu"] == 1000
    # a node that goes and comes back keeps the pods still bound to it
    cache.node_changed(node("late"), None)
    cache.node_changed(None, node("late"))
    assert cache.snapshot()[1]["late"].pods == 1


def test_resource_fit_is_least_allocated_plus_balanced_allocation():
    rng = random.Random(7)
    for _ in range(500):
        n = node("n", cpu=str(rng.choice([0, 1, 4, 32])), memory=f"{rng.randint(0, 64)}Gi")
        info = R.NodeInfo.build(n, [pod(f"b{i}", cpu=f"{rng.randint(1, 3000)}m",
                                        memory=f"{rng.randint(1, 9000)}Mi", node_name="n")
                                    for i in range(rng.randint(0, 5))])
        request = R.pod_requests(pod("p", cpu=f"{rng.randint(1, 4000)}m",
                                     memory=f"{rng.randint(1, 20000)}Mi"), non_zero=True)
        assert scoring.resource_fit(request["cpu"], request["memory"], info) == \
            scoring.least_allocated(request, info) + scoring.balanced_allocation(request, info)


def _loop(store):
    informer = Informer(store)
    loop = SchedulerLoop(informer, lambda actions: execute(store, actions, "scheduler"))
    return loop


def _place(store, loop, name, **kw):
    store.create({**pod(name, **kw), "status": {}})
    loop._next_flush = 0
    loop.run_once()
    return store.get(ObjectKey("Pod", "default", name))["spec"].get("nodeName")


def test_the_loop_sees_a_node_tainted_after_pods_of_its_class_were_placed():
    store = memory_store()
    loop = _loop(store)
    store.create(node("n1"))
    assert _place(store, loop, "a") == "n1"
    tainted = store.get(ObjectKey("Node", "", "n1"))
    tainted["spec"]["taints"] = [TAINT]
    store.update(tainted)
    assert _place(store, loop, "b") is None           # the cached "fits" was dropped
    message = store.get(ObjectKey("Pod", "default", "b"))["status"]["conditions"][-1]
    assert message["message"] == \
        "0/1 nodes are available: 1 node(s) had untolerated taint {dedicated: db}."
    untainted = store.get(ObjectKey("Node", "", "n1"))
    untainted["spec"]["taints"] = []
    store.update(untainted)
    loop.run_once()                                   # the node change requeued b
    assert store.get(ObjectKey("Pod", "default", "b"))["spec"]["nodeName"] == "n1"


def test_the_loop_counts_pods_bound_by_others_and_freed_by_deletion():
    store = memory_store()
    loop = _loop(store)
    store.create(node("n1", cpu="1"))
    store.create(pod("other", cpu="800m", node_name="n1"))   # bound by someone else
    assert _place(store, loop, "big", cpu="500m") is None
    store.delete(ObjectKey("Pod", "default", "other"))
    loop.run_once()                                   # freed room requeues the pod
    assert store.get(ObjectKey("Pod", "default", "big"))["spec"]["nodeName"] == "n1"
    assert loop.nodes.snapshot()[1]["n1"].requested["cpu"] == 500
