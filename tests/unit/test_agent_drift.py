"""Runtime drift (what someone else did to our containers) and the kubelet's Event wording
(pure; the events thread and the pass meet in DriftWatch, driven by a fake clock)."""

from __future__ import annotations

import pytest

from gitops.agent import podevents
from gitops.agent.drift import DriftWatch, ExternalEvent, drift_records, orphan_record
from gitops.agent.probes import ProbeResults
from gitops.agent.runtime import CONTAINER, POD_NAME, POD_NAMESPACE, POD_UID, SANDBOX, ContainerInfo


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def event(action: str, cid: str = "c1", uid: str = "u1", container: str = "app",
          **attrs) -> dict:
    return {"Action": action, "id": cid,
            "Actor": {"ID": cid, "Attributes": {POD_UID: uid, CONTAINER: container, **attrs}}}


def test_a_burst_is_reported_once_after_it_settled():
    clock = Clock()
    watch = DriftWatch(clock)
    for action in ("kill", "destroy"):           # `docker rm -f`: kill, (die), destroy
        assert watch.observe(event(action)).kept
    assert watch.observe(event("die")).kept is False
    assert watch.take_settled() == []            # not settled yet: kept for later
    clock.now += 0.5
    taken = watch.take_settled()
    assert [(e.id, e.action) for e in taken] == [("c1", "destroy")]
    assert watch.pending() == [] and watch.take_settled() == []


def test_events_of_what_the_agent_did_are_not_drift():
    watch = DriftWatch(Clock())
    watch.mark_ours("mine")
    assert watch.observe(event("kill", "mine")).kept is False
    assert watch.observe(event("kill", "mine")).wakes is True
    assert [e.id for e in watch.pending()] == []


def test_one_record_per_container_the_last_event_wins():
    clock = Clock()
    watch = DriftWatch(clock)
    watch.observe(event("pause", "a", container="app"))
    watch.observe(event("kill", "b", container="side"))
    watch.observe(event("update", "a", container="app"))
    clock.now += 1
    assert [(e.container, e.action) for e in watch.take_settled()] == \
        [("app", "update"), ("side", "kill")]


def ext(action: str, uid: str = "u1", container: str = "app", **attrs) -> ExternalEvent:
    return ExternalEvent("c1", action, {POD_UID: uid, CONTAINER: container, **attrs}, 0.0)


POD = {"metadata": {"name": "p", "namespace": "default", "uid": "u1"}}
RUNNING = ContainerInfo("c2", "n", {POD_UID: "u1", CONTAINER: "app"}, "running")
EXITED = ContainerInfo("c1", "n", {POD_UID: "u1", CONTAINER: "app"}, "exited")


@pytest.mark.parametrize("ev, pods, containers, expected", [
    (ext("destroy"), [POD], [RUNNING],
     ("missing", "docker rm", "removed", "corrected")),
    (ext("kill", signal="9"), [POD], [EXITED],
     ("modified", "docker kill (signal 9)", "killed", "reported")),
    (ext("stop"), [POD], [], ("modified", "docker stop", "stopped", "reported")),
    (ext("pause"), [POD], [], ("modified", "docker pause", "paused", "reported")),
    (ext("rename", name="other"), [POD], [],
     ("modified", "docker rename", "renamed to other", "reported")),
    (ext("update"), [POD], [RUNNING], ("modified", "docker update", "updated", "corrected")),
    (ext("kill"), [], [], ("modified", "docker kill", "killed", "corrected")),   # pod gone
])
def test_drift_records(ev, pods, containers, expected):
    record, = drift_records([ev], pods, {"u1": containers})
    kind, actor, live, action = expected
    assert record == {"pod": pods[0] if pods else None, "container": "app",
                      "container_id": "c1", "type": kind,
                      "fields": [{"path": "status.containerStatuses[app].state",
                                  "desired": "running", "live": live}],
                      "actor": actor, "action": action}


def test_an_orphan_is_extraneous_and_pruned_its_sandbox_is_not_reported():
    labels = {POD_UID: "u9", POD_NAMESPACE: "shop", POD_NAME: "gone", CONTAINER: "app"}
    record = orphan_record(ContainerInfo("c9", "n", labels, "running"))
    assert record == {"pod": {"apiVersion": "v1", "kind": "Pod", "metadata": {
                          "namespace": "shop", "name": "gone", "uid": "u9"}},
                      "container": "app", "container_id": "c9", "type": "extraneous",
                      "fields": [{"path": "status.containerStatuses[app].state",
                                  "desired": None, "live": "running"}],
                      "actor": "unknown", "action": "pruned"}
    assert orphan_record(ContainerInfo("c8", "n", {**labels, CONTAINER: SANDBOX},
                                       "running")) is None


# -- Event wording -----------------------------------------------------------------------
PSPEC = {"metadata": {"name": "web", "namespace": "shop", "uid": "u1"},
         "spec": {"initContainers": [{"name": "init", "image": "i:0"}],
                  "containers": [{"name": "app", "image": "i:1"}]}}


@pytest.mark.parametrize("reasons, expected", [
    ({"app": ("ContainerCreating", "")}, []),
    ({"app": ("CrashLoopBackOff", "back-off 10s")},
     [("BackOff", "Back-off restarting failed container app in pod web_shop(u1)", True)]),
    ({"init": ("ImagePullBackOff", "x")}, [("BackOff", 'Back-off pulling image "i:0"', False)]),
    ({"app": ("ErrImageNeverPull", "not present")},
     [("ErrImageNeverPull", "not present", True)]),
])
def test_waiting_events(reasons, expected):
    assert [(e.reason, e.message, e.warning) for e in podevents.waiting(PSPEC, reasons)] \
        == expected


@pytest.mark.parametrize("pulled_now, reasons", [
    (False, ["Pulled", "Created", "Started"]),
    (True, ["Created", "Started"]),
])
def test_a_started_container(pulled_now, reasons):
    events = podevents.started({"name": "app", "image": "i:1"}, pulled_now)
    assert [e.reason for e in events] == reasons
    assert all(e.container == "app" and not e.warning for e in events)
    if not pulled_now:
        assert events[0].message == 'Container image "i:1" already present on machine'


@pytest.mark.parametrize("result, expected", [
    (ProbeResults(), None),
    (ProbeResults(live=False, failure="Liveness probe failed: boom"),
     ("Unhealthy", "Liveness probe failed: boom")),
    (ProbeResults(ready=False, messages={"readiness": "refused"}),
     ("Unhealthy", "Readiness probe failed: refused")),
    (ProbeResults(ready=False), None),               # not ready yet, nothing failed
])
def test_unhealthy(result, expected):
    event = podevents.unhealthy("app", result)
    assert (event and (event.reason, event.message)) == expected


def test_killed_by_probe_names_the_probe():
    event = podevents.killed_by_probe("app", "Liveness probe failed: boom")
    assert event.message == "Container app failed liveness probe, will be restarted"


@pytest.mark.parametrize("container, field", [
    ("", ""), ("app", "spec.containers{app}"), ("init", "spec.initContainers{init}")])
def test_the_event_names_the_container_field(container, field):
    spec = podevents.spec_for(PSPEC, podevents.PodEvent("Started", "x", container))
    assert dict(spec.involved).get("fieldPath", "") == field
