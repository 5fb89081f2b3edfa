"""HorizontalPodAutoscaler and ReplicationController through the whole agent, on the real
engine: minReplicas enforced at once, CPU utilisation from the containers' real usage
(Docker's stats) scaling a Deployment up to maxReplicas, the HPA's status and conditions,
and a ReplicationController's pods behind a Service."""

from __future__ import annotations

import json
import time

import pytest

from tests.e2e.conftest import git, gitops

pytestmark = pytest.mark.docker

MANIFESTS = """\
apiVersion: apps/v1
kind: Deployment
metadata: {name: busy}
spec:
  selector: {matchLabels: {app: busy}}
  template:
    metadata: {labels: {app: busy}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
        - name: spin
          image: gitops/busybox:1
          imagePullPolicy: IfNotPresent
          command: ["sh", "-c", "while :; do :; done"]
          resources:                  # 0.1 core at most: 200 % of its request
            requests: {cpu: 50m, memory: 16Mi}
            limits: {cpu: 100m, memory: 32Mi}
---
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata: {name: busy}
spec:
  scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: busy}
  minReplicas: 1
  maxReplicas: 3
  metrics:
    - type: Resource
      resource: {name: cpu, target: {type: Utilization, averageUtilization: 50}}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: floor}
spec:
  replicas: 1
  selector: {matchLabels: {app: floor}}
  template:
    metadata: {labels: {app: floor}}
    spec:
      containers:
        - {name: pause, image: gitops/pause:1, imagePullPolicy: IfNotPresent}
---
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata: {name: floor}
spec:
  scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: floor}
  minReplicas: 2
  maxReplicas: 4
  metrics:
    - type: Resource
      resource: {name: memory, target: {type: AverageValue, averageValue: 1Gi}}
---
apiVersion: v1
kind: ReplicationController
metadata: {name: legacy}
spec:
  replicas: 2
  selector: {app: legacy}
  template:
    metadata: {labels: {app: legacy}}
    spec:
      containers:
        - name: web
          image: gitops/busybox:1
          imagePullPolicy: IfNotPresent
          command: ["sh", "-c", "echo ok > /tmp/index.html; exec httpd -f -p 8080 -h /tmp"]
          ports: [{containerPort: 8080}]
---
apiVersion: v1
kind: Service
metadata: {name: legacy}
spec:
  selector: {app: legacy}
  ports: [{port: 80, targetPort: 8080}]
"""


def _get(data: str, *what: str) -> dict:
    out = gitops("get", *what, "-o", "json", "--data-dir", data)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def _pods(data: str, app: str) -> list[dict]:
    return [p for p in _get(data, "pods", "-l", f"app={app}")["items"]
            if not p["metadata"].get("deletionTimestamp")]


def _until(check, timeout: float = 120.0):
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(1)


def test_hpa_and_replication_controller_on_the_engine(repo, tmp_path):
    (repo / "app" / "scale.yaml").write_text(MANIFESTS)
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "autoscaling")
    data = str(tmp_path / "data")
    try:
        up = gitops("up", f"file://{repo}", "--wait", "--timeout", "150", "--data-dir", data)
        assert up.returncode == 0, up.stdout + up.stderr
        # minReplicas: 2 over a Deployment of 1, at once (no metrics needed)
        assert _until(lambda: len(_pods(data, "floor")) == 2)
        floor = _get(data, "hpa", "floor")
        assert floor["status"]["desiredReplicas"] == 2
        assert _get(data, "deploy", "floor")["spec"]["replicas"] == 2

        # CPU from the containers' real usage: 200 % of request against 50 % -> max 3
        busy = _until(lambda: (h := _get(data, "hpa", "busy"))["status"].get(
            "desiredReplicas") == 3 and h)
        assert busy, _get(data, "hpa", "busy")["status"]
        assert _until(lambda: len(_pods(data, "busy")) == 3)
        [metric] = busy["status"]["currentMetrics"]
        assert metric["type"] == "Resource" and metric["resource"]["name"] == "cpu"
        assert metric["resource"]["current"]["averageUtilization"] > 100
        reasons = {c["type"]: c["reason"] for c in busy["status"]["conditions"]}
        assert reasons["ScalingActive"] == "ValidMetricFound"
        assert busy["status"].get("lastScaleTime")
        events = gitops("events", "--for", "hpa/busy", "--data-dir", data).stdout
        assert "SuccessfulRescale" in events and "cpu resource utilization" in events

        # the ReplicationController: two pods of its own, behind its Service
        rc = _get(data, "rc", "legacy")
        assert rc["status"]["replicas"] == 2 and rc["status"]["readyReplicas"] == 2
        pods = _pods(data, "legacy")
        assert len(pods) == 2 and {p["metadata"]["ownerReferences"][0]["kind"]
                                   for p in pods} == {"ReplicationController"}
        ep = _get(data, "endpoints", "legacy")
        assert len(ep["subsets"][0]["addresses"]) == 2
        status = json.loads(gitops("status", "-o", "json", "--data-dir", data).stdout)
        health = {(o["kind"], o["name"]): o["health"] for o in status["objects"]}
        assert health[("ReplicationController", "legacy")] == "Healthy"
        assert health[("HorizontalPodAutoscaler", "floor")] == "Healthy"
    finally:
        gitops("down", "--data-dir", data)
