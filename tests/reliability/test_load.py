"""Load: a Deployment of 100 busybox pods converges on one node (real engine).

Prints how long convergence took and the agent's memory; asserts no timing, only the end
state: 100 Ready pods in the store, each with exactly its one container running (holding
the pod's network, at a distinct pinned IP), nothing else, and `down` leaving nothing
behind. (The request loop through a Service
during a rolling update lives with the networking tests.)
"""

from __future__ import annotations

import json
import time
from collections import Counter
from pathlib import Path

import pytest

from tests.e2e.conftest import gitops

pytestmark = pytest.mark.docker

PODS = 100
DEPLOY = f"""\
apiVersion: apps/v1
kind: Deployment
metadata: {{name: crowd}}
spec:
  replicas: {PODS}
  selector: {{matchLabels: {{app: crowd}}}}
  template:
    metadata: {{labels: {{app: crowd}}}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
        - name: main
          image: gitops/busybox:1
          command: ["sleep", "86400"]
          resources: {{requests: {{cpu: 1m, memory: 1Mi}}}}
"""


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def test_100_pods_converge_on_one_node(docker_client, tmp_path, capsys):
    from gitops.agent.runtime import CONTAINER, POD_UID
    from gitops.paths import DataDir
    from tests.conftest import _listed
    manifests, data = tmp_path / "manifests", str(tmp_path / "data")
    manifests.mkdir()
    (manifests / "crowd.yaml").write_text(DEPLOY)
    dd = DataDir.at(data)
    label = {"label": f"gitops.instance={dd.instance}"}
    try:
        start = time.monotonic()
        up = gitops("up", str(manifests), "--wait", "--timeout", "600", "--data-dir", data,
                    "--interval", "3600", timeout=660)
        took = time.monotonic() - start
        assert up.returncode == 0, up.stdout[-2000:] + up.stderr[-2000:]
        pods = json.loads(gitops("get", "pods", "-o", "json", "--data-dir", data).stdout)["items"]
        assert len(pods) == PODS
        assert all(p["status"]["phase"] == "Running" and any(
            c["type"] == "Ready" and c["status"] == "True" for c in p["status"]["conditions"])
            for p in pods)
        assert len({p["metadata"]["name"] for p in pods}) == PODS
        running = _listed(lambda: docker_client.containers.list(all=True, filters=label))
        per_slot = Counter((c.labels[POD_UID], c.labels[CONTAINER]) for c in running)
        want = {(p["metadata"]["uid"], "main") for p in pods}
        assert set(per_slot) == want and set(per_slot.values()) == {1}
        ips = {p["status"]["podIP"] for p in pods}
        assert len(ips) == PODS and ips == {c.labels["gitops.pod.ip"] for c in running}
        assert all(c.status == "running" for c in running)
        pid = json.loads(dd.agent_file.read_text())["pid"]
        with capsys.disabled():
            print(f"\n{PODS} pods Ready {took:.1f}s after `gitops up` "
                  f"({len(running)} containers); agent RSS {rss_mb(pid):.1f} MB")
    finally:
        start = time.monotonic()
        down = gitops("down", "--data-dir", data, timeout=600)
        with capsys.disabled():
            print(f"`gitops down` of {PODS} pods took {time.monotonic() - start:.1f}s")
    assert down.returncode == 0, down.stdout + down.stderr
    assert _listed(lambda: docker_client.containers.list(all=True, filters=label)) == []
