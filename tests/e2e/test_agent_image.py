"""The Dockerfile on the real engine: scripts/build-agent-image.sh builds the agent's image
from the local base with no network in the build; `gitops --help` runs in it; as the node
agent (Docker socket mounted, host network, data dir at the same path) it deploys a repo
whose pod reads a ConfigMap volume and serves it on a NodePort, and Docker's HEALTHCHECK
turns healthy through `gitops healthcheck`."""

from __future__ import annotations

import os
import subprocess
import time
import urllib.request
import uuid

import pytest

from tests.conftest import ROOT, SESSION_LABEL, TEST_LABEL, free_port
from tests.e2e.conftest import gitops

pytestmark = pytest.mark.docker

REPO = """\
apiVersion: v1
kind: ConfigMap
metadata: {{name: page}}
data:
  index.html: "from the agent image"
---
apiVersion: apps/v1
kind: Deployment
metadata: {{name: web}}
spec:
  replicas: 1
  selector: {{matchLabels: {{app: web}}}}
  template:
    metadata: {{labels: {{app: web}}}}
    spec:
      containers:
        - name: web
          image: gitops/busybox:1
          imagePullPolicy: IfNotPresent
          command: ["httpd", "-f", "-p", "8080", "-h", "/www"]
          ports: [{{name: http, containerPort: 8080}}]
          volumeMounts: [{{name: page, mountPath: /www}}]
      volumes: [{{name: page, configMap: {{name: page}}}}]
---
apiVersion: v1
kind: Service
metadata: {{name: web}}
spec:
  type: NodePort
  selector: {{app: web}}
  ports: [{{port: 80, targetPort: http, nodePort: {port}}}]
"""


def engine_socket() -> str:
    host = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
    if not host.startswith("unix://"):
        pytest.skip(f"the agent container needs a unix socket engine, not {host}")
    return host.removeprefix("unix://")


@pytest.fixture
def agent_image(docker_client):
    tag = f"gitops/agent:test-{uuid.uuid4().hex[:8]}"
    labels = [arg for label in (TEST_LABEL, SESSION_LABEL) for arg in ("--label", label)]
    build = subprocess.run([str(ROOT / "scripts" / "build-agent-image.sh"), "--tag", tag,
                            *labels], capture_output=True, text=True, timeout=540)
    assert build.returncode == 0, build.stdout + build.stderr
    yield tag
    docker_client.images.remove(tag, force=True)


def fetch(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as resp:
        return resp.read().decode()


def test_agent_image_builds_runs_help_and_is_healthy_as_the_node_agent(
        docker_client, agent_image, tmp_path):
    image = docker_client.images.get(agent_image)
    assert image.attrs["Config"]["Healthcheck"]["Test"] == ["CMD", "gitops", "healthcheck"]
    assert "/data" in image.attrs["Config"]["Volumes"]
    labels = dict(label.split("=", 1) for label in (TEST_LABEL, SESSION_LABEL))

    def output_of(args: list[str]) -> bytes:
        """Run to the end and remove with the image's anonymous /data volume (the SDK's
        remove=True would leave the volume behind)."""
        c = docker_client.containers.run(agent_image, args, detach=True, labels=labels)
        try:
            c.wait(timeout=60)
            return c.logs()
        finally:
            c.remove(force=True, v=True)
    assert b"Run Kubernetes manifests from git on a Docker host" in output_of(["--help"])
    assert b"Examples:" in output_of(["validate", "--help"])

    port = free_port(30000, 32767)
    repo, data = tmp_path / "repo", tmp_path / "data"
    repo.mkdir()
    data.mkdir()
    (repo / "app.yaml").write_text(REPO.format(port=port))
    socket = engine_socket()
    container = docker_client.containers.run(
        agent_image, ["run", "--repo", "/repo", "--interval", "300", "--log-format", "json"],
        detach=True, network_mode="host", labels=labels,
        environment={"GITOPS_DATA_DIR": str(data),
                     "GITOPS_RUNTIME_LABELS": os.environ["GITOPS_RUNTIME_LABELS"]},
        volumes={socket: {"bind": "/var/run/docker.sock", "mode": "rw"},
                 str(data): {"bind": str(data), "mode": "rw"},
                 str(repo): {"bind": "/repo", "mode": "ro"}},
        healthcheck={"interval": 1_000_000_000, "start_period": 60_000_000_000})
    try:
        deadline, health, page = time.monotonic() + 180, "", ""
        while time.monotonic() < deadline and (health != "healthy" or not page):
            container.reload()
            assert container.status in ("created", "running"), container.logs()[-3000:]
            health = container.attrs["State"].get("Health", {}).get("Status", "")
            try:
                page = fetch(port)
            except OSError:
                pass
            time.sleep(1)
        assert health == "healthy", container.logs()[-3000:]
        # the image's own health check command, as Docker runs it
        probe = container.exec_run(["gitops", "healthcheck"])
        assert probe.exit_code == 0 and probe.output.startswith(b"ok"), probe.output
        assert page == "from the agent image"     # ConfigMap volume from the same-path data dir
        # the host's CLI talks to the agent in the container through the shared data dir
        status = gitops("status", "--data-dir", str(data))
        assert status.returncode == 0, status.stdout + status.stderr
        assert "Deployment/default/web" in status.stdout
    finally:
        down = gitops("down", "--data-dir", str(data))
        container.reload()
        logs = container.logs()[-3000:]
        container.remove(force=True, v=True)
    assert down.returncode == 0, down.stdout + down.stderr + logs.decode(errors="replace")
    from gitops.paths import DataDir
    instance = DataDir.at(data).instance
    assert docker_client.containers.list(
        all=True, filters={"label": f"gitops.instance={instance}"}) == []
