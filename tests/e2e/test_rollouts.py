"""Deployment rollouts through the whole agent, on the real engine: a config-only commit
rolls the Deployment, a zero-downtime rolling update v1 -> v2 behind a NodePort Service
keeps the old ReplicaSet at 0, `gitops rollback` brings the old ReplicaSet back with a new
revision, a pod that fits nowhere stays Pending with FailedScheduling; events, describe
and `get -o json` show all of it."""

from __future__ import annotations

import json
import time
import urllib.request

import pytest

from gitops.cli.client import Client
from gitops.paths import DataDir
from tests.conftest import free_port
from tests.e2e.conftest import git, gitops

pytestmark = pytest.mark.docker

REVISION = "deployment.kubernetes.io/revision"

CONFIG = """\
apiVersion: v1
kind: ConfigMap
metadata: {{name: web-config}}
data: {{greeting: {greeting}}}
"""
DEPLOYMENT = """\
apiVersion: apps/v1
kind: Deployment
metadata: {{name: web}}
spec:
  replicas: 3
  strategy:
    type: RollingUpdate
    rollingUpdate: {{maxSurge: 1, maxUnavailable: 0}}
  selector: {{matchLabels: {{app: web}}}}
  template:
    metadata: {{labels: {{app: web}}}}
    spec:
      terminationGracePeriodSeconds: 5
      containers:
        - name: web
          image: gitops/busybox:1
          imagePullPolicy: IfNotPresent
          command: ["sh", "-c", "echo $GREETING {version} $HOSTNAME > /www/index.html; exec httpd -f -p 8080 -h /www"]
          env:
            - name: GREETING
              valueFrom: {{configMapKeyRef: {{name: web-config, key: greeting}}}}
          ports: [{{name: http, containerPort: 8080}}]
          readinessProbe:
            httpGet: {{path: /, port: http}}
            periodSeconds: 1
          lifecycle:
            preStop: {{exec: {{command: ["sleep", "2"]}}}}
"""
SERVICE = """\
apiVersion: v1
kind: Service
metadata: {{name: web}}
spec:
  type: NodePort
  selector: {{app: web}}
  ports: [{{name: http, port: 80, targetPort: http, nodePort: {node_port}}}]
"""
HOG = """\
apiVersion: v1
kind: Pod
metadata: {name: hog}
spec:
  containers:
    - name: hog
      image: gitops/busybox:1
      command: ["sleep", "3600"]
      resources: {requests: {memory: 64Ti}}
"""


def commit(repo, message, greeting, version, node_port, hog=False):
    app = repo / "app"
    (app / "config.yaml").write_text(CONFIG.format(greeting=greeting))
    (app / "deployment.yaml").write_text(DEPLOYMENT.format(version=version))
    (app / "service.yaml").write_text(SERVICE.format(node_port=node_port))
    hog_file = app / "hog.yaml"
    if hog:
        hog_file.write_text(HOG)
    elif hog_file.exists():
        hog_file.unlink()
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", message)


def fetch(port: int) -> str | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=3) as resp:
            return resp.read().decode().strip()
    except OSError:
        return None


def replicasets(client: Client) -> dict[int, dict]:
    items = client.get("/apis/apps/v1/namespaces/default/replicasets")["items"]
    return {int(rs["metadata"]["annotations"][REVISION]): rs for rs in items}


def watch_rollout(client: Client, port: int, greeting: str, timeout: float = 120) -> dict:
    """Poll the NodePort and the Deployment until every replica is updated, available and
    answering `greeting`; return what was seen (bounded in time and requests)."""
    seen = {"answers": 0, "failures": 0, "max_pods": 0, "min_available": 99, "samples": 0}
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and seen["samples"] < 2000:
        seen["samples"] += 1
        text = fetch(port)
        seen["answers" if text else "failures"] += 1
        d = client.get("/apis/apps/v1/namespaces/default/deployments/web")
        st = d.get("status") or {}
        rses = replicasets(client).values()
        seen["max_pods"] = max(seen["max_pods"], sum(rs["spec"]["replicas"] for rs in rses))
        seen["min_available"] = min(seen["min_available"], st.get("availableReplicas", 0))
        done = st.get("observedGeneration", 0) >= d["metadata"]["generation"] and \
            st.get("updatedReplicas") == st.get("replicas") == st.get("availableReplicas") == 3
        if done and text and text.startswith(greeting):
            return seen
        time.sleep(0.1)
    raise AssertionError(f"rollout to {greeting!r} did not finish: {seen}")


def answers(port: int, tries: int = 30) -> set[str]:
    out = set()
    for _ in range(tries):
        if text := fetch(port):
            out.add(" ".join(text.split()[:2]))
    return out


def test_config_rollout_zero_downtime_update_rollback_and_events(docker_client, repo,
                                                                 tmp_path):
    port = free_port(30000, 32767)
    data = str(tmp_path / "data")
    commit(repo, "v1", "hello", "v1", port)
    try:
        up = gitops("up", f"file://{repo}", "--wait", "--timeout", "120", "--data-dir", data,
                    "--interval", "300")
        assert up.returncode == 0, up.stdout + up.stderr
        client = Client(DataDir.at(data))
        assert answers(port) == {"hello v1"}
        assert list(replicasets(client)) == [1]

        # 1. A config-only commit rolls the Deployment (its manifest did not change).
        commit(repo, "config", "bonjour", "v1", port)
        assert gitops("sync", "--data-dir", data).returncode == 0
        watch_rollout(client, port, "bonjour v1")
        assert answers(port) == {"bonjour v1"}
        assert sorted(replicasets(client)) == [1, 2]

        # 2. v2 with maxUnavailable 0: never fewer than 3 available, never more than
        #    4 pods, every request answered.
        commit(repo, "v2", "bonjour", "v2", port, hog=True)
        assert gitops("sync", "--data-dir", data).returncode == 0
        seen = watch_rollout(client, port, "bonjour v2")
        assert seen["failures"] == 0 and seen["min_available"] >= 3, seen
        assert seen["max_pods"] <= 4, seen
        rses = replicasets(client)
        assert sorted(rses) == [1, 2, 3]
        assert [rses[r]["spec"]["replicas"] for r in (1, 2, 3)] == [0, 0, 3]
        assert rses[3]["status"]["availableReplicas"] == 3
        deploy = json.loads(gitops("get", "deploy", "web", "-o", "json", "--data-dir",
                                   data).stdout)
        assert deploy["metadata"]["annotations"][REVISION] == "3"
        conds = {c["type"]: c for c in deploy["status"]["conditions"]}
        assert conds["Progressing"]["reason"] == "NewReplicaSetAvailable"
        assert conds["Available"]["reason"] == "MinimumReplicasAvailable"

        # 3. The pod that fits nowhere stays Pending, says why, and has the event.
        hog = json.loads(gitops("get", "pod", "hog", "-o", "json", "--data-dir", data).stdout)
        assert hog["status"]["phase"] == "Pending" and "nodeName" not in hog["spec"]
        cond = next(c for c in hog["status"]["conditions"] if c["type"] == "PodScheduled")
        assert (cond["status"], cond["reason"]) == ("False", "Unschedulable")
        assert cond["message"] == "0/1 nodes are available: 1 Insufficient memory."
        described = gitops("describe", "pod", "hog", "--data-dir", data).stdout
        assert "FailedScheduling" in described and "Insufficient memory" in described
        status = json.loads(gitops("status", "-o", "json", "--data-dir", data).stdout)
        health = {(o["kind"], o["name"]): o["health"] for o in status["objects"]}
        assert health[("Pod", "hog")] == "Progressing"
        assert health[("Deployment", "web")] == "Healthy"

        # 4. Rollback: the previous good revision (bonjour v1) reuses ReplicaSet 2,
        #    which becomes revision 4; the hog is pruned with that revision.
        back = gitops("rollback", "--data-dir", data)
        assert back.returncode == 0, back.stdout + back.stderr
        watch_rollout(client, port, "bonjour v1")
        assert answers(port) == {"bonjour v1"}
        rses = replicasets(client)
        assert sorted(rses) == [1, 3, 4]
        assert rses[4]["metadata"]["annotations"][
            "deployment.kubernetes.io/revision-history"] == "2"
        assert rses[4]["spec"]["replicas"] == 3 and rses[3]["spec"]["replicas"] == 0

        done = gitops("rollout", "status", "deploy/web", "--timeout", "60", "--data-dir", data)
        assert done.returncode == 0 and done.stdout.strip().endswith(
            'deployment "web" successfully rolled out'), done.stdout + done.stderr
        hist = gitops("rollout", "history", "deploy/web", "--data-dir", data).stdout.split()
        assert hist[:3] == ["deployment.apps/web", "REVISION", "CHANGE-CAUSE"]
        assert hist[3::2] == ["1", "3", "4"]

        # 5. What a user reads: events, describe, get -o json of the new kinds.
        ev = gitops("events", "--for", "deploy/web", "--data-dir", data)
        assert ev.returncode == 0 and "ScalingReplicaSet" in ev.stdout
        assert ev.stdout.count("Scaled up replica set") >= 3
        described = gitops("describe", "deployment", "web", "--data-dir", data).stdout
        assert "NewReplicaSet:" in described and f"{rses[4]['metadata']['name']} (3/3" \
            in described
        assert "deployment-controller" in described
        current = rses[4]["metadata"]["uid"]
        pod = next(p for p in json.loads(gitops("get", "pods", "-o", "json", "--data-dir",
                                                data).stdout)["items"]
                   if (p["metadata"].get("ownerReferences") or [{}])[0].get("uid") == current
                   and not p["metadata"].get("deletionTimestamp"))
        kubelet = gitops("describe", "pod", pod["metadata"]["name"], "--data-dir", data)
        assert kubelet.returncode == 0, kubelet.stderr
        kubelet = kubelet.stdout
        for reason in ("Scheduled", "Pulled", "Created", "Started"):
            assert reason in kubelet, kubelet
        events = json.loads(gitops("get", "events", "-o", "json", "--data-dir", data).stdout)
        assert events["items"] and all(e["kind"] == "Event" and e["involvedObject"]["name"]
                                       and e["count"] >= 1 for e in events["items"])
        nodes = json.loads(gitops("get", "nodes", "-o", "json", "--data-dir", data).stdout)
        [node] = nodes["items"]
        assert int(node["status"]["allocatable"]["cpu"]) >= 1
        assert node["status"]["allocatable"]["memory"].endswith("Ki")
        rs_json = json.loads(gitops("get", "rs", "-o", "json", "--data-dir", data).stdout)
        assert all({"replicas", "readyReplicas", "availableReplicas", "observedGeneration"}
                   <= set(rs["status"]) for rs in rs_json["items"])
    finally:
        gitops("down", "--data-dir", data)
