"""Jobs and CronJobs through the whole agent."""

from __future__ import annotations

import json

import pytest

from tests.e2e.conftest import git, gitops

pytestmark = pytest.mark.docker

MANIFESTS = """\
apiVersion: batch/v1
kind: Job
metadata: {name: once}
spec:
  completions: 2
  parallelism: 2
  template:
    spec:
      restartPolicy: Never
      containers: [{name: work, image: gitops/busybox:1, command: ["sh", "-c", "echo done"]}]
---
apiVersion: batch/v1
kind: CronJob
metadata: {name: every-minute}
spec:
  schedule: "* * * * *"
  jobTemplate:
    spec:
      template:
        spec:
          restartPolicy: OnFailure
          containers: [{name: tick, image: gitops/busybox:1, command: ["true"]}]
"""


def test_job_completes_and_cronjob_is_healthy(docker_client, repo, tmp_path):
    (repo / "app" / "jobs.yaml").write_text(MANIFESTS)
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "jobs")
    data = str(tmp_path / "data")
    try:
        up = gitops("up", f"file://{repo}", "--wait", "--timeout", "90", "--data-dir", data)
        assert up.returncode == 0, up.stdout + up.stderr
        job = json.loads(gitops("get", "jobs", "once", "-o", "json", "--data-dir", data).stdout)
        assert job["status"]["succeeded"] == 2
        assert any(c["type"] == "Complete" for c in job["status"]["conditions"])
        status = json.loads(gitops("status", "-o", "json", "--data-dir", data).stdout)
        health = {o["name"]: o["health"] for o in status["objects"]}
        assert health == {"once": "Healthy", "every-minute": "Healthy"}
        pods = json.loads(gitops("get", "pods", "-o", "json", "--data-dir", data).stdout)
        done = [p for p in pods["items"] if p["metadata"]["name"].startswith("once-")]
        assert len(done) == 2 and all(p["status"]["phase"] == "Succeeded" for p in done)
        logs = gitops("logs", done[0]["metadata"]["name"], "--data-dir", data)
        assert logs.stdout.strip() == "done"
        assert job["status"]["startTime"] and job["status"]["completionTime"]
        cron = json.loads(gitops("get", "cronjobs", "-o", "json", "--data-dir", data).stdout)
        assert [c["metadata"]["name"] for c in cron["items"]] == ["every-minute"]
        events = gitops("events", "--for", "job/once", "--data-dir", data).stdout
        assert "Completed" in events and events.count("Created pod: once-") == 2
    finally:
        gitops("down", "--data-dir", data)
