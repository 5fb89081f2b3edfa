"""The sync engine on real git repos and a real SQLite store (no Docker needed)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from gitops.model import ObjectKey
from gitops.source.git import GitSource
from gitops.store import Registry, SqliteStore
from gitops.sync.diff import PRUNE_ANNOTATION
from gitops.sync.engine import SyncEngine, SyncPolicy

CM = """\
apiVersion: v1
kind: ConfigMap
metadata:
  name: {name}
{annotations}data:
  value: "{value}"
"""


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True,
                          text=True).stdout.strip()


class Repo:
    def __init__(self, path: Path) -> None:
        self.path = path
        path.mkdir(parents=True)
        git(path, "init", "-q", "-b", "main")
        git(path, "config", "user.email", "t@example.invalid")
        git(path, "config", "user.name", "t")

    def write(self, rel: str, text: str) -> None:
        (self.path / rel).parent.mkdir(parents=True, exist_ok=True)
        (self.path / rel).write_text(text)

    def cm(self, name: str, value: str, annotations: dict | None = None) -> None:
        ann = "".join(f"  annotations:\n    {k}: \"{v}\"\n" for k, v in (annotations or {}).items())
        self.write(f"{name}.yaml", CM.format(name=name, value=value, annotations=ann))

    def commit(self, message: str = "change") -> str:
        git(self.path, "add", "-A")
        git(self.path, "commit", "-q", "--allow-empty", "-m", message)
        return git(self.path, "rev-parse", "HEAD")


@pytest.fixture
def env(tmp_path):
    repo = Repo(tmp_path / "repo")
    store = Registry(SqliteStore(tmp_path / "state.db"))
    source = GitSource(url=f"file://{repo.path}", workdir=tmp_path / "clones")
    yield repo, store, source
    store.close()


def value_of(store, name):
    obj = store.get(ObjectKey("ConfigMap", "default", name))
    return obj["data"]["value"] if obj else None


def test_invalid_commit_changes_nothing_and_names_file_line_field(env):
    repo, store, source = env
    repo.cm("a", "1")
    good = repo.commit("good")
    engine = SyncEngine(store, source)
    assert engine.sync_once().result == "synced"
    repo.cm("a", "2")
    repo.write("broken.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: b\n"
                              "data:\n  x: '1'\nspce: {}\n")
    repo.commit("bad")
    with capture_logs() as logs:
        res = engine.sync_once()
    assert res.result == "failed"
    [err] = res.errors
    assert (err.file, err.line, err.path) == ("broken.yaml", 7, "spce")
    assert value_of(store, "a") == "1"                    # nothing of the bad revision applied
    assert store.get(ObjectKey("ConfigMap", "default", "b")) is None
    assert store.get_state("applied_revision") == good
    assert any(e["event"] == "manifest_invalid" and e["line"] == 7 for e in logs)
    (repo.path / "broken.yaml").unlink()
    fixed = repo.commit("fix")
    assert engine.sync_once().result == "synced"
    assert value_of(store, "a") == "2" and store.get_state("applied_revision") == fixed


def test_prune_by_inventory_with_guard_and_exemption(env):
    repo, store, source = env
    repo.cm("keep", "1")
    repo.cm("gone", "1")
    repo.cm("exempt", "1", {PRUNE_ANNOTATION: "false"})
    repo.commit()
    engine = SyncEngine(store, source)
    engine.sync_once()
    handmade = store.create({"apiVersion": "v1", "kind": "ConfigMap",
                             "metadata": {"name": "handmade"}, "data": {}})
    (repo.path / "gone.yaml").unlink()
    (repo.path / "exempt.yaml").unlink()
    repo.commit("delete two")
    res = engine.sync_once()
    assert [(c.action, c.key.name) for c in res.plan.changes if c.action != "unchanged"] == [
        ("prune", "gone"), ("skip", "exempt")]     # reverse apply order
    assert value_of(store, "gone") is None and value_of(store, "exempt") == "1"
    assert store.get(ObjectKey("ConfigMap", "default", "handmade")) == handmade
    # a revision with zero objects is refused unless explicitly allowed
    for f in repo.path.glob("*.yaml"):
        f.unlink()
    repo.commit("empty")
    assert engine.sync_once().result == "refused"
    assert value_of(store, "keep") == "1"
    allowed = SyncEngine(store, source, SyncPolicy(allow_empty_prune=True))
    assert allowed.sync_once().result == "synced"
    assert value_of(store, "keep") is None


def test_desired_drift_is_logged_field_by_field_and_corrected(env):
    repo, store, source = env
    repo.cm("a", "1")
    repo.commit()
    engine = SyncEngine(store, source)
    engine.sync_once()
    live = store.get(ObjectKey("ConfigMap", "default", "a"))
    live["data"]["value"] = "edited"
    store.update(live)
    with capture_logs() as logs:
        res = engine.sync_once("interval")
    [record] = [e for e in logs if e["event"] == "drift.detected"]
    assert record["drift"]["type"] == "modified" and record["drift"]["origin"] == "desired"
    assert record["drift"]["fields"] == [{"path": "data.value", "desired": "1",
                                          "live": "edited", "line": 6}]
    assert record["object"]["file"] == "a.yaml" and record["object"]["line"] == 1
    assert record["action"] == "corrected" and record["policy"]["self_heal"] is True
    assert record["trigger"] == "interval" and record["source"]["revision"] == res.revision
    assert value_of(store, "a") == "1"
    # the object deleted behind git's back is "missing" drift, recreated
    store.delete(ObjectKey("ConfigMap", "default", "a"))
    with capture_logs() as logs:
        engine.sync_once()
    assert [e["drift"]["type"] for e in logs if e["event"] == "drift.detected"] == ["missing"]
    assert value_of(store, "a") == "1"


def test_report_only_mode_keeps_drift_and_marks_out_of_sync(env):
    repo, store, source = env
    repo.cm("a", "1")
    repo.cm("b", "1")
    repo.commit()
    engine = SyncEngine(store, source, SyncPolicy(self_heal=False))
    engine.sync_once()
    live = store.get(ObjectKey("ConfigMap", "default", "a"))
    live["data"]["value"] = "edited"
    store.update(live)
    with capture_logs() as logs:
        engine.sync_once()
        engine.sync_once()        # identical record: counted, not repeated
    records = [e for e in logs if e["event"] == "drift.detected"]
    assert len(records) == 1 and records[0]["action"] == "reported"
    assert value_of(store, "a") == "edited"
    assert store.inventory()[ObjectKey("ConfigMap", "default", "a")].sync_status == "OutOfSync"
    # a git change to the object still applies: git wins over drift it changed
    repo.cm("a", "2")
    repo.cm("b", "2")
    repo.commit()
    engine.sync_once()
    assert value_of(store, "a") == "2" and value_of(store, "b") == "2"
    assert store.inventory()[ObjectKey("ConfigMap", "default", "a")].sync_status == "Synced"


def test_force_push_and_pinned_rollback_released_by_new_commit(env):
    repo, store, source = env
    repo.cm("a", "1")
    first = repo.commit("one")
    repo.cm("a", "2")
    repo.commit("two")
    engine = SyncEngine(store, source)
    engine.sync_once()
    assert value_of(store, "a") == "2"
    # rewrite history: main now has a different second commit
    git(repo.path, "reset", "-q", "--hard", first)
    repo.cm("a", "rewritten")
    rewritten = repo.commit("rewritten")
    res = engine.sync_once()
    assert res.revision == rewritten and value_of(store, "a") == "rewritten"
    # pin to the first commit: held there across polls
    store.set_state("pin", {"sha": first, "head": rewritten})
    engine.sync_once()
    engine.sync_once()
    assert value_of(store, "a") == "1" and store.get_state("applied_revision") == first
    # a new commit releases the pin
    repo.cm("a", "3")
    newest = repo.commit("three")
    engine.sync_once()
    assert value_of(store, "a") == "3" and store.get_state("pin") is None
    assert store.get_state("applied_revision") == newest


def test_ref_and_path_select_what_is_deployed(env, tmp_path):
    repo, store, _ = env
    repo.write("envs/prod/a.yaml", CM.format(name="prod", value="p", annotations=""))
    repo.write("envs/dev/a.yaml", CM.format(name="dev", value="d", annotations=""))
    repo.commit()
    git(repo.path, "tag", "v1")
    repo.write("envs/prod/a.yaml", CM.format(name="prod", value="p2", annotations=""))
    repo.commit()
    source = GitSource(url=f"file://{repo.path}", workdir=tmp_path / "c2", ref="v1",
                       path="envs/prod")
    SyncEngine(store, source).sync_once()
    assert value_of(store, "prod") == "p" and value_of(store, "dev") is None


def test_suspend_holds_everything(env):
    repo, store, source = env
    repo.cm("a", "1")
    repo.commit()
    engine = SyncEngine(store, source)
    engine.sync_once()
    store.set_state("suspended", True)
    repo.cm("a", "2")
    repo.commit()
    assert engine.sync_once().result == "suspended"
    assert value_of(store, "a") == "1"
    store.set_state("suspended", False)
    engine.sync_once()
    assert value_of(store, "a") == "2"


def test_waves_gate_on_health(env):
    repo, store, source = env
    repo.cm("first", "1", {"gitops.io/sync-wave": "-1"})
    repo.write("deploy.yaml", """\
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, annotations: {gitops.io/sync-wave: "0"}}
spec:
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec: {containers: [{name: c, image: gitops/busybox:1}]}
""")
    repo.cm("last", "1", {"gitops.io/sync-wave": "1"})
    repo.commit()
    ticks = iter(range(10_000))
    engine = SyncEngine(store, source, SyncPolicy(wave_timeout=5), sleep=lambda s: None,
                        clock=lambda: next(ticks))
    res = engine.sync_once()
    # nothing runs controllers here: the Deployment never becomes healthy, so wave 1 waits
    assert res.result == "failed" and "wave 0" in res.message
    assert value_of(store, "first") == "1" and value_of(store, "last") is None
    assert ObjectKey("Deployment", "default", "web") in store.inventory()


def test_ref_may_be_a_branch_or_a_commit(env, tmp_path):
    repo, store, _ = env
    repo.write("a.yaml", CM.format(name="a", value="main-1", annotations=""))
    pinned = repo.commit("main 1")
    git(repo.path, "checkout", "-q", "-b", "staging")
    repo.write("a.yaml", CM.format(name="a", value="staging", annotations=""))
    repo.commit("staging")
    git(repo.path, "checkout", "-q", "main")
    repo.write("a.yaml", CM.format(name="a", value="main-2", annotations=""))
    repo.commit("main 2")
    url = f"file://{repo.path}"
    SyncEngine(store, GitSource(url=url, workdir=tmp_path / "b", ref="staging")).sync_once()
    assert value_of(store, "a") == "staging"
    SyncEngine(store, GitSource(url=url, workdir=tmp_path / "c", ref=pinned)).sync_once()
    assert value_of(store, "a") == "main-1"
    res = SyncEngine(store, GitSource(url=url, workdir=tmp_path / "d", ref="nope")).sync_once()
    assert res.result == "failed" and "nope" in res.message and value_of(store, "a") == "main-1"


def test_standard_git_configuration_is_honoured_and_credentials_stay_out_of_logs(
        env, tmp_path, monkeypatch):
    """An https URL with a token, rewritten by the user's git config (url.insteadOf, as
    credential helpers and ssh keys are also read from it) to where the repo really is."""
    repo, store, _ = env
    repo.cm("a", "from-config")
    repo.commit()
    config = tmp_path / "gitconfig"
    config.write_text(f'[url "file://{repo.path}"]\n'
                      '\tinsteadOf = https://deploy:s3cr3t-token@git.example.invalid/team/app\n')
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", str(config))
    url = "https://deploy:s3cr3t-token@git.example.invalid/team/app"
    source = GitSource(url=url, workdir=tmp_path / "cfg")
    with capture_logs() as logs:
        res = SyncEngine(store, source).sync_once()
    assert res.result == "synced" and value_of(store, "a") == "from-config"
    assert "s3cr3t-token" not in repr(logs)
    # over https the whole userinfo is a credential (the user part may be the token)
    assert any("https://***@git.example.invalid/team/app" in repr(e) for e in logs), logs


def test_directory_revision_covers_files_outside_the_path(tmp_path):
    """An overlay under --path may read a base beside it: editing the base is a new
    revision (the engine reuses a revision's rendering)."""
    from gitops.source.base import DirSource
    root = tmp_path / "src"
    (root / "envs" / "prod").mkdir(parents=True)
    (root / "base").mkdir()
    (root / "envs" / "prod" / "a.yaml").write_text("x: 1\n")
    (root / "base" / "b.yaml").write_text("y: 1\n")
    source = DirSource(str(root), path="envs/prod")
    first = source.fetch().sha
    (root / "base" / "b.yaml").write_text("y: 2\n")
    assert source.fetch().sha != first
    (root / ".hidden").write_text("ignored\n")
    assert source.fetch().sha == source.fetch().sha


def test_ssh_urls_use_the_key_from_git_configuration(env, tmp_path, monkeypatch):
    """ssh:// and scp-style URLs go through the ssh command git is configured with
    (core.sshCommand, here with its -i key). The 'ssh' is a local stand-in that records
    how it was called and runs git's command itself: nothing leaves this machine."""
    repo, store, _ = env
    repo.cm("a", "over-ssh")
    repo.commit()
    calls, key = tmp_path / "ssh-calls", tmp_path / "deploy_key"
    key.write_text("not a real key\n")
    fake_ssh = tmp_path / "fake-ssh"
    fake_ssh.write_text('#!/bin/sh\n'
                        f'echo "$@" >> {calls}\n'
                        'if [ -e "$FAKE_SSH_DENY" ]; then\n'
                        '  echo "git@git.example.invalid: Permission denied (publickey)." >&2\n'
                        '  exit 255\nfi\n'
                        'for last; do :; done\n'
                        'exec sh -c "$last"\n')
    fake_ssh.chmod(0o755)
    config = tmp_path / "gitconfig"
    config.write_text(f"[core]\n\tsshCommand = {fake_ssh} -i {key} -o IdentitiesOnly=yes\n")
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", str(config))
    deny = tmp_path / "deny"
    monkeypatch.setenv("FAKE_SSH_DENY", str(deny))

    for i, url in enumerate([f"ssh://git@git.example.invalid{repo.path}",
                             f"git@git.example.invalid:{repo.path}"]):
        source = GitSource(url=url, workdir=tmp_path / f"ssh{i}")
        res = SyncEngine(store, source).sync_once()
        assert res.result in ("synced", "unchanged") and res.revision
        assert value_of(store, "a") == "over-ssh"
    used = calls.read_text().splitlines()      # (git may first probe the variant: ssh -G)
    fetches = [line for line in used if "git-upload-pack" in line]
    assert len(fetches) >= 2 and all("git@git.example.invalid" in line for line in fetches)
    assert all(f"-i {key}" in line for line in used)

    # The key is refused: a clear error, and what is deployed stays.
    deny.touch()
    repo.cm("a", "never-fetched")
    repo.commit()
    res = SyncEngine(store, source).sync_once()
    assert res.result == "failed" and "Permission denied (publickey)" in res.message
    assert value_of(store, "a") == "over-ssh"
