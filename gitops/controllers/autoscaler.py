"""HorizontalPodAutoscaler (autoscaling/v2): the replica count of a Deployment, ReplicaSet,
StatefulSet or ReplicationController from its pods' CPU and memory use (pure).

As Kubernetes' HPA controller computes it: minReplicas / maxReplicas enforced at once; for
each Resource (or ContainerResource) metric the usage ratio against its target
(Utilization: usage over the pods' requests; AverageValue: usage per pod), a 10 %
tolerance, pods without a sample or not ready counted the conservative way, the largest
proposal kept; then the stabilisation window (by default 300 s for scaling down, none up:
the highest recommendation of the window wins) and `behavior`'s rate policies; the
status and conditions (AbleToScale, ScalingActive, ScalingLimited) worded as Kubernetes
words them. Recommendations and scale events live in memory, as in the kube-controller-
manager: after a restart the window starts again.

Usage comes from the node's samples of its containers (Docker's stats; see
gitops.agent.usage), per pod uid and container name: cpu in cores, memory in bytes.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from gitops.controllers.replicationcontroller import selector as rc_selector
from gitops.errors import PermanentError
from gitops.model import key_of
from gitops.model.actions import Action, SetStatus, Update
from gitops.model.events import WARNING, event_for
from gitops.model.quantity import parse as parse_quantity
from gitops.model.selectors import matches
from gitops.model.times import rfc3339

COMPONENT = "horizontal-pod-autoscaler"
SYNC_PERIOD = 15.0             # seconds: --horizontal-pod-autoscaler-sync-period
TOLERANCE = 0.1                # --horizontal-pod-autoscaler-tolerance
DOWN_WINDOW = 300              # seconds: the default scale-down stabilisation window
DEFAULT_CPU_UTILIZATION = 80   # a v2 HPA without metrics targets 80 % CPU
SCALABLE = ("Deployment", "ReplicaSet", "StatefulSet", "ReplicationController")
_MAX_SCALE_UP = 2              # without behavior: at most double (or 4) per pass
_MIN_SCALE_UP = 4

# Usage of one pod: container name -> {"cpu": cores, "memory": bytes}
PodUsage = Mapping[str, Mapping[str, float]]
UsageOf = Callable[[str], "PodUsage | None"]           # pod uid -> its containers' usage


@dataclass
class Memory:
    """What the controller remembers of one HPA between passes (in memory, as Kubernetes)."""
    recommendations: list[tuple[float, int]] = field(default_factory=list)
    scale_up: list[tuple[float, int]] = field(default_factory=list)     # (time, pods added)
    scale_down: list[tuple[float, int]] = field(default_factory=list)   # (time, removed)


@dataclass(frozen=True)
class _Proposal:
    replicas: int
    name: str                  # "cpu resource utilization (percentage of request)"
    status: dict               # the metric's entry in status.currentMetrics


class _MetricError(PermanentError):
    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


# -- the pass ---------------------------------------------------------------------------
def reconcile(hpa: dict, target: dict | None, pods: list[dict], usage: UsageOf,
              memory: Memory, now: float) -> list[Action]:
    """One pass over one HPA. target: its scaleTargetRef's object (None: not found);
    pods: that target's pods (by its selector). memory is updated in place."""
    spec = hpa.get("spec") or {}
    ref = spec.get("scaleTargetRef") or {}
    status = dict(hpa.get("status") or {})
    conditions = list(status.get("conditions") or [])
    actions: list[Action] = []
    min_r = spec.get("minReplicas", 1)
    max_r = spec.get("maxReplicas", min_r)
    if target is None or ref.get("kind") not in SCALABLE:
        what = f"{_plural(ref.get('kind', ''))} \"{ref.get('name', '')}\""
        message = (f"the HPA controller was unable to get the target's current scale: "
                   f"{what} not found" if ref.get("kind") in SCALABLE else
                   f"the HPA controller cannot scale a {ref.get('kind') or 'missing kind'}")
        _set(conditions, "AbleToScale", "False", "FailedGetScale", message, now)
        status.update(conditions=conditions, currentReplicas=status.get("currentReplicas", 0),
                      desiredReplicas=status.get("desiredReplicas", 0))
        event = event_for(hpa, "FailedGetScale", message, WARNING, COMPONENT) \
            if _changed(hpa, conditions) else None
        return [SetStatus(key_of(hpa), _finish(hpa, status), event)]

    current = _replicas(target)
    _set(conditions, "AbleToScale", "True", "SucceededGetScale",
         "the HPA controller was able to get the target's current scale", now)
    metric_statuses: list[dict] = list(status.get("currentMetrics") or [])
    rescale_reason = ""
    desired = current
    if current == 0 and min_r != 0:
        desired = 0
        _set(conditions, "ScalingActive", "False", "ScalingDisabled",
             "scaling is disabled since the replica count of the target is zero", now)
    elif current > max_r:
        desired, rescale_reason = max_r, "Current number of replicas above Spec.MaxReplicas"
    elif current < min_r:
        desired, rescale_reason = min_r, "Current number of replicas below Spec.MinReplicas"
    else:
        proposals, errors = _proposals(spec, pods, usage, current, now)
        metric_statuses = [p.status for p in proposals] or metric_statuses
        if not proposals:
            reason, message = errors[0]
            full = f"the HPA was unable to compute the replica count: {message}"
            _set(conditions, "ScalingActive", "False", reason, full, now)
            status.update(conditions=conditions, currentReplicas=current,
                          desiredReplicas=current, currentMetrics=metric_statuses or None)
            event = event_for(hpa, reason, full, WARNING, COMPONENT) \
                if _changed(hpa, conditions) else None
            return [SetStatus(key_of(hpa), _finish(hpa, status), event)]
        best = max(proposals, key=lambda p: p.replicas)
        _set(conditions, "ScalingActive", "True", "ValidMetricFound",
             f"the HPA was able to successfully calculate a replica count from {best.name}",
             now)
        if best.replicas > current:
            rescale_reason = f"{best.name} above target"
        elif best.replicas < current:
            rescale_reason = "All metrics below target"
        desired = _normalize(spec, conditions, memory, current, best.replicas, min_r, max_r,
                             now)

    if desired != current:
        scaled = {**target, "spec": {**(target.get("spec") or {}), "replicas": desired}}
        actions.append(Update(scaled, event_for(
            hpa, "SuccessfulRescale", f"New size: {desired}; reason: {rescale_reason}",
            component=COMPONENT)))
        _set(conditions, "AbleToScale", "True", "SucceededRescale",
             f"the HPA controller was able to update the target scale to {desired}", now)
        _remember_scale(memory, current, desired, now)
        status["lastScaleTime"] = rfc3339(now)
    status.update(conditions=conditions, currentReplicas=current, desiredReplicas=desired,
                  currentMetrics=metric_statuses or None)
    actions.append(SetStatus(key_of(hpa), _finish(hpa, status)))
    return actions


def target_pods(target: dict, pods: list[dict]) -> list[dict]:
    """The pods the target's selector picks in its namespace (the Scale's status.selector)."""
    spec = target.get("spec") or {}
    selector = rc_selector(target) if target.get("kind") == "ReplicationController" \
        else spec.get("selector")
    if not selector:
        return []
    ns = target["metadata"].get("namespace")
    return [p for p in pods if p["metadata"].get("namespace") == ns
            and matches(selector, p["metadata"].get("labels"))]


def metrics_of(spec: dict) -> list[dict]:
    """spec.metrics, autoscaling/v1's targetCPUUtilizationPercentage, or the default:
    CPU at 80 % of requests."""
    if spec.get("metrics"):
        return spec["metrics"]
    target = spec.get("targetCPUUtilizationPercentage") or DEFAULT_CPU_UTILIZATION
    return [{"type": "Resource", "resource": {"name": "cpu", "target": {
        "type": "Utilization", "averageUtilization": target}}}]


# -- metrics ----------------------------------------------------------------------------
def _proposals(spec: dict, pods: list[dict], usage: UsageOf, current: int,
               now: float) -> tuple[list[_Proposal], list[tuple[str, str]]]:
    proposals: list[_Proposal] = []
    errors: list[tuple[str, str]] = []
    for metric in metrics_of(spec):
        kind = metric.get("type")
        source = metric.get("resource") if kind == "Resource" else \
            metric.get("containerResource") if kind == "ContainerResource" else None
        if source is None:
            errors.append(("FailedGetExternalMetric" if kind == "External" else
                           "FailedGetObjectMetric" if kind == "Object" else
                           "FailedGetPodsMetric",
                           f"unable to get metric of type {kind}: no custom or external "
                           f"metrics API on this host"))
            continue
        try:
            proposals.append(_resource(kind, source, pods, usage, current))
        except _MetricError as exc:
            errors.append((exc.reason, str(exc)))
    return proposals, errors


def _resource(kind: str, source: dict, pods: list[dict], usage: UsageOf,
              current: int) -> _Proposal:
    resource = source.get("name", "")
    container = source.get("container") if kind == "ContainerResource" else None
    reason = "FailedGetResourceMetric" if kind == "Resource" else \
        "FailedGetContainerResourceMetric"
    if resource not in ("cpu", "memory"):
        raise _MetricError(reason, f"failed to get {resource} utilization: only cpu and "
                                   f"memory are measured on this host")
    target = source.get("target") or {}
    if not pods:
        raise _MetricError(reason, f"failed to get {resource} utilization: no pods returned "
                                   f"by selector while calculating replica count")
    samples = {p["metadata"]["name"]: v for p in pods
               if (v := _pod_value(usage(p["metadata"].get("uid", "")), resource,
                                   container)) is not None}
    ready, unready, missing = _group(pods, samples, resource)
    metrics = {n: samples[n] for n in ready}
    if not metrics:
        raise _MetricError(reason, f"failed to get {resource} utilization: did not receive "
                                   f"metrics for targeted pods (pods might be unready)")
    utilization = target.get("type", "Utilization") == "Utilization"
    if utilization:
        requests = _requests(pods, resource, container, reason)
        goal = float(target.get("averageUtilization") or DEFAULT_CPU_UTILIZATION)

        def ratio(values: Mapping[str, float]) -> float:
            asked = sum(requests[n] for n in values)
            return (sum(values.values()) * 100 / asked) / goal if asked else 0.0
        fallback = {n: requests[n] * max(100.0, goal) / 100 for n in missing}
    else:
        goal = float(parse_quantity(target.get("averageValue") or 0))
        if goal <= 0:
            raise _MetricError(reason, f"invalid {resource} target: averageValue must be > 0")

        def ratio(values: Mapping[str, float]) -> float:
            return sum(values.values()) / len(values) / goal
        fallback = {n: goal for n in missing}
    first = ratio(metrics)
    replicas = _replicas_for(first, ratio, metrics, len(ready), unready, missing, fallback,
                             current)
    average = sum(metrics.values()) / len(metrics)
    current_status: dict = {"averageValue": _quantity(resource, average)}
    if utilization:
        asked = sum(_requests(pods, resource, container, reason)[n] for n in metrics)
        current_status["averageUtilization"] = int(sum(metrics.values()) * 100 / asked) \
            if asked else 0
    key = "resource" if kind == "Resource" else "containerResource"
    entry = {"name": resource, "current": current_status}
    if container:
        entry["container"] = container
    name = f"{resource} resource utilization (percentage of request)" if utilization \
        else f"{resource} resource"
    if container:
        name = f"{resource} container resource utilization (percentage of request)" \
            if utilization else f"{resource} container resource"
    return _Proposal(replicas, name, {"type": kind, key: entry})


def _replicas_for(first: float, ratio: Callable[[Mapping[str, float]], float],
                  metrics: dict[str, float], ready: int, unready: list[str],
                  missing: list[str], fallback: dict[str, float], current: int) -> int:
    """The replica calculator's rules: missing pods assumed at 100 % when scaling down and
    at 0 when scaling up; unready pods at 0 when scaling up; no change within tolerance or
    when the assumptions reverse the direction."""
    scale_up_with_unready = bool(unready) and first > 1.0
    if not scale_up_with_unready and not missing:
        if abs(1.0 - first) <= TOLERANCE:
            return current
        return math.ceil(first * ready)
    values = dict(metrics)
    if missing and first < 1.0:
        values.update(fallback)
    elif missing and first > 1.0:
        values.update({n: 0.0 for n in missing})
    if scale_up_with_unready:
        values.update({n: 0.0 for n in unready})
    second = ratio(values)
    if abs(1.0 - second) <= TOLERANCE or (first < 1.0 < second) or (first > 1.0 > second):
        return current
    replicas = math.ceil(second * len(values))
    if (second < 1.0 and replicas > current) or (second > 1.0 and replicas < current):
        return current
    return replicas


def _group(pods: list[dict], samples: Mapping[str, float],
           resource: str) -> tuple[list[str], list[str], list[str]]:
    """(ready with a sample, unready, missing a sample); deleted and failed pods are
    ignored, pending ones are unready, and for CPU a pod that is not Ready too."""
    ready, unready, missing = [], [], []
    for pod in pods:
        name = pod["metadata"]["name"]
        phase = (pod.get("status") or {}).get("phase")
        if pod["metadata"].get("deletionTimestamp") or phase in ("Failed", "Succeeded"):
            continue
        if phase == "Pending":
            unready.append(name)
        elif name not in samples:
            missing.append(name)
        elif resource == "cpu" and not _is_ready(pod):
            unready.append(name)
        else:
            ready.append(name)
    return ready, unready, missing


def _is_ready(pod: dict) -> bool:
    return any(c.get("type") == "Ready" and c.get("status") == "True"
               for c in (pod.get("status") or {}).get("conditions") or [])


def _pod_value(usage: PodUsage | None, resource: str, container: str | None) -> float | None:
    if not usage:
        return None
    if container is not None:
        return None if container not in usage else float(usage[container].get(resource, 0))
    return float(sum(c.get(resource, 0) for c in usage.values()))


def _requests(pods: list[dict], resource: str, container: str | None,
              reason: str) -> dict[str, float]:
    """Per pod, the sum of its containers' requests (cores or bytes); a container
    without one makes utilization undefined, as in Kubernetes."""
    out: dict[str, float] = {}
    for pod in pods:
        total = 0.0
        for c in (pod.get("spec") or {}).get("containers") or []:
            if container is not None and c.get("name") != container:
                continue
            value = ((c.get("resources") or {}).get("requests") or {}).get(resource)
            if value is None:
                raise _MetricError(reason, f"failed to get {resource} utilization: missing "
                                           f"request for {resource} in container "
                                           f"{c.get('name')} of Pod {pod['metadata']['name']}")
            try:
                total += float(parse_quantity(value))
            except PermanentError as exc:
                raise _MetricError(reason, f"failed to get {resource} utilization: {exc}")
        out[pod["metadata"]["name"]] = total
    return out


def _quantity(resource: str, value: float) -> str:
    return f"{round(value * 1000)}m" if resource == "cpu" else str(int(value))


# -- normalization: stabilisation, rate limits, bounds ----------------------------------
def _normalize(spec: dict, conditions: list[dict], memory: Memory, current: int,
               proposed: int, min_r: int, max_r: int, now: float) -> int:
    behavior = spec.get("behavior")
    up, down = _rules(behavior, "scaleUp"), _rules(behavior, "scaleDown")
    up_cut = now - up["stabilizationWindowSeconds"]
    down_cut = now - down["stabilizationWindowSeconds"]
    keep = max(up["stabilizationWindowSeconds"], down["stabilizationWindowSeconds"])
    up_rec = down_rec = proposed
    for at, rec in memory.recommendations:
        if at > up_cut:
            up_rec = min(up_rec, rec)
        if at > down_cut:
            down_rec = max(down_rec, rec)
    stabilized = min(max(current, up_rec), down_rec)
    memory.recommendations = [(at, r) for at, r in memory.recommendations
                              if at > now - keep] + [(now, proposed)]
    if stabilized != proposed:
        reason, message = ("ScaleUpStabilized", "recent recommendations were lower than "
                           "current one, applying the lowest recent recommendation") \
            if stabilized < proposed else ("ScaleDownStabilized", "recent recommendations "
                                           "were higher than current one, applying the "
                                           "highest recent recommendation")
        _set(conditions, "AbleToScale", "True", reason, message, now)
    else:
        _set(conditions, "AbleToScale", "True", "ReadyForNewScale",
             "recommended size matches current size", now)
    if behavior is None:
        desired, reason, message = _within_rules(current, stabilized, min_r, max_r)
    else:
        desired, reason, message = _within_rates(current, stabilized, min_r, max_r, up, down,
                                                 memory, now)
    _set(conditions, "ScalingLimited", "False" if desired == stabilized else "True",
         reason, message, now)
    return desired


def _within_rules(current: int, desired: int, min_r: int,
                  max_r: int) -> tuple[int, str, str]:
    """Without behavior: bounds, and at most doubling (or 4 pods) in one pass."""
    limit = max(_MAX_SCALE_UP * current, _MIN_SCALE_UP)
    if desired < min_r:
        return min_r, "TooFewReplicas", "the desired replica count is less than the " \
                                        "minimum replica count"
    if desired > max_r and max_r <= limit:
        return max_r, "TooManyReplicas", "the desired replica count is more than the " \
                                         "maximum replica count"
    if desired > limit:
        return limit, "ScaleUpLimit", "the desired replica count is increasing faster " \
                                      "than the maximum scale rate"
    return desired, "DesiredWithinRange", "the desired count is within the acceptable range"


def _within_rates(current: int, desired: int, min_r: int, max_r: int, up: dict, down: dict,
                  memory: Memory, now: float) -> tuple[int, str, str]:
    if desired > current:
        limit = max(_limit(current, memory, up, now, up=True), current)
        if max_r > limit:
            allowed, reason, message = limit, "ScaleUpLimit", (
                "the desired replica count is increasing faster than the maximum scale rate")
        else:
            allowed, reason, message = max_r, "TooManyReplicas", (
                "the desired replica count is more than the maximum replica count")
        if desired > allowed:
            return allowed, reason, message
    elif desired < current:
        limit = min(_limit(current, memory, down, now, up=False), current)
        if min_r < limit:
            allowed, reason, message = limit, "ScaleDownLimit", (
                "the desired replica count is decreasing faster than the maximum scale rate")
        else:
            allowed, reason, message = min_r, "TooFewReplicas", (
                "the desired replica count is less than the minimum replica count")
        if desired < allowed:
            return allowed, reason, message
    return desired, "DesiredWithinRange", "the desired count is within the acceptable range"


def _rules(behavior: dict | None, direction: str) -> dict:
    """One direction's rules with Kubernetes' defaults filled in."""
    given = (behavior or {}).get(direction) or {}
    if direction == "scaleUp":
        default = {"stabilizationWindowSeconds": 0, "selectPolicy": "Max",
                   "policies": [{"type": "Pods", "value": 4, "periodSeconds": 15},
                                {"type": "Percent", "value": 100, "periodSeconds": 15}]}
    else:
        default = {"stabilizationWindowSeconds": DOWN_WINDOW, "selectPolicy": "Max",
                   "policies": [{"type": "Percent", "value": 100, "periodSeconds": 15}]}
    return {k: given[k] if given.get(k) is not None else v for k, v in default.items()}


def _changed_in(events: list[tuple[float, int]], period: float, now: float) -> int:
    return sum(n for at, n in events if at > now - period)


def _limit(current: int, memory: Memory, rules: dict, now: float, up: bool) -> int:
    """The most (up) or fewest (down) replicas the behavior's policies allow from the
    replicas at the start of each policy's period; selectPolicy picks among them (Max:
    the largest change)."""
    if rules["selectPolicy"] == "Disabled":
        return current
    largest_change = rules["selectPolicy"] != "Min"
    pick = max if largest_change == up else min
    out: int | None = None
    for policy in rules["policies"]:
        period = float(policy.get("periodSeconds") or 15)
        start = current - _changed_in(memory.scale_up, period, now) + \
            _changed_in(memory.scale_down, period, now)
        value = int(policy.get("value") or 0)
        if policy.get("type") == "Pods":
            proposed = start + value if up else start - value
        else:
            proposed = math.ceil(start * (1 + value / 100)) if up \
                else int(start * (1 - value / 100))
        out = proposed if out is None else pick(out, proposed)
    return current if out is None else out


def _remember_scale(memory: Memory, current: int, desired: int, now: float) -> None:
    horizon = now - 1800          # policies' periods are at most 30 minutes
    memory.scale_up = [e for e in memory.scale_up if e[0] > horizon]
    memory.scale_down = [e for e in memory.scale_down if e[0] > horizon]
    if desired > current:
        memory.scale_up.append((now, desired - current))
    else:
        memory.scale_down.append((now, current - desired))


# -- status -----------------------------------------------------------------------------
def _replicas(target: dict) -> int:
    value = (target.get("spec") or {}).get("replicas")
    return 1 if value is None else int(value)


def _set(conditions: list[dict], type_: str, status: str, reason: str, message: str,
         now: float) -> None:
    """Set a condition, its lastTransitionTime moving only when its status does."""
    for i, cond in enumerate(conditions):
        if cond.get("type") == type_:
            since = cond.get("lastTransitionTime") if cond.get("status") == status \
                else rfc3339(now)
            conditions[i] = {"type": type_, "status": status, "reason": reason,
                             "message": message, "lastTransitionTime": since or rfc3339(now)}
            return
    conditions.append({"type": type_, "status": status, "reason": reason, "message": message,
                       "lastTransitionTime": rfc3339(now)})


def _changed(hpa: dict, conditions: list[dict]) -> bool:
    """Whether a condition's reason or message differs from the stored one (an event then,
    not one per pass)."""
    before = {(c.get("type"), c.get("reason"), c.get("message"))
              for c in (hpa.get("status") or {}).get("conditions") or []}
    return any((c["type"], c["reason"], c["message"]) not in before for c in conditions)


def _finish(hpa: dict, status: dict) -> dict:
    status["observedGeneration"] = hpa["metadata"].get("generation", 1)
    order = ["observedGeneration", "lastScaleTime", "currentReplicas", "desiredReplicas",
             "currentMetrics", "conditions"]
    if hpa.get("apiVersion") == "autoscaling/v1":
        # v1's own CPU figure too; its conditions stay in the status (Kubernetes keeps them
        # in an annotation) so that health and events read them alike.
        cpu = next(((m.get("resource") or {}).get("current") or {} for m in
                    status.get("currentMetrics") or []
                    if (m.get("resource") or {}).get("name") == "cpu"), {})
        status["currentCPUUtilizationPercentage"] = cpu.get("averageUtilization")
        order.insert(4, "currentCPUUtilizationPercentage")
    return {k: status[k] for k in order if status.get(k) is not None}


def _plural(kind: str) -> str:
    group = {"Deployment": "deployments.apps", "ReplicaSet": "replicasets.apps",
             "StatefulSet": "statefulsets.apps",
             "ReplicationController": "replicationcontrollers"}
    return group.get(kind, kind.lower() + "s")
