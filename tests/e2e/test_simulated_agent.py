"""`gitops agent --simulate N --server URL`: N simulated nodes joined through the server's
API (not the store), each with its own credential: Ready, their Leases renewed, the pods
bound to them Running without any container."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import free_port
from tests.e2e.conftest import gitops
from tests.kube_support import run_kubectl

pytestmark = pytest.mark.docker

APP = """\
apiVersion: apps/v1
kind: Deployment
metadata: {name: sim}
spec:
  replicas: 4
  selector: {matchLabels: {app: sim}}
  template:
    metadata: {labels: {app: sim}}
    spec:
      nodeSelector: {type: simulated}
      tolerations: [{key: kwok.x-k8s.io/node, operator: Exists}]
      containers:
      - {name: c, image: gitops/busybox:1, imagePullPolicy: IfNotPresent}
"""


def wait_for(what: str, check, timeout: float):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = check()
        if got:
            return got
        time.sleep(0.3)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def test_simulated_nodes_join_through_the_api_and_run_pods(docker_client, tmp_path):
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "app.yaml").write_text(APP)
    data = tmp_path / "server"
    port = free_port()
    up = gitops("up", str(repo), "--data-dir", str(data), "--advertise-address", "127.0.0.1",
                "--https-listen-port", str(port), "--node-name", "server")
    assert up.returncode == 0, up.stdout + up.stderr
    assert f"--server https://127.0.0.1:{port}" in up.stdout      # the join command
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(gitops("kubeconfig", "--data-dir", str(data)).stdout)
    log = open(tmp_path / "sim.log", "wb")
    sim = subprocess.Popen([sys.executable, "-m", "gitops", "agent", "--simulate", "3",
                            "--server", f"https://127.0.0.1:{port}", "--token-file",
                            str(data / "node-token"), "--log-format", "json"],
                           stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        def nodes() -> dict:
            got = run_kubectl(kubeconfig, "get", "nodes", "-l", "type=simulated", "-o", "json")
            return {n["metadata"]["name"]: n for n in json.loads(got.stdout)["items"]} \
                if got.returncode == 0 else {}

        def ready(node: dict) -> bool:
            return any(c["type"] == "Ready" and c["status"] == "True"
                       for c in node.get("status", {}).get("conditions", []))
        wait_for("3 Ready simulated nodes", lambda: len(nodes()) == 3 and all(
            ready(n) for n in nodes().values()), 90)

        def running() -> list:
            got = run_kubectl(kubeconfig, "get", "pods", "-l", "app=sim", "-o", "json")
            pods = json.loads(got.stdout)["items"] if got.returncode == 0 else []
            return [p for p in pods if p["status"].get("phase") == "Running"] \
                if len(pods) == 4 else []
        pods = wait_for("4 pods Running on simulated nodes", lambda: len(running()) == 4
                        and running(), 90)
        assert {p["spec"]["nodeName"] for p in pods} <= set(nodes())
        # no container for them on the engine
        names = {p["metadata"]["name"] for p in pods}
        assert not [c for c in docker_client.containers.list(all=True)
                    if any(n in c.name for n in names)]
        leases = json.loads(run_kubectl(kubeconfig, "get", "leases", "-n", "kube-node-lease",
                                        "-o", "json").stdout)["items"]
        renewed = {lease["metadata"]["name"]: lease["spec"]["renewTime"] for lease in leases}
        assert set(nodes()) <= set(renewed)
        # through the API with its own credentials: the server knows each node's
        creds = json.loads((data / "node-credentials.json").read_text())
        assert set(nodes()) <= set(creds)
    finally:
        os.killpg(sim.pid, signal.SIGTERM)
        try:
            sim.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(sim.pid, signal.SIGKILL)
            sim.wait(10)
        log.close()
        gitops("down", "--data-dir", str(data))
    assert sim.returncode == 0, Path(tmp_path / "sim.log").read_text()[-2000:]
