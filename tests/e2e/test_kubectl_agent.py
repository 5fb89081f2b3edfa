"""kubectl against an agent started by `gitops up`, on the real Docker engine: pods, logs,
delete-and-recreate, scale, rollouts (status, undo, restart), and git staying the source
of truth (drift corrected, undeclared fields kept, kubectl-made objects left alone)."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest
import yaml

from tests.e2e.conftest import gitops
from tests.kube_support import kubectl_path, run_kubectl

pytestmark = pytest.mark.docker

REPO = """\
apiVersion: v1
kind: ConfigMap
metadata: {name: settings}
data: {mode: prod}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
        - name: app
          image: gitops/busybox:1
          command: ["sh", "-c", "echo hello-from-$(hostname); exec httpd -f -p 8080"]
          readinessProbe: {tcpSocket: {port: 8080}, periodSeconds: 1}
"""

TOOL = """\
apiVersion: apps/v1
kind: Deployment
metadata: {name: tool}
spec:
  replicas: 1
  selector: {matchLabels: {app: tool}}
  template:
    metadata: {labels: {app: tool}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
        - name: app
          image: gitops/busybox:1
          command: ["sh", "-c", "echo version=$V; exec httpd -f -p 8080"]
          env: [{name: V, value: "%s"}]
          readinessProbe: {tcpSocket: {port: 8080}, periodSeconds: 1}
"""


def wait_for(check, timeout: float = 60, every: float = 0.5):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(every)
    raise AssertionError(f"condition not met within {timeout}s (last: {last!r})")


def assert_port_forward(config: Path, pod: str) -> None:
    """kubectl port-forward to the pod's httpd, which serves the file exec wrote."""
    from tests.conftest import free_port
    local = free_port()
    proc = subprocess.Popen([kubectl_path(), "--cache-dir", str(config.parent / "kcache"),
                             "port-forward", f"pod/{pod}", f"{local}:8080"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "KUBECONFIG": str(config)})
    try:
        assert "Forwarding from 127.0.0.1" in proc.stdout.readline()
        for i in range(2):          # two connections through one forward
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{local}/served",
                                            timeout=20) as r:
                    assert r.read() == b"x" * 100_000
            except OSError as exc:  # what kubectl said about it is the useful part
                proc.kill()
                _, err = proc.communicate(timeout=10)
                raise AssertionError(f"connection {i + 1} through the forward: {exc}; "
                                     f"kubectl: {err}") from exc
    finally:
        proc.kill()
        proc.communicate(timeout=10)


def test_kubectl_against_the_agent(docker_client, tmp_path):
    kubectl_path()
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "app.yaml").write_text(REPO)
    data = str(tmp_path / "data")
    config = tmp_path / "kube" / "config"
    config.parent.mkdir()

    def k(*args: str, timeout: float = 90) -> str:
        res = run_kubectl(config, *args, timeout=timeout)
        assert res.returncode == 0, f"kubectl {' '.join(args)}: {res.stderr}"
        return res.stdout

    def ready_pods(label: str) -> list[str]:
        pods = json.loads(k("get", "pods", "-l", label, "-o", "json"))["items"]
        return sorted(p["metadata"]["name"] for p in pods
                      if not p["metadata"].get("deletionTimestamp") and any(
                          c["type"] == "Ready" and c["status"] == "True"
                          for c in p.get("status", {}).get("conditions", [])))

    try:
        up = gitops("up", str(repo), "--wait", "--timeout", "90", "--data-dir", data)
        assert up.returncode == 0, up.stderr
        made = gitops("kubeconfig", "--data-dir", data)
        assert made.returncode == 0, made.stderr
        kc = yaml.safe_load(made.stdout)
        assert kc["clusters"][0]["cluster"]["server"].startswith("https://127.0.0.1:")
        assert kc["contexts"][0]["context"]["namespace"] == "default"
        config.write_text(made.stdout)

        # get / list / wide / jsonpath / logs
        [first] = wait_for(lambda: ready_pods("app=web"))
        wide = k("get", "pods", "-o", "wide").splitlines()
        assert wide[0].split()[:7] == ["NAME", "READY", "STATUS", "RESTARTS", "AGE", "IP",
                                       "NODE"]
        assert wide[1].split()[1:3] == ["1/1", "Running"]
        assert k("get", "pod", first, "-o", "jsonpath={.status.podIP}").startswith("10.")
        assert k("logs", first).strip() == f"hello-from-{first}"
        assert k("logs", "deploy/web", "--tail", "1").strip() == f"hello-from-{first}"
        assert "Ready" in k("get", "nodes")

        # exec: output, stderr, exit code, stdin; port-forward to the pod's port
        res = run_kubectl(config, "exec", first, "--", "sh", "-c",
                          "echo out; echo err >&2; exit 3")
        assert (res.returncode, res.stdout, "err" in res.stderr) == (3, "out\n", True)
        res = run_kubectl(config, "exec", "-i", first, "--", "sh", "-c",
                          "cat > /served; md5sum /served", input="x" * 100_000)
        assert res.returncode == 0 and res.stdout.split()[0] == hashlib.md5(
            b"x" * 100_000).hexdigest()
        assert_port_forward(config, first)
        assert k("exec", "deploy/web", "--", "cat", "/served") == "x" * 100_000
        assert "default" in k("get", "namespaces")

        # a deleted pod is replaced by its ReplicaSet
        assert f'pod "{first}" deleted' in k("delete", "pod", first)
        [second] = wait_for(lambda: ready_pods("app=web"))
        assert second != first

        # scale: replicas is not declared in git, so a sync keeps it
        k("scale", "deploy", "web", "--replicas", "2")
        assert "successfully rolled out" in k("rollout", "status", "deploy/web",
                                              "--timeout", "60s")
        assert gitops("sync", "--data-dir", data).returncode == 0
        assert k("get", "deploy", "web", "-o", "jsonpath={.spec.replicas}") == "2"
        assert len(wait_for(lambda: len(ready_pods("app=web")) == 2 and ready_pods(
            "app=web"))) == 2

        # a declared field changed through the API is drift: reported and corrected;
        # an undeclared label stays
        k("patch", "configmap", "settings", "-p", '{"data": {"mode": "dev"}}')
        k("label", "configmap", "settings", "team=blue")
        assert gitops("sync", "--data-dir", data).returncode == 0
        settings = json.loads(k("get", "cm", "settings", "-o", "json"))
        assert settings["data"] == {"mode": "prod"}
        assert settings["metadata"]["labels"] == {"team": "blue"}
        records = [json.loads(line) for line in
                   Path(data, "agent.log").read_text().splitlines()
                   if '"drift.detected"' in line]
        [record] = [r for r in records if r["object"]["name"] == "settings"]
        assert record["action"] == "corrected" and record["drift"]["actor"] == "kubectl-patch"
        assert record["drift"]["fields"][0]["path"] == "data.mode"

        # server-side apply of a new object and of a change
        ssa = tmp_path / "ssa.yaml"
        ssa.write_text("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: ssa}\n"
                       "data: {a: '1', b: '2'}\n")
        assert "serverside-applied" in k("apply", "--server-side", "-f", str(ssa))
        ssa.write_text("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: ssa}\n"
                       "data: {a: '3'}\n")
        k("apply", "--server-side", "-f", str(ssa))
        assert json.loads(k("get", "cm", "ssa", "-o", "jsonpath={.data}")) == {"a": "3"}

        # an object made with kubectl is unmanaged: rolled with kubectl, never pruned
        tool = tmp_path / "tool.yaml"
        tool.write_text(TOOL % "1")
        assert "deployment.apps/tool created" in k("apply", "-f", str(tool))
        k("rollout", "status", "deploy/tool", "--timeout", "60s")
        tool.write_text(TOOL % "2")
        assert "configured" in k("apply", "-f", str(tool))
        k("rollout", "status", "deploy/tool", "--timeout", "60s")
        assert "rolled back" in k("rollout", "undo", "deploy/tool")
        k("rollout", "status", "deploy/tool", "--timeout", "60s")
        env = k("get", "deploy", "tool", "-o", "jsonpath={.spec.template.spec.containers[0].env}")
        assert json.loads(env) == [{"name": "V", "value": "1"}]
        history = k("rollout", "history", "deploy/tool").split()
        assert history[-2:] == ["3", "<none>"]          # undo reuses revision 1 as 3
        [pod] = wait_for(lambda: ready_pods("app=tool"))
        assert k("logs", pod).strip() == "version=1"
        k("rollout", "restart", "deploy/tool")
        k("rollout", "status", "deploy/tool", "--timeout", "60s")
        assert wait_for(lambda: ready_pods("app=tool") not in ([], [pod]))
        assert gitops("sync", "--data-dir", data).returncode == 0
        status = json.loads(gitops("status", "-o", "json", "--data-dir", data).stdout)
        assert [(o["kind"], o["name"]) for o in status["unmanaged"]] == [
            ("ConfigMap", "ssa"), ("Deployment", "tool")]
        assert "Unmanaged" in gitops("status", "--data-dir", data).stdout
        assert "deployment.apps/tool" in k("get", "deploy", "-o", "name")
        described = k("describe", "deploy", "tool")
        assert "RollingUpdateStrategy" in described and "NewReplicaSet:" in described
    finally:
        gitops("down", "--data-dir", data)
