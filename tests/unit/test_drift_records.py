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
