"""Rendering cannot reach the host or the agent's memory (issue 13, item 5).

Budgets: Helm (SDK or binary) and kustomize run in a child process with a memory budget, a
time budget (the whole process group is killed) and an output cap; the checkout has a size
cap. Inputs: every kustomize input must be an existing local path inside the checkout (remote
bases only with --allow-remote-bases), and neither `--path` nor a symlink leads out of it.

No test here reaches the network: remote entries name 127.0.0.1 and a fake `kustomize` on
PATH records whether it ran at all (it must not have).
"""

from __future__ import annotations

import os
import resource
import shutil
import textwrap
import time
from pathlib import Path

import pytest

from gitops.errors import PermanentError
from gitops.manifests import render
from gitops.manifests.render import render_path
from gitops.model import ObjectKey
from gitops.source.base import DirSource, Revision
from gitops.source.git import GitSource
from gitops.store import Registry, SqliteStore
from gitops.sync.engine import SyncEngine
from gitops.sync.engine import render as render_revision
from tests.e2e.conftest import git

needs_kubectl = pytest.mark.skipif(shutil.which("kubectl") is None, reason="no kubectl on PATH")
MiB = 2**20


def write(root: Path, files: dict[str, str]) -> Path:
    for rel, content in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(content).lstrip("\n"))
    return root


def cm(name: str) -> str:
    return f"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\ndata:\n  k: v\n"


def fake_tool(bindir: Path, name: str, script: str) -> Path:
    bindir.mkdir(exist_ok=True)
    path = bindir / name
    path.write_text("#!/bin/sh\n" + textwrap.dedent(script).lstrip("\n"))
    path.chmod(0o755)
    return path


@pytest.fixture
def fake_kustomize(tmp_path, monkeypatch):
    """A `kustomize` first on PATH that records each run and prints one ConfigMap."""
    calls = tmp_path / "kustomize-calls"
    fake_tool(tmp_path / "bin", "kustomize", f"""
        echo "$@" >> {calls}
        printf 'apiVersion: v1\\nkind: ConfigMap\\nmetadata:\\n  name: from-kustomize\\n'
        """)
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}")
    return calls


@pytest.fixture
def helm_sdk():
    return pytest.importorskip("helm_python")


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"     # a zombie is dead
    except FileNotFoundError:
        return False


# -- A. budgets ---------------------------------------------------------------------------------

BOMB_CHART = {
    "Chart.yaml": "apiVersion: v2\nname: bomb\nversion: 0.1.0\n",
    "templates/cm.yaml": """
        apiVersion: v1
        kind: ConfigMap
        metadata:
          name: bomb
        data:
        {{- range until 30000000 }}
          k{{ . }}: "v"
        {{- end }}
        """,
}


def test_helm_range_until_30000000_fails_on_its_memory_budget_not_the_agent(tmp_path,
                                                                           helm_sdk):
    """In-process, this chart took 260 s and 11.9 GB of the agent's memory to render."""
    chart = write(tmp_path / "bomb", BOMB_CHART)
    own_peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    result = render_path(chart)
    assert result.objects == []
    [err] = result.errors
    assert (err.file, err.message) == (
        "Chart.yaml", f"helm render exceeded its memory budget of {render.TOOL_MEMORY_MIB} MiB")
    grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - own_peak
    assert grown < 100 * MiB                        # the agent's own memory did not balloon
    child_peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024
    assert child_peak < render.TOOL_MEMORY_MIB * MiB + 256 * MiB   # + Helm's mapped library


def test_helm_sdk_render_past_its_time_budget_is_killed(tmp_path, helm_sdk, monkeypatch):
    monkeypatch.setattr(render, "TOOL_TIMEOUT", 1.0)
    chart = write(tmp_path / "slow", {
        "Chart.yaml": "apiVersion: v2\nname: slow\nversion: 0.1.0\n",
        # 10^8 empty iterations: seconds of CPU, almost no memory
        "templates/cm.yaml": """
            apiVersion: v1
            kind: ConfigMap
            metadata: {name: slow}
            data:
              n: "{{ range until 10000 }}{{ range until 10000 }}{{ end }}{{ end }}1"
            """})
    [err] = render_path(chart).errors
    assert (err.file, err.message) == ("Chart.yaml",
                                       "helm render exceeded its time budget of 1 s")


@needs_kubectl
def test_kustomize_past_its_memory_budget_names_the_budget(tmp_path, monkeypatch):
    monkeypatch.setattr(render, "TOOL_MEMORY_MIB", 16, raising=False)  # too small for Go
    monkeypatch.setenv("PATH", str(Path(shutil.which("kubectl")).parent))   # no kustomize
    repo = write(tmp_path / "repo", {"kustomization.yaml": "resources: [a.yaml]\n",
                                     "a.yaml": cm("a")})
    [err] = render_path(repo).errors
    assert (err.file, err.message) == (
        "kustomization.yaml", "kubectl kustomize exceeded its memory budget of 16 MiB")


def test_output_past_the_cap_is_cut_and_the_tool_killed(tmp_path, monkeypatch):
    monkeypatch.setattr(render, "TOOL_OUTPUT_MIB", 1, raising=False)
    monkeypatch.setattr(render, "TOOL_TIMEOUT", 20.0)
    pids = tmp_path / "pids"
    # 4 MiB of a valid ConfigMap, then it stays: only the cap can end this run early.
    fake_tool(tmp_path / "bin", "kustomize", f"""
        echo $$ > {pids}
        printf 'apiVersion: v1\\nkind: ConfigMap\\nmetadata: {{name: big}}\\ndata:\\n  v: "'
        head -c 4194304 /dev/zero | tr '\\0' x
        printf '"\\n'
        exec sleep 60
        """)
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}")
    repo = write(tmp_path / "repo", {"kustomization.yaml": "resources: []\n"})
    try:
        [err] = render_path(repo).errors
        assert (err.file, err.message) == (
            "kustomization.yaml", "kustomize build: rendered output larger than 1 MiB")
        pid = int(pids.read_text().split()[0])
        assert not alive(pid)
    finally:
        for line in pids.read_text().split() if pids.exists() else ():
            if alive(int(line)):
                os.kill(int(line), 9)


def test_timeout_kills_the_tools_whole_process_group(tmp_path, monkeypatch):
    monkeypatch.setattr(render, "TOOL_TIMEOUT", 1.0)
    pids = tmp_path / "pids"
    fake_tool(tmp_path / "bin", "kustomize", f"""
        sleep 120 &
        echo $! > {pids}
        wait
        """)
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}")
    repo = write(tmp_path / "repo", {"kustomization.yaml": "resources: []\n"})
    try:
        [err] = render_path(repo).errors
        assert err.message == "kustomize build exceeded its time budget of 1 s"
        grandchild = int(pids.read_text())
        deadline = time.monotonic() + 5      # init reaps it; bounded, not a timing assertion
        while alive(grandchild) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not alive(grandchild)
    finally:
        if pids.exists() and pids.read_text().strip() and alive(int(pids.read_text())):
            os.kill(int(pids.read_text()), 9)


def test_renderers_do_not_see_the_agents_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("GITOPS_LEAK_PROBE", "s3cret-Zx81")
    fake_tool(tmp_path / "bin", "kustomize", """
        printf 'apiVersion: v1\\nkind: ConfigMap\\nmetadata: {name: env}\\ndata:\\n'
        printf '  probe: "%s"\\n  path: "%s"\\n' "$GITOPS_LEAK_PROBE" "$PATH"
        """)
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}")
    repo = write(tmp_path / "repo", {"kustomization.yaml": "resources: []\n"})
    [obj] = render_path(repo).objects
    assert obj.body["data"]["probe"] == ""
    assert obj.body["data"]["path"] == os.environ["PATH"]     # what a tool needs still is


def test_a_checkout_past_the_size_cap_is_refused(tmp_path, monkeypatch):
    monkeypatch.setattr("gitops.source.base.REPO_MAX_MIB", 1, raising=False)
    root = write(tmp_path / "repo", {"app/cm.yaml": cm("a")})
    (root / "blob.bin").write_bytes(b"x" * (2 * MiB))
    desired, errors = render_revision(Revision("sha", root, "app"))
    assert desired == []
    assert [e.message for e in errors] == [
        "the repository holds more than 1 MiB of files (.git excluded), the most a revision "
        "may read; refusing to render it"]
    with pytest.raises(PermanentError, match="more than 1 MiB"):
        DirSource(str(root)).fetch()
    (root / "blob.bin").unlink()
    (root / ".git").mkdir()
    (root / ".git" / "pack").write_bytes(b"x" * (2 * MiB))      # .git does not count
    desired, errors = render_revision(Revision("sha", root, "app"))
    assert errors == [] and [d.body["metadata"]["name"] for d in desired] == ["a"]


# -- B. kustomize inputs, --path and symlinks ---------------------------------------------------

REMOTE = [
    "https://127.0.0.1:9/x/deploy.yaml",
    "127.0.0.1:9/org/repo//base?ref=v1",
    "git@127.0.0.1:org/repo.git",
    "ssh://git@127.0.0.1:9/org/repo//base",
    "127.0.0.1/org/repo",        # no scheme, no .git: kustomize still clones it
]


@pytest.mark.parametrize("field", ["resources", "components", "bases"])
@pytest.mark.parametrize("url", REMOTE)
def test_remote_resources_are_refused_before_kustomize_runs(tmp_path, fake_kustomize, field,
                                                            url):
    repo = write(tmp_path / "repo", {
        "kustomization.yaml": f"namePrefix: p-\n{field}:\n- a.yaml\n- {url}\n",
        "a.yaml": cm("a")})
    result = render_path(repo)
    assert not fake_kustomize.exists()                 # kustomize never ran
    [err] = result.errors
    assert (err.file, err.line, err.path) == ("kustomization.yaml", 4, f"{field}[1]")
    assert "remote" in err.message and "--allow-remote-bases" in err.message


def test_a_remote_patch_file_in_a_base_is_refused_at_the_base(repo, fake_kustomize):
    write(repo, {
        "base/kustomization.yaml": """
            resources: [a.yaml]
            patches:
            - path: https://127.0.0.1:9/patch.yaml
            """,
        "base/a.yaml": cm("a"),
        "overlays/prod/kustomization.yaml": "resources: [../../base]\n"})
    [err] = render_path(repo / "overlays" / "prod").errors
    assert (err.file, err.line, err.path) == ("../../base/kustomization.yaml", 3,
                                              "patches[0].path")
    assert not fake_kustomize.exists()


def test_allow_remote_bases_hands_them_to_kustomize(tmp_path, fake_kustomize):
    repo = write(tmp_path / "repo", {"kustomization.yaml": f"resources: [{REMOTE[0]}]\n"})
    result = render_path(repo, allow_remote_bases=True)
    assert result.errors == [] and [o.name for o in result.objects] == ["from-kustomize"]
    assert fake_kustomize.exists()


def test_a_missing_local_path_is_refused_as_kustomize_would_try_it_remotely(tmp_path,
                                                                           fake_kustomize):
    repo = write(tmp_path / "repo", {"kustomization.yaml": "resources:\n- example.com/x\n"})
    [err] = render_path(repo).errors
    assert (err.line, err.path) == (2, "resources[0]") and "example.com/x" in err.message
    assert not fake_kustomize.exists()


OUTSIDE_BASE = {
    "kustomization.yaml": "resources: [cm.yaml]\n",
    "cm.yaml": cm("outside"),
}


@needs_kubectl
def test_a_base_outside_the_checkout_is_refused(tmp_path, repo):
    """`repo` is a git work tree: by default the boundary is the one holding the path."""
    write(tmp_path / "outside", OUTSIDE_BASE)
    write(repo, {"kustomization.yaml": "resources:\n- a.yaml\n- ../outside\n",
                 "a.yaml": cm("a")})
    result = render_path(repo)
    assert result.objects == []
    [err] = result.errors
    assert (err.file, err.line, err.path) == ("kustomization.yaml", 3, "resources[1]")
    assert "outside the repository" in err.message


@needs_kubectl
def test_a_symlinked_base_directory_pointing_outside_is_refused(tmp_path, repo):
    write(tmp_path / "outside", OUTSIDE_BASE)
    write(repo, {"overlays/prod/kustomization.yaml": "resources: [../../base]\n"})
    (repo / "base").symlink_to(tmp_path / "outside")
    result = render_path(repo / "overlays" / "prod")
    assert result.objects == []
    [err] = result.errors
    assert (err.file, err.line) == ("kustomization.yaml", 1)
    assert "'../../base' resolves outside the repository" in err.message


@needs_kubectl
def test_an_overlay_may_still_use_a_base_inside_the_checkout(repo):
    write(repo, {
        "base/kustomization.yaml": "resources: [cm.yaml]\n", "base/cm.yaml": cm("web"),
        "overlays/prod/kustomization.yaml": "resources: [../../base]\nnamePrefix: prod-\n"})
    (repo / "shared").symlink_to(repo / "base")           # a symlink that stays inside is fine
    (repo / "overlays" / "dev").mkdir()
    (repo / "overlays" / "dev" / "kustomization.yaml").write_text("resources: [../../shared]\n")
    for overlay, name, base in (("prod", "prod-web", "base"), ("dev", "web", "shared")):
        result = render_path(repo / "overlays" / overlay)
        assert result.errors == []
        assert [(o.name, o.file, o.line) for o in result.objects] == [
            (name, f"../../{base}/cm.yaml", 1)]


@pytest.mark.parametrize("files", [
    {"kustomization.yaml": "resources: [a.yaml]\npatches:\n- path: /etc/hostname\n"},
    {"kustomization.yaml": "resources: [a.yaml]\nconfigMapGenerator:\n- name: c\n"
                           "  files: [host=/etc/hostname]\n"},
    {"kustomization.yaml": "resources: [a.yaml]\nconfigMapGenerator:\n- name: c\n"
                           "  envs: [../../../../../../../../etc/hostname]\n"},
])
def test_files_a_kustomization_reads_must_be_inside_the_checkout(tmp_path, fake_kustomize,
                                                                  files):
    repo = write(tmp_path / "repo", {**files, "a.yaml": cm("a")})
    [err] = render_path(repo).errors
    assert err.file == "kustomization.yaml" and "outside the repository" in err.message
    assert not fake_kustomize.exists()


def test_a_symlinked_kustomize_input_pointing_outside_is_refused(tmp_path, fake_kustomize):
    repo = write(tmp_path / "repo", {"kustomization.yaml": "resources: [a.yaml, leak.yaml]\n",
                                     "a.yaml": cm("a")})
    (repo / "leak.yaml").symlink_to("/etc/hostname")
    [err] = render_path(repo).errors
    assert (err.line, err.path) == (1, "resources[1]")
    assert not fake_kustomize.exists()


def test_a_chart_cannot_read_outside_through_a_symlinked_directory(tmp_path, repo, helm_sdk):
    write(tmp_path / "outside", {"x.yaml": cm("leaked")})
    write(repo, {"chart/Chart.yaml": "apiVersion: v2\nname: c\nversion: 0.1.0\n",
                 "chart/templates/cm.yaml": cm("ok")})
    (repo / "inner").mkdir()
    (repo / "inner" / "leak.yaml").symlink_to(tmp_path / "outside" / "x.yaml")
    (repo / "chart" / "templates" / "sub").symlink_to(repo / "inner")   # inside, but...
    result = render_path(repo / "chart")
    assert [o.name for o in result.objects] == []
    assert [(e.file, e.message) for e in result.errors] == [
        ("templates/sub/leak.yaml", "symlink points outside the root")]


def test_a_plain_directory_symlinked_outside_is_an_error_not_a_silence(tmp_path):
    write(tmp_path / "outside", {"x.yaml": cm("leaked")})
    repo = write(tmp_path / "repo", {"a.yaml": cm("a")})
    (repo / "more").symlink_to(tmp_path / "outside")
    result = render_path(repo)
    assert [o.name for o in result.objects] == ["a"]
    assert [(e.file, e.message) for e in result.errors] == [
        ("more", "symlink points outside the root")]


@pytest.mark.parametrize("path", ["../outside", "up", "../../../../../../../../etc"])
def test_a_manifest_path_outside_the_checkout_is_refused(tmp_path, path):
    write(tmp_path / "outside", {"x.yaml": cm("leaked")})
    repo = write(tmp_path / "repo", {"a.yaml": cm("a")})
    (repo / "up").symlink_to(tmp_path / "outside")
    desired, errors = render_revision(Revision("sha", repo, path))
    assert desired == []
    [err] = errors
    assert "leads outside the repository" in err.message


def test_sync_refuses_a_path_that_became_a_symlink_out_and_keeps_the_last_good_revision(
        tmp_path, repo):
    outside = write(tmp_path / "outside", {"x.yaml": cm("leaked")})
    write(repo, {"app/cm.yaml": cm("good")})
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "good")
    store = Registry(SqliteStore(tmp_path / "state.db"))
    try:
        engine = SyncEngine(store, GitSource(url=f"file://{repo}", workdir=tmp_path / "clones",
                                             path="app"))
        first = engine.sync_once()
        assert first.result == "synced"
        shutil.rmtree(repo / "app")
        (repo / "app").symlink_to(outside)
        git(repo, "add", "-A")
        git(repo, "commit", "-qm", "app now points out of the repo")
        second = engine.sync_once()
        assert second.result == "failed" and second.revision != first.revision
        assert ["leads outside the repository" in e.message for e in second.errors] == [True]
        assert store.get_state("applied_revision") == first.revision
        assert store.get(ObjectKey("ConfigMap", "default", "good")) is not None
        assert store.get(ObjectKey("ConfigMap", "default", "leaked")) is None
    finally:
        store.close()



def test_inline_patches_are_not_paths_but_a_resource_never_is_inline(tmp_path, fake_kustomize):
    inline = write(tmp_path / "inline", {
        "kustomization.yaml": """
            resources: [a.yaml]
            patchesStrategicMerge:
            - |-
              apiVersion: v1
              kind: ConfigMap
              metadata: {name: a}
              data: {k: patched}
            """,
        "a.yaml": cm("a")})
    assert render_path(inline).errors == []
    sneaky = write(tmp_path / "sneaky", {
        "kustomization.yaml": 'resources:\n- "https://127.0.0.1:9/x.yaml\\n"\n'})
    [err] = render_path(sneaky).errors
    assert err.path == "resources[0]"
