"""StatefulSet and DaemonSet through the whole agent: ordinals, per-pod DNS, per-pod claims."""

from __future__ import annotations

import json

import pytest

from tests.e2e.conftest import git, gitops

pytestmark = pytest.mark.docker

MANIFESTS = """\
apiVersion: v1
kind: Service
metadata: {name: db}
spec:
  clusterIP: None
  selector: {app: db}
  ports: [{name: tcp, port: 5000}]
---
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: db}
spec:
  serviceName: db
  replicas: 2
  selector: {matchLabels: {app: db}}
  template:
    metadata: {labels: {app: db}}
    spec:
      containers:
        - name: db
          image: gitops/busybox:1
          command: ["sh", "-c", "hostname > /data/who; exec sleep 3600"]
          volumeMounts: [{name: data, mountPath: /data}]
  volumeClaimTemplates:
    - metadata: {name: data}
      spec:
        accessModes: [ReadWriteOnce]
        resources: {requests: {storage: 1Gi}}
---
apiVersion: apps/v1
kind: DaemonSet
metadata: {name: agent}
spec:
  selector: {matchLabels: {app: agent}}
  template:
    metadata: {labels: {app: agent}}
    spec:
      containers: [{name: sh, image: gitops/busybox:1, command: ["sleep", "3600"]}]
"""


def test_statefulset_ordinals_dns_claims_and_daemonset(docker_client, repo, tmp_path):
    from gitops.paths import DataDir
    (repo / "app" / "db.yaml").write_text(MANIFESTS)
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "db")
    data = str(tmp_path / "data")
    instance = DataDir.at(data).instance
    try:
        up = gitops("up", f"file://{repo}", "--wait", "--timeout", "120", "--data-dir", data)
        assert up.returncode == 0, up.stdout + up.stderr
        pods = json.loads(gitops("get", "pods", "-o", "json", "--data-dir", data).stdout)
        names = sorted(p["metadata"]["name"] for p in pods["items"])
        assert "db-0" in names and "db-1" in names
        assert sum(n.startswith("agent-") for n in names) == 1       # one per node
        claims = json.loads(gitops("get", "pvc", "-o", "json", "--data-dir", data).stdout)
        assert sorted(c["metadata"]["name"] for c in claims["items"]) == ["data-db-0", "data-db-1"]
        [sh] = docker_client.containers.list(filters={"label": [
            f"gitops.instance={instance}", "gitops.container=sh"]})
        out = sh.exec_run(["nslookup", "db-1.db.default.svc.cluster.local"]).output.decode()
        db1 = next(p for p in pods["items"] if p["metadata"]["name"] == "db-1")
        assert db1["status"]["podIP"] in out
        srv = sh.exec_run(["nslookup", "-type=srv",
                           "_tcp._tcp.db.default.svc.cluster.local"]).output.decode()
        assert "db-0.db.default.svc.cluster.local" in srv, srv       # named after the pod
        assert "db-1.db.default.svc.cluster.local" in srv, srv
        [db0] = docker_client.containers.list(filters={"label": [
            f"gitops.instance={instance}", "gitops.pod.name=db-0", "gitops.container=db"]})
        assert db0.exec_run(["cat", "/data/who"]).output.decode().strip() == "db-0"
        sts = json.loads(gitops("get", "sts", "db", "-o", "json", "--data-dir", data).stdout)
        st = sts["status"]
        assert (st["replicas"], st["readyReplicas"], st["updatedReplicas"]) == (2, 2, 2)
        assert st["currentRevision"] == st["updateRevision"] and \
            st["observedGeneration"] == sts["metadata"]["generation"]
        ds = json.loads(gitops("get", "ds", "agent", "-o", "json", "--data-dir", data).stdout)
        assert {k: ds["status"][k] for k in ("desiredNumberScheduled", "numberAvailable",
                                             "updatedNumberScheduled")} == {
            "desiredNumberScheduled": 1, "numberAvailable": 1, "updatedNumberScheduled": 1}
        events = gitops("events", "--for", "sts/db", "--data-dir", data).stdout
        assert "create Pod db-1 in StatefulSet db successful" in events
        assert "create Claim data-db-1 Pod db-1 in StatefulSet db success" in events
    finally:
        gitops("down", "--data-dir", data)
    volumes = [v.name for v in docker_client.volumes.list(
        filters={"label": f"gitops.instance={instance}"})]
    from gitops.agent.volumes import pvc_volume_name
    claims = {pvc_volume_name(instance, "default", c) for c in ("data-db-0", "data-db-1")}
    assert claims <= set(volumes)                                           # claims kept
    for v in docker_client.volumes.list(filters={"label": f"gitops.instance={instance}"}):
        v.remove(force=True)
