"""Issue 16 end to end on the real engine, through the CLI and the real kubectl: a repo
written for Argo CD (hooks, sync options, ignoreDifferences) runs unchanged; live drift is
seen and healed in seconds with the poll at an hour; git's fields are its own under
server-side apply; a LoadBalancer Service gets the node's address once it listens."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from tests.e2e.conftest import gitops
from tests.kube_support import kubectl_path, run_kubectl

pytestmark = pytest.mark.docker

MIGRATE = """\
apiVersion: batch/v1
kind: Job
metadata:
  name: migrate
  annotations:
    argocd.argoproj.io/hook: PreSync
spec:
  backoffLimit: 0
  template:
    spec:
      restartPolicy: Never
      terminationGracePeriodSeconds: 1
      containers:
        - name: migrate
          image: gitops/busybox:1
          imagePullPolicy: IfNotPresent
          command: ["sh", "-c", "{command}"]
"""
APP = """\
apiVersion: apps/v1
kind: Deployment
metadata: {{name: web}}
spec:
  replicas: 1
  selector: {{matchLabels: {{app: web}}}}
  template:
    metadata: {{labels: {{app: web}}}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
        - name: web
          image: gitops/busybox:1
          imagePullPolicy: IfNotPresent
          command: ["sh", "-c", "exec httpd -f -p 8080"]
          env: [{{name: VERSION, value: "{version}"}}]
---
apiVersion: v1
kind: Service
metadata: {{name: web-lb}}
spec:
  type: LoadBalancer
  selector: {{app: web}}
  ports: [{{port: 80, targetPort: 8080}}]    # a node port allocated
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: keep-me
  annotations:
    argocd.argoproj.io/sync-options: Prune=false
data: {{a: "1"}}
"""
SMOKE = """\
apiVersion: batch/v1
kind: Job
metadata:
  generateName: smoke-
  annotations:
    argocd.argoproj.io/hook: PostSync
    argocd.argoproj.io/hook-delete-policy: HookSucceeded
spec:
  backoffLimit: 0
  template:
    spec:
      restartPolicy: Never
      terminationGracePeriodSeconds: 1
      containers:
        - name: smoke
          image: gitops/busybox:1
          imagePullPolicy: IfNotPresent
          command: ["sh", "-c", "true"]
"""
NOTIFY = """\
apiVersion: v1
kind: ConfigMap
metadata:
  name: sync-failed
  annotations:
    argocd.argoproj.io/hook: SyncFail
data: {a: "1"}
"""


def wait_for(check, timeout: float = 60, every: float = 0.25):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(every)
    raise AssertionError(f"condition not met within {timeout}s (last: {last!r})")


def test_an_argo_cd_repo_runs_unchanged(docker_client, tmp_path):
    kubectl_path()
    repo, data = tmp_path / "repo", str(tmp_path / "data")
    repo.mkdir()
    (repo / "migrate.yaml").write_text(MIGRATE.format(command="echo migrated"))
    (repo / "app.yaml").write_text(APP.format(version="1"))
    (repo / "smoke.yaml").write_text(SMOKE)
    (repo / "notify.yaml").write_text(NOTIFY)
    (repo / ".gitops").mkdir()
    (repo / ".gitops" / "ignore.yaml").write_text(
        "ignoreDifferences:\n  - kind: Deployment\n    jsonPointers: [/spec/replicas]\n")
    config = tmp_path / "kube" / "config"
    config.parent.mkdir()

    def k(*args: str) -> str:
        res = run_kubectl(config, *args, timeout=90)
        assert res.returncode == 0, f"kubectl {' '.join(args)}: {res.stderr}"
        return res.stdout

    def status() -> dict:
        return json.loads(gitops("status", "-o", "json", "--data-dir", data).stdout)

    def sync_of(name: str) -> str:
        return next(o["sync"] for o in status()["objects"] if o["name"] == name)

    try:
        up = gitops("up", str(repo), "--wait", "--timeout", "120", "--data-dir", data,
                    "--interval", "3600", "--ignore-differences", ".gitops/ignore.yaml")
        assert up.returncode == 0, up.stdout + up.stderr
        config.write_text(gitops("kubeconfig", "--data-dir", data).stdout)
        st = status()
        hooks = {h["phase"]: h for h in st["hooks"]["hooks"]}
        assert (hooks["PreSync"]["name"], hooks["PreSync"]["status"]) == ("migrate", "Succeeded")
        assert hooks["PostSync"]["name"].startswith("smoke-")
        assert hooks["PostSync"]["status"] == "Succeeded" and hooks["PostSync"]["deleted"]
        jobs = json.loads(k("get", "jobs", "-o", "json"))["items"]
        assert [j["metadata"]["name"] for j in jobs] == ["migrate"]     # smoke-* deleted
        assert {o["name"] for o in st["objects"]} == {"web", "web-lb", "keep-me"}
        assert not k("get", "configmap", "--ignore-not-found", "sync-failed").strip()

        # a LoadBalancer Service: the node's address once its node port listens
        svc = wait_for(lambda: (s := json.loads(k("get", "svc", "web-lb", "-o", "json")))
                       .get("status", {}).get("loadBalancer", {}).get("ingress") and s)
        assert svc["status"]["loadBalancer"]["ingress"] == [{"ip": "127.0.0.1"}]
        assert next(o for o in st["objects"] if o["name"] == "web-lb")["health"] == "Healthy"

        # live drift in seconds with the poll at an hour: kubectl set env (git declares it)
        start = time.monotonic()
        k("set", "env", "deploy/web", "VERSION=hand-made")
        wait_for(lambda: sync_of("web") == "OutOfSync", timeout=5, every=0.1)
        wait_for(lambda: "hand-made" not in k("get", "deploy", "web", "-o", "json"),
                 timeout=15)
        assert time.monotonic() - start < 10
        wait_for(lambda: sync_of("web") == "Synced", timeout=10)
        # replicas are ignored (as an HPA would own them): scaled, not fought over
        k("scale", "deploy/web", "--replicas", "2")
        time.sleep(4)
        assert json.loads(k("get", "deploy", "web", "-o", "json"))["spec"]["replicas"] == 2

        # git's fields are git's: a server-side apply of one conflicts, unless forced
        res = run_kubectl(config, "apply", "--server-side", "-f", "-", input=(
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: keep-me}\ndata: {a: '9'}\n"))
        assert res.returncode != 0 and 'conflict with "gitops"' in res.stderr
        managed = json.loads(k("get", "cm", "keep-me", "-o", "json",
                               "--show-managed-fields"))["metadata"]["managedFields"]
        assert [(m["manager"], m["operation"]) for m in managed] == [("gitops", "Apply")]

        # a failing PreSync refuses the revision: nothing of it applies, SyncFail runs
        (repo / "migrate.yaml").write_text(MIGRATE.format(command="exit 3"))
        (repo / "app.yaml").write_text(APP.format(version="2"))
        res = gitops("sync", "--data-dir", data, timeout=200)
        assert res.returncode == 1 and "PreSync hook Job/default/migrate failed" in \
            res.stdout + res.stderr
        env = json.loads(k("get", "deploy", "web", "-o", "json"))["spec"]["template"][
            "spec"]["containers"][0]["env"]
        assert env == [{"name": "VERSION", "value": "1"}]
        assert k("get", "configmap", "sync-failed", "-o", "name").strip() == \
            "configmap/sync-failed"

        # the hook fixed; keep-me removed from git is kept, and says so
        (repo / "migrate.yaml").write_text(MIGRATE.format(command="echo migrated"))
        text = (repo / "app.yaml").read_text()
        (repo / "app.yaml").write_text(text[:text.index("---\napiVersion: v1\nkind: Config")])
        res = gitops("sync", "--data-dir", data, timeout=200)
        assert res.returncode == 0, res.stdout + res.stderr
        assert k("get", "cm", "keep-me", "-o", "name").strip() == "configmap/keep-me"
        assert sync_of("keep-me") == "OutOfSync (prune skipped)"
        shown = gitops("status", "--data-dir", data).stdout
        assert "OutOfSync (prune skipped)" in shown and "Hooks:" in shown
    finally:
        gitops("down", "--data-dir", data, timeout=200)


def test_hooks_and_options_that_are_wrong_are_refused_by_validate(tmp_path: Path):
    (tmp_path / "a.yaml").write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\n  annotations:\n"
        "    argocd.argoproj.io/sync-options: Prune=confirm\n")
    (tmp_path / "b.yaml").write_text(
        "apiVersion: batch/v1\nkind: Job\nmetadata:\n  generateName: b-\n"
        "spec: {template: {spec: {restartPolicy: Never, containers: [{name: c, image: x:1}]}}}\n")
    res = gitops("validate", str(tmp_path))
    assert res.returncode == 1
    assert ('a.yaml:6: ConfigMap/a: metadata.annotations["argocd.argoproj.io/sync-options"]: '
            "Prune=confirm waits") in res.stdout
    assert "b.yaml:4: Job/b-: metadata.generateName: generateName is for hooks only" in res.stdout
