"""The Events each controller attaches to what it does, worded as Kubernetes words them,
and DaemonSet placement by taints and affinity."""

from __future__ import annotations

import random

import pytest

from gitops.controllers import cronjob, daemonset, job, statefulset
from gitops.model.actions import Create, Delete, Emit, SetStatus
from tests.unit.test_job_controllers import NOW, a_job, a_pod, iso
from tests.unit.test_set_controllers import dpod, ds, node, spod, sts


def events(actions):
    return [(a.event.reason, a.event.message, a.event.type) for a in actions
            if getattr(a, "event", None) is not None]


def test_statefulset_events():
    s = sts(replicas=1)
    got = events(statefulset.reconcile(s, [], [], NOW))
    assert got == [
        ("SuccessfulCreate", "create Claim data-web-0 Pod web-0 in StatefulSet web success",
         "Normal"),
        ("SuccessfulCreate", "create Pod web-0 in StatefulSet web successful", "Normal")]
    s = sts(replicas=1)
    pods = [spod(s, 0), spod(s, 1)]
    got = events(statefulset.reconcile(s, pods, [], NOW))
    assert ("SuccessfulDelete", "delete Pod web-1 in StatefulSet web successful",
            "Normal") in got
    assert all(a.event.component == "statefulset-controller"
               for a in statefulset.reconcile(s, pods, [], NOW) if a.event)


@pytest.mark.parametrize("phases, spec, want", [
    ((), {}, [("SuccessfulCreate", "Created pod: ", "Normal")]),
    (("Succeeded",), {}, [("Completed", "Job completed", "Normal")]),
    (("Failed",) * 2, {"backoffLimit": 1},
     [("BackoffLimitExceeded", "Job has reached the specified backoff limit", "Warning")]),
    (("Running",), {"activeDeadlineSeconds": 10},
     [("SuccessfulDelete", "Deleted pod: work-p0", "Normal"),
      ("DeadlineExceeded", "Job was active longer than specified deadline", "Warning")]),
    (("Running",), {"suspend": True},
     [("SuccessfulDelete", "Deleted pod: work-p0", "Normal"),
      ("Suspended", "Job suspended", "Normal")]),
])
def test_job_events(phases, spec, want):
    j = a_job(status={"startTime": iso(NOW - 100)}, **spec)
    pods = [a_pod(f"work-p{i}", p, finished_at=NOW - 50 if p != "Running" else None)
            for i, p in enumerate(phases)]
    got = events(job.reconcile(j, pods, NOW, random.Random(0)))
    assert [(r, t) for r, _, t in got] == [(r, t) for r, _, t in want]
    assert all(m.startswith(w) for (_, m, _), (_, w, _) in zip(got, want))


def test_job_events_only_on_transitions():
    j = a_job(status={"startTime": iso(NOW - 100)}, suspend=True)
    [status] = [a for a in job.reconcile(j, [], NOW, random.Random(0)) if isinstance(a,
                                                                                   SetStatus)]
    j["status"] = status.status
    again = job.reconcile(j, [], NOW + 5, random.Random(0))
    assert events(again) == []                       # still suspended: nothing new
    j["spec"]["suspend"] = False
    resumed = job.reconcile(j, [], NOW + 10, random.Random(0))
    assert ("Resumed", "Job resumed", "Normal") in events(resumed)


def cj(**spec):
    return {"apiVersion": "batch/v1", "kind": "CronJob",
            "metadata": {"name": "tick", "namespace": "default", "uid": "cj-uid",
                         "creationTimestamp": iso(NOW - 3600)},
            "spec": {"schedule": "*/5 * * * *", "jobTemplate": {"spec": {"template": {
                "spec": {"restartPolicy": "Never",
                         "containers": [{"name": "c", "image": "i"}]}}}}, **spec},
            "status": {"lastScheduleTime": iso(NOW - 300)}}


def owned_job(name, ctype=None, finished=NOW - 10):
    j = a_job(name=name, uid=f"{name}-uid")
    j["metadata"]["ownerReferences"] = [{"uid": "cj-uid", "controller": True}]
    j["metadata"]["annotations"] = {cronjob.SCHEDULED_TIMESTAMP: iso(finished - 50)}
    if ctype:
        j["status"] = {"conditions": [{"type": ctype, "status": "True",
                                       "lastTransitionTime": iso(finished)}],
                       "completionTime": iso(finished)}
    return j


def test_cronjob_events():
    c = cj()
    actions = cronjob.reconcile(c, [], NOW)
    [created] = [a for a in actions if isinstance(a, Create)]
    assert (created.event.reason, created.event.message) == (
        "SuccessfulCreate", f"Created job {created.obj['metadata']['name']}")
    assert created.event.component == "cronjob-controller"
    # the job it listed as active has finished: seen once, then history trims
    c = cj(successfulJobsHistoryLimit=0)
    c["status"]["active"] = [{"name": "tick-1"}]
    c["status"]["lastScheduleTime"] = iso(NOW)
    actions = cronjob.reconcile(c, [owned_job("tick-1", "Complete")], NOW)
    seen = [a.event.message for a in actions if isinstance(a, Emit)]
    assert seen == ["Saw completed job: tick-1, status: Complete"]
    [trim] = [a for a in actions if isinstance(a, Delete)]
    assert trim.event.message == "Deleted job tick-1" and trim.propagation == "Background"


def test_cronjob_invalid_schedule_warns_once():
    c = cj(schedule="61 * * * *")
    [st] = [a for a in cronjob.reconcile(c, [], NOW) if isinstance(a, SetStatus)]
    assert st.event is not None and st.event.type == "Warning"
    c["status"] = st.status
    [again] = [a for a in cronjob.reconcile(c, [], NOW + 5) if isinstance(a, SetStatus)]
    assert again.event is None


def test_daemonset_events():
    d = ds()
    [created] = [a for a in daemonset.reconcile(d, [], [node("n1")], NOW, random.Random(0))
                 if isinstance(a, Create)]
    assert created.event.reason == "SuccessfulCreate"
    assert created.event.message == f"Created pod: {created.obj['metadata']['name']}"
    gone = daemonset.reconcile(d, [dpod(d, "n9")], [node("n1")], NOW, random.Random(0))
    assert ("SuccessfulDelete", "Deleted pod: agent-n9", "Normal") in events(gone)


def tainted(name, effect, key="dedicated"):
    n = node(name)
    n["spec"] = {"taints": [{"key": key, "value": "x", "effect": effect}]}
    return n


@pytest.mark.parametrize("n, tolerations, have_pod, creates, deletes", [
    (tainted("n1", "NoSchedule"), [], False, 0, 0),          # no new pod
    (tainted("n1", "NoSchedule"), [], True, 0, 0),           # but the running one stays
    (tainted("n1", "NoExecute"), [], True, 0, 1),            # NoExecute evicts
    (tainted("n1", "NoExecute"), [{"key": "dedicated", "operator": "Exists"}], True, 0, 0),
    (tainted("n1", "NoSchedule"), [{"key": "dedicated", "operator": "Equal", "value": "x",
                                    "effect": "NoSchedule"}], False, 1, 0),
    (tainted("n1", "PreferNoSchedule"), [], False, 1, 0),
    # the daemon tolerations: unschedulable, not-ready NoExecute
    (node("n1", unschedulable=True), [], False, 1, 0),
])
def test_daemonset_taints(n, tolerations, have_pod, creates, deletes):
    d = ds()
    d["spec"]["template"]["spec"]["tolerations"] = tolerations
    pods = [dpod(d, "n1")] if have_pod else []
    actions = daemonset.reconcile(d, pods, [n], NOW, random.Random(0))
    assert sum(isinstance(a, Create) for a in actions) == creates
    assert sum(isinstance(a, Delete) for a in actions) == deletes


def test_daemonset_required_affinity_and_pod_tolerations():
    d = ds()
    d["spec"]["template"]["spec"]["affinity"] = {"nodeAffinity": {
        "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
            {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["a"]}]}]}}}
    nodes = [node("n1", labels={"zone": "a"}), node("n2", labels={"zone": "b"})]
    [created] = [a for a in daemonset.reconcile(d, [], nodes, NOW, random.Random(0))
                 if isinstance(a, Create)]
    assert created.obj["spec"]["nodeName"] == "n1"
    keys = {t["key"] for t in created.obj["spec"]["tolerations"]}
    assert {"node.kubernetes.io/not-ready", "node.kubernetes.io/unschedulable"} <= keys
