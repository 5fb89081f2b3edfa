"""Job: run pods to completion with Kubernetes' NonIndexed semantics (pure).

- completions pods must succeed; parallelism (default 1) bounds the active pods:
  min(parallelism, completions - succeeded). As Kubernetes defaults them, completions is 1
  only when neither is given: with parallelism alone (or completions null) the Job is a
  work queue, done once any pod succeeded and none is still active (no new pods start
  after the first success).
- Failures: pods in phase Failed (not being deleted: pods we delete, e.g. on suspend, are
  not failures). With restartPolicy OnFailure the container restarts of active pods count
  too (restarts >= backoffLimit, as the job controller does). failed > backoffLimit
  (default 6) fails the Job with BackoffLimitExceeded; activeDeadlineSeconds counted from
  status.startTime fails it with DeadlineExceeded. A failed Job deletes its active pods;
  failed pods are kept so their logs stay readable.
- A replacement pod after failures waits Kubernetes' back-off: 10s doubling per failure
  since the last success, capped at 6 minutes, from the last failed pod's finish time.
- spec.suspend deletes the active pods and adds Suspended=True; resuming resets
  status.startTime (so activeDeadlineSeconds restarts) and sets Suspended=False.
- Once Complete or Failed the Job is final: its status is frozen and only
  ttlSecondsAfterFinished still acts (the Job is deleted; its pods follow through the
  garbage collector by ownerReference).
- Deliberate differences: success is checked before the failure rules (a pass that sees
  the last completion and an expired deadline together reports Complete); the counts come
  from the pods that exist (no tracking finalizers); an invalid pod template (restartPolicy
  other than Never/OnFailure, no containers) gives Failed=True reason InvalidSpec, which,
  unlike other failures, clears itself when the spec is fixed; Indexed completion mode is
  not supported and runs as NonIndexed.
"""

from __future__ import annotations

import random

from gitops.controllers.replicaset import new_pod
from gitops.model import key_of
from gitops.model.actions import Action, Create, Delete, SetStatus
from gitops.model.events import WARNING, EventSpec, event_for
from gitops.model.meta import is_deleting
from gitops.model.pods import deletion_order, is_active, is_ready
from gitops.model.times import parse_ts
from gitops.model.times import rfc3339 as iso

COMPLETE, FAILED, SUSPENDED = "Complete", "Failed", "Suspended"
INVALID_SPEC = "InvalidSpec"
BACKOFF_LIMIT_EXCEEDED = "BackoffLimitExceeded"
DEADLINE_EXCEEDED = "DeadlineExceeded"

JOB_NAME_LABELS = ("job-name", "batch.kubernetes.io/job-name")
CONTROLLER_UID_LABELS = ("controller-uid", "batch.kubernetes.io/controller-uid")

COMPONENT = "job-controller"
DEFAULT_BACKOFF_LIMIT = 6
BACKOFF_BASE, BACKOFF_MAX = 10.0, 360.0     # seconds, as the Kubernetes job controller


# -- conditions -------------------------------------------------------------------------
def condition(obj: dict, ctype: str) -> dict | None:
    for cond in (obj.get("status") or {}).get("conditions") or []:
        if cond.get("type") == ctype:
            return cond
    return None


def finished_condition(job: dict) -> dict | None:
    """The Complete or Failed condition that is True, if the Job is finished."""
    for ctype in (COMPLETE, FAILED):
        cond = condition(job, ctype)
        if cond is not None and cond.get("status") == "True":
            return cond
    return None


def is_finished(job: dict) -> bool:
    return finished_condition(job) is not None


def succeeded(job: dict) -> bool:
    cond = finished_condition(job)
    return cond is not None and cond["type"] == COMPLETE


def finish_time(job: dict) -> float | None:
    cond = finished_condition(job)
    if cond is None:
        return None
    status = job.get("status") or {}
    if cond["type"] == COMPLETE and parse_ts(status.get("completionTime")):
        return parse_ts(status["completionTime"])
    return parse_ts(cond.get("lastTransitionTime"))


def _set_condition(conditions: list[dict], ctype: str, status: str, reason: str,
                   message: str, now: float) -> list[dict]:
    """Replace the condition of that type; lastTransitionTime moves only with status."""
    before = next((c for c in conditions if c.get("type") == ctype), None)
    since = before.get("lastTransitionTime") if before and before.get("status") == status \
        else None
    cond = {"type": ctype, "status": status, "reason": reason, "message": message,
            "lastTransitionTime": since or iso(now)}
    return [*(c for c in conditions if c.get("type") != ctype), cond]


# -- spec -------------------------------------------------------------------------------
def _int(value: object, default: int | None) -> int | None:
    if value is None or isinstance(value, bool):
        return default
    try:
        return int(value)
    except (TypeError, ValueError):
        return default


def restart_policy(job: dict) -> str:
    tspec = ((job.get("spec") or {}).get("template") or {}).get("spec") or {}
    return tspec.get("restartPolicy") or "OnFailure"


def validate(job: dict) -> str | None:
    """Why the Job cannot run pods, or None."""
    spec = job.get("spec") or {}
    tspec = (spec.get("template") or {}).get("spec")
    if not isinstance(tspec, dict) or not tspec.get("containers"):
        return "spec.template.spec.containers: at least one container is required"
    policy = restart_policy(job)
    if policy not in ("Never", "OnFailure"):
        return (f"spec.template.spec.restartPolicy: Unsupported value: {policy!r}: "
                "supported values: \"OnFailure\", \"Never\"")
    for field in ("parallelism", "completions", "backoffLimit", "activeDeadlineSeconds",
                  "ttlSecondsAfterFinished"):
        value = spec.get(field)
        if value is not None and (_int(value, None) is None or int(value) < 0):
            return f"spec.{field}: must be a non-negative integer, got {value!r}"
    return None


# -- pods -------------------------------------------------------------------------------
def _failed(pod: dict) -> bool:
    return pod.get("status", {}).get("phase") == "Failed" and not is_deleting(pod)


def _succeeded(pod: dict) -> bool:
    return pod.get("status", {}).get("phase") == "Succeeded"


def _restarts(pod: dict) -> int:
    st = pod.get("status") or {}
    return sum(int(cs.get("restartCount") or 0)
               for cs in [*(st.get("initContainerStatuses") or []),
                          *(st.get("containerStatuses") or [])])


def _pod_finished_at(pod: dict) -> float | None:
    """When a finished pod's last container stopped (fallbacks: Ready transition, creation)."""
    st = pod.get("status") or {}
    times = [parse_ts(((cs.get("state") or {}).get("terminated") or {}).get("finishedAt"))
             for cs in [*(st.get("initContainerStatuses") or []),
                        *(st.get("containerStatuses") or [])]]
    times = [t for t in times if t]
    if times:
        return max(times)
    for cond in st.get("conditions") or []:
        if cond.get("type") == "Ready" and parse_ts(cond.get("lastTransitionTime")):
            return parse_ts(cond["lastTransitionTime"])
    return parse_ts(pod.get("metadata", {}).get("creationTimestamp"))


def backoff_until(pods: list[dict]) -> float | None:
    """Earliest time a replacement pod may start after failures (None: no wait)."""
    last_success = max((t for p in pods if _succeeded(p)
                        if (t := _pod_finished_at(p)) is not None), default=None)
    failures = [t for p in pods if _failed(p) if (t := _pod_finished_at(p)) is not None
                and (last_success is None or t > last_success)]
    if not failures:
        return None
    delay = min(BACKOFF_BASE * 2 ** (len(failures) - 1), BACKOFF_MAX)
    return max(failures) + delay


def new_job_pod(job: dict, rng: random.Random, taken: set[str]) -> dict:
    pod = new_pod(job, rng, taken)
    meta = pod["metadata"]
    uid = job["metadata"].get("uid", "")
    name = job["metadata"]["name"]
    meta["labels"].update({**{k: uid for k in CONTROLLER_UID_LABELS},
                           **{k: name for k in JOB_NAME_LABELS}})
    pod["spec"] = {**pod["spec"], "restartPolicy": restart_policy(job)}
    return pod


# -- reconcile --------------------------------------------------------------------------
def reconcile(job: dict, pods: list[dict], now: float, rng: random.Random) -> list[Action]:
    """pods: the pods this Job owns (by controller ownerReference)."""
    if is_deleting(job):
        return []
    key = key_of(job)
    spec = job.get("spec") or {}
    prev = dict(job.get("status") or {})
    active = [p for p in pods if is_active(p)]
    finished = finished_condition(job)
    invalid = validate(job)

    if finished is not None and not (finished.get("reason") == INVALID_SPEC and not invalid):
        # Final: only clean-up and the TTL remain.
        actions: list[Action] = [_delete_pod(job, p) for p in active]
        ttl = _int(spec.get("ttlSecondsAfterFinished"), None)
        done_at = finish_time(job)
        if ttl is not None and done_at is not None and now >= done_at + ttl:
            actions.append(Delete(key, propagation="Foreground"))   # as the TTL controller
        return actions

    every = list(prev.get("conditions") or [])
    conditions = [c for c in every
                  if not (c.get("type") == FAILED and c.get("reason") == INVALID_SPEC)]
    n_succeeded = sum(1 for p in pods if _succeeded(p))
    n_failed = sum(1 for p in pods if _failed(p))
    status = {**prev, "succeeded": n_succeeded, "failed": n_failed}
    status.pop("completionTime", None)

    if invalid:
        status.update(active=len(active), ready=sum(1 for p in active if is_ready(p)),
                      conditions=_set_condition(every, FAILED, "True", INVALID_SPEC,
                                                invalid, now))
        return [*(_delete_pod(job, p) for p in active), SetStatus(key, _clean(status))]

    suspended = bool(spec.get("suspend"))
    was_suspended = (condition(job, SUSPENDED) or {}).get("status") == "True"
    if suspended:
        status.update(active=0, ready=0, conditions=_set_condition(
            conditions, SUSPENDED, "True", "JobSuspended", "Job suspended", now))
        return [*(_delete_pod(job, p) for p in active), SetStatus(
            key, _clean(status), None if was_suspended else _event(job, "Suspended",
                                                                   "Job suspended"))]
    resumed = None
    if was_suspended:
        conditions = _set_condition(conditions, SUSPENDED, "False", "JobResumed",
                                    "Job resumed", now)
        status["startTime"] = iso(now)
        resumed = _event(job, "Resumed", "Job resumed")
    if not status.get("startTime"):
        status["startTime"] = iso(now)

    parallelism = max(0, _int(spec.get("parallelism"), 1))
    completions = _int(spec.get("completions"), None) if "completions" in spec else \
        None if "parallelism" in spec else 1
    if completions is None:          # work queue: no new pods once one succeeded
        want = len(active) if n_succeeded > 0 else parallelism
    else:
        want = max(0, min(parallelism, completions - n_succeeded))

    actions = []
    # Success first: the work is done, whatever the clock says now.
    if completions is None:
        complete = n_succeeded > 0 and not active
    else:
        complete = n_succeeded >= completions
    if complete:
        actions += [_delete_pod(job, p) for p in active]
        status.update(active=0, ready=0, completionTime=iso(now),
                      conditions=_set_condition(conditions, COMPLETE, "True",
                                                "CompletionsReached",
                                                "Reached expected number of succeeded pods",
                                                now))
        return [*actions, SetStatus(key, _clean(status), _event(job, "Completed",
                                                                "Job completed"))]

    failure = _failure(spec, active, n_failed, status["startTime"], now)
    if failure is not None:
        reason, message = failure
        actions += [_delete_pod(job, p) for p in active]
        status.update(active=0, ready=0, conditions=_set_condition(
            conditions, FAILED, "True", reason, message, now))
        return [*actions, SetStatus(key, _clean(status), _event(job, reason, message, WARNING))]

    count = len(active)
    if count > want:
        for pod in deletion_order(active, [])[: count - want]:    # ActivePods order
            actions.append(_delete_pod(job, pod))
            active.remove(pod)
    elif count < want:
        until = backoff_until(pods)
        if until is None or now >= until:
            taken = {p["metadata"]["name"] for p in pods}
            for _ in range(want - count):
                pod = new_job_pod(job, rng, taken)
                taken.add(pod["metadata"]["name"])
                actions.append(Create(pod, _event(job, "SuccessfulCreate",
                                                  f"Created pod: {pod['metadata']['name']}")))
    created = sum(1 for a in actions if isinstance(a, Create))
    status.update(active=len(active) + created, ready=sum(1 for p in active if is_ready(p)),
                  conditions=conditions)
    return [*actions, SetStatus(key, _clean(status), resumed)]


def _event(job: dict, reason: str, message: str, type: str = "Normal") -> EventSpec:
    return event_for(job, reason, message, type, COMPONENT)


def _delete_pod(job: dict, pod: dict) -> Delete:
    return Delete(key_of(pod), _event(job, "SuccessfulDelete",
                                      f"Deleted pod: {pod['metadata']['name']}"))


def _failure(spec: dict, active: list[dict], n_failed: int, start: str,
             now: float) -> tuple[str, str] | None:
    limit = max(0, _int(spec.get("backoffLimit"), DEFAULT_BACKOFF_LIMIT))
    if n_failed > limit:
        return BACKOFF_LIMIT_EXCEEDED, "Job has reached the specified backoff limit"
    if restart_policy({"spec": spec}) == "OnFailure":
        restarts = sum(_restarts(p) for p in active)
        if restarts > 0 and restarts >= limit:
            return BACKOFF_LIMIT_EXCEEDED, "Job has reached the specified backoff limit"
    deadline = _int(spec.get("activeDeadlineSeconds"), None)
    started = parse_ts(start)
    if deadline is not None and started is not None and now - started >= deadline:
        return DEADLINE_EXCEEDED, "Job was active longer than specified deadline"
    return None


def _clean(status: dict) -> dict:
    if not status.get("conditions"):
        status.pop("conditions", None)
    return status


def next_sync(job: dict, pods: list[dict], now: float) -> float | None:
    """When the Job next needs a pass even if nothing changes (deadline, back-off, TTL)."""
    spec = job.get("spec") or {}
    if is_deleting(job):
        return None
    if is_finished(job):
        ttl, done_at = _int(spec.get("ttlSecondsAfterFinished"), None), finish_time(job)
        return done_at + ttl if ttl is not None and done_at is not None else None
    if spec.get("suspend"):
        return None
    times = []
    until = backoff_until(pods)
    if until is not None and until > now:
        times.append(until)
    deadline = _int(spec.get("activeDeadlineSeconds"), None)
    started = parse_ts((job.get("status") or {}).get("startTime"))
    if deadline is not None and started is not None:
        times.append(started + deadline)
    return min(times, default=None)
