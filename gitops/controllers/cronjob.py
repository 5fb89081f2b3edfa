"""CronJob: create Jobs on a cron schedule, with Kubernetes' CronJob semantics (pure).

- spec.schedule: five cron fields (minute hour day-of-month month day-of-week, names
  allowed, day-of-week 0 or 7 = Sunday, day-of-month and day-of-week OR-ed when both are
  restricted, as cron does) or @yearly/@annually/@monthly/@weekly/@daily/@midnight/
  @hourly, or "@every <Go duration>" (e.g. @every 1h30m, counted from the last schedule
  time, or the creation time before the first run). Times are computed in spec.timeZone
  (IANA name), UTC when absent. APScheduler's CronTrigger does the calendar arithmetic;
  weekday numbers are translated because APScheduler 3 counts Monday as 0.
- Each pass finds the most recent scheduled time in (lastScheduleTime or
  creationTimestamp, now]. Earlier missed times are skipped, as Kubernetes does. The Job
  for it is named <cronjob>-<scheduled time in unix minutes>, so a restart that lost the
  status write never runs a schedule twice. A time older than startingDeadlineSeconds is
  missed (no Job, lastScheduleTime unchanged).
- concurrencyPolicy: Allow (default) runs Jobs side by side; Forbid skips the run while a
  Job is active, leaving lastScheduleTime unchanged, so the run starts late once the
  active Job finishes if still within startingDeadlineSeconds (as Kubernetes); Replace
  deletes the active Jobs and starts the new one.
- spec.suspend stops new Jobs (active ones keep running).
- successfulJobsHistoryLimit (default 3) / failedJobsHistoryLimit (default 1): older
  finished Jobs are deleted; their pods follow through the garbage collector.
- status: lastScheduleTime, lastSuccessfulTime, active (references to active Jobs).
  An unusable schedule or time zone adds the condition InvalidSchedule=True (reason
  InvalidSchedule or UnknownTimeZone, with the parser's message) and creates nothing;
  the condition goes away once the spec is fixed. (Kubernetes has no CronJob conditions
  and reports this as an event; we have no events, so it lands in status.)
"""

from __future__ import annotations

import copy
import functools
import math
import re
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from apscheduler.triggers.cron import CronTrigger

from gitops.controllers import job as jobs_mod
from gitops.errors import PermanentError
from gitops.model import key_of
from gitops.model.actions import Action, Create, Delete, Emit, SetStatus
from gitops.model.events import WARNING, EventSpec, event_for
from gitops.model.meta import is_deleting, owner_ref
from gitops.model.times import parse_ts
from gitops.model.times import rfc3339 as iso

COMPONENT = "cronjob-controller"
SCHEDULED_TIMESTAMP = "batch.kubernetes.io/cronjob-scheduled-timestamp"
INVALID_SCHEDULE = "InvalidSchedule"
UNKNOWN_TIME_ZONE = "UnknownTimeZone"

_MACROS = {"@yearly": "0 0 1 1 *", "@annually": "0 0 1 1 *", "@monthly": "0 0 1 * *",
           "@weekly": "0 0 * * 0", "@daily": "0 0 * * *", "@midnight": "0 0 * * *",
           "@hourly": "0 * * * *"}
_WEEKDAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")   # cron numbering: sun = 0
_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)")
_UNIT_SECONDS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "μs": 1e-6, "ms": 1e-3, "s": 1.0,
                 "m": 60.0, "h": 3600.0}


class ScheduleError(PermanentError):
    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


# -- schedules --------------------------------------------------------------------------
@dataclass(frozen=True)
class Schedule:
    """Either cron triggers (fire when any fires) or a fixed interval from an anchor."""
    triggers: tuple[CronTrigger, ...] = ()
    tz: tzinfo = UTC
    every: float | None = None

    def _next_at_or_after(self, ts: int) -> float | None:
        start = datetime.fromtimestamp(ts, self.tz)
        times = [t.timestamp() for trig in self.triggers
                 if (t := trig.get_next_fire_time(None, start)) is not None]
        return min(times, default=None)

    def latest(self, after: float, now: float) -> float | None:
        """The most recent scheduled time in (after, now], or None."""
        if self.every is not None:
            k = math.floor((now - after) / self.every)
            return after + k * self.every if k >= 1 else None
        lo = math.floor(after) + 1          # fire times are whole seconds
        first = self._next_at_or_after(lo)
        if first is None or first > now:
            return None
        # Binary search for the largest start whose next fire is still <= now: that
        # start is itself the last fire time. ~32 steps even after years of downtime.
        lo, hi = int(first), math.floor(now) + 1
        while hi - lo > 1:
            mid = (lo + hi) // 2
            fire = self._next_at_or_after(mid)
            if fire is not None and fire <= now:
                lo = max(mid, int(fire))    # max: always progress, whatever the trigger says
            else:
                hi = mid
        return self._next_at_or_after(lo)

    def next_after(self, ts: float, anchor: float) -> float | None:
        """The first scheduled time strictly after ts (anchor: @every's reference)."""
        if self.every is not None:
            k = max(0, math.floor((ts - anchor) / self.every)) + 1
            return anchor + k * self.every
        return self._next_at_or_after(math.floor(ts) + 1)


def parse_schedule(schedule: object, time_zone: object = None) -> Schedule:
    """Raise ScheduleError with a clear message when the schedule cannot be used."""
    if not isinstance(schedule, str) or not schedule.strip():
        raise ScheduleError(INVALID_SCHEDULE, "spec.schedule is required")
    if time_zone is not None and not isinstance(time_zone, str):
        raise ScheduleError(UNKNOWN_TIME_ZONE, f"spec.timeZone: not a string: {time_zone!r}")
    return _parse(" ".join(schedule.split()), time_zone or None)


@functools.lru_cache(maxsize=256)
def _parse(schedule: str, time_zone: str | None) -> Schedule:
    tz = _zone(time_zone)
    low = schedule.lower()
    if low.startswith(("tz=", "cron_tz=")):
        raise ScheduleError(INVALID_SCHEDULE, f"spec.schedule {schedule!r}: a TZ= or CRON_TZ= "
                            "prefix is not supported, use spec.timeZone")
    if low.startswith("@every"):
        return Schedule(tz=tz, every=_duration(schedule, schedule[len("@every"):].strip()))
    expr = _MACROS.get(low, schedule)
    if expr.startswith("@"):
        raise ScheduleError(INVALID_SCHEDULE, f"spec.schedule {schedule!r}: unknown descriptor "
                            f"(use one of {', '.join(sorted(_MACROS))} or @every <duration>)")
    fields = expr.split()
    if len(fields) != 5:
        raise ScheduleError(INVALID_SCHEDULE, f"spec.schedule {schedule!r}: expected 5 fields "
                            f"(minute hour day-of-month month day-of-week), got {len(fields)}")
    minute, hour, dom, month, dow = (f.lower() for f in fields)
    dom_star, dow_star = dom.startswith(("*", "?")), dow.startswith(("*", "?"))
    dom = "*" if dom == "?" else dom
    try:
        weekdays = "*" if dow_star and dow in ("*", "?") else _weekdays(dow)
        if dom_star or dow_star:
            exprs = [f"{minute} {hour} {dom} {month} {weekdays}"]
        else:                              # cron: either day field may match
            exprs = [f"{minute} {hour} {dom} {month} *", f"{minute} {hour} * {month} {weekdays}"]
        triggers = tuple(CronTrigger.from_crontab(e, timezone=tz) for e in exprs)
    except (ValueError, TypeError, KeyError) as exc:
        raise ScheduleError(INVALID_SCHEDULE, f"spec.schedule {schedule!r}: {exc}") from None
    return Schedule(triggers=triggers, tz=tz)


def _zone(name: str | None) -> tzinfo:
    if name is None:
        return UTC
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise ScheduleError(UNKNOWN_TIME_ZONE,
                            f"spec.timeZone: unknown time zone {name!r}") from None


def _duration(schedule: str, text: str) -> float:
    pos, total = 0, 0.0
    while pos < len(text):
        m = _DURATION_PART.match(text, pos)
        if m is None:
            break
        total += float(m.group(1)) * _UNIT_SECONDS[m.group(2)]
        pos = m.end()
    if not text or pos != len(text) or total < 1:
        raise ScheduleError(INVALID_SCHEDULE, f"spec.schedule {schedule!r}: @every needs a "
                            "duration of at least 1s, such as 90s, 5m or 1h30m")
    return float(math.floor(total))    # robfig/cron rounds down to whole seconds


def _weekday(token: str) -> int:
    if token in _WEEKDAYS:
        return _WEEKDAYS.index(token)
    if token.isdigit() and 0 <= int(token) <= 7:
        return int(token)
    raise ValueError(f"bad day-of-week value {token!r} (0-7 or sun-sat)")


def _weekdays(field: str) -> str:
    """A cron day-of-week field (sun = 0 or 7) as APScheduler weekday names."""
    days: set[int] = set()
    for part in field.split(","):
        span, slash, step_text = part.partition("/")
        step = int(step_text) if step_text.isdigit() else 0 if slash else 1
        if step < 1:
            raise ValueError(f"bad step in day-of-week {part!r}")
        if span in ("*", "?"):
            lo, hi = 0, 6
        elif "-" in span:
            first, _, last = span.partition("-")
            lo, hi = _weekday(first), _weekday(last)
        else:
            lo = _weekday(span)
            hi = 6 if slash else lo         # "a/n" means a..sat every n
        if lo > hi:
            raise ValueError(f"bad day-of-week range {part!r}")
        days.update(d % 7 for d in range(lo, hi + 1, step))
    return ",".join(_WEEKDAYS[d] for d in sorted(days))


# -- helpers over Jobs ------------------------------------------------------------------
def _scheduled_at(job: dict) -> float:
    meta = job.get("metadata") or {}
    return (parse_ts((meta.get("annotations") or {}).get(SCHEDULED_TIMESTAMP))
            or parse_ts(meta.get("creationTimestamp")) or 0.0)


def _order(job: dict) -> tuple:
    return _scheduled_at(job), job.get("metadata", {}).get("name", "")


def _ref(job: dict) -> dict:
    meta = job["metadata"]
    ref = {"apiVersion": job.get("apiVersion", "batch/v1"), "kind": "Job",
           "name": meta["name"], "namespace": meta.get("namespace", "default")}
    if meta.get("uid"):
        ref["uid"] = meta["uid"]
    return ref


def _rfc3339(ts: float, tz: tzinfo) -> str:
    dt = datetime.fromtimestamp(ts, tz)
    return dt.isoformat(timespec="seconds") if dt.utcoffset() else iso(ts)


def job_name(cronjob: dict, scheduled: float) -> str:
    return f"{cronjob['metadata']['name']}-{int(scheduled // 60)}"


def new_job(cronjob: dict, scheduled: float, tz: tzinfo = UTC) -> dict:
    template = copy.deepcopy((cronjob.get("spec") or {}).get("jobTemplate") or {})
    tmeta = template.get("metadata") or {}
    return {"apiVersion": "batch/v1", "kind": "Job",
            "metadata": {"name": job_name(cronjob, scheduled),
                         "namespace": cronjob["metadata"].get("namespace", "default"),
                         "labels": dict(tmeta.get("labels") or {}),
                         "annotations": {**(tmeta.get("annotations") or {}),
                                         SCHEDULED_TIMESTAMP: _rfc3339(scheduled, tz)},
                         "ownerReferences": [owner_ref(cronjob)]},
            "spec": template.get("spec") or {}}


def _limit(value: object, default: int) -> int:
    return default if not isinstance(value, int) or isinstance(value, bool) or value < 0 \
        else value


def _prune(cronjob: dict, spec: dict, jobs: list[dict]) -> list[Action]:
    live = [j for j in jobs if not is_deleting(j) and jobs_mod.is_finished(j)]
    actions: list[Action] = []
    for keep, pick in ((_limit(spec.get("successfulJobsHistoryLimit"), 3), jobs_mod.succeeded),
                       (_limit(spec.get("failedJobsHistoryLimit"), 1),
                        lambda j: not jobs_mod.succeeded(j))):
        done = sorted((j for j in live if pick(j)), key=_order)
        actions += [_delete_job(cronjob, j) for j in done[: max(0, len(done) - keep)]]
    return actions


def _event(cronjob: dict, reason: str, message: str, type: str = "Normal") -> EventSpec:
    return event_for(cronjob, reason, message, type, COMPONENT)


def _delete_job(cronjob: dict, job: dict) -> Delete:
    """Background, as the CronJob controller deletes: the Job now, its pods after."""
    return Delete(key_of(job), _event(cronjob, "SuccessfulDelete",
                                      f"Deleted job {job['metadata']['name']}"), "Background")


def _saw_completed(cronjob: dict, jobs: list[dict]) -> list[Action]:
    """SawCompletedJob, once: for Jobs the last status still listed as active."""
    was_active = {r.get("name") for r in (cronjob.get("status") or {}).get("active") or []}
    out: list[Action] = []
    for j in jobs:
        cond = jobs_mod.finished_condition(j)
        if cond is not None and j["metadata"]["name"] in was_active:
            out.append(Emit(_event(cronjob, "SawCompletedJob",
                                   f"Saw completed job: {j['metadata']['name']}, "
                                   f"status: {cond['type']}")))
    return out


# -- reconcile --------------------------------------------------------------------------
def reconcile(cronjob: dict, jobs: list[dict], now: float) -> list[Action]:
    """jobs: the Jobs this CronJob owns (by controller ownerReference)."""
    if is_deleting(cronjob):
        return []
    spec = cronjob.get("spec") or {}
    prev = cronjob.get("status") or {}
    active = sorted((j for j in jobs if not is_deleting(j) and not jobs_mod.is_finished(j)),
                    key=_order)
    status: dict = {k: prev[k] for k in ("lastScheduleTime", "lastSuccessfulTime")
                    if prev.get(k)}
    successes = [t for j in jobs if jobs_mod.succeeded(j)
                 if (t := jobs_mod.finish_time(j)) is not None]
    best = max([*successes, parse_ts(prev.get("lastSuccessfulTime")) or 0.0])
    if best > 0:
        status["lastSuccessfulTime"] = iso(best)
    actions = [*_saw_completed(cronjob, jobs), *_prune(cronjob, spec, jobs)]

    try:
        schedule = parse_schedule(spec.get("schedule"), spec.get("timeZone"))
    except ScheduleError as exc:
        before = next((c for c in prev.get("conditions") or []
                       if c.get("type") == INVALID_SCHEDULE), {})
        same = before.get("status") == "True" and before.get("message") == exc.message
        status["conditions"] = [{
            "type": INVALID_SCHEDULE, "status": "True", "reason": exc.reason,
            "message": exc.message,
            "lastTransitionTime": before["lastTransitionTime"] if same else iso(now)}]
        status["active"] = [_ref(j) for j in active]
        return [*actions, SetStatus(key_of(cronjob), status, None if same else _event(
            cronjob, exc.reason, exc.message, WARNING))]

    if not spec.get("suspend"):
        scheduled = schedule.latest(_anchor(cronjob), now)
        if scheduled is not None:
            actions += _run(cronjob, jobs, active, scheduled, schedule.tz, now, status)
    status["active"] = [_ref(j) for j in active]
    return [*actions, SetStatus(key_of(cronjob), status)]


def _anchor(cronjob: dict) -> float:
    """Scheduled times are looked for after this (Kubernetes' earliest time)."""
    return (parse_ts((cronjob.get("status") or {}).get("lastScheduleTime"))
            or parse_ts(cronjob["metadata"].get("creationTimestamp")) or 0.0)


def _run(cronjob: dict, jobs: list[dict], active: list[dict], scheduled: float,
         tz: tzinfo, now: float, status: dict) -> list[Action]:
    """Start the Job for `scheduled` if policy allows; mutates active and status."""
    spec = cronjob.get("spec") or {}
    name = job_name(cronjob, scheduled)
    if any(j["metadata"]["name"] == name for j in jobs):
        status["lastScheduleTime"] = iso(scheduled)     # created before a lost status write
        return []
    deadline = spec.get("startingDeadlineSeconds")
    if isinstance(deadline, int) and not isinstance(deadline, bool) and \
            scheduled + deadline < now:
        return []                                       # missed its starting window
    policy = spec.get("concurrencyPolicy") or "Allow"
    actions: list[Action] = []
    if policy == "Forbid" and active:
        return []                                       # retried while still in window
    if policy == "Replace":
        actions += [_delete_job(cronjob, j) for j in active]
        active.clear()
    job = new_job(cronjob, scheduled, tz)
    actions.append(Create(job, _event(cronjob, "SuccessfulCreate",
                                      f"Created job {job['metadata']['name']}")))
    active.append(job)
    status["lastScheduleTime"] = iso(scheduled)
    return actions


def next_schedule(cronjob: dict, now: float) -> float | None:
    """The next scheduled time after now (None: suspended, deleting or unusable schedule)."""
    spec = cronjob.get("spec") or {}
    if spec.get("suspend") or is_deleting(cronjob):
        return None
    try:
        schedule = parse_schedule(spec.get("schedule"), spec.get("timeZone"))
    except ScheduleError:
        return None
    return schedule.next_after(now, _anchor(cronjob))

