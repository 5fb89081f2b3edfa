"""Sources as Argo CD renders them (issue 16, "Sources and rendering"): Jsonnet with its
arguments, directory recursion and globs, Helm release/namespace and chart dependencies from
the repo, the destination namespace, and a kustomized YAML error named where it is."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from gitops.manifests.options import DirectoryOptions, JsonnetVar, RenderOptions
from gitops.manifests.render import render_path

pytest.importorskip("_jsonnet")

CM = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\ndata:\n  k: v\n"


def cli(*args: str) -> subprocess.CompletedProcess:
    """The CLI in its own process, as a user runs it (its logging setup stays there)."""
    return subprocess.run([sys.executable, "-m", "gitops", *args], capture_output=True,
                          text=True, timeout=120)


def write(root: Path, rel: str, text: str) -> Path:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


@pytest.fixture
def repo(tmp_path) -> Path:
    root = tmp_path / "repo"
    root.mkdir()
    subprocess.run(["git", "init", "-q", str(root)], check=True)
    return root


def names(result) -> list[tuple[str, str]]:
    return sorted((o.name, o.file) for o in result.objects)


# -- Jsonnet -----------------------------------------------------------------------------

JSONNET_APP = """\
local k = import 'cm.libsonnet';
function(replicas=1) [
  k.cm('web', { env: std.extVar('env'), replicas: std.toString(replicas) }),
  { apiVersion: 'v1', kind: 'List', items: [k.cm('extra', {})] },
]
"""
JSONNET_LIB = ("{ cm(name, data):: { apiVersion: 'v1', kind: 'ConfigMap', "
               "metadata: { name: name }, data: data } }\n")


def test_jsonnet_renders_with_top_level_arguments_external_variables_and_libs(repo):
    write(repo, "app/main.jsonnet", JSONNET_APP)
    write(repo, "vendor/cm.libsonnet", JSONNET_LIB)
    options = RenderOptions(directory=DirectoryOptions(
        tlas=(JsonnetVar("replicas", "1 + 2", code=True),),
        ext_vars=(JsonnetVar("env", "prod"),), libs=("../vendor",)))
    result = render_path(repo / "app", options=options)
    assert result.errors == []
    assert names(result) == [("extra", "main.jsonnet"), ("web", "main.jsonnet")]
    web = next(o for o in result.objects if o.name == "web")
    assert web.body["data"] == {"env": "prod", "replicas": "3"}


def test_a_jsonnet_error_names_the_file_and_line_in_the_repo(repo):
    write(repo, "app/cm.libsonnet", JSONNET_LIB)
    write(repo, "app/main.jsonnet", JSONNET_APP)     # no ext var `env` given
    result = render_path(repo / "app")
    assert [(e.file, e.line) for e in result.errors] == [("main.jsonnet", 3)]
    assert "undefined external variable: env" in result.errors[0].message
    assert str(repo) not in result.errors[0].message


def test_a_jsonnet_import_outside_the_checkout_is_refused(repo, tmp_path):
    write(tmp_path, "outside.libsonnet", "{ secret: 'x' }\n")
    write(repo, "app/main.jsonnet", "local o = import '../../outside.libsonnet';\n"
          "{ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: o.secret } }\n")
    result = render_path(repo / "app")
    assert result.objects == []
    assert result.errors and "outside the repository" in result.errors[0].message
    assert result.errors[0].file == "main.jsonnet"


def test_libsonnet_files_are_only_imported_and_bad_output_is_an_error(repo):
    write(repo, "app/only.libsonnet", "{ apiVersion: 'v1', kind: 'ConfigMap' }\n")
    write(repo, "app/number.jsonnet", "42\n")
    result = render_path(repo / "app")
    assert result.objects == []
    assert [(e.file, "not int" in e.message) for e in result.errors] == [
        ("number.jsonnet", True)]


# -- directory recursion and globs --------------------------------------------------------

def test_alternative_layouts_in_subfolders_are_left_out_by_recurse_or_exclude(repo):
    write(repo, "app/web.yaml", CM.format(name="web"))
    write(repo, "app/alt/web.yaml", CM.format(name="web"))      # the same object again
    assert [(e.file, "duplicate object" in e.message)
            for e in _validated(repo / "app")] == [("web.yaml", True)]   # by default
    flat = render_path(repo / "app", options=RenderOptions(
        directory=DirectoryOptions(recurse=False)))
    assert names(flat) == [("web", "web.yaml")]
    excluded = render_path(repo / "app", options=RenderOptions(
        directory=DirectoryOptions(exclude="alt/*")))
    assert names(excluded) == [("web", "web.yaml")]
    included = render_path(repo / "app", options=RenderOptions(
        directory=DirectoryOptions(include="{alt/web.yaml,nothing}")))
    assert names(included) == [("web", "alt/web.yaml")]


def _validated(path: Path) -> list:
    from gitops.manifests.validate import validate
    return validate(render_path(path).objects)


# -- Helm ----------------------------------------------------------------------------------

CHART = "apiVersion: v2\nname: {name}\nversion: 0.1.0\n"
TEMPLATE = ("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{{{ .Release.Name }}}}-{name}\n"
            "data:\n  ns: {{{{ .Release.Namespace }}}}\n")


def chart(root: Path, rel: str, name: str, deps: str = "") -> None:
    write(root, f"{rel}/Chart.yaml", CHART.format(name=name) + deps)
    write(root, f"{rel}/templates/cm.yaml", TEMPLATE.format(name=name))


def test_file_dependencies_are_built_from_the_repo_and_named_where_they_live(repo):
    chart(repo, "charts-src/common", "common")
    chart(repo, "app", "app", "dependencies:\n  - name: common\n    version: 0.1.0\n"
                              "    repository: file://../charts-src/common\n")
    chart(repo, "app/charts/vendored", "vendored")
    write(repo, "app/Chart.yaml", (repo / "app/Chart.yaml").read_text()
          + "  - name: vendored\n    version: 0.1.0\n    repository: https://charts.invalid\n")
    result = render_path(repo / "app", release_name="rel", namespace="team")
    assert result.errors == []
    assert names(result) == [("rel-app", "templates/cm.yaml"),
                             ("rel-common", "../charts-src/common/templates/cm.yaml"),
                             ("rel-vendored", "charts/vendored/templates/cm.yaml")]
    assert {o.body["data"]["ns"] for o in result.objects} == {"team"}
    assert {o.body["metadata"]["namespace"] for o in result.objects} == {"team"}
    assert not (repo / "app/charts/common").exists()    # the user's tree is not written


def test_a_missing_dependency_is_an_error_naming_it(repo):
    chart(repo, "app", "app", "dependencies:\n  - name: redis\n    version: 18.0.0\n"
                              "    repository: https://charts.example.invalid\n"
                              "  - name: gone\n    version: 1.0.0\n"
                              "    repository: file://../nowhere\n")
    result = render_path(repo / "app")
    assert result.objects == []
    messages = [e.message for e in result.errors]
    assert any("'redis'" in m and "missing from charts/" in m for m in messages)
    assert any("'gone'" in m and "no Chart.yaml" in m for m in messages)
    assert {e.file for e in result.errors} == {"Chart.yaml"}


def test_a_file_dependency_outside_the_checkout_is_refused(repo, tmp_path):
    chart(tmp_path, "elsewhere", "elsewhere")
    chart(repo, "app", "app", "dependencies:\n  - name: elsewhere\n    version: 0.1.0\n"
                              "    repository: file://../../elsewhere\n")
    result = render_path(repo / "app")
    assert result.objects == [] and "outside the repository" in result.errors[0].message


def test_validate_takes_values_release_name_and_namespace(repo):
    chart(repo, "app", "app")
    write(repo, "app/templates/extra.yaml",
          "{{- if .Values.extra }}\n" + CM.format(name="extra") + "{{- end }}\n")
    write(repo, "app/prod.yaml", "extra: true\n")
    res = cli("validate", str(repo / "app"), "-o", "json", "--values", "prod.yaml",
              "--release-name", "web", "--namespace", "team")
    assert res.returncode == 0, res.stdout + res.stderr
    assert '"objects": 2' in res.stdout
    res = cli("validate", str(repo / "app"), "-o", "json")
    assert '"objects": 1' in res.stdout


# -- destination namespace, kustomize errors ----------------------------------------------

def test_the_destination_namespace_goes_to_namespaced_objects_that_name_none(repo):
    write(repo, "app/cm.yaml", CM.format(name="a"))
    write(repo, "app/other.yaml", CM.format(name="b").replace(
        "metadata:\n", "metadata:\n  namespace: kept\n"))
    write(repo, "app/ns.yaml", "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: team\n")
    write(repo, "app/role.yaml", "apiVersion: rbac.authorization.k8s.io/v1\n"
          "kind: ClusterRole\nmetadata:\n  name: r\nrules: []\n")
    result = render_path(repo / "app", options=RenderOptions(namespace="team"))
    got = {o.name: o.body["metadata"].get("namespace") for o in result.objects}
    assert got == {"a": "team", "b": "kept", "team": None, "r": None}


def test_a_yaml_error_in_a_kustomized_directory_names_the_file_and_line(repo):
    write(repo, "app/kustomization.yaml", "resources:\n  - cm.yaml\n  - bad.yaml\n")
    write(repo, "app/cm.yaml", CM.format(name="a"))
    write(repo, "app/bad.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: b\n"
          "  labels: [x\ndata:\n  k: v\n")
    result = render_path(repo)
    assert [(e.file, e.line) for e in result.errors] == [("app/bad.yaml", 6)]
    assert "YAML syntax error" in result.errors[0].message
    assert str(repo) not in str(result.errors[0])


def test_diff_takes_the_same_render_flags(repo, tmp_path):
    write(repo, "app/web.yaml", CM.format(name="web"))
    write(repo, "app/alt/web.yaml", CM.format(name="web"))
    res = cli("diff", str(repo), "--path", "app", "-o", "json", "--no-directory-recurse",
              "--namespace", "team", "--create-namespace", "--data-dir", str(tmp_path / "data"))
    assert res.returncode == 1, res.stdout + res.stderr   # changes: everything is a create
    changes = json.loads(res.stdout)["changes"]
    assert [(c["action"], c["namespace"], c["name"], c["file"]) for c in changes] == [
        ("create", "team", "web", "web.yaml")]


def test_jsonnet_runs_within_the_render_budgets(repo, monkeypatch):
    """Jsonnet is evaluated in the render sandbox: a file that never ends, or prints more
    than the output cap, fails with the budget named; the agent is untouched."""
    from gitops.manifests import render
    monkeypatch.setattr(render, "TOOL_TIMEOUT", 2.0)
    monkeypatch.setattr(render, "TOOL_OUTPUT_MIB", 1)
    write(repo, "forever/main.jsonnet",
          "local f(x) = if x < 0 then 0 else f(x + 1) tailstrict; f(0)\n")
    write(repo, "big/main.jsonnet", "{ apiVersion: 'v1', kind: 'List', "
          "items: std.range(0, 200000) }\n")        # about 2.6 MB of JSON
    forever = render_path(repo / "forever")
    assert [e.message for e in forever.errors] == [
        "jsonnet exceeded its time budget of 2 s"]
    monkeypatch.setattr(render, "TOOL_TIMEOUT", 60.0)
    big = render_path(repo / "big")
    assert [e.message for e in big.errors] == [
        "jsonnet: rendered output larger than 1 MiB"]


def test_validate_checks_the_apps_a_repo_declares(repo):
    """An app-of-apps repo validated from its root: the apps' own paths are rendered and
    checked as the agent would, their files named from the repo's root."""
    write(repo, "root/apps.yaml", "apiVersion: gitops.io/v1alpha1\nkind: Application\n"
          "metadata: {name: web}\nspec:\n  source: {path: apps/web}\n"
          "  destination: {namespace: web}\n")
    write(repo, "apps/web/d.yaml", "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n"
          "  name: d\nspec:\n  replicas: x\n")
    res = cli("validate", str(repo / "root"), "-o", "json")
    assert res.returncode == 1, res.stdout + res.stderr
    found = json.loads(res.stdout)["errors"]
    assert ("apps/web/d.yaml", 6, "spec.replicas") in {
        (e["file"], e["line"], e["path"]) for e in found}
