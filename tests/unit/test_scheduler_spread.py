"""PodTopologySpread's filter: DoNotSchedule constraints (fake nodes and pods)."""

from __future__ import annotations

import pytest

from tests.unit.test_scheduler import node
from tests.unit.test_scheduler_interpod import bind, labelled, message

ZONE = "topology.kubernetes.io/zone"


def spread(key=ZONE, skew=1, how="DoNotSchedule", **extra):
    return [{"maxSkew": skew, "topologyKey": key, "whenUnsatisfiable": how,
             "labelSelector": {"matchLabels": {"app": "web"}}, **extra}]


def zones(*spec):
    return [node(name, labels={ZONE: zone}) for name, zone in spec]


def web(name, constraints=None, **kw):
    return labelled(name, {"app": "web", "v": "1"}, topologySpreadConstraints=constraints or [],
                    **kw)


def test_replicas_fill_the_emptier_zone_first():
    nodes = zones(("a1", "a"), ("a2", "a"), ("b1", "b"))
    bound = [web("w0", node_name="a1"), web("w1", node_name="a2")]
    assert bind([*bound, web("w2", spread())], nodes) == {"w2": "b1"}


def test_a_skew_beyond_max_is_refused_with_the_schedulers_words():
    nodes = zones(("a1", "a"), ("b1", "b"))
    bound = [web("w0", node_name="a1")]
    # b1 is full: only a1 is left, and a second pod in zone a would make the skew 2
    nodes[1]["status"]["allocatable"]["pods"] = "0"
    assert bind([*bound, web("w1", spread())], nodes) == {"w1": None}
    assert message([*bound, web("w1", spread())], nodes) == [
        "0/2 nodes are available: 1 Too many pods, 1 node(s) didn't match pod topology "
        "spread constraints."]
    assert bind([*bound, web("w1", spread(skew=2))], nodes) == {"w1": "a1"}


@pytest.mark.parametrize("constraints, placed", [
    (spread(), None),                                           # no zone label on the node
    (spread(how="ScheduleAnyway"), "n1"),                       # only steers
    (spread(key="kubernetes.io/hostname"), "n1"),              # one domain: never skewed
])
def test_one_node_without_zones(constraints, placed):
    assert bind([web("w0", constraints)], [node("n1")]) == {"w0": placed}
    if placed is None:
        assert message([web("w0", constraints)], [node("n1")]) == [
            "0/1 nodes are available: 1 node(s) didn't match pod topology spread constraints "
            "(missing required label)."]


def test_domains_are_only_where_the_pod_may_go_and_only_its_namespace_counts():
    nodes = zones(("a1", "a"), ("b1", "b"), ("c1", "c"))
    nodes[2]["metadata"]["labels"]["pool"] = "gpu"
    bound = [web("w0", node_name="a1"), web("other-ns", node_name="b1", namespace="other")]
    # zone c is not a domain for a pod that selects pool!=gpu; other-ns does not count
    avoid_gpu = {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
        "nodeSelectorTerms": [{"matchExpressions": [
            {"key": "pool", "operator": "NotIn", "values": ["gpu"]}]}]}}}
    assert bind([*bound, web("w1", spread(), affinity=avoid_gpu)], nodes) == {"w1": "b1"}


def test_min_domains_counts_missing_domains_as_empty():
    nodes = zones(("a1", "a"), ("b1", "b"))
    bound = [web("w0", node_name="a1"), web("w1", node_name="b1")]
    assert bind([*bound, web("w2", spread())], nodes) == {"w2": "a1"}
    assert bind([*bound, web("w2", spread(minDomains=3))], nodes) == {"w2": None}


def test_match_label_keys_narrow_the_count_to_the_pods_own_revision():
    nodes = zones(("a1", "a"), ("b1", "b"))
    nodes[1]["status"]["allocatable"]["pods"] = "0"          # only a1 has room
    old = labelled("old", {"app": "web", "v": "0"}, node_name="a1")
    assert bind([old, web("w0", spread())], nodes) == {"w0": None}
    # counting only v=1 pods, zone a is as empty as zone b
    assert bind([old, web("w0", spread(matchLabelKeys=["v"]))], nodes) == {"w0": "a1"}
