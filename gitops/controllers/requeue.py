"""When a reconciled object next needs a pass although nothing changes (pure): the
requeue_after of controller-runtime, for what depends on the clock alone.

Each returns a clock time (seconds since the epoch) or None when only a change of some
object can make a difference. The Job's and the CronJob's own modules answer for them
(job.next_sync, cronjob.next_schedule).
"""

from __future__ import annotations

from collections.abc import Iterable

from gitops.controllers.rollout import (
    NEW_RS_AVAILABLE,
    TIMED_OUT,
    get_condition,
    parse_time,
    progress_deadline,
)
from gitops.model.pods import is_ready, ready_since

# Past a deadline compared with `<` at a second's resolution, as the Deployment
# controller's own requeue adds a second.
DEADLINE_MARGIN = 1.0


def first_available(pods: Iterable[dict], min_ready_seconds: int, now: float) -> float | None:
    """When the first pod that is Ready but not yet available (minReadySeconds) becomes
    available: the status of its owner counts it from then on."""
    if not min_ready_seconds:
        return None
    times = [since + min_ready_seconds for pod in pods
             if is_ready(pod) and (since := ready_since(pod)) is not None
             and since + min_ready_seconds > now]
    return min(times, default=None)


def progress_deadline_at(deploy: dict, now: float) -> float | None:
    """When a rollout still progressing passes its progressDeadlineSeconds."""
    deadline = progress_deadline(deploy)
    cond = get_condition(deploy.get("status") or {}, "Progressing")
    if deadline is None or cond is None or cond.get("reason") in (NEW_RS_AVAILABLE, TIMED_OUT):
        return None
    due = parse_time(cond.get("lastUpdateTime")) + deadline + DEADLINE_MARGIN
    return due if due > now else None


def earliest(*times: float | None) -> float | None:
    return min((t for t in times if t is not None), default=None)
