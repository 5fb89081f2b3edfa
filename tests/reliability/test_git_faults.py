"""Git faults against the sync engine (real git, real SQLite store, no Docker).

Remote unreachable, a force-push, a corrupted clone in the data dir, an enormous file and
binary files: each ends in a clear error and the last good revision left in place, or, for
a force-push and a corrupt clone, in the new history applied.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from gitops.model import ObjectKey
from gitops.source.git import GitSource
from gitops.store import Registry, SqliteStore
from gitops.sync.engine import SyncEngine

CM = "apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: {name}}}\ndata: {{v: \"{v}\"}}\n"


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True,
                          text=True).stdout.strip()


def commit(repo: Path, message: str, **files: str | bytes) -> str:
    for name, content in files.items():
        path = repo / name.replace("__", "/")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content if isinstance(content, bytes) else content.encode())
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "--allow-empty", "-m", message)
    return git(repo, "rev-parse", "HEAD")


def snapshot(store: Registry) -> tuple:
    return (sorted(json.dumps(o, sort_keys=True) for o in store.all_objects()),
            store.get_state("applied_revision"))


def value(store: Registry, name: str = "app") -> str | None:
    obj = store.get(ObjectKey("ConfigMap", "default", name))
    return obj["data"]["v"] if obj else None


@pytest.fixture
def env(tmp_path):
    repo = tmp_path / "remote"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    git(repo, "config", "user.email", "t@example.invalid")
    git(repo, "config", "user.name", "t")
    good = commit(repo, "good", **{"app.yaml": CM.format(name="app", v="1")})
    store = Registry(SqliteStore(tmp_path / "state.db"))
    source = GitSource(url=f"file://{repo}", workdir=tmp_path / "data" / "repos")
    engine = SyncEngine(store, source)
    assert engine.sync_once().result == "synced"
    yield repo, store, source, engine, good
    store.close()


def test_unreachable_remote_is_a_clear_error_and_the_last_good_revision_stays(env, tmp_path):
    repo, store, source, engine, good = env
    commit(repo, "never seen", **{"app.yaml": CM.format(name="app", v="2")})
    before = snapshot(store)
    moved = tmp_path / "gone"
    repo.rename(moved)                              # the remote disappears
    try:
        with capture_logs() as logs:
            res = engine.sync_once()
        assert res.result == "failed"
        assert "git:" in res.message and str(repo) in res.message
        [event] = [e for e in logs if e["event"] == "source_fetch_failed"]
        assert event["repo"] == source.url and event["error"] == res.message
        assert snapshot(store) == before and value(store) == "1"
        assert store.get_state("last_sync")["result"] == "failed"
    finally:
        moved.rename(repo)
    res = engine.sync_once()                        # back: the pending commit applies
    assert res.result == "synced" and value(store) == "2"


def test_force_push_is_followed_to_the_rewritten_history(env):
    repo, store, source, engine, good = env
    commit(repo, "v2", **{"app.yaml": CM.format(name="app", v="2")})
    assert engine.sync_once().result == "synced" and value(store) == "2"
    git(repo, "reset", "-q", "--hard", good)       # rewrite: v2 never happened
    rewritten = commit(repo, "v3 on a new history", **{"app.yaml": CM.format(name="app", v="3"),
                                                        "other.yaml": CM.format(name="other",
                                                                                v="x")})
    res = engine.sync_once()
    assert res.result == "synced" and res.revision == rewritten
    assert value(store) == "3" and value(store, "other") == "x"
    assert store.get_state("applied_revision") == rewritten
    # and a force-push back to an older commit is followed too (prunes what it lacks)
    git(repo, "reset", "-q", "--hard", good)
    res = engine.sync_once()
    assert res.result == "synced" and res.revision == good
    assert value(store) == "1" and value(store, "other") is None


def _corrupt_head(clone: Path) -> None:
    (clone / ".git" / "HEAD").write_text("garbage\n")


def _corrupt_objects(clone: Path) -> None:
    shutil.rmtree(clone / ".git" / "objects")
    (clone / ".git" / "objects").mkdir()


def _corrupt_git_file(clone: Path) -> None:
    shutil.rmtree(clone / ".git")
    (clone / ".git").write_text("gitdir: /nonexistent/elsewhere\n")


def _corrupt_config(clone: Path) -> None:
    (clone / ".git" / "config").write_text("[core\n\x00\x01 not a config")


def _truncated_index_and_refs(clone: Path) -> None:
    for ref in (clone / ".git" / "refs").rglob("*"):
        if ref.is_file():
            ref.write_text("")
    packed = clone / ".git" / "packed-refs"
    if packed.exists():
        packed.write_text("0000 broken\n")


@pytest.mark.parametrize("corrupt", [_corrupt_head, _corrupt_objects, _corrupt_git_file,
                                     _corrupt_config, _truncated_index_and_refs])
def test_corrupt_clone_in_the_data_dir_is_recloned(env, corrupt):
    repo, store, source, engine, good = env
    corrupt(source.checkout)
    newer = commit(repo, "after the corruption", **{"app.yaml": CM.format(name="app", v="2")})
    res = engine.sync_once()
    assert res.result == "synced" and res.revision == newer, res.message
    assert value(store) == "2"


def test_corrupt_clone_and_unreachable_remote_keeps_the_clone_and_the_revision(env, tmp_path):
    repo, store, source, engine, good = env
    _corrupt_config(source.checkout)
    moved = tmp_path / "gone"
    repo.rename(moved)
    try:
        res = engine.sync_once()
        assert res.result == "failed" and res.message.startswith("git: ")
        assert source.checkout.exists()              # nothing thrown away while offline
        assert value(store) == "1" and store.get_state("applied_revision") == good
    finally:
        moved.rename(repo)
    assert engine.sync_once().result == "unchanged"  # healed once the remote answers


def test_enormous_manifest_is_refused_naming_the_file(env):
    repo, store, source, engine, good = env
    before = snapshot(store)
    big = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: big}\ndata:\n" + "".join(
        f"  k{i}: \"{'x' * 100}\"\n" for i in range(60_000))          # about 6.5 MB
    commit(repo, "enormous", **{"big.yaml": big, "app.yaml": CM.format(name="app", v="2")})
    res = engine.sync_once()
    assert res.result == "failed"
    assert [e.file for e in res.errors] == ["big.yaml"], [str(e) for e in res.errors]
    assert "big.yaml" in str(res.errors[0]) and snapshot(store) == before


def test_binary_files_named_like_manifests_are_refused_others_ignored(env):
    repo, store, source, engine, good = env
    png = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 64
    # A binary asset that is not a manifest (docs/logo.png, a tarball) is not read at all.
    ok = commit(repo, "assets", **{"docs__logo.png": png, "dist.tar.gz": bytes(range(256)) * 512,
                                   "app.yaml": CM.format(name="app", v="2")})
    res = engine.sync_once()
    assert res.result == "synced" and res.revision == ok and value(store) == "2"
    before = snapshot(store)
    commit(repo, "binary yaml", **{"logo.yaml": png, "app.yaml": CM.format(name="app", v="3")})
    res = engine.sync_once()
    assert res.result == "failed"
    assert [e.file for e in res.errors] == ["logo.yaml"], [str(e) for e in res.errors]
    assert snapshot(store) == before and value(store) == "2"
