"""`up --wait` in CI on the real engine: plain progress lines off a TTY, and at the timeout
exit 1 with, per unhealthy object, why: a missing image, a crash loop with its last log
lines, a failing readiness probe, no node that fits; `--report` has every object's final
health."""

from __future__ import annotations

import json
import re

import pytest

from tests.e2e.conftest import gitops

pytestmark = pytest.mark.docker

BROKEN = """\
apiVersion: v1
kind: ConfigMap
metadata: {name: fine}
data: {a: "1"}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: noimage}
spec:
  selector: {matchLabels: {app: noimage}}
  template:
    metadata: {labels: {app: noimage}}
    spec:
      containers:
        - {name: app, image: "gitops/does-not-exist:1", imagePullPolicy: IfNotPresent}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: crasher}
spec:
  selector: {matchLabels: {app: crasher}}
  template:
    metadata: {labels: {app: crasher}}
    spec:
      containers:
        - name: app
          image: gitops/busybox:1
          imagePullPolicy: IfNotPresent
          command: ["sh", "-c", "echo connecting to the db; echo fatal: DB_URL is not set; exit 3"]
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: notready}
spec:
  selector: {matchLabels: {app: notready}}
  template:
    metadata: {labels: {app: notready}}
    spec:
      containers:
        - name: app
          image: gitops/busybox:1
          imagePullPolicy: IfNotPresent
          command: ["sleep", "3600"]
          readinessProbe:
            tcpSocket: {port: 8080}
            periodSeconds: 1
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: nowhere}
spec:
  selector: {matchLabels: {app: nowhere}}
  template:
    metadata: {labels: {app: nowhere}}
    spec:
      nodeSelector: {disktype: ssd}
      containers:
        - {name: app, image: gitops/busybox:1, imagePullPolicy: IfNotPresent}
"""


def test_up_wait_timeout_explains_each_unhealthy_object(docker_client, tmp_path):
    src, data = tmp_path / "src", str(tmp_path / "data")
    src.mkdir()
    (src / "app.yaml").write_text(BROKEN)
    report = tmp_path / "health.json"
    try:
        up = gitops("up", str(src), "--wait", "--timeout", "40", "--data-dir", data,
                    "--report", str(report), timeout=150)
        assert up.returncode == 1, up.stdout + up.stderr
        err = up.stderr
        # progress: plain lines with the elapsed time, no terminal control codes
        # (its state at the first line depends on how fast the pod crashes: any is fine)
        assert re.search(r"\] Deployment/default/crasher: (Progressing|Degraded)", err)
        assert "\x1b[" not in err
        assert "; pod noimage-" in err and ": image-missing)" in err   # named while waiting
        assert "timed out after 40s: 4 of 5 object(s) not healthy" in err
        assert ("image-missing: pod noimage-" in err
                and "image gitops/does-not-exist:1 is not on the node" in err)
        assert "crash-loop: pod crasher-" in err and "last exit code 3" in err
        assert "      | fatal: DB_URL is not set" in err          # the last log lines
        assert ("readiness-failing: pod notready-" in err
                and "readiness probe tcpSocket port 8080 failing" in err)
        assert "unschedulable: pod nowhere-" in err and "0/1 nodes are available" in err

        got = json.loads(report.read_text())
        assert got["result"] == "timeout" and (got["healthy"], got["total"]) == (1, 5)
        by_name = {o["name"]: o for o in got["objects"]}
        assert by_name["fine"]["health"] == "Healthy" and by_name["fine"]["findings"] == []
        assert [f["reason"] for f in by_name["noimage"]["findings"]] == ["image-missing"]
        crash = by_name["crasher"]["findings"][0]
        assert crash["reason"] == "crash-loop" and "fatal: DB_URL is not set" in crash["logs"]
        assert by_name["notready"]["findings"][0]["reason"] == "readiness-failing"
        assert by_name["nowhere"]["findings"][0]["reason"] == "unschedulable"
    finally:
        down = gitops("down", "--data-dir", data)
    assert down.returncode == 0, down.stdout + down.stderr
