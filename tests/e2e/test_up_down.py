"""End to end through the CLI on the real engine: git repo -> up --wait -> traffic -> down."""

from __future__ import annotations

import json
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

from tests.conftest import free_port
from tests.e2e.conftest import git, gitops

pytestmark = pytest.mark.docker

DEPLOYMENT = """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: hello
spec:
  replicas: {replicas}
  selector:
    matchLabels: {{app: hello}}
  template:
    metadata:
      labels: {{app: hello}}
    spec:
      containers:
        - name: web
          image: gitops/busybox:1
          imagePullPolicy: IfNotPresent
          command: ["sh", "-c", "echo {greeting} $HOSTNAME > /www/index.html; exec httpd -f -p 8080 -h /www"]
          ports:
            - {{name: http, containerPort: 8080}}
"""
SERVICE = """\
apiVersion: v1
kind: Service
metadata:
  name: hello
spec:
  type: NodePort
  selector: {{app: hello}}
  ports:
    - {{name: http, port: 80, targetPort: http, nodePort: {node_port}}}
"""


def fetch(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as resp:
        return resp.read().decode().strip()


def answers(port: int, want: int, greeting: str, tries: int = 40) -> set[str]:
    """Distinct pods answering on the NodePort (bounded number of requests)."""
    seen: set[str] = set()
    for _ in range(tries):
        try:
            text = fetch(port)
        except OSError:
            time.sleep(0.25)
            continue
        if text.startswith(greeting):
            seen.add(text.split()[-1])
        if len(seen) >= want:
            break
    return seen


def commit(repo: Path, message: str, **values) -> None:
    (repo / "app" / "deployment.yaml").write_text(DEPLOYMENT.format(**values))
    (repo / "app" / "service.yaml").write_text(SERVICE.format(**values))
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", message)


def test_up_wait_serves_from_both_pods_then_down_removes_everything(docker_client, repo,
                                                                    tmp_path):
    port = free_port(30000, 32767)
    commit(repo, "first", replicas=2, greeting="hello", node_port=port)
    data = str(tmp_path / "data")
    try:
        up = gitops("up", f"file://{repo}", "--wait", "--timeout", "90", "--data-dir", data,
                    "--interval", "300")
        assert up.returncode == 0, up.stdout + up.stderr
        assert answers(port, 2, "hello") and len(answers(port, 2, "hello")) == 2

        pods = json.loads(gitops("get", "pods", "-o", "json", "--data-dir", data).stdout)
        assert len(pods["items"]) == 2
        assert all(p["status"]["phase"] == "Running" for p in pods["items"])
        table = gitops("get", "deploy", "--data-dir", data).stdout
        assert "hello" in table and "2/2" in table

        # a push converges on `gitops sync` without waiting for the poll
        commit(repo, "second", replicas=3, greeting="bonjour", node_port=port)
        synced = gitops("sync", "--data-dir", data)
        assert synced.returncode == 0, synced.stdout + synced.stderr
        deadline = time.monotonic() + 60
        seen: set[str] = set()
        while time.monotonic() < deadline and len(seen) < 3:
            seen |= answers(port, 3, "bonjour", tries=10)
        assert len(seen) == 3
        status = json.loads(gitops("status", "-o", "json", "--data-dir", data).stdout)
        assert status["applied_revision"] == subprocess.run(
            ["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True,
            text=True).stdout.strip()
    finally:
        down = gitops("down", "--data-dir", data)
    assert down.returncode == 0, down.stdout + down.stderr
    from gitops.paths import DataDir
    instance = DataDir.at(data).instance
    left = docker_client.containers.list(all=True, filters={"label": f"gitops.instance={instance}"})
    assert left == []
    assert docker_client.networks.list(filters={"label": f"gitops.instance={instance}"}) == []
    with pytest.raises(OSError):
        fetch(port)


def test_up_refuses_invalid_revision_with_file_and_line(docker_client, tmp_path):
    src = tmp_path / "manifests"
    src.mkdir()
    (src / "bad.yaml").write_text("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: ok\n"
                                  "data:\n  a: '1'\nbogus: true\n")
    data = str(tmp_path / "data")
    try:
        up = gitops("up", str(src), "--wait", "--timeout", "30", "--data-dir", data)
        assert up.returncode == 1
        assert "bad.yaml:7" in up.stderr and "bogus" in up.stderr
    finally:
        gitops("down", "--data-dir", data)
