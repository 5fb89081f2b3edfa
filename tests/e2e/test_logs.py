"""`gitops logs`: current run, --previous run, and -f until the container stops."""

from __future__ import annotations

import json
import time

import pytest

from tests.e2e.conftest import git, gitops

pytestmark = pytest.mark.docker

PODS = """\
apiVersion: v1
kind: Pod
metadata: {name: crasher}
spec:
  containers:
    - name: app
      image: gitops/busybox:1
      command: ["sh", "-c", "echo run-$(cat /proc/sys/kernel/random/uuid); sleep 1; exit 1"]
---
apiVersion: v1
kind: Pod
metadata: {name: ticker}
spec:
  restartPolicy: Never
  containers:
    - name: app
      image: gitops/busybox:1
      command: ["sh", "-c", "sleep 2; for i in 1 2 3; do echo tick$i; sleep 0.3; done"]
"""


def test_logs_current_previous_and_follow(docker_client, repo, tmp_path):
    (repo / "app" / "pods.yaml").write_text(PODS)
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "pods")
    data = str(tmp_path / "data")
    try:
        assert gitops("up", f"file://{repo}", "--data-dir", data).returncode == 0
        deadline = time.monotonic() + 30
        phase = ""
        while phase != "Running" and time.monotonic() < deadline:
            out = gitops("get", "pod", "ticker", "-o", "json", "--data-dir", data)
            phase = json.loads(out.stdout).get("status", {}).get("phase", "") \
                if out.returncode == 0 else ""
        follow = gitops("logs", "ticker", "-f", "--data-dir", data, timeout=60)
        assert follow.stdout.split() == ["tick1", "tick2", "tick3"], follow.stderr
        deadline = time.monotonic() + 40
        restarts = 0
        while restarts < 1 and time.monotonic() < deadline:
            out = gitops("get", "pod", "crasher", "-o", "json", "--data-dir", data)
            statuses = json.loads(out.stdout).get("status", {}).get("containerStatuses", [])
            restarts = statuses[0]["restartCount"] if statuses else 0
            time.sleep(0.3)
        assert restarts >= 1
        time.sleep(0.5)
        prev = gitops("logs", "crasher", "--previous", "--data-dir", data)
        previous = prev.stdout.split()
        current = gitops("logs", "crasher", "--data-dir", data).stdout.split()
        status = gitops("get", "pod", "crasher", "-o", "json", "--data-dir", data).stdout
        assert len(previous) == 1 and previous[0].startswith("run-"), (prev.stderr, status)
        assert len(current) <= 1 and previous != current
        missing = gitops("logs", "ticker", "--previous", "--data-dir", data)
        assert missing.returncode == 1 and "previous terminated container" in missing.stderr
    finally:
        gitops("down", "--data-dir", data)
