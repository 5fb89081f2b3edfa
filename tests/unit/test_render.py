"""render_path without external tools: plain dirs equal load_path, units, missing-tool errors.
Helm through the optional helm-python-sdk runs a child process: tests/integration/
test_render_helm.py."""

from __future__ import annotations

import copy
import sys
import tempfile
import textwrap
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gitops.manifests import render
from gitops.manifests.loader import LoadResult, load_path
from gitops.manifests.render import HELM_MISSING, KUSTOMIZE_MISSING, render_path


def dedent(text: str) -> str:
    return textwrap.dedent(text).lstrip("\n")


def write(root: Path, files: dict[str, str | bytes]) -> Path:
    for rel, content in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(dedent(content))
    return root


def summary(result: LoadResult) -> tuple[list, list]:
    objects = [(o.body, o.file, o.line, dict(o.field_lines)) for o in result.objects]
    errors = [e.as_dict() for e in result.errors]
    return objects, errors


def cm(name: str) -> str:
    return f"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\ndata:\n  k: v\n"


@pytest.fixture
def no_tools(monkeypatch, tmp_path):
    """Nothing on PATH: no kustomize, kubectl or helm; and no helm_python module."""
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    monkeypatch.setitem(sys.modules, "helm_python", None)   # `import helm_python` fails


PLAIN = {
    "a.yaml": cm("a"),
    "z.yml": cm("z") + "---\n" + cm("z2"),
    "sub/deep/b.yaml": """
        # a comment first
        apiVersion: v1
        kind: List
        items:
        - apiVersion: v1
          kind: Secret
          metadata: {name: s}
        - 3
        """,
    "sub/c.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c\n",   # syntax error
    "sub/nokind.yaml": "apiVersion: v1\nmetadata: {name: x}\n",
    "bad-utf8.yaml": b"apiVersion: v1\nkind: ConfigMap\nmetadata: {name: \xff}\n",
    ".hidden.yaml": cm("hidden"),
    ".git/config.yaml": cm("git"),
    "README.md": "# not yaml",
    "empty.yaml": "",
}


def test_plain_directory_is_exactly_load_path(tmp_path):
    root = write(tmp_path / "repo", PLAIN)
    (root / "escape.yaml").symlink_to("/etc/hostname")
    (root / "inside.yaml").symlink_to(root / "a.yaml")
    expected = load_path(root)
    assert expected.objects and expected.errors   # the fixture exercises both
    assert summary(render_path(root)) == summary(expected)
    assert summary(render_path(str(root))) == summary(expected)


def test_single_file_and_missing_path_are_load_paths_answer(tmp_path):
    root = write(tmp_path, {"one.yaml": cm("one")})
    assert summary(render_path(root / "one.yaml")) == summary(load_path(root / "one.yaml"))
    assert summary(render_path(root / "nope")) == summary(load_path(root / "nope"))


_names = st.sampled_from(["a.yaml", "b.yml", "c.txt", ".h.yaml", "d", "kustomizationx.yaml"])
_dirs = st.sampled_from(["", "x/", "x/y/", ".git/", "z/"])
_contents = st.sampled_from([cm("one"), cm("two") + "---\n" + cm("three"), "a: [\n", "- 1\n",
                             "", "apiVersion: v1\nkind: Pod\n"])


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.dictionaries(st.tuples(_dirs, _names).map("".join), _contents, max_size=8))
def test_plain_trees_match_load_path(files):
    with tempfile.TemporaryDirectory() as tmp:
        root = write(Path(tmp), files)
        assert summary(render_path(root)) == summary(load_path(root))


@pytest.mark.parametrize("name", render.KUSTOMIZATION_FILES)
def test_kustomization_at_root_without_tools_is_one_clear_error(tmp_path, no_tools, name):
    root = write(tmp_path / "repo", {name: "resources: [a.yaml]\n", "a.yaml": cm("a")})
    result = render_path(root)
    assert result.objects == []
    assert [(e.file, e.message) for e in result.errors] == [(name, KUSTOMIZE_MISSING)]


def test_nested_kustomization_is_one_unit_and_never_plain_yaml(tmp_path, no_tools):
    root = write(tmp_path / "repo", {
        "a.yaml": cm("a"),
        "app/kustomization.yml": "resources: [x.yaml]\n",
        "app/x.yaml": cm("x"),
        "app/deeper/y.yaml": cm("y"),
        "other/b.yaml": cm("b"),
    })
    result = render_path(root)
    assert [(o.file, o.name) for o in result.objects] == [("a.yaml", "a"),
                                                          ("other/b.yaml", "b")]
    assert [(e.file, e.message) for e in result.errors] == [
        ("app/kustomization.yml", KUSTOMIZE_MISSING)]


def test_errors_from_several_units_and_files_are_all_kept(tmp_path, no_tools):
    root = write(tmp_path / "repo", {
        "a.yaml": "a: [\n",
        "k1/Kustomization": "resources: []\n",
        "k2/kustomization.yaml": "resources: []\n",
        "chart/Chart.yaml": "apiVersion: v2\nname: c\nversion: 0.1.0\n",
        "chart/templates/t.yaml": "{{ .Values.x }}\n",
    })
    files = [e.file for e in render_path(root).errors]
    assert files == ["a.yaml", "chart/Chart.yaml", "k1/Kustomization",
                     "k2/kustomization.yaml"]


def test_chart_without_helm_is_one_clear_error(tmp_path, no_tools):
    root = write(tmp_path / "chart", {
        "Chart.yaml": "apiVersion: v2\nname: demo\nversion: 0.1.0\n",
        "templates/cm.yaml": "{{ if }}",
    })
    result = render_path(root)
    assert result.objects == []
    assert [(e.file, e.message) for e in result.errors] == [("Chart.yaml", HELM_MISSING)]


def test_chart_values_file_that_does_not_exist(tmp_path, no_tools):
    root = write(tmp_path / "chart", {"Chart.yaml": "apiVersion: v2\nname: d\nversion: 1\n"})
    result = render_path(root, values_files=["prod.yaml"])
    assert [(e.file, e.message) for e in result.errors] == [("prod.yaml", "values file not found")]


def test_chart_symlink_out_of_the_repo_is_refused(tmp_path):
    root = write(tmp_path / "chart", {"Chart.yaml": "apiVersion: v2\nname: d\nversion: 1\n"})
    (root / "templates").mkdir()
    (root / "templates" / "leak.yaml").symlink_to("/etc/hostname")
    result = render_path(root)
    assert [(e.file, e.message) for e in result.errors] == [
        ("templates/leak.yaml", "symlink points outside the root")]


@pytest.mark.parametrize("base, override, merged", [
    ({"a": 1}, {"b": 2}, {"a": 1, "b": 2}),
    ({"a": {"x": 1, "y": 2}}, {"a": {"y": 3}}, {"a": {"x": 1, "y": 3}}),
    ({"a": {"x": 1}}, {"a": [1]}, {"a": [1]}),
    ({"a": [1, 2]}, {"a": [3]}, {"a": [3]}),
    ({"a": 1}, {"a": None}, {"a": None}),       # null stays: Helm's coalesce deletes the key
])
def test_values_merge_like_helm(base, override, merged):
    before = copy.deepcopy(base)
    assert render._merge_values(base, override) == merged
    assert base == before   # inputs not mutated


@pytest.mark.parametrize("stderr, message", [
    (('E1125 07:01:01.359035    3118 run.go:72] "command failed" err="accumulating resources: '
      'open \\"x.yaml\\": no such file"\n'),
     'accumulating resources: open "x.yaml": no such file'),
    ("# Warning: 'commonLabels' is deprecated.\nError: map[string]interface {}\n",
     "map[string]interface {}"),
    ("", "kubectl kustomize failed"),
    ("x" * 5000, "x" * render.MAX_MESSAGE + "..."),
])
def test_tool_messages_are_trimmed(stderr, message):
    assert render._tool_message(stderr, "kubectl kustomize") == message
