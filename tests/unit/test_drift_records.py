"""Drift records: the DESIGN.md schema, repeats counted within the window, not repeated."""

from __future__ import annotations

from structlog.testing import capture_logs

from gitops.sync.drift import EVENT, DriftRecorder

FIELDS = [{"path": "spec.replicas", "desired": 1, "live": 5, "line": 7}]


def record(rec: DriftRecorder, fields=FIELDS, action="corrected") -> bool:
    return rec.record(
        reconcile_id="r1", trigger="interval",
        source={"repo": "file:///r", "ref": "main", "path": "", "revision": "abc",
                "applied_revision": "abc"},
        obj={"apiVersion": "apps/v1", "kind": "Deployment", "namespace": "default",
             "name": "web", "uid": "u1", "file": "web.yaml", "line": 1},
        drift_type="modified", origin="desired", fields=fields, actor="unknown",
        health={"status": "Healthy", "message": ""},
        policy={"self_heal": True, "prune": True}, action=action)


def test_one_line_in_the_design_schema_then_repeats_are_counted():
    now = [1000.0]
    rec = DriftRecorder(window=300, clock=lambda: now[0])
    with capture_logs() as logs:
        assert record(rec)
        now[0] += 10
        assert not record(rec)                 # identical, within the window: counted
        now[0] += 10
        assert not record(rec)
        assert record(rec, fields=[{**FIELDS[0], "live": 6}])   # a different drift: logged
        now[0] += 300
        assert record(rec)                     # after the window: logged with the count
    lines = [e for e in logs if e["event"] == EVENT]
    assert len(lines) == 3
    first, last = lines[0], lines[2]
    assert set(first) >= {"reconcile_id", "trigger", "source", "object", "drift", "health",
                          "policy", "action"}
    assert set(first["drift"]) == {"type", "origin", "fields", "first_seen", "occurrences",
                                   "actor"}
    assert set(first["source"]) == {"repo", "ref", "path", "revision", "applied_revision"}
    assert set(first["object"]) == {"apiVersion", "kind", "namespace", "name", "uid", "file",
                                    "line"}
    assert first["drift"]["occurrences"] == 1 and last["drift"]["occurrences"] == 4
    assert first["drift"]["first_seen"] == last["drift"]["first_seen"] == "1970-01-01T00:16:40Z"
    assert first["log_level"] == "warning"


def test_recent_records_for_the_ui_newest_first_with_their_counts():
    now = [1000.0]
    rec = DriftRecorder(window=300, clock=lambda: now[0])
    record(rec)
    now[0] += 10
    record(rec)                                  # a repeat: counted on the kept record
    now[0] += 10
    record(rec, fields=[{**FIELDS[0], "live": 6}])
    recent = rec.recent()
    assert [r["drift"]["fields"][0]["live"] for r in recent] == [6, 5]
    older = recent[1]
    assert older["drift"]["occurrences"] == 2
    assert (older["at"], older["last_seen"]) == ("1970-01-01T00:16:40Z", "1970-01-01T00:16:50Z")
    assert older["object"]["file"] == "web.yaml" and older["action"] == "corrected"
    recent[0]["drift"]["occurrences"] = 99       # a copy: the recorder's own stays
    assert rec.recent()[0]["drift"]["occurrences"] == 1


def test_recent_records_are_bounded():
    from gitops.sync.drift import RECENT
    now = [1000.0]
    rec = DriftRecorder(window=300, clock=lambda: now[0])
    for i in range(RECENT + 50):
        record(rec, fields=[{**FIELDS[0], "live": i}])
    assert len(rec.recent()) == RECENT
    assert rec.recent()[0]["drift"]["fields"][0]["live"] == RECENT + 49
