"""example-repo/ is laid out like a GitOps repo: its root renders the default environment
(namespace default, NodePort 30080, nothing from overlays/), overlays/staging renders the
same apps into namespace staging with its own NodePort, replicas and greeting; both
validate, and a diff against an empty data dir lists every object (exit 1)."""

from __future__ import annotations

import shutil
import subprocess
import sys

import pytest

from gitops.manifests.render import render_path
from tests.conftest import ROOT

pytestmark = pytest.mark.skipif(
    shutil.which("kubectl") is None and shutil.which("kustomize") is None,
    reason="neither kubectl nor kustomize on PATH")

EXAMPLE = ROOT / "example-repo"
APPS = {"web", "api", "db"}


def by_key(path):
    loaded = render_path(path)
    assert loaded.errors == []
    return {(o.kind, o.body["metadata"].get("namespace", ""), o.name): o for o in loaded.objects}


def test_default_environment_is_the_apps_in_namespace_default():
    objs = by_key(EXAMPLE)
    assert {ns for _, ns, _ in objs} == {"default"}
    assert {o.file.split("/")[0] for o in objs.values()} == APPS    # one folder per app
    web = objs[("Service", "default", "web")]
    assert web.body["spec"]["ports"][0]["nodePort"] == 30080
    assert web.file == "web/service.yaml" and web.line > 1          # attributed to its file
    assert objs[("Deployment", "default", "web")].body["spec"]["replicas"] == 2


def test_staging_overlay_is_a_second_environment():
    objs = by_key(EXAMPLE / "overlays" / "staging")
    assert ("Namespace", "", "staging") in objs
    assert {ns for k, ns, _ in objs if k != "Namespace"} == {"staging"}
    assert objs[("Service", "staging", "web")].body["spec"]["ports"][0]["nodePort"] == 30081
    for name in ("web", "api"):
        assert objs[("Deployment", "staging", name)].body["spec"]["replicas"] == 1
    greeting = objs[("ConfigMap", "staging", "api-config")].body["data"]["GREETING"]
    assert "staging" in greeting
    # the same apps: every default object has its staging twin
    default = {(k, n) for k, _, n in by_key(EXAMPLE)}
    assert default <= {(k, n) for k, _, n in objs}


def gitops(*args):
    return subprocess.run([sys.executable, "-m", "gitops", *args], capture_output=True,
                          text=True, timeout=120)


def test_validate_passes_and_diff_against_an_empty_data_dir_lists_every_object(tmp_path):
    for path in (EXAMPLE, EXAMPLE / "overlays" / "staging"):
        res = gitops("validate", str(path))
        assert res.returncode == 0, res.stdout + res.stderr
    res = gitops("diff", str(EXAMPLE), "--data-dir", str(tmp_path / "empty"))
    assert res.returncode == 1, res.stderr
    created = [ln for ln in res.stdout.splitlines() if ln.startswith("create: ")]
    assert len(created) == len(by_key(EXAMPLE)) == 16
    assert "create: Deployment/default/web  (web/deployment.yaml:" in res.stdout
    assert "Plan: 16 to create, 0 to update, 0 to prune, 0 unchanged." in res.stdout
    assert not (tmp_path / "empty").exists()          # a diff writes nothing


def _have_helm() -> bool:
    try:
        import helm_python  # noqa: F401
        return True
    except ImportError:
        return shutil.which("helm") is not None


@pytest.mark.skipif(not _have_helm(), reason="needs the helm extra or a helm binary")
def test_status_page_chart_renders_with_its_values():
    chart = EXAMPLE / "charts" / "status-page"
    objs = by_key(chart)
    assert set(objs) == {("ConfigMap", "", "status-page"), ("Deployment", "", "status-page"),
                         ("Service", "", "status-page")}
    assert objs[("Service", "", "status-page")].body["spec"]["ports"][0]["nodePort"] == 30090
    page = objs[("ConfigMap", "", "status-page")].body["data"]["index.html"]
    assert "<h1>Guestbook status</h1>" in page and "All systems normal." in page
    assert objs[("Deployment", "", "status-page")].file == "templates/deployment.yaml"
    assert gitops("validate", str(chart)).returncode == 0


@pytest.mark.skipif(not _have_helm(), reason="needs the helm extra or a helm binary")
def test_values_files_override_the_chart_defaults_for_diff_and_the_agent(tmp_path):
    from gitops.cli.agent_options import AgentOptions
    chart = EXAMPLE / "charts" / "status-page"
    res = gitops("diff", str(chart), "--values", "values-staging.yaml",
                 "--data-dir", str(tmp_path / "empty"))
    assert res.returncode == 1, res.stderr
    assert "<h1>Guestbook status (staging)</h1>" in res.stdout
    assert "nodePort: 30091" in res.stdout
    assert "All systems normal." in res.stdout             # what the override leaves alone
    missing = gitops("diff", str(chart), "--values", "nope.yaml", "--data-dir",
                     str(tmp_path / "empty"))
    assert missing.returncode == 2 and "values file not found" in missing.stderr
    flags = AgentOptions(helm_values=("a.yaml", "b.yaml")).to_argv()
    assert flags[flags.index("--values"):flags.index("--values") + 4] == [
        "--values", "a.yaml", "--values", "b.yaml"]
