"""HorizontalPodAutoscaler v2 (pure reconcile, table-driven): bounds at once, usage ratio
against requests or per-pod values, tolerance, missing and unready pods, the default
scale-down stabilisation window, behavior's rate policies, status and conditions."""

from __future__ import annotations

import random

import pytest

from gitops.controllers.autoscaler import Memory, reconcile
from gitops.model.actions import SetStatus, Update
from gitops.testing import memory_store
from tests.control_plane import ControlPlane

NOW = 1_800_000_000.0


def hpa(min_r=1, max_r=10, metrics=None, behavior=None, target="web", kind="Deployment",
        status=None):
    spec = {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": kind, "name": target},
            "minReplicas": min_r, "maxReplicas": max_r}
    if metrics is not None:
        spec["metrics"] = metrics
    if behavior is not None:
        spec["behavior"] = behavior
    return {"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
            "metadata": {"name": "web", "namespace": "default", "uid": "h-uid",
                         "generation": 1}, "spec": spec, "status": status or {}}


def cpu(utilization=50):
    return [{"type": "Resource", "resource": {"name": "cpu", "target": {
        "type": "Utilization", "averageUtilization": utilization}}}]


def deploy(replicas=2):
    return {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "namespace": "default", "uid": "d-uid"},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": "web"}},
                     "template": {"metadata": {"labels": {"app": "web"}},
                                  "spec": {"containers": [{"name": "c", "image": "i"}]}}}}


def pod(name, request="100m", ready=True, phase="Running", memory="64Mi"):
    requests = {"memory": memory}
    if request is not None:
        requests["cpu"] = request
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": "default", "uid": f"{name}-uid",
                         "labels": {"app": "web"}},
            "spec": {"containers": [{"name": "c", "image": "i",
                                     "resources": {"requests": requests}}]},
            "status": {"phase": phase,
                       "conditions": [{"type": "Ready", "status": str(ready)}]}}


def usage_of(table):
    """{pod name: cores} -> the usage callable (memory 32 MiB each)."""
    return lambda uid: None if uid[:-4] not in table else \
        {"c": {"cpu": table[uid[:-4]], "memory": 32 * 2 ** 20}}


def run(h, target, pods, usage, memory=None, now=NOW):
    actions = reconcile(h, target, pods, usage_of(usage), memory or Memory(), now)
    scaled = [a.obj["spec"]["replicas"] for a in actions if isinstance(a, Update)]
    [status] = [a.status for a in actions if isinstance(a, SetStatus)]
    return (scaled[0] if scaled else None), status, actions


def cond(status, type_):
    return next(((c["status"], c["reason"]) for c in status["conditions"]
                 if c["type"] == type_), None)


@pytest.mark.parametrize("min_r, max_r, replicas, usage, want, limited", [
    # bounds enforced at once, whatever the metrics say (no metrics at all here)
    (2, 5, 1, {}, 2, None),
    (1, 3, 5, {}, 3, None),
    # 2 pods at 100m request using 0.1 core = 100 %, target 50 % -> 4
    (1, 10, 2, {"a": 0.1, "b": 0.1}, 4, ("False", "DesiredWithinRange")),
    # within the 10 % tolerance: 54 % of 50 % -> unchanged
    (1, 10, 2, {"a": 0.054, "b": 0.054}, None, ("False", "DesiredWithinRange")),
    # ten times the target: capped by maxReplicas
    (1, 4, 2, {"a": 1.0, "b": 1.0}, 4, ("True", "TooManyReplicas")),
    # without behavior: at most double (or 4) in one pass
    (1, 50, 2, {"a": 1.0, "b": 1.0}, 4, ("True", "ScaleUpLimit")),
    # low use scales down (no earlier recommendation in the window)
    (1, 10, 4, {"a": 0.01, "b": 0.01, "c": 0.01, "d": 0.01}, 1, ("False", "DesiredWithinRange")),
    # ... never below minReplicas
    (3, 10, 4, {"a": 0.01, "b": 0.01, "c": 0.01, "d": 0.01}, 3, ("True", "TooFewReplicas")),
])
def test_replicas_from_cpu_utilization(min_r, max_r, replicas, usage, want, limited):
    pods = [pod(n) for n in "abcd"[:replicas]]
    scaled, status, actions = run(hpa(min_r, max_r, cpu(50)), deploy(replicas), pods, usage)
    assert scaled == want
    assert status["currentReplicas"] == replicas
    assert status["desiredReplicas"] == (want if want is not None else replicas)
    assert cond(status, "ScalingLimited") == limited
    if want is not None:
        assert cond(status, "AbleToScale") == ("True", "SucceededRescale")
        [update] = [a for a in actions if isinstance(a, Update)]
        assert update.event.reason == "SuccessfulRescale"
        assert update.event.message.startswith(f"New size: {want}; reason: ")
        assert status["lastScaleTime"]


def test_status_reports_current_metrics_and_conditions():
    _, status, _ = run(hpa(1, 10, cpu(50)), deploy(2), [pod("a"), pod("b")],
                       {"a": 0.05, "b": 0.052})
    assert status["currentMetrics"] == [{"type": "Resource", "resource": {
        "name": "cpu", "current": {"averageValue": "51m", "averageUtilization": 51}}}]
    assert cond(status, "ScalingActive") == ("True", "ValidMetricFound")
    assert cond(status, "AbleToScale") == ("True", "ReadyForNewScale")
    active = next(c for c in status["conditions"] if c["type"] == "ScalingActive")
    assert active["message"] == ("the HPA was able to successfully calculate a replica "
                                 "count from cpu resource utilization (percentage of request)")
    assert status["observedGeneration"] == 1 and "lastScaleTime" not in status


def test_default_metric_is_cpu_at_80_percent():
    # 2 pods at 100 % of request: 100/80 = 1.25 -> ceil(2.5) = 3
    scaled, _, _ = run(hpa(1, 10), deploy(2), [pod("a"), pod("b")], {"a": 0.1, "b": 0.1})
    assert scaled == 3


def test_memory_average_value_target():
    metrics = [{"type": "Resource", "resource": {"name": "memory", "target": {
        "type": "AverageValue", "averageValue": "16Mi"}}}]
    scaled, status, _ = run(hpa(1, 10, metrics), deploy(2), [pod("a"), pod("b")],
                            {"a": 0.0, "b": 0.0})
    assert scaled == 4          # 32 MiB each against 16 MiB per pod
    assert status["currentMetrics"][0]["resource"]["current"] == {"averageValue": "33554432"}


def test_missing_samples_count_conservatively():
    # scaling up: the pod without a sample counts as 0 -> (200 % + 0) / 2 = 100 % of 50
    scaled, _, _ = run(hpa(1, 10, cpu(50)), deploy(2), [pod("a"), pod("b")], {"a": 0.2})
    assert scaled == 4
    # scaling down: the pod without a sample counts as its request (100 %): no scale-down
    scaled, _, _ = run(hpa(1, 10, cpu(50)), deploy(2), [pod("a"), pod("b")], {"a": 0.0})
    assert scaled is None


def test_unready_pods_do_not_push_cpu_up():
    pods = [pod("a"), pod("b", ready=False)]
    scaled, _, _ = run(hpa(1, 10, cpu(50)), deploy(2), pods, {"a": 0.06, "b": 1.0})
    assert scaled is None       # a at 60 % alone; b unready counts 0 -> 30 %: reversed


@pytest.mark.parametrize("pods, usage, reason, words", [
    ([pod("a", request=None)], {"a": 0.1}, "FailedGetResourceMetric",
     "missing request for cpu in container c of Pod a"),
    ([pod("a")], {}, "FailedGetResourceMetric", "did not receive metrics for targeted pods"),
    ([], {}, "FailedGetResourceMetric", "no pods returned by selector"),
])
def test_metrics_that_cannot_be_computed(pods, usage, reason, words):
    scaled, status, actions = run(hpa(1, 10, cpu(50)), deploy(1), pods, usage)
    assert scaled is None
    assert cond(status, "ScalingActive") == ("False", reason)
    active = next(c for c in status["conditions"] if c["type"] == "ScalingActive")
    assert words in active["message"]
    assert actions[-1].event.type == "Warning" and actions[-1].event.reason == reason
    # the same failure again: no second event
    again = reconcile(hpa(1, 10, cpu(50), status=status), deploy(1), pods, usage_of(usage),
                      Memory(), NOW + 15)
    assert all(getattr(a, "event", None) is None for a in again)


def test_missing_target():
    scaled, status, actions = run(hpa(2, 5), None, [], {})
    assert scaled is None
    assert cond(status, "AbleToScale") == ("False", "FailedGetScale")
    assert 'deployments.apps "web" not found' in status["conditions"][0]["message"]
    assert actions[-1].event.reason == "FailedGetScale"


def test_zero_replicas_disables_scaling():
    scaled, status, _ = run(hpa(1, 5), deploy(0), [], {})
    assert scaled is None and cond(status, "ScalingActive") == ("False", "ScalingDisabled")


def test_default_stabilisation_window_holds_scale_down_for_five_minutes():
    memory = Memory()
    pods = [pod(n) for n in "abcd"]
    busy = {n: 0.05 for n in "abcd"}          # 50 %: 4 is right
    idle = {n: 0.005 for n in "abcd"}         # 5 %: 1 would be right
    scaled, _, _ = run(hpa(1, 10, cpu(50)), deploy(4), pods, busy, memory, NOW)
    assert scaled is None
    scaled, status, _ = run(hpa(1, 10, cpu(50)), deploy(4), pods, idle, memory, NOW + 60)
    assert scaled is None                      # the recommendation of 4 is in the window
    assert cond(status, "AbleToScale") == ("True", "ScaleDownStabilized")
    scaled, _, _ = run(hpa(1, 10, cpu(50)), deploy(4), pods, idle, memory, NOW + 301)
    assert scaled == 1                         # the window has passed


def test_behavior_policies_limit_the_rate():
    behavior = {"scaleUp": {"policies": [{"type": "Pods", "value": 1, "periodSeconds": 60}]},
                "scaleDown": {"stabilizationWindowSeconds": 0}}
    memory = Memory()
    hot = {n: 1.0 for n in "ab"}
    scaled, status, _ = run(hpa(1, 10, cpu(50), behavior), deploy(2), [pod("a"), pod("b")],
                            hot, memory, NOW)
    assert scaled == 3 and cond(status, "ScalingLimited") == ("True", "ScaleUpLimit")
    pods = [pod(n) for n in "abc"]
    hot = {n: 1.0 for n in "abc"}
    scaled, _, _ = run(hpa(1, 10, cpu(50), behavior), deploy(3), pods, hot, memory, NOW + 30)
    assert scaled is None                      # one pod a minute: the minute is not over
    scaled, _, _ = run(hpa(1, 10, cpu(50), behavior), deploy(3), pods, hot, memory, NOW + 61)
    assert scaled == 4
    # no stabilisation down (window 0): idle scales down at once, 100 % per 15 s allowed
    idle = {n: 0.0 for n in "abc"}
    scaled, _, _ = run(hpa(1, 10, cpu(50), behavior), deploy(3), pods, idle, memory, NOW + 62)
    assert scaled == 1


def test_control_plane_enforces_min_replicas_at_once():
    """An HPA with minReplicas 2 over a Deployment of 1: two pods, without any usage."""
    store = memory_store()
    store.create({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n1"},
                  "status": {"allocatable": {"cpu": "4", "memory": "8Gi", "pods": "110"},
                             "conditions": [{"type": "Ready", "status": "True"}]}})
    d = deploy(1)
    del d["metadata"]["uid"]
    store.create(d)
    h = hpa(2, 4, cpu(50))
    del h["metadata"]["uid"], h["status"]
    store.create(h)
    plane = ControlPlane(store, random.Random(0))
    for _ in range(4):
        plane.run_once()
    pods = [p for p in store.list("Pod") if not p["metadata"].get("deletionTimestamp")]
    assert len(pods) == 2
    live = store.list("HorizontalPodAutoscaler")[0]["status"]
    assert (live["currentReplicas"], live["desiredReplicas"]) == (2, 2)   # seen again
    assert any(e["reason"] == "SuccessfulRescale" and
               e["message"] == "New size: 2; reason: Current number of replicas below "
                               "Spec.MinReplicas" for e in store.list("Event"))
    assert plane.controllers.autoscaled_pods() == {p["metadata"]["uid"] for p in pods}
    store.close()


def test_autoscaling_v1_target_and_status():
    h = hpa(1, 10)
    h["apiVersion"] = "autoscaling/v1"
    h["spec"]["targetCPUUtilizationPercentage"] = 50
    scaled, status, _ = run(h, deploy(2), [pod("a"), pod("b")], {"a": 0.1, "b": 0.1})
    assert scaled == 4                       # 100 % of requests against 50 %
    assert status["currentCPUUtilizationPercentage"] == 100
    assert cond(status, "AbleToScale") == ("True", "SucceededRescale")
