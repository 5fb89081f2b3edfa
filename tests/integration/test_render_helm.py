"""render_path of Helm charts through the optional helm-python-sdk (skipped when the extra
is not installed); the SDK renders in a child process (gitops.manifests.sandbox)."""

from __future__ import annotations

import os
import textwrap
from pathlib import Path

import pytest

from gitops.manifests.render import render_path


def write(root: Path, files: dict[str, str]) -> Path:
    for rel, content in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(content).lstrip("\n"))
    return root


def cm(name: str) -> str:
    return f"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\ndata:\n  k: v\n"


# -- Helm through helm-python-sdk (the `helm` extra) --------------------------------------------

CHART = {
    "Chart.yaml": "apiVersion: v2\nname: demo\nversion: 0.1.0\n",
    "values.yaml": "replicas: 1\nimage: {repo: busybox, tag: '1'}\n",
    "values-prod.yaml": "replicas: 3\nimage: {tag: '2'}\n",
    "templates/_helpers.tpl": '{{- define "demo.labels" -}}app: {{ .Chart.Name }}{{- end -}}\n',
    "templates/NOTES.txt": "Thanks for installing {{ .Release.Name }}\n",
    "templates/cm.yaml": """
        apiVersion: v1
        kind: ConfigMap
        metadata:
          name: {{ .Release.Name }}-cfg
          namespace: {{ .Release.Namespace }}
          labels:
            {{- include "demo.labels" . | nindent 4 }}
        data:
          replicas: "{{ .Values.replicas }}"
          image: "{{ .Values.image.repo }}:{{ .Values.image.tag }}"
        ---
        apiVersion: v1
        kind: ConfigMap
        metadata:
          name: second
        """,
    "templates/empty.yaml": "{{- if .Values.never }}\nkind: X\n{{- end }}\n",
    "crds/foo.yaml": """
        apiVersion: apiextensions.k8s.io/v1
        kind: CustomResourceDefinition
        metadata:
          name: foos.example.com
        """,
}


@pytest.fixture
def helm_sdk():
    return pytest.importorskip("helm_python")


def test_helm_chart_renders_with_values_files_and_template_attribution(tmp_path, helm_sdk):
    root = write(tmp_path / "demo", CHART)
    result = render_path(root, values_files=["values-prod.yaml"])
    assert result.errors == []
    got = {(o.kind, o.name): o for o in result.objects}
    assert sorted(got) == [("ConfigMap", "demo-cfg"), ("ConfigMap", "second"),
                           ("CustomResourceDefinition", "foos.example.com")]
    cfg = got["ConfigMap", "demo-cfg"]
    assert cfg.body["data"] == {"replicas": "3", "image": "busybox:2"}
    assert cfg.body["metadata"]["namespace"] == "default"
    assert cfg.body["metadata"]["labels"] == {"app": "demo"}
    assert (cfg.file, cfg.line) == ("templates/cm.yaml", 1)
    assert got["ConfigMap", "second"].file == "templates/cm.yaml"
    assert got["CustomResourceDefinition", "foos.example.com"].file == "crds/foo.yaml"


def test_helm_defaults_release_name_and_namespace(tmp_path, helm_sdk):
    root = write(tmp_path / "demo", CHART)
    result = render_path(root, release_name="web", namespace="prod")
    cfg = next(o for o in result.objects if o.name.endswith("-cfg"))
    assert cfg.name == "web-cfg" and cfg.body["metadata"]["namespace"] == "prod"
    assert cfg.body["data"]["replicas"] == "1"


def test_helm_template_error_points_at_template_and_line(tmp_path, helm_sdk):
    root = write(tmp_path / "demo", {**CHART, "templates/bad.yaml": """
        apiVersion: v1
        kind: ConfigMap
        metadata:
          name: bad
        data:
          x: {{ .Values.missing.deeper }}
        """})
    result = render_path(root)
    assert result.objects == []
    [err] = result.errors
    assert (err.file, err.line) == ("templates/bad.yaml", 6)
    assert "nil pointer" in err.message


def test_helm_chart_nested_in_a_plain_directory(tmp_path, helm_sdk):
    root = write(tmp_path / "repo", {"a.yaml": cm("a"),
                                     **{f"charts/demo/{k}": v for k, v in CHART.items()}})
    result = render_path(root)
    assert result.errors == []
    assert [(o.file, o.name) for o in result.objects] == [
        ("a.yaml", "a"), ("charts/demo/crds/foo.yaml", "foos.example.com"),
        ("charts/demo/templates/cm.yaml", "demo-cfg"),
        ("charts/demo/templates/cm.yaml", "second")]


def test_helm_broken_values_file(tmp_path, helm_sdk):
    root = write(tmp_path / "demo", {**CHART, "bad-values.yaml": "a: [\n"})
    result = render_path(root, values_files=[root / "bad-values.yaml"])
    [err] = result.errors
    assert err.file == "bad-values.yaml"


def test_helm_missing_chart_yaml_fields_is_an_error(tmp_path, helm_sdk):
    root = write(tmp_path / "demo", {"Chart.yaml": "name: [\n"})
    [err] = render_path(root).errors
    assert err.file == "Chart.yaml" and err.message


def test_no_helm_on_path_does_not_matter_with_the_sdk(tmp_path, helm_sdk, monkeypatch):
    monkeypatch.setenv("PATH", os.devnull)
    assert render_path(write(tmp_path / "demo", CHART)).errors == []
