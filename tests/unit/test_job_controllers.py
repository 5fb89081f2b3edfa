"""Job and CronJob reconcilers: pure, table-driven, with a fixed clock."""

import random
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gitops.controllers import cronjob, job
from gitops.model import ObjectKey
from gitops.model.actions import Create, Delete, SetStatus
from gitops.store.registry import execute
from gitops.testing import memory_store

NOW = 1_800_000_000.0            # Fri 2027-01-15 08:00:00 UTC (a whole minute and hour)
MIN, HOUR, DAY = 60, 3600, 86400


def iso(ts):
    return job.iso(ts)


# -- fixtures ---------------------------------------------------------------------------
def a_job(name="work", uid="job-uid", status=None, restart="OnFailure", **spec):
    tspec = {"containers": [{"name": "c", "image": "busybox"}]}
    if restart is not None:
        tspec["restartPolicy"] = restart
    return {"apiVersion": "batch/v1", "kind": "Job",
            "metadata": {"name": name, "namespace": "default", "uid": uid,
                         "creationTimestamp": iso(NOW - 1000)},
            "spec": {"template": {"metadata": {"labels": {"app": "work"}}, "spec": tspec},
                     **spec},
            "status": status or {}}


def a_pod(name, phase="Running", ready=True, deleting=False, restarts=0, finished_at=None,
          node="n1", created=None):
    meta = {"name": name, "namespace": "default", "uid": f"{name}-uid",
            "creationTimestamp": created or iso(NOW - 500),
            "ownerReferences": [{"apiVersion": "batch/v1", "kind": "Job", "name": "work",
                                 "uid": "job-uid", "controller": True}]}
    if deleting:
        meta["deletionTimestamp"] = iso(NOW - 1)
    cs = {"name": "c", "restartCount": restarts, "state": {"running": {}}}
    if finished_at is not None:
        cs["state"] = {"terminated": {"exitCode": 0 if phase == "Succeeded" else 1,
                                      "finishedAt": iso(finished_at)}}
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta,
            "spec": {"nodeName": node, "containers": [{"name": "c"}]},
            "status": {"phase": phase, "containerStatuses": [cs],
                       "conditions": [{"type": "Ready", "status": str(ready)}]}}


def pods(*phases):
    return [a_pod(f"work-p{i}", phase) for i, phase in enumerate(phases)]


def run_job(j, ps, now=NOW, seed=1):
    return job.reconcile(j, ps, now, random.Random(seed))


def creates(actions):
    return [a.obj for a in actions if isinstance(a, Create)]


def deletes(actions):
    return [a.key.name for a in actions if isinstance(a, Delete)]


def status_of(actions):
    found = [a.status for a in actions if isinstance(a, SetStatus)]
    assert len(found) <= 1
    return found[0] if found else None


def cond(status, ctype):
    return next((c for c in status.get("conditions", []) if c["type"] == ctype), None)


# -- Job: counting, parallelism, completions ---------------------------------------------
@pytest.mark.parametrize("spec, phases, n_create, n_delete, active, succeeded, failed", [
    ({}, (), 1, 0, 1, 0, 0),                                          # defaults: 1 of 1
    ({}, ("Running",), 0, 0, 1, 0, 0),
    ({"parallelism": 3, "completions": 5}, (), 3, 0, 3, 0, 0),
    ({"parallelism": 3, "completions": 5}, ("Succeeded",) * 2 + ("Running",), 2, 0, 3, 2, 0),
    ({"parallelism": 3, "completions": 5}, ("Succeeded",) * 3 + ("Running",), 1, 0, 2, 3, 0),
    ({"parallelism": 3, "completions": 5},                           # only 1 still needed
     ("Succeeded",) * 4 + ("Running",) * 3, 0, 2, 1, 4, 0),
    ({"parallelism": 2, "completions": 4}, ("Failed", "Running"), 1, 0, 2, 0, 1),
    ({"parallelism": 0, "completions": 4}, ("Running",), 0, 1, 0, 0, 0),   # scaled to 0
    ({"parallelism": 2, "completions": None}, (), 2, 0, 2, 0, 0),    # work queue
    ({"parallelism": 2, "completions": None}, ("Running",), 1, 0, 2, 0, 0),
    ({"parallelism": 3, "completions": None}, ("Succeeded", "Running"), 0, 0, 1, 1, 0),
    # parallelism alone is a work queue too (Kubernetes defaults completions only when
    # neither is given)
    ({"parallelism": 3}, (), 3, 0, 3, 0, 0),
    ({"parallelism": 3}, ("Succeeded", "Running"), 0, 0, 1, 1, 0),
])
def test_job_keeps_min_parallelism_remaining_active(spec, phases, n_create, n_delete, active,
                                                     succeeded, failed):
    actions = run_job(a_job(**spec), pods(*phases))
    assert len(creates(actions)) == n_create
    assert len(deletes(actions)) == n_delete
    st = status_of(actions)
    assert (st["active"], st["succeeded"], st["failed"]) == (active, succeeded, failed)
    assert st["startTime"] == iso(NOW)
    assert cond(st, "Complete") is None and cond(st, "Failed") is None


def test_job_excess_pods_deleted_least_useful_first():
    ps = pods("Succeeded", "Succeeded", "Succeeded", "Succeeded", "Running", "Running")
    ps[4]["status"]["conditions"][0]["status"] = "False"          # not ready goes first
    actions = run_job(a_job(parallelism=3, completions=5), ps)
    assert deletes(actions) == ["work-p4"]


@pytest.mark.parametrize("spec, phases", [
    ({}, ("Succeeded",)),
    ({"completions": 3, "parallelism": 3}, ("Succeeded",) * 3),
    ({"completions": 2}, ("Failed", "Succeeded", "Succeeded")),
    ({"completions": None, "parallelism": 2}, ("Succeeded", "Failed")),   # queue drained
])
def test_job_completes_with_completion_time(spec, phases):
    actions = run_job(a_job(**spec, status={"startTime": iso(NOW - 30)}), pods(*phases))
    st = status_of(actions)
    assert not creates(actions)
    c = cond(st, "Complete")
    assert c["status"] == "True" and c["reason"] == "CompletionsReached"
    assert c["lastTransitionTime"] == iso(NOW) and c["message"]
    assert st["completionTime"] == iso(NOW) and st["startTime"] == iso(NOW - 30)
    assert st["active"] == 0


def test_job_completion_deletes_leftover_active_pods():
    ps = pods("Succeeded", "Succeeded", "Running")
    actions = run_job(a_job(completions=2, parallelism=3), ps)
    assert deletes(actions) == ["work-p2"]
    assert cond(status_of(actions), "Complete")["status"] == "True"


def test_finished_job_is_final():
    done = a_job(status={"startTime": iso(NOW - 90), "completionTime": iso(NOW - 60),
                         "succeeded": 1, "conditions": [
                             {"type": "Complete", "status": "True",
                              "lastTransitionTime": iso(NOW - 60)}]})
    assert run_job(done, []) == []                # pods gone: no re-run, status frozen
    assert run_job(done, pods("Succeeded")) == []


# -- Job: failures ----------------------------------------------------------------------
@pytest.mark.parametrize("spec, pod_list, reason", [
    ({"backoffLimit": 2}, pods("Failed", "Failed", "Failed", "Running"),
     "BackoffLimitExceeded"),
    ({}, pods(*["Failed"] * 7), "BackoffLimitExceeded"),              # default limit 6
    ({"backoffLimit": 0}, pods("Failed"), "BackoffLimitExceeded"),
    ({"backoffLimit": 2}, [a_pod("work-p0", restarts=2)], "BackoffLimitExceeded"),  # OnFailure
    ({"backoffLimit": 0}, [a_pod("work-p0", restarts=1)], "BackoffLimitExceeded"),
    ({"activeDeadlineSeconds": 100}, pods("Running"), "DeadlineExceeded"),
    ({"activeDeadlineSeconds": 50, "completions": 3}, pods("Succeeded", "Running"),
     "DeadlineExceeded"),
])
def test_job_fails_and_deletes_active_pods_but_keeps_failed_ones(spec, pod_list, reason):
    j = a_job(**spec, status={"startTime": iso(NOW - 100)})
    actions = run_job(j, pod_list)
    st = status_of(actions)
    c = cond(st, "Failed")
    assert c["status"] == "True" and c["reason"] == reason and c["message"]
    assert c["lastTransitionTime"] == iso(NOW)
    assert st["active"] == 0 and "completionTime" not in st
    assert not creates(actions)
    running = [p["metadata"]["name"] for p in pod_list if p["status"]["phase"] == "Running"]
    assert deletes(actions) == running                 # Failed pods stay for their logs


@pytest.mark.parametrize("spec, pod_list", [
    ({"backoffLimit": 2}, pods("Failed", "Failed")),                  # failed == limit: go on
    ({"backoffLimit": 2, "template": {"spec": {"restartPolicy": "Never", "containers": [
        {"name": "c"}]}}}, [a_pod("work-p0", restarts=5)]),          # restarts only count
    ({"backoffLimit": 0}, [a_pod("work-p0", "Failed", deleting=True)]),   # we deleted it
    ({"activeDeadlineSeconds": 101}, pods("Running")),
])
def test_job_not_failed(spec, pod_list):
    st = status_of(run_job(a_job(**spec, status={"startTime": iso(NOW - 100)}), pod_list))
    assert cond(st, "Failed") is None


def test_success_wins_over_deadline_seen_in_the_same_pass():
    j = a_job(activeDeadlineSeconds=10, status={"startTime": iso(NOW - 100)})
    assert cond(status_of(run_job(j, pods("Succeeded"))), "Complete")["status"] == "True"


def test_failed_job_deletes_stragglers_on_later_passes():
    j = a_job(status={"conditions": [{"type": "Failed", "status": "True",
                                      "reason": "DeadlineExceeded",
                                      "lastTransitionTime": iso(NOW - 5)}]})
    ps = [a_pod("work-a"), a_pod("work-b", deleting=True), a_pod("work-c", "Failed")]
    [delete] = run_job(j, ps)
    assert isinstance(delete, Delete) and delete.key == ObjectKey("Pod", "default", "work-a")
    assert delete.event.message == "Deleted pod: work-a"


@pytest.mark.parametrize("failures, since_last, creates_pod", [
    (1, 9, False), (1, 10, True),                  # 10s after the first failure
    (2, 19, False), (2, 20, True),                 # then 20s, 40s, ...
    (6, 319, False), (6, 320, True),
    (8, 359, False), (8, 360, True),               # capped at 6 minutes
])
def test_job_replacement_waits_for_backoff(failures, since_last, creates_pod):
    ps = [a_pod(f"work-f{i}", "Failed", finished_at=NOW - since_last - (failures - i) * 1000)
          for i in range(failures - 1)]
    ps.append(a_pod("work-last", "Failed", finished_at=NOW - since_last))
    actions = run_job(a_job(backoffLimit=10, status={"startTime": iso(NOW - 9000)}), ps)
    assert bool(creates(actions)) is creates_pod
    waiting = job.next_sync(a_job(backoffLimit=10), ps, NOW)
    assert (waiting is not None and waiting > NOW) is not creates_pod


def test_backoff_counts_failures_since_last_success_only():
    ps = [a_pod("work-a", "Failed", finished_at=NOW - 500),
          a_pod("work-b", "Succeeded", finished_at=NOW - 400),
          a_pod("work-c", "Failed", finished_at=NOW - 15)]
    assert job.backoff_until(ps) == NOW - 15 + 10   # one failure after the success


# -- Job: pods it creates -----------------------------------------------------------------
@pytest.mark.parametrize("restart, want", [(None, "OnFailure"), ("Never", "Never"),
                                           ("OnFailure", "OnFailure")])
def test_job_pod_from_template(restart, want):
    actions = run_job(a_job(restart=restart), [])
    (pod,) = creates(actions)
    meta = pod["metadata"]
    assert re.fullmatch(r"work-[bcdfghjklmnpqrstvwxz2456789]{5}", meta["name"])
    assert meta["namespace"] == "default"
    assert meta["labels"] == {"app": "work", "controller-uid": "job-uid",
                              "batch.kubernetes.io/controller-uid": "job-uid",
                              "job-name": "work", "batch.kubernetes.io/job-name": "work"}
    (ref,) = meta["ownerReferences"]
    assert ref["controller"] is True and ref["uid"] == "job-uid" and ref["kind"] == "Job"
    assert pod["spec"]["restartPolicy"] == want
    assert pod["spec"]["containers"][0]["image"] == "busybox"
    assert pod["status"] == {"phase": "Pending"}


def test_job_pod_names_are_unique_and_seeded():
    one = [p["metadata"]["name"] for p in creates(run_job(a_job(parallelism=5, completions=5),
                                                          []))]
    two = [p["metadata"]["name"] for p in creates(run_job(a_job(parallelism=5, completions=5),
                                                          []))]
    assert one == two and len(set(one)) == 5


@pytest.mark.parametrize("restart, template_spec, fragment", [
    ("Always", None, "restartPolicy"),
    ("Never", {"containers": []}, "containers"),
])
def test_invalid_job_spec_fails_clearly_and_recovers_when_fixed(restart, template_spec,
                                                                 fragment):
    bad = a_job(restart=restart)
    if template_spec is not None:
        bad["spec"]["template"]["spec"] = template_spec
    actions = run_job(bad, [])
    assert not creates(actions)
    c = cond(status_of(actions), "Failed")
    assert c["reason"] == "InvalidSpec" and fragment in c["message"]
    bad["status"] = status_of(actions)
    assert run_job(bad, []) == []                              # stable while still bad
    fixed = a_job(status=bad["status"])
    actions = run_job(fixed, [])
    assert len(creates(actions)) == 1
    assert cond(status_of(actions), "Failed") is None


# -- Job: TTL, suspend ---------------------------------------------------------------------
def _finished(ctype, at, **spec):
    status = {"conditions": [{"type": ctype, "status": "True", "reason": "x",
                              "lastTransitionTime": iso(at)}]}
    if ctype == "Complete":
        status["completionTime"] = iso(at)
    return a_job(status=status, **spec)


@pytest.mark.parametrize("ctype, ttl, ago, deleted", [
    ("Complete", 60, 100, True),
    ("Complete", 60, 60, True),
    ("Complete", 60, 59, False),
    ("Complete", 0, 0, True),
    ("Complete", None, 10 * DAY, False),
    ("Failed", 30, 31, True),
    ("Failed", 30, 29, False),
])
def test_job_ttl_after_finished(ctype, ttl, ago, deleted):
    spec = {} if ttl is None else {"ttlSecondsAfterFinished": ttl}
    j = _finished(ctype, NOW - ago, **spec)
    actions = run_job(j, pods("Succeeded"))
    # deleted in the foreground, as Kubernetes' TTL controller does: pods first
    assert (Delete(ObjectKey("Job", "default", "work"), propagation="Foreground")
            in actions) is deleted
    assert job.next_sync(j, [], NOW) == (None if ttl is None else NOW - ago + ttl)


def test_ttl_does_not_apply_to_running_job():
    actions = run_job(a_job(ttlSecondsAfterFinished=0), pods("Running"))
    assert "work" not in deletes(actions)


def test_suspended_job_keeps_no_active_pods():
    j = a_job(suspend=True, parallelism=2, completions=4, status={"startTime": iso(NOW - 50)})
    ps = pods("Running", "Succeeded", "Failed")
    actions = run_job(j, ps)
    assert not creates(actions)
    assert deletes(actions) == ["work-p0"]
    st = status_of(actions)
    c = cond(st, "Suspended")
    assert c["status"] == "True" and c["reason"] == "JobSuspended"
    assert st["active"] == 0 and st["succeeded"] == 1 and st["failed"] == 1


def test_job_created_suspended_does_not_start_and_deadline_waits():
    j = a_job(suspend=True, activeDeadlineSeconds=1)
    st = status_of(run_job(j, []))
    assert "startTime" not in st and cond(st, "Failed") is None


def test_resumed_job_restarts_its_clock():
    j = a_job(activeDeadlineSeconds=60, parallelism=2, completions=2,
              status={"startTime": iso(NOW - 3600), "conditions": [
                  {"type": "Suspended", "status": "True", "reason": "JobSuspended",
                   "lastTransitionTime": iso(NOW - 3000)}]})
    ps = [a_pod("work-old", "Failed", deleting=True)]    # killed by the suspension
    actions = run_job(j, ps)
    st = status_of(actions)
    assert len(creates(actions)) == 2
    assert st["startTime"] == iso(NOW) and st["failed"] == 0
    c = cond(st, "Suspended")
    assert c["status"] == "False" and c["reason"] == "JobResumed"
    assert c["lastTransitionTime"] == iso(NOW)


def test_job_status_is_stable_between_passes():
    j = a_job(parallelism=2, completions=3)
    ps = pods("Running", "Running")
    first = status_of(run_job(j, ps))
    j["status"] = first
    assert status_of(run_job(j, ps, now=NOW + 30)) == first


def test_deleting_job_is_left_alone():
    j = a_job()
    j["metadata"]["deletionTimestamp"] = iso(NOW)
    assert run_job(j, []) == []


# -- CronJob ---------------------------------------------------------------------------
def a_cronjob(schedule="* * * * *", created=NOW - 90, status=None, name="nightly", **spec):
    return {"apiVersion": "batch/v1", "kind": "CronJob",
            "metadata": {"name": name, "namespace": "default", "uid": "cj-uid",
                         "creationTimestamp": iso(created)},
            "spec": {"schedule": schedule,
                     "jobTemplate": {"metadata": {"labels": {"team": "data"}},
                                     "spec": {"backoffLimit": 1, "template": {"spec": {
                                         "restartPolicy": "Never",
                                         "containers": [{"name": "c", "image": "busybox"}]}}}},
                     **spec},
            "status": status or {}}


def a_cron_job(scheduled, state=None, name=None, at=None):
    """A Job the CronJob made for `scheduled`; state None (active), Complete or Failed."""
    status = {}
    if state:
        done = at or scheduled + 30
        status = {"conditions": [{"type": state, "status": "True",
                                  "lastTransitionTime": iso(done)}]}
        if state == "Complete":
            status["completionTime"] = iso(done)
    return {"apiVersion": "batch/v1", "kind": "Job",
            "metadata": {"name": name or f"nightly-{int(scheduled // 60)}",
                         "namespace": "default", "uid": f"uid-{int(scheduled)}",
                         "creationTimestamp": iso(scheduled),
                         "annotations": {cronjob.SCHEDULED_TIMESTAMP: iso(scheduled)},
                         "ownerReferences": [{"apiVersion": "batch/v1", "kind": "CronJob",
                                              "name": "nightly", "uid": "cj-uid",
                                              "controller": True}]},
            "spec": {}, "status": status}


def created_names(actions):
    return [j["metadata"]["name"] for j in creates(actions)]


@pytest.mark.parametrize("schedule, created, last, now, expected", [
    # every minute
    ("* * * * *", NOW - 90, None, NOW, NOW),
    ("* * * * *", NOW - 90, None, NOW + 59, NOW),
    ("* * * * *", NOW - 30, None, NOW - 1, None),               # first minute not reached
    ("* * * * *", NOW - 90, NOW, NOW + 59, None),               # this minute already ran
    ("* * * * *", NOW - 90, NOW, NOW + 60, NOW + 60),
    ("*/15 * * * *", NOW - DAY, NOW - 15 * MIN, NOW + 14 * MIN, NOW),
    # hourly: after downtime only the most recent missed time runs
    ("@hourly", NOW - 3 * HOUR - 5, None, NOW + 10, NOW),
    ("0 * * * *", NOW - 10, None, NOW + 59 * MIN, NOW),
    ("0 * * * *", NOW - 10, NOW, NOW + 59 * MIN, None),
    ("@daily", NOW - 30 * DAY, None, NOW, NOW - 8 * HOUR),
    ("@weekly", NOW - 30 * DAY, None, NOW, NOW - 5 * DAY - 8 * HOUR),    # Sunday 00:00
    ("@monthly", NOW - 90 * DAY, None, NOW, NOW - 14 * DAY - 8 * HOUR),
    ("@yearly", NOW - 900 * DAY, None, NOW, NOW - 14 * DAY - 8 * HOUR),
    # day of week: cron counts Sunday as 0 (and 7); NOW is a Friday
    ("0 8 * * 5", NOW - 30 * DAY, None, NOW, NOW),
    ("0 8 * * FRI", NOW - 30 * DAY, None, NOW, NOW),
    ("0 8 * * 1-5", NOW - 30 * DAY, None, NOW, NOW),
    ("0 8 * * 1", NOW - 30 * DAY, None, NOW, NOW - 4 * DAY),
    ("0 8 * * 0", NOW - 30 * DAY, None, NOW, NOW - 5 * DAY),
    ("0 8 * * 7", NOW - 30 * DAY, None, NOW, NOW - 5 * DAY),
    ("0 8 1 * 5", NOW - 30 * DAY, None, NOW, NOW),               # day fields are OR-ed
    ("0 8 1 * *", NOW - 30 * DAY, None, NOW, NOW - 14 * DAY),
    ("@every 90m", NOW - 4 * HOUR, None, NOW, NOW - HOUR),       # created + 2 * 90m
    ("@every 1h30m", NOW - 4 * HOUR, NOW - 2 * HOUR, NOW, NOW - 30 * MIN),
    # years of downtime stay cheap (binary search) and still find the latest time
    ("* * * * *", NOW - 3000 * DAY, None, NOW + 30, NOW),
])
def test_cron_most_recent_schedule(schedule, created, last, now, expected):
    status = {"lastScheduleTime": iso(last)} if last else {}
    cj = a_cronjob(schedule, created=created, status=status)
    actions = cronjob.reconcile(cj, [], now)
    if expected is None:
        assert not creates(actions)
        assert status_of(actions).get("lastScheduleTime") == status.get("lastScheduleTime")
    else:
        assert created_names(actions) == [f"nightly-{int(expected // 60)}"]
        assert status_of(actions)["lastScheduleTime"] == iso(expected)


def test_cron_job_from_template():
    actions = cronjob.reconcile(a_cronjob(), [], NOW)
    (j,) = creates(actions)
    assert j["apiVersion"] == "batch/v1" and j["kind"] == "Job"
    assert j["metadata"]["name"] == "nightly-30000000"         # unix minutes of 08:00
    assert j["metadata"]["labels"] == {"team": "data"}
    assert j["metadata"]["annotations"][cronjob.SCHEDULED_TIMESTAMP] == "2027-01-15T08:00:00Z"
    (ref,) = j["metadata"]["ownerReferences"]
    assert ref["uid"] == "cj-uid" and ref["kind"] == "CronJob" and ref["controller"] is True
    assert j["spec"]["backoffLimit"] == 1
    assert j["spec"]["template"]["spec"]["restartPolicy"] == "Never"
    st = status_of(actions)
    assert st["active"] == [{"apiVersion": "batch/v1", "kind": "Job",
                             "name": "nightly-30000000", "namespace": "default"}]


def test_cron_time_zone():
    # 09:00 in Berlin is 08:00 UTC in January.
    cj = a_cronjob("0 9 * * *", created=NOW - DAY, timeZone="Europe/Berlin")
    (j,) = creates(cronjob.reconcile(cj, [], NOW))
    assert j["metadata"]["annotations"][cronjob.SCHEDULED_TIMESTAMP] == \
        "2027-01-15T09:00:00+01:00"
    assert cronjob.next_schedule(cj, NOW) == NOW + DAY


def test_cron_names_are_deterministic_across_restarts():
    # The Job was created but the status write was lost: never create it twice.
    cj = a_cronjob()
    first = creates(cronjob.reconcile(cj, [], NOW))
    again = creates(cronjob.reconcile(cj, [], NOW + 5))
    assert [j["metadata"]["name"] for j in first] == [j["metadata"]["name"] for j in again]
    actions = cronjob.reconcile(cj, [a_cron_job(NOW)], NOW + 5)
    assert not creates(actions)
    assert status_of(actions)["lastScheduleTime"] == iso(NOW)


@pytest.mark.parametrize("sds, now, runs", [
    (None, NOW + HOUR, True),                   # no deadline: late is fine
    (600, NOW + 599, True),
    (600, NOW + 600, True),
    (600, NOW + 601, False),                    # missed its window
    (0, NOW, True),
    (0, NOW + 1, False),
])
def test_cron_starting_deadline(sds, now, runs):
    spec = {} if sds is None else {"startingDeadlineSeconds": sds}
    cj = a_cronjob("0 8 * * *", created=NOW - DAY + 10, **spec)
    actions = cronjob.reconcile(cj, [], now)
    assert bool(creates(actions)) is runs
    assert ("lastScheduleTime" in status_of(actions)) is runs


def test_missed_window_does_not_block_the_next_schedule():
    cj = a_cronjob("0 * * * *", created=NOW - 3 * HOUR + 10, startingDeadlineSeconds=60)
    assert not creates(cronjob.reconcile(cj, [], NOW + 30 * MIN))
    assert created_names(cronjob.reconcile(cj, [], NOW + HOUR + 5)) == \
        [f"nightly-{int((NOW + HOUR) // 60)}"]


@pytest.mark.parametrize("policy, existing, want_created, want_deleted, want_active", [
    (None, [a_cron_job(NOW - MIN)], True, [], 2),                      # Allow by default
    ("Allow", [a_cron_job(NOW - MIN)], True, [], 2),
    ("Forbid", [a_cron_job(NOW - MIN)], False, [], 1),
    ("Forbid", [a_cron_job(NOW - MIN, "Complete")], True, [], 1),
    ("Forbid", [a_cron_job(NOW - MIN, "Failed")], True, [], 1),
    ("Replace", [a_cron_job(NOW - MIN)], True, ["nightly-29999999"], 1),
    ("Replace", [a_cron_job(NOW - MIN, "Complete")], True, [], 1),
])
def test_cron_concurrency_policy(policy, existing, want_created, want_deleted, want_active):
    spec = {"concurrencyPolicy": policy} if policy else {}
    cj = a_cronjob(status={"lastScheduleTime": iso(NOW - MIN)}, **spec)
    actions = cronjob.reconcile(cj, existing, NOW)
    assert bool(creates(actions)) is want_created
    assert deletes(actions) == want_deleted
    st = status_of(actions)
    assert len(st["active"]) == want_active
    assert st["lastScheduleTime"] == iso(NOW if want_created else NOW - MIN)


def test_forbidden_run_starts_late_once_the_active_job_finishes():
    cj = a_cronjob("0 8 * * *", created=NOW - DAY + 10, concurrencyPolicy="Forbid",
                   startingDeadlineSeconds=300)
    running = a_cron_job(NOW - DAY, name="nightly-old")
    assert not creates(cronjob.reconcile(cj, [running], NOW + 100))
    finished = a_cron_job(NOW - DAY, "Complete", name="nightly-old", at=NOW + 150)
    assert created_names(cronjob.reconcile(cj, [finished], NOW + 200)) == ["nightly-30000000"]
    assert not creates(cronjob.reconcile(cj, [finished], NOW + 301))     # too late now


def test_suspended_cronjob_creates_nothing():
    cj = a_cronjob(suspend=True)
    actions = cronjob.reconcile(cj, [a_cron_job(NOW - MIN)], NOW)
    assert not creates(actions) and not deletes(actions)
    assert status_of(actions)["active"][0]["uid"] == f"uid-{int(NOW - MIN)}"
    assert cronjob.next_schedule(cj, NOW) is None


@pytest.mark.parametrize("limits, n_ok, n_failed, deleted_ok, deleted_failed", [
    ({}, 5, 3, [0, 1], [0, 1]),                       # keep 3 successes and 1 failure
    ({}, 3, 1, [], []),
    ({"successfulJobsHistoryLimit": 0, "failedJobsHistoryLimit": 0}, 2, 1, [0, 1], [0]),
    ({"successfulJobsHistoryLimit": 10, "failedJobsHistoryLimit": 2}, 5, 3, [], [0]),
])
def test_cron_history_limits_delete_oldest_finished(limits, n_ok, n_failed, deleted_ok,
                                                    deleted_failed):
    ok = [a_cron_job(NOW - (100 - i) * MIN, "Complete") for i in range(n_ok)]     # oldest 1st
    failed = [a_cron_job(NOW - (50 - i) * MIN, "Failed") for i in range(n_failed)]
    jobs = [*ok, *failed, a_cron_job(NOW - 2 * MIN)]        # the active one is never pruned
    random.Random(3).shuffle(jobs)
    want = sorted([ok[i]["metadata"]["name"] for i in deleted_ok]
                  + [failed[i]["metadata"]["name"] for i in deleted_failed])
    cj = a_cronjob(status={"lastScheduleTime": iso(NOW)}, **limits)
    assert sorted(deletes(cronjob.reconcile(cj, jobs, NOW + 1))) == want


def test_cron_status_last_successful_time_and_active_refs():
    jobs = [a_cron_job(NOW - 3 * MIN, "Complete", at=NOW - 150),
            a_cron_job(NOW - 2 * MIN, "Failed", at=NOW - 100),
            a_cron_job(NOW - MIN)]
    cj = a_cronjob(status={"lastScheduleTime": iso(NOW - MIN),
                           "lastSuccessfulTime": iso(NOW - 9000)}, concurrencyPolicy="Forbid")
    st = status_of(cronjob.reconcile(cj, jobs, NOW))
    assert st["lastSuccessfulTime"] == iso(NOW - 150)
    assert st["active"] == [{"apiVersion": "batch/v1", "kind": "Job",
                             "name": f"nightly-{int((NOW - MIN) // 60)}",
                             "namespace": "default", "uid": f"uid-{int(NOW - MIN)}"}]
    assert "conditions" not in st


@pytest.mark.parametrize("schedule, tz, reason, fragment", [
    ("not a cron", None, "InvalidSchedule", "expected 5 fields"),
    ("* * * *", None, "InvalidSchedule", "expected 5 fields"),
    ("* * * * * *", None, "InvalidSchedule", "expected 5 fields"),
    ("61 * * * *", None, "InvalidSchedule", "61"),
    ("* 25 * * *", None, "InvalidSchedule", "25"),
    ("* * * * 8", None, "InvalidSchedule", "day-of-week"),
    ("* * * * fri-mon", None, "InvalidSchedule", "day-of-week"),
    ("* * * * 1/0", None, "InvalidSchedule", "step"),
    ("@fortnightly", None, "InvalidSchedule", "unknown descriptor"),
    ("@every banana", None, "InvalidSchedule", "@every"),
    ("@every 100ms", None, "InvalidSchedule", "@every"),
    ("TZ=UTC 0 * * * *", None, "InvalidSchedule", "spec.timeZone"),
    ("", None, "InvalidSchedule", "required"),
    (None, None, "InvalidSchedule", "required"),
    ("0 * * * *", "Mars/Olympus_Mons", "UnknownTimeZone", "Mars/Olympus_Mons"),
    ("0 * * * *", 5, "UnknownTimeZone", "timeZone"),
])
def test_bad_schedule_reports_condition_without_crashing(schedule, tz, reason, fragment):
    spec = {"timeZone": tz} if tz is not None else {}
    cj = a_cronjob(schedule, **spec)
    active = a_cron_job(NOW - MIN)
    actions = cronjob.reconcile(cj, [active], NOW)
    assert not creates(actions)
    st = status_of(actions)
    (c,) = st["conditions"]
    assert c["type"] == "InvalidSchedule" and c["status"] == "True" and c["reason"] == reason
    assert fragment in c["message"]
    assert st["active"][0]["name"] == active["metadata"]["name"]
    assert cronjob.next_schedule(cj, NOW) is None
    # Stable while unchanged; gone once fixed.
    cj["status"] = st
    assert status_of(cronjob.reconcile(cj, [active], NOW + 60)) == st
    cj["spec"]["schedule"], cj["spec"]["timeZone"] = "* * * * *", None
    assert "conditions" not in status_of(cronjob.reconcile(cj, [active], NOW + 60))


def test_impossible_schedule_never_fires():
    cj = a_cronjob("0 0 30 2 *", created=NOW - 400 * DAY)
    actions = cronjob.reconcile(cj, [], NOW)
    assert not creates(actions) and "conditions" not in status_of(actions)
    assert cronjob.next_schedule(cj, NOW) is None


def _brute_latest(schedule, after, now):
    """Walk every fire time from `after`: the slow obvious answer to compare with."""
    found, t = None, schedule.next_after(after, after)
    while t is not None and t <= now:
        found, t = t, schedule.next_after(t, after)
    return found


@settings(max_examples=150, deadline=None)
@given(expr=st.sampled_from(["*/7 * * * *", "0 */5 * * *", "30 2 * * *", "0 8 1 * 5",
                             "15 9 * * 1-5", "0 0 29 2 *", "@hourly", "*/10 1-3 * * 0"]),
       tz=st.sampled_from([None, "Europe/Berlin", "America/New_York"]),
       start=st.integers(0, 400 * DAY), span=st.integers(0, 3 * DAY))
def test_latest_matches_walking_every_fire_time(expr, tz, start, span):
    # Starts over a year around NOW, with DST changes in both zones.
    schedule = cronjob.parse_schedule(expr, tz)
    after = NOW - 200 * DAY + start + 0.5
    assert schedule.latest(after, after + span) == _brute_latest(schedule, after, after + span)


@pytest.mark.parametrize("schedule, status, now, expected", [
    ("* * * * *", {}, NOW, NOW + MIN),
    ("* * * * *", {}, NOW + 1, NOW + MIN),
    ("@hourly", {}, NOW, NOW + HOUR),
    ("30 8 * * 1-5", {}, NOW, NOW + 30 * MIN),
    ("30 7 * * 1-5", {}, NOW, NOW + 3 * DAY - 30 * MIN),          # Friday -> Monday
    ("@every 90m", {}, NOW, NOW - 90 + 90 * MIN),                 # created NOW - 90
    ("@every 90m", {"lastScheduleTime": iso(NOW - 10 * MIN)}, NOW, NOW + 80 * MIN),
])
def test_next_schedule(schedule, status, now, expected):
    assert cronjob.next_schedule(a_cronjob(schedule, status=status), now) == expected


def test_deleting_cronjob_is_left_alone():
    cj = a_cronjob()
    cj["metadata"]["deletionTimestamp"] = iso(NOW)
    assert cronjob.reconcile(cj, [], NOW) == []


# -- end to end through the store and the executor -------------------------------------------
def test_cronjob_job_pod_round_trip_through_the_store(tmp_path):
    store = memory_store()
    try:
        store.create(a_cronjob("*/5 * * * *", created=NOW - 6 * MIN))
        rng = random.Random(7)

        def owned(kind, owner):
            return [o for o in store.list(kind)
                    if any(r.get("uid") == owner["metadata"]["uid"]
                           for r in o["metadata"].get("ownerReferences", []))]

        def cycle(now):
            cj = store.get(ObjectKey("CronJob", "default", "nightly"))
            execute(store, cronjob.reconcile(cj, owned("Job", cj), now), "cronjob")
            for j in store.list("Job"):
                execute(store, job.reconcile(j, owned("Pod", j), now, rng), "job")

        cycle(NOW)
        (j,) = store.list("Job")
        assert j["metadata"]["name"] == "nightly-30000000"
        (p,) = store.list("Pod")
        assert p["metadata"]["labels"]["controller-uid"] == j["metadata"]["uid"]
        store.update_status(ObjectKey("Pod", "default", p["metadata"]["name"]),
                            {"phase": "Succeeded"})
        cycle(NOW + 30)
        cycle(NOW + 31)
        j = store.get(ObjectKey("Job", "default", "nightly-30000000"))
        assert j["status"]["succeeded"] == 1 and job.succeeded(j)
        cj = store.get(ObjectKey("CronJob", "default", "nightly"))
        assert cj["status"]["lastSuccessfulTime"] == iso(NOW + 30)
        assert cj["status"]["active"] == [] and len(store.list("Pod")) == 1
        cycle(NOW + 5 * MIN)
        assert len(store.list("Job")) == 2
    finally:
        store.close()


# -- wiring (runs once manager.py, health.py and kinds.py know Job and CronJob) ------------
def _wired():
    from gitops.model import KINDS
    return "Job" in KINDS and "CronJob" in KINDS


wired = pytest.mark.skipif(not _wired(), reason="Job/CronJob not wired into kinds.py yet")


@wired
def test_manager_drives_cronjob_job_and_pods(tmp_path):
    from gitops.controllers.manager import ControllerManager
    from gitops.health import assess

    store = memory_store()
    clock = [NOW]
    try:
        mgr = ControllerManager(store, rng=random.Random(5), clock=lambda: clock[0])
        store.create(a_cronjob("@hourly", created=NOW - HOUR + 10))
        key = ObjectKey("CronJob", "default", "nightly")
        assert assess(store.get(key)).status == "Healthy"
        mgr.run_once()
        (j,) = store.list("Job")
        (p,) = store.list("Pod")
        assert j["metadata"]["name"] == "nightly-30000000"
        assert assess(j).status == "Progressing"
        store.update_status(ObjectKey("Pod", "default", p["metadata"]["name"]), {
            "phase": "Failed", "containerStatuses": [{"name": "c", "state": {"terminated": {
                "exitCode": 1, "finishedAt": iso(NOW + 15)}}}]})  # backoffLimit 1 in template
        clock[0] = NOW + 20
        mgr.run_once()
        assert len(store.list("Pod")) == 1                        # back-off: 10s from NOW+15
        clock[0] = NOW + 25
        mgr.run_once()
        pods_now = store.list("Pod")
        assert len(pods_now) == 2
        second = next(q for q in pods_now if q["metadata"]["name"] != p["metadata"]["name"])
        store.update_status(ObjectKey("Pod", "default", second["metadata"]["name"]),
                            {"phase": "Failed"})
        clock[0] = NOW + 60
        mgr.run_once()
        mgr.run_once()
        j = store.get(ObjectKey("Job", "default", "nightly-30000000"))
        assert assess(j).status == "Degraded"
        assert "backoff limit" in assess(j).message
        assert assess(store.get(key)).status == "Degraded"       # its last job failed
        if hasattr(mgr, "next_wakeup"):
            assert mgr.next_wakeup() == NOW + HOUR
        store.update(store.get(key) | {"spec": {**store.get(key)["spec"], "suspend": True}})
        assert assess(store.get(key)).status == "Suspended"
    finally:
        store.close()


@wired
@pytest.mark.parametrize("status, spec, health", [
    ({"conditions": [{"type": "Complete", "status": "True"}], "succeeded": 1}, {}, "Healthy"),
    ({"conditions": [{"type": "Failed", "status": "True", "reason": "DeadlineExceeded",
                      "message": "Job was active longer than specified deadline"}]}, {},
     "Degraded"),
    ({"active": 1}, {}, "Progressing"),
    ({}, {"suspend": True}, "Suspended"),       # as Argo CD shows it
])
def test_job_health(status, spec, health):
    from gitops.health import assess
    assert assess(a_job(status=status, **spec)).status == health


@wired
@pytest.mark.parametrize("status, spec, health", [
    ({}, {}, "Healthy"),                                                  # never ran yet
    ({"lastScheduleTime": iso(NOW), "active": [{"name": "x"}]}, {}, "Healthy"),
    ({"lastScheduleTime": iso(NOW - 60), "lastSuccessfulTime": iso(NOW - 30)}, {}, "Healthy"),
    ({"lastScheduleTime": iso(NOW), "lastSuccessfulTime": iso(NOW - 30)}, {}, "Degraded"),
    ({"lastScheduleTime": iso(NOW)}, {}, "Degraded"),
    ({"lastScheduleTime": iso(NOW)}, {"suspend": True}, "Suspended"),
    ({"conditions": [{"type": "InvalidSchedule", "status": "True", "message": "bad"}]}, {},
     "Degraded"),
])
def test_cronjob_health(status, spec, health):
    from gitops.health import assess
    assert assess(a_cronjob(status=status, **spec)).status == health
