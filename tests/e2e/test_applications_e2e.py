"""Issue 16, sources and rendering, end to end on the real engine through the CLI: one agent,
several apps declared in git (a gitops.io Application of Jsonnet, an Argo CD Application of
a Helm chart with a file:// dependency, an app of apps with directory globs), each in its
destination namespace; `status` shows each app's tree, `sync --app` and `history --app`
steer and read one app, and an app removed with its finalizer takes its objects along."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from tests.e2e.conftest import git, gitops
from tests.kube_support import kubectl_path, run_kubectl

pytestmark = pytest.mark.docker

pytest.importorskip("_jsonnet")

ROOT_APPS = """\
apiVersion: gitops.io/v1alpha1
kind: Application
metadata: {{name: web}}
spec:
  source:
    path: apps/web
    directory:
      jsonnet:
        tlas: [{{name: replicas, value: "2", code: true}}]
        extVars: [{{name: greeting, value: hello-from-jsonnet}}]
  destination: {{namespace: web}}
  syncPolicy: {{syncOptions: [CreateNamespace=true]}}
---
apiVersion: argoproj.io/v1alpha1
kind: Application
metadata:
  name: tools
  namespace: argocd
spec:
  project: default
  source:
    repoURL: {repo}
    targetRevision: main
    path: apps/chart
    helm:
      releaseName: tools
      valueFiles: [values-prod.yaml]
  destination:
    server: https://kubernetes.default.svc
    namespace: tools
  syncPolicy:
    automated: {{prune: true, selfHeal: true}}
    syncOptions: [CreateNamespace=true]
---
apiVersion: gitops.io/v1alpha1
kind: Application
metadata: {{name: parent}}
spec:
  source: {{path: apps/parent}}
  destination: {{namespace: default}}
"""
NESTED_APP = """\
apiVersion: gitops.io/v1alpha1
kind: Application
metadata:
  name: nested
  finalizers: [resources-finalizer.argocd.argoproj.io]
spec:
  source:
    path: apps/nested
    directory: {exclude: 'alt/*'}
  destination: {namespace: default}
"""
WEB_JSONNET = """\
local lib = import 'lib/deploy.libsonnet';
function(replicas=1) [lib.deployment('web', replicas, std.extVar('greeting'))]
"""
WEB_LIB = """\
{
  deployment(name, replicas, greeting):: {
    apiVersion: 'apps/v1', kind: 'Deployment', metadata: { name: name },
    spec: {
      replicas: replicas,
      selector: { matchLabels: { app: name } },
      template: {
        metadata: { labels: { app: name } },
        spec: {
          terminationGracePeriodSeconds: 1,
          containers: [{
            name: name, image: 'gitops/busybox:1', imagePullPolicy: 'IfNotPresent',
            command: ['sh', '-c', 'exec httpd -f -p 8080'],
            env: [{ name: 'GREETING', value: greeting }],
          }],
        },
      },
    },
  },
}
"""
CHART = """\
apiVersion: v2
name: toolbox
version: 0.1.0
dependencies:
  - name: common
    version: 0.1.0
    repository: file://../../lib/common
"""
CHART_DEPLOY = """\
apiVersion: apps/v1
kind: Deployment
metadata: {name: {{ .Release.Name }}-box}
spec:
  replicas: {{ .Values.replicas }}
  selector: {matchLabels: {app: box}}
  template:
    metadata: {labels: {app: box}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
        - name: box
          image: gitops/busybox:1
          imagePullPolicy: IfNotPresent
          command: ["sh", "-c", "exec sleep 3600"]
"""
COMMON = "apiVersion: v2\nname: common\nversion: 0.1.0\n"
COMMON_CM = ("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: '{{ .Release.Name }}-common'}\n"
             "data: {from: common}\n")
CM = "apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: {name}}}\ndata: {{v: '{value}'}}\n"


def write(root: Path, rel: str, text: str) -> None:
    (root / rel).parent.mkdir(parents=True, exist_ok=True)
    (root / rel).write_text(text)


def commit(repo: Path) -> None:
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "change")


def wait_for(check, timeout: float = 90, every: float = 0.5):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(every)
    raise AssertionError(f"condition not met within {timeout}s (last: {last!r})")


def test_several_apps_from_one_repo_run_on_the_real_engine(docker_client, repo, tmp_path):
    kubectl_path()
    data = str(tmp_path / "data")
    url = f"file://{repo}"
    write(repo, "root/apps.yaml", ROOT_APPS.format(repo=url))
    write(repo, "apps/web/main.jsonnet", WEB_JSONNET)
    write(repo, "apps/web/lib/deploy.libsonnet", WEB_LIB)
    write(repo, "apps/chart/Chart.yaml", CHART)
    write(repo, "apps/chart/values.yaml", "replicas: 0\n")
    write(repo, "apps/chart/values-prod.yaml", "replicas: 1\n")
    write(repo, "apps/chart/templates/deploy.yaml", CHART_DEPLOY)
    write(repo, "lib/common/Chart.yaml", COMMON)
    write(repo, "lib/common/templates/cm.yaml", COMMON_CM)
    write(repo, "apps/parent/nested.yaml", NESTED_APP)
    write(repo, "apps/parent/marker.yaml", CM.format(name="parent-marker", value="1"))
    write(repo, "apps/nested/cm.yaml", CM.format(name="nested", value="main"))
    write(repo, "apps/nested/alt/cm.yaml", CM.format(name="nested", value="alternative"))
    commit(repo)
    config = tmp_path / "kube" / "config"
    config.parent.mkdir()

    def k(*args: str) -> str:
        res = run_kubectl(config, *args, timeout=90)
        assert res.returncode == 0, f"kubectl {' '.join(args)}: {res.stderr}"
        return res.stdout

    def status() -> dict:
        return json.loads(gitops("status", "-o", "json", "--data-dir", data).stdout)

    try:
        up = gitops("up", url, "--path", "root", "--wait", "--timeout", "180",
                    "--data-dir", data, "--interval", "3600", timeout=240)
        assert up.returncode == 0, up.stdout + up.stderr
        config.write_text(gitops("kubeconfig", "--data-dir", data).stdout)
        st = status()
        apps = {a["name"]: a for a in st["apps"]}
        assert set(apps) == {"web", "tools", "parent", "nested"}
        assert apps["nested"]["parent"] == "parent"
        assert {(o["kind"], o["namespace"], o["name"]) for o in apps["web"]["objects"]} == {
            ("Deployment", "web", "web")}
        assert {(o["kind"], o["namespace"], o["name"]) for o in apps["tools"]["objects"]} == {
            ("Deployment", "tools", "tools-box"), ("ConfigMap", "tools", "tools-common")}
        assert all(o["health"] == "Healthy" for a in apps.values() for o in a["objects"])

        # Jsonnet's arguments reached the pods, in the destination namespace
        web = json.loads(k("get", "deploy", "web", "-n", "web", "-o", "json"))
        assert web["spec"]["replicas"] == 2
        assert web["spec"]["template"]["spec"]["containers"][0]["env"] == [
            {"name": "GREETING", "value": "hello-from-jsonnet"}]
        pods = json.loads(k("get", "pods", "-n", "web", "-o", "json"))["items"]
        assert len(pods) == 2 and all(p["status"]["phase"] == "Running" for p in pods)
        # the chart's values-prod.yaml and its file:// dependency
        assert k("get", "cm", "tools-common", "-n", "tools", "-o",
                 "jsonpath={.data.from}") == "common"
        # the nested app read its top-level file only (alt/ excluded)
        assert k("get", "cm", "nested", "-o", "jsonpath={.data.v}") == "main"

        shown = gitops("status", "--data-dir", data).stdout
        assert "Application/web  Synced  Healthy" in shown
        assert ("Application: nested (nested.yaml:1, declared by parent; automated, "
                "namespace default)") in shown
        assert "Deployment/web/web  Synced  Healthy" in shown

        # one app steered: a manual sync of it, its own history
        res = gitops("sync", "--app", "tools", "--data-dir", data, timeout=200)
        assert res.returncode == 0, res.stdout + res.stderr
        history = json.loads(gitops("history", "--app", "tools", "-o", "json",
                                    "--data-dir", data).stdout)
        assert history and {e["app"] for e in history} == {"tools"}
        assert gitops("sync", "--app", "nope", "--data-dir", data).returncode != 0

        # the nested app removed from git: its finalizer deletes what it deployed
        (repo / "apps/parent/nested.yaml").unlink()
        commit(repo)
        res = gitops("sync", "--app", "parent", "--data-dir", data, timeout=200)
        assert res.returncode == 0, res.stdout + res.stderr
        wait_for(lambda: not k("get", "cm", "nested", "--ignore-not-found", "-o",
                               "name").strip())
        assert {a["name"] for a in status()["apps"]} == {"web", "tools", "parent"}

        # `up` with an option the running agent cannot take says so
        res = gitops("up", url, "--path", "root", "--data-dir", data,
                     "--values", "other.yaml")
        assert res.returncode != 0 and "--values other.yaml" in res.stderr
    finally:
        gitops("down", "--data-dir", data, timeout=200)


def test_the_agents_own_source_takes_the_render_flags(docker_client, tmp_path):
    """`up` with Jsonnet arguments, a directory glob and a destination namespace: the flags
    reach the background agent and its render (a local directory, as a user edits it)."""
    kubectl_path()
    src, data = tmp_path / "src", str(tmp_path / "data")
    write(src, "main.jsonnet", WEB_JSONNET)
    write(src, "lib/deploy.libsonnet", WEB_LIB)
    write(src, "alt/main.jsonnet", WEB_JSONNET)       # an alternative layout: excluded
    config = tmp_path / "kube" / "config"
    config.parent.mkdir()
    try:
        up = gitops("up", str(src), "--wait", "--timeout", "120", "--data-dir", data,
                    "--jsonnet-tla-code", "replicas=1", "--jsonnet-ext-var-str",
                    "greeting=from-flags", "--directory-exclude", "alt/*",
                    "--dest-namespace", "team", "--sync-option", "CreateNamespace=true",
                    timeout=200)
        assert up.returncode == 0, up.stdout + up.stderr
        config.write_text(gitops("kubeconfig", "--data-dir", data).stdout)
        res = run_kubectl(config, "get", "deploy", "web", "-n", "team", "-o", "json")
        assert res.returncode == 0, res.stderr
        env = json.loads(res.stdout)["spec"]["template"]["spec"]["containers"][0]["env"]
        assert env == [{"name": "GREETING", "value": "from-flags"}]
        objects = json.loads(gitops("status", "-o", "json", "--data-dir", data).stdout)[
            "objects"]
        assert [(o["namespace"], o["name"], o["file"], o["health"]) for o in objects] == [
            ("team", "web", "main.jsonnet", "Healthy")]
    finally:
        gitops("down", "--data-dir", data, timeout=200)
