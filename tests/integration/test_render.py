"""render_path through real tools: Kustomize via the machine's kubectl (or kustomize), and
fake `kustomize` / `helm` scripts on PATH for argument passing, timeouts and parsing."""

from __future__ import annotations

import os
import shutil
import sys
import textwrap
from pathlib import Path

import pytest

from gitops.manifests import render
from gitops.manifests.render import ORIGIN_ANNOTATION, render_path

needs_kustomize = pytest.mark.skipif(
    shutil.which("kubectl") is None and shutil.which("kustomize") is None,
    reason="neither kubectl nor kustomize on PATH")


def write(root: Path, files: dict[str, str]) -> Path:
    for rel, content in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(content).lstrip("\n"))
    return root


def snapshot(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes()
            for p in sorted(root.rglob("*")) if p.is_file()}


REPO = {
    "base/kustomization.yaml": """
        resources:
        - deployment.yaml
        - service.yaml
        configMapGenerator:
        - name: settings
          literals: [mode=fast]
        """,
    "base/deployment.yaml": """
        # the web tier
        apiVersion: apps/v1
        kind: Deployment
        metadata:
          name: web
          annotations:
            team: blue
        spec:
          replicas: 1
          selector:
            matchLabels: {app: web}
          template:
            metadata:
              labels: {app: web}
            spec:
              containers:
              - name: web
                image: busybox
        """,
    "base/service.yaml": """
        apiVersion: v1
        kind: Service
        metadata:
          name: web
        spec:
          selector: {app: web}
          ports: [{port: 80}]
        ---
        apiVersion: v1
        kind: ConfigMap
        metadata:
          name: extra
        data: {a: b}
        """,
    "overlays/prod/kustomization.yaml": """
        apiVersion: kustomize.config.k8s.io/v1beta1
        kind: Kustomization
        resources:
        - ../../base
        - secret.yaml
        namePrefix: prod-
        commonLabels:
          env: prod
        patches:
        - path: replicas.yaml
        """,
    "overlays/prod/secret.yaml": """
        apiVersion: v1
        kind: Secret
        metadata:
          name: token
        stringData: {token: abc}
        """,
    "overlays/prod/replicas.yaml": """
        apiVersion: apps/v1
        kind: Deployment
        metadata:
          name: web
        spec:
          replicas: 3
        """,
}


@needs_kustomize
def test_overlay_renders_with_origin_files_and_lines(tmp_path):
    repo = write(tmp_path / "repo", REPO)
    before = snapshot(repo)
    result = render_path(repo / "overlays" / "prod", repo_root=repo)
    assert result.errors == []
    assert snapshot(repo) == before        # the user's tree is never written to
    got = {(o.kind, o.name): o for o in result.objects}
    settings = next(n for k, n in got if k == "ConfigMap" and n.startswith("prod-settings-"))
    assert sorted(got) == sorted([("Deployment", "prod-web"), ("Service", "prod-web"),
                                  ("ConfigMap", "prod-extra"), ("ConfigMap", settings),
                                  ("Secret", "prod-token")])
    dep = got["Deployment", "prod-web"]
    assert dep.body["spec"]["replicas"] == 3
    assert dep.body["metadata"]["labels"] == {"env": "prod"}
    assert dep.body["metadata"]["annotations"] == {"team": "blue"}   # origin stripped only
    assert (dep.file, dep.line) == ("../../base/deployment.yaml", 2)
    assert dep.line_of("spec.replicas") == 9      # the field in the base file
    assert dep.line_of("spec.template.spec.containers[0].image") == 18
    svc = got["Service", "prod-web"]
    assert (svc.file, svc.line) == ("../../base/service.yaml", 1)
    assert "annotations" not in svc.body["metadata"]
    extra = got["ConfigMap", "prod-extra"]
    assert (extra.file, extra.line) == ("../../base/service.yaml", 9)
    assert (got["Secret", "prod-token"].file, got["Secret", "prod-token"].line) == (
        "secret.yaml", 1)
    generated = got["ConfigMap", settings]
    assert (generated.file, generated.line) == ("../../base/kustomization.yaml", 1)
    for obj in result.objects:
        assert ORIGIN_ANNOTATION not in obj.body["metadata"].get("annotations", {})


@needs_kustomize
def test_plain_root_with_nested_kustomize_units(tmp_path):
    repo = write(tmp_path / "repo", {**REPO, "namespace.yaml": """
        apiVersion: v1
        kind: Namespace
        metadata:
          name: prod
        """, "overlays/prod/ignored/not-a-resource.yaml": "a: [\n"})
    result = render_path(repo)
    assert result.errors == []
    placed = sorted((o.file, o.line, o.kind, o.name) for o in result.objects
                    if not o.name.startswith(("settings-", "prod-settings-")))
    assert placed == [
        ("base/deployment.yaml", 2, "Deployment", "prod-web"),
        ("base/deployment.yaml", 2, "Deployment", "web"),
        ("base/service.yaml", 1, "Service", "prod-web"),
        ("base/service.yaml", 1, "Service", "web"),
        ("base/service.yaml", 9, "ConfigMap", "extra"),
        ("base/service.yaml", 9, "ConfigMap", "prod-extra"),
        ("namespace.yaml", 1, "Namespace", "prod"),
        ("overlays/prod/secret.yaml", 1, "Secret", "prod-token"),
    ]
    # kustomization files are never objects, and a unit's files are not read as plain YAML
    assert all(o.kind != "Kustomization" for o in result.objects)


@needs_kustomize
def test_broken_kustomization_names_the_file_and_the_problem(tmp_path):
    repo = write(tmp_path / "repo", {"app/kustomization.yaml": "resources: [missing.yaml]\n",
                                     "ok.yaml": "apiVersion: v1\nkind: ConfigMap\n"
                                                "metadata: {name: ok}\n"})
    result = render_path(repo)
    assert [o.name for o in result.objects] == ["ok"]
    [err] = result.errors
    assert err.file == "app/kustomization.yaml"
    assert "missing.yaml" in err.message
    assert "gitops-kustomize-" not in err.message       # the user's paths, not the wrapper's


@needs_kustomize
def test_kustomization_that_is_not_yaml(tmp_path):
    repo = write(tmp_path / "repo", {"kustomization.yaml": "resources: [\n"})
    result = render_path(repo)
    assert result.objects == []
    [err] = result.errors
    assert err.file == "kustomization.yaml" and err.message


@needs_kustomize
def test_user_asked_for_origin_annotations_keeps_them(tmp_path):
    files = dict(REPO)
    files["overlays/prod/kustomization.yaml"] += "buildMetadata: [originAnnotations]\n"
    repo = write(tmp_path / "repo", files)
    result = render_path(repo / "overlays" / "prod", repo_root=repo)
    assert result.errors == []
    dep = next(o for o in result.objects if o.kind == "Deployment")
    assert ORIGIN_ANNOTATION in dep.body["metadata"]["annotations"]
    assert (dep.file, dep.line) == ("../../base/deployment.yaml", 2)


@needs_kustomize
def test_missing_tool_by_path(tmp_path, monkeypatch):
    repo = write(tmp_path / "repo", REPO)
    monkeypatch.setenv("PATH", str(tmp_path / "nothing"))
    result = render_path(repo / "overlays" / "prod", repo_root=repo)
    assert [(e.file, e.message) for e in result.errors] == [
        ("kustomization.yaml", render.KUSTOMIZE_MISSING)]


# -- fake tools on PATH -----------------------------------------------------------------------

def fake_tool(bindir: Path, name: str, script: str) -> Path:
    bindir.mkdir(exist_ok=True)
    path = bindir / name
    path.write_text("#!/bin/sh\n" + textwrap.dedent(script).lstrip("\n"))
    path.chmod(0o755)
    return path


def test_a_kustomize_binary_wins_over_kubectl(tmp_path, monkeypatch):
    bindir = tmp_path / "bin"
    calls = tmp_path / "calls"
    fake_tool(bindir, "kustomize", f"""
        echo "$@" >> {calls}
        printf 'apiVersion: v1\\nkind: ConfigMap\\nmetadata:\\n  name: from-kustomize\\n'
        """)
    fake_tool(bindir, "kubectl", "exit 1\n")
    monkeypatch.setenv("PATH", f"{bindir}{os.pathsep}{os.environ['PATH']}")
    repo = write(tmp_path / "repo", {"kustomization.yaml": "resources: []\n"})
    result = render_path(repo)
    assert result.errors == []
    assert [(o.name, o.file, o.line) for o in result.objects] == [
        ("from-kustomize", "kustomization.yaml", 1)]   # no origin annotation: the kustomization
    assert calls.read_text().startswith("build ")


def test_tool_timeout_is_an_error_and_not_retried(tmp_path, monkeypatch):
    bindir = tmp_path / "bin"
    calls = tmp_path / "calls"
    fake_tool(bindir, "kustomize", f"echo run >> {calls}\nexec sleep 30\n")
    monkeypatch.setenv("PATH", f"{bindir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setattr(render, "TOOL_TIMEOUT", 0.5)
    repo = write(tmp_path / "repo", {"kustomization.yaml": "resources: []\n"})
    [err] = render_path(repo).errors
    assert err.file == "kustomization.yaml" and "exceeded its time budget of 0.5 s" in err.message
    assert calls.read_text() == "run\n"


def test_helm_binary_fallback(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "helm_python", None)   # the extra is not installed
    bindir = tmp_path / "bin"
    calls = tmp_path / "calls"
    fake_tool(bindir, "helm", f"""
        echo "$@" > {calls}
        cat <<'EOF'
        ---
        # Source: demo/crds/crd.yaml
        apiVersion: apiextensions.k8s.io/v1
        kind: CustomResourceDefinition
        metadata:
          name: foos.example.com
        ---
        # Source: demo/templates/cm.yaml
        apiVersion: v1
        kind: ConfigMap
        metadata:
          name: web-cfg
        ---
        # Source: demo/templates/cm.yaml
        apiVersion: v1
        kind: ConfigMap
        metadata:
          name: second
        EOF
        """)
    monkeypatch.setenv("PATH", f"{bindir}{os.pathsep}{os.environ['PATH']}")
    chart = write(tmp_path / "chart", {"Chart.yaml": "apiVersion: v2\nname: demo\nversion: 1\n",
                                       "prod.yaml": "x: 1\n"})
    result = render_path(chart, values_files=["prod.yaml"])
    assert result.errors == []
    assert [(o.file, o.line, o.name) for o in result.objects] == [
        ("crds/crd.yaml", 1, "foos.example.com"), ("templates/cm.yaml", 1, "web-cfg"),
        ("templates/cm.yaml", 1, "second")]
    args = calls.read_text().split()
    assert args[:3] == ["template", "demo", str(chart.resolve())]
    assert args[3:] == ["--namespace", "default", "--include-crds",
                        "--values", str(chart.resolve() / "prod.yaml")]


def test_helm_binary_failure_points_at_the_template(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "helm_python", None)
    fake_tool(tmp_path / "bin", "helm", """
        echo 'Error: template: demo/templates/cm.yaml:7:12: executing "x": nil pointer' >&2
        exit 1
        """)
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}")
    chart = write(tmp_path / "chart", {"Chart.yaml": "name: demo\n"})
    [err] = render_path(chart).errors
    assert (err.file, err.line) == ("templates/cm.yaml", 7)
    assert err.message.startswith("template: demo/templates/cm.yaml:7:12")
