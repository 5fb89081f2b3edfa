"""`up --wait`'s loop against a scripted agent: plain lines per health change, the live table,
healthy / refused / timeout outcomes, the explanation with log lines, and the JSON report."""

from __future__ import annotations

import io
import json

from gitops.cli import progress
from gitops.errors import GitopsError


def obj(kind, name, health, message="", ns="default"):
    return {"kind": kind, "namespace": ns, "name": name, "file": f"{name}.yaml", "line": 1,
            "sync": "Synced", "health": health, "message": message}


def status(objects, applied="abc123", last="synced", errors=()):
    return {"source": {"repo": "/src", "ref": "", "path": ""}, "applied_revision": applied,
            "last_sync": {"result": last, "message": "", "errors": list(errors)},
            "objects": objects}


# Each Deployment's ReplicaSet: pods are found through owner references.
REPLICASETS = {"items": [
    {"kind": "ReplicaSet", "metadata": {"name": f"{n}-1", "namespace": "default",
                                        "uid": f"{n}-rs", "ownerReferences": [
                                            {"uid": f"{n}-uid", "controller": True}]}}
    for n in ("api", "web")]}


class FakeClient:
    """Answers /gitops/v1/status from a script (the last entry repeats) and the rest from
    a dict of paths."""

    def __init__(self, statuses, paths=None):
        self.statuses, self.paths, self.calls = list(statuses), paths or {}, []

    def get(self, path, timeout=30):
        self.calls.append(path)
        if path == "/gitops/v1/status":
            return self.statuses.pop(0) if len(self.statuses) > 1 else self.statuses[0]
        if path in self.paths:
            return self.paths[path]
        raise GitopsError(f"GET {path}: 404")


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now

    def sleep(self, s):
        self.now += s


def run(client, timeout=10.0, tty=False):
    clock, out = Clock(), io.StringIO()
    result = progress.wait_healthy(client, timeout, stream=out, tty=tty, clock=clock,
                                   sleep=clock.sleep)
    return result, out.getvalue()


def test_plain_lines_per_health_change_then_healthy():
    client = FakeClient([
        status([obj("Deployment", "web", "Progressing", "0 of 2 updated replicas")], None),
        status([obj("Deployment", "web", "Progressing", "0 of 2 updated replicas")]),
        status([obj("Deployment", "web", "Progressing", "1 of 2 updated replicas")]),
        status([obj("Deployment", "web", "Healthy", "2/2 available")]),
    ])
    out, text = run(client)
    assert out.ok and out.result == "healthy"
    lines = [ln.split("] ", 1)[1] for ln in text.splitlines()]
    assert lines == ["waiting up to 10s for /src to be healthy",
                     "Deployment/default/web: Progressing (0 of 2 updated replicas)",
                     "revision abc123 applied",
                     "Deployment/default/web: Progressing (1 of 2 updated replicas)",
                     "Deployment/default/web: Healthy (2/2 available)"]
    assert "all 1 object(s) healthy at revision abc123" in progress.render_outcome(out)


def test_refused_first_sync_ends_at_once_with_the_errors():
    client = FakeClient([status([], None, "refused", ["bad.yaml:7: ConfigMap/ok: bogus: x"])])
    out, _ = run(client)
    assert out.result == "refused"
    assert "bad.yaml:7" in progress.render_outcome(out)


def test_timeout_explains_each_unhealthy_object_with_crash_logs_and_reports():
    pods = {"items": [
        {"kind": "Pod", "metadata": {"name": "api-1", "namespace": "default",
                                     "labels": {"app": "api"}, "ownerReferences": [
                                         {"uid": "api-rs", "controller": True}]},
         "spec": {"containers": [{"name": "api"}]},
         "status": {"phase": "Running", "containerStatuses": [
             {"name": "api", "image": "gitops/python:3.11", "ready": False, "restartCount": 3,
              "state": {"waiting": {"reason": "CrashLoopBackOff"}},
              "lastState": {"terminated": {"exitCode": 1, "reason": "Error"}}}]}},
        {"kind": "Pod", "metadata": {"name": "web-1", "namespace": "default",
                                     "labels": {"app": "web"}, "ownerReferences": [
                                         {"uid": "web-rs", "controller": True}]},
         "spec": {"containers": [{"name": "web"}]},
         "status": {"phase": "Pending", "containerStatuses": [
             {"name": "web", "image": "nope:1", "ready": False,
              "state": {"waiting": {"reason": "ErrImagePull"}}}]}}]}
    deploy = lambda name: {"kind": "Deployment",   # noqa: E731
                           "metadata": {"name": name, "namespace": "default",
                                        "uid": f"{name}-uid"},
                           "spec": {"selector": {"matchLabels": {"app": name}}}}
    log_path = ("/api/v1/namespaces/default/pods/api-1/log?tailLines=5&container=api"
                "&maskSecrets=true&previous=true")
    client = FakeClient([status([obj("ConfigMap", "cfg", "Healthy"),
                                 obj("Deployment", "api", "Progressing", "0 of 1 available"),
                                 obj("Deployment", "web", "Progressing", "0 of 1 available")])],
                        {"/api/v1/pods": pods, "/apis/apps/v1/replicasets": REPLICASETS,
                         "/apis/apps/v1/namespaces/default/deployments/api": deploy("api"),
                         "/apis/apps/v1/namespaces/default/deployments/web": deploy("web"),
                         log_path: "starting\nTraceback (most recent call last):\n"
                                   "KeyError: 'DB_URL'\n"})
    out, _ = run(client, timeout=3)
    assert out.result == "timeout" and not out.ok
    text = progress.render_outcome(out)
    assert "timed out after 3s: 2 of 3 object(s) not healthy" in text
    assert ("crash-loop: pod api-1 container api: crash loop, 3 restart(s), last exit code 1 "
            "(Error)") in text
    assert "      | KeyError: 'DB_URL'" in text
    assert "image-missing: pod web-1 container web: image nope:1 is not on the node" in text

    report = out.report()
    json.dumps(report)          # serialisable as it is
    assert report["result"] == "timeout" and (report["healthy"], report["total"]) == (1, 3)
    by_name = {o["name"]: o for o in report["objects"]}
    assert by_name["cfg"]["findings"] == []
    assert by_name["api"]["findings"][0]["reason"] == "crash-loop"
    assert by_name["api"]["findings"][0]["logs"][-1] == "KeyError: 'DB_URL'"
    assert by_name["web"]["findings"][0]["reason"] == "image-missing"


def test_live_table_on_a_tty_shows_objects_and_what_they_wait_for():
    client = FakeClient([status([obj("Service", "web", "Healthy"),
                                 obj("Deployment", "web", "Progressing", "1 of 2 available")]),
                         status([obj("Service", "web", "Healthy"),
                                 obj("Deployment", "web", "Healthy")])])
    out, text = run(client, tty=True)
    assert out.ok
    assert "2/2 healthy" in text and "WAITING FOR" in text      # the last frame stays
    from rich.console import Console
    console = Console(file=io.StringIO(), width=120)
    console.print(progress.progress_table(status(
        [obj("Service", "web", "Healthy"), obj("Deployment", "web", "Progressing",
                                               "1 of 2 available")]), 12.0, 60.0))
    frame = console.file.getvalue()
    assert "1/2 healthy · revision abc123 · 12s of 60s" in frame
    row = next(ln for ln in frame.splitlines() if ln.startswith("Deployment"))
    assert "Progressing" in row and "1 of 2 available" in row


def test_agent_gone_is_an_error_outcome():
    class Gone(FakeClient):
        def get(self, path, timeout=30):
            raise GitopsError("agent at http://127.0.0.1:1 does not answer")
    out, _ = run(Gone([]))
    assert out.result == "error" and "does not answer" in progress.render_outcome(out)


def test_progress_lines_name_the_pod_problem_while_waiting():
    pods = {"items": [{"kind": "Pod", "metadata": {"name": "web-1", "namespace": "default",
                                                   "labels": {"app": "web"},
                                                   "ownerReferences": [
                                                       {"uid": "web-rs", "controller": True}]},
                       "spec": {"containers": [{"name": "web"}]},
                       "status": {"phase": "Pending", "containerStatuses": [
                           {"name": "web", "image": "nope:1",
                            "state": {"waiting": {"reason": "ErrImagePull"}}}]}}]}
    deploy = {"kind": "Deployment", "metadata": {"name": "web", "namespace": "default",
                                                 "uid": "web-uid"},
              "spec": {"selector": {"matchLabels": {"app": "web"}}}}
    client = FakeClient([status([obj("Deployment", "web", "Progressing", "0 of 1 available")])],
                        {"/api/v1/pods": pods, "/apis/apps/v1/replicasets": REPLICASETS,
                         "/apis/apps/v1/namespaces/default/deployments/web": deploy})
    out, text = run(client, timeout=3)
    assert not out.ok
    assert ("Deployment/default/web: Progressing (0 of 1 available; pod web-1: image-missing)"
            in text)
    # the workload's selector is read once, not on every poll
    assert client.calls.count("/apis/apps/v1/namespaces/default/deployments/web") <= 2
