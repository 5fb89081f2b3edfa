"""Events: Kubernetes shape, aggregation by count, TTL and cap, no Secret values."""

from __future__ import annotations

import base64

import pytest

from gitops.model import ObjectKey
from gitops.model import events as E
from gitops.model.actions import Create, Delete, Emit
from gitops.model.secrets import mask_text
from gitops.store.events import EventRecorder
from gitops.store.registry import execute
from gitops.testing import FakeClock, memory_store, namespace


@pytest.fixture
def store(tmp_path):
    s = memory_store()
    s.create(namespace("shop"))
    yield s
    s.close()


POD = {"apiVersion": "v1", "kind": "Pod",
       "metadata": {"name": "web-1", "namespace": "shop", "uid": "u-1"}}
NODE = {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n1", "uid": "n-1"}}


def spec(message="Started container web", reason="Started", obj=POD, type_=E.NORMAL):
    return E.event_for(obj, reason, message, type_, "kubelet")


def test_event_is_kubernetes_shaped(store):
    rec = EventRecorder(store, FakeClock(), host="box")
    rec.record(spec())
    [ev] = store.list("Event")
    assert ev["apiVersion"] == "v1" and ev["kind"] == "Event"
    assert ev["metadata"]["namespace"] == "shop"
    assert ev["metadata"]["name"].startswith("web-1.")
    assert ev["involvedObject"] == {"apiVersion": "v1", "kind": "Pod", "name": "web-1",
                                    "namespace": "shop", "uid": "u-1"}
    assert (ev["reason"], ev["message"], ev["type"], ev["count"]) == (
        "Started", "Started container web", "Normal", 1)
    assert ev["source"] == {"component": "kubelet", "host": "box"}
    assert ev["firstTimestamp"] == ev["lastTimestamp"] == "2027-01-15T08:00:00Z"


def test_cluster_scoped_objects_have_events_in_default(store):
    EventRecorder(store, FakeClock()).record(spec(obj=NODE, reason="Starting", message="up"))
    [ev] = store.list("Event")
    assert ev["metadata"]["namespace"] == "default"
    assert "namespace" not in ev["involvedObject"]


def test_identical_events_are_counted_not_repeated(store):
    clock = FakeClock()
    rec = EventRecorder(store, clock, coalesce=0)
    for _ in range(3):
        rec.record(spec("Back-off restarting failed container", "BackOff", type_=E.WARNING))
        clock.advance(30)
    rec.record(spec("Started container web"))
    events = sorted(store.list("Event"), key=lambda e: e["reason"])
    assert [(e["reason"], e["count"]) for e in events] == [("BackOff", 3), ("Started", 1)]
    backoff = events[0]
    assert backoff["firstTimestamp"] == "2027-01-15T08:00:00Z"
    assert backoff["lastTimestamp"] == "2027-01-15T08:01:00Z"


def test_repeats_within_the_coalescing_window_are_written_together(store):
    clock = FakeClock()
    rec = EventRecorder(store, clock, coalesce=10)
    for _ in range(5):                          # every 2 s, like the node agent's passes
        rec.record(spec("Back-off", "BackOff"))
        clock.advance(2)
    [ev] = store.list("Event")
    assert ev["count"] == 1                     # four repeats held back
    rec.record(spec("Back-off", "BackOff"))     # 10 s after the first write
    assert store.list("Event")[0]["count"] == 6
    rec.record(spec("Back-off", "BackOff"))
    rec.flush()
    assert store.list("Event")[0]["count"] == 7


def test_counts_continue_after_a_restart(store):
    clock = FakeClock()
    EventRecorder(store, clock, coalesce=0).record(spec())
    clock.advance(1)
    EventRecorder(store, clock, coalesce=0).record(spec())
    [ev] = store.list("Event")
    assert ev["count"] == 2


def test_events_expire_after_an_hour_and_are_capped(store):
    clock = FakeClock()
    rec = EventRecorder(store, clock, coalesce=0, max_events=3)
    rec.record(spec("old"))
    clock.advance(3601)
    for i in range(4):
        rec.record(spec(f"new {i}"))
        clock.advance(1)
    assert rec.prune(force=True) == 2           # one expired, one over the cap
    assert sorted(e["message"] for e in store.list("Event")) == ["new 1", "new 2", "new 3"]
    rec.record(spec("old"))                     # a pruned event starts again at 1
    assert next(e for e in store.list("Event") if e["message"] == "old")["count"] == 1


def test_prune_is_throttled(store):
    clock = FakeClock()
    rec = EventRecorder(store, clock, prune_every=60)
    rec.record(spec())
    clock.advance(7200)
    assert rec.prune() == 1
    rec.record(spec())
    clock.advance(7200)
    assert rec.prune() == 1                     # 7200 s later: allowed again
    rec.record(spec())
    assert rec.prune() == 0                     # right after: throttled


def test_secret_values_never_reach_an_event(store):
    store.create({"apiVersion": "v1", "kind": "Secret",
                  "metadata": {"name": "db", "namespace": "shop"},
                  "data": {"password": base64.b64encode(b"hunter2-secret").decode(),
                           "pin": base64.b64encode(b"42").decode()},
                  "stringData": {"token": "tok-abc-123"}})
    rec = EventRecorder(store, FakeClock())
    rec.record(spec("exec failed: sh -c 'login hunter2-secret tok-abc-123 pin 42' (421)",
                    "Failed", type_=E.WARNING))
    [ev] = store.list("Event")
    assert ev["message"] == "exec failed: sh -c 'login *** *** pin ***' (421)"


@pytest.mark.parametrize("message, values, want", [
    ("a password1 b", {"password1"}, "a *** b"),
    ("x=ab y=abc", {"ab"}, "x=*** y=abc"),       # short values only as whole words
    ("nothing here", set(), "nothing here"),
])
def test_mask(message, values, want):
    assert mask_text(message, values) == want


def test_expired_orders_by_last_seen():
    evs = [{"metadata": {"name": n, "namespace": "d"}, "lastTimestamp": E.iso(t)}
           for n, t in (("a", 100), ("b", 300), ("c", 200))]
    assert [k.name for k in E.expired(evs, now=400, ttl=1000, max_events=1)] == ["a", "c"]


def test_executor_records_an_event_only_when_the_action_succeeded(store):
    rec = EventRecorder(store, FakeClock())
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": "default"},
           "spec": {}}
    owner = {"apiVersion": "apps/v1", "kind": "ReplicaSet",
             "metadata": {"name": "rs", "namespace": "default", "uid": "rs-u"}}
    created = E.event_for(owner, "SuccessfulCreate", "Created pod: p",
                          component="replicaset-controller")
    execute(store, [Create(pod, created)], "replicaset", rec)
    execute(store, [Create(pod, created)], "replicaset", rec)       # conflict: no event
    execute(store, [Emit(E.event_for(owner, "Seen", "x"))], "replicaset", rec)
    execute(store, [Delete(ObjectKey("Pod", "default", "p"),
                           E.event_for(owner, "SuccessfulDelete", "Deleted pod: p"))],
            "replicaset", rec)
    reasons = sorted((e["reason"], e["count"]) for e in store.list("Event"))
    assert reasons == [("Seen", 1), ("SuccessfulCreate", 1), ("SuccessfulDelete", 1)]


def test_for_object_matches_by_uid_then_kind_and_name():
    evs = [{"metadata": {"name": "1"}, "involvedObject": {"kind": "Pod", "name": "a",
                                                          "namespace": "d", "uid": "u1"},
            "lastTimestamp": E.iso(2)},
           {"metadata": {"name": "2"}, "involvedObject": {"kind": "Pod", "name": "a",
                                                          "namespace": "d", "uid": "old"},
            "lastTimestamp": E.iso(1)},
           {"metadata": {"name": "3"}, "involvedObject": {"kind": "Pod", "name": "b",
                                                          "namespace": "d"},
            "lastTimestamp": E.iso(1)}]
    assert [e["metadata"]["name"] for e in E.for_object(evs, "Pod", "a", "d", "u1")] == ["1"]
    assert [e["metadata"]["name"] for e in E.for_object(evs, "Pod", "a", "d")] == ["2", "1"]


def test_caches_stay_bounded_on_a_long_lived_recorder(store):
    clock = FakeClock()
    rec = EventRecorder(store, clock, coalesce=5, max_events=10)
    for i in range(60):
        rec.record(spec(f"event {i}"))
        clock.advance(1)
    assert len(rec._written) <= 2 * 10 + 1
    assert rec._names is None or len(rec._names) <= 2 * 10 + 1
    clock.advance(5)
    rec.record(spec("event 59"))               # still counted after the index was rebuilt
    assert next(e for e in store.list("Event") if e["message"] == "event 59")["count"] == 2


def test_held_back_counts_are_written_by_a_later_event(store):
    clock = FakeClock()
    rec = EventRecorder(store, clock, coalesce=10)
    rec.record(spec("Back-off", "BackOff"))
    clock.advance(2)
    rec.record(spec("Back-off", "BackOff"))        # held back
    clock.advance(20)
    rec.record(spec("Started container web"))      # any later event writes it
    backoff = next(e for e in store.list("Event") if e["reason"] == "BackOff")
    assert backoff["count"] == 2
