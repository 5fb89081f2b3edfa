"""Several apps per agent, declared in git (issue 16): gitops.io and Argo CD Applications,
app-of-apps, each app with its own source, destination namespace, policy, inventory and
history; on real git repos and a real SQLite store (the sync passes are driven here)."""

from __future__ import annotations

import asyncio
import subprocess
from pathlib import Path

import pytest

from gitops.model import ObjectKey
from gitops.source.git import GitSource
from gitops.store import Registry, SqliteStore
from gitops.store.scoped import app_history
from gitops.sync.apps import Applications
from gitops.sync.drift import DriftRecorder
from gitops.sync.engine import SyncEngine, SyncPolicy

CM = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\ndata:\n  k: \"{value}\"\n"
APP = """\
apiVersion: gitops.io/v1alpha1
kind: Application
metadata:
  name: {name}
{extra_meta}spec:
  source:
    path: {path}
  destination:
    namespace: {namespace}
  syncPolicy:
    syncOptions: [CreateNamespace=true]
"""
ARGO_APP = """\
apiVersion: argoproj.io/v1alpha1
kind: Application
metadata:
  name: {name}
  namespace: argocd
spec:
  project: default
  source:
    repoURL: {repo}
    targetRevision: main
    path: {path}
  destination:
    server: https://kubernetes.default.svc
    namespace: {namespace}
  syncPolicy:
    automated:
      prune: true
      selfHeal: true
    syncOptions: [CreateNamespace=true]
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

    def remove(self, rel: str) -> None:
        (self.path / rel).unlink()

    def commit(self) -> str:
        git(self.path, "add", "-A")
        git(self.path, "commit", "-q", "--allow-empty", "-m", "change")
        return git(self.path, "rev-parse", "HEAD")

    @property
    def url(self) -> str:
        return f"file://{self.path}"


@pytest.fixture
def env(tmp_path):
    repo = Repo(tmp_path / "repo")
    store = Registry(SqliteStore(tmp_path / "state.db"))
    apps = Applications(store, tmp_path / "data", SyncPolicy(), DriftRecorder())
    source = GitSource(url=repo.url, ref="main", path="root", workdir=tmp_path / "clones")
    root = SyncEngine(store, source, SyncPolicy(), on_apps=apps.declared_by("", source))
    yield repo, store, apps, root
    asyncio.run(apps.stop())
    store.close()


def sync_all(root: SyncEngine, apps: Applications, rounds: int = 3) -> dict[str, str]:
    """The root, then every app (apps of apps appear in later rounds); each one's first
    result."""
    results = {"": root.sync_once().result}
    for _ in range(rounds):
        for app in apps.all():
            results.setdefault(app.spec.name, app.engine.sync_once().result)
    return results


def cm(store, namespace: str, name: str) -> dict | None:
    return store.get(ObjectKey("ConfigMap", namespace, name))


def test_several_apps_each_in_its_destination_namespace_with_its_own_inventory(env):
    repo, store, apps, root = env
    repo.write("root/web.yaml", APP.format(name="web", path="apps/web", namespace="web",
                                           extra_meta=""))
    repo.write("root/api.yaml", ARGO_APP.format(name="api", repo=repo.url, path="apps/api",
                                                namespace="api"))
    repo.write("root/own.yaml", CM.format(name="root-cm", value="1"))
    repo.write("apps/web/cm.yaml", CM.format(name="config", value="web"))
    repo.write("apps/api/cm.yaml", CM.format(name="config", value="api"))
    repo.commit()
    assert sync_all(root, apps) == {"": "synced", "web": "synced", "api": "synced"}
    assert cm(store, "web", "config")["data"] == {"k": "web"}
    assert cm(store, "api", "config")["data"] == {"k": "api"}
    assert store.get(ObjectKey("Namespace", "", "api")) is not None   # CreateNamespace
    assert set(store.inventory()) == {ObjectKey("ConfigMap", "default", "root-cm")}
    web = apps.get("web").engine
    assert set(web.inventory.read()) == {ObjectKey("ConfigMap", "web", "config")}
    assert [e["result"] for e in app_history(store, "web")] == ["synced"]
    assert [e["result"] for e in app_history(store, "")] == ["synced"]
    # an app's change prunes only its own objects
    repo.remove("apps/web/cm.yaml")
    repo.write("apps/web/other.yaml", CM.format(name="other", value="w"))
    repo.commit()
    sync_all(root, apps)
    assert cm(store, "web", "config") is None and cm(store, "web", "other") is not None
    assert cm(store, "api", "config") is not None and cm(store, "default", "root-cm")


def test_app_of_apps_and_removal_orphans_or_cascades(env):
    repo, store, apps, root = env
    repo.write("root/parent.yaml", APP.format(name="parent", path="apps/parent",
                                              namespace="p", extra_meta=""))
    repo.write("apps/parent/child.yaml", APP.format(
        name="child", path="apps/child", namespace="c",
        extra_meta="  finalizers: [resources-finalizer.argocd.argoproj.io]\n"))
    repo.write("apps/parent/kept.yaml", APP.format(name="kept", path="apps/kept",
                                                   namespace="k", extra_meta=""))
    repo.write("apps/parent/cm.yaml", CM.format(name="p1", value="p"))
    repo.write("apps/child/cm.yaml", CM.format(name="c1", value="c"))
    repo.write("apps/child/keep.yaml", CM.format(name="c2", value="c").replace(
        "  name: c2\n", "  name: c2\n  annotations:\n"
        "    argocd.argoproj.io/sync-options: Delete=false\n"))
    repo.write("apps/kept/cm.yaml", CM.format(name="k1", value="k"))
    repo.commit()
    sync_all(root, apps)
    assert cm(store, "c", "c2") is not None
    assert [a.spec.name for a in apps.all()] == ["child", "kept", "parent"]
    assert apps.get("child").parent == "parent"
    assert cm(store, "c", "c1") is not None and cm(store, "k", "k1") is not None
    repo.remove("apps/parent/child.yaml")
    repo.remove("apps/parent/kept.yaml")
    repo.commit()
    sync_all(root, apps)
    assert [a.spec.name for a in apps.all()] == ["parent"]
    assert cm(store, "c", "c1") is None            # its finalizer: deleted with it
    assert cm(store, "c", "c2") is not None        # but Delete=false keeps this one
    assert cm(store, "k", "k1") is not None        # no finalizer: left running (orphaned)
    assert store.get_state("app/kept/inventory") is None


def test_an_app_name_is_one_app_and_a_cycle_ends(env):
    repo, store, apps, root = env
    repo.write("root/a.yaml", APP.format(name="a", path="apps/a", namespace="a",
                                         extra_meta=""))
    repo.write("apps/a/b.yaml", APP.format(name="b", path="apps/b", namespace="b",
                                           extra_meta=""))
    repo.write("apps/b/a.yaml", APP.format(name="a", path="apps/a", namespace="x",
                                           extra_meta=""))     # b declares a again
    repo.commit()
    sync_all(root, apps)
    assert {a.spec.name: a.parent for a in apps.all()} == {"a": "", "b": "a"}
    assert apps.get("a").spec.render.namespace == "a"


def test_an_argo_application_field_that_means_nothing_here_refuses_the_revision(env):
    repo, store, apps, root = env
    repo.write("root/api.yaml", ARGO_APP.format(name="api", repo=repo.url, path="apps/api",
                                                namespace="api").replace(
        "    path: apps/api\n", "    path: apps/api\n    chart: redis\n").replace(
        "server: https://kubernetes.default.svc", "server: https://prod.example.invalid"))
    repo.commit()
    res = root.sync_once()
    assert res.result == "failed"
    messages = {(e.file, e.path): e.message for e in res.errors}
    assert ("api.yaml", "spec.source.chart") in messages
    assert "not fetched" in messages[("api.yaml", "spec.source.chart")]
    assert "own host only" in messages[("api.yaml", "spec.destination.server")]
    assert apps.all() == []


def test_an_app_without_automated_sync_waits_for_a_manual_one(env):
    repo, store, apps, root = env
    repo.write("root/api.yaml", ARGO_APP.format(name="api", repo=repo.url, path="apps/api",
                                                namespace="default").replace(
        "    automated:\n      prune: true\n      selfHeal: true\n", ""))
    repo.write("apps/api/cm.yaml", CM.format(name="manual", value="1"))
    repo.commit()
    root.sync_once()
    engine = apps.get("api").engine
    res = engine.sync_once("interval")
    assert res.result == "outofsync" and "gitops sync --app api" in res.message
    assert cm(store, "default", "manual") is None
    assert engine.sync_once("manual").result == "synced"
    assert cm(store, "default", "manual") is not None


def test_history_lists_a_refused_revision_once(env, monkeypatch):
    """Whatever each attempt says (here: more problems each time), and with the apps'
    lines in between, one refused revision is one line of its app's history."""
    from gitops.errors import ManifestError
    from gitops.sync import engine as engine_module
    repo, store, apps, root = env
    repo.write("root/cm.yaml", CM.format(name="a", value="1"))
    repo.write("root/web.yaml", APP.format(name="web", path="apps/web", namespace="web",
                                           extra_meta=""))
    repo.write("apps/web/cm.yaml", CM.format(name="w", value="1"))
    repo.commit()
    sync_all(root, apps)
    repo.write("root/cm.yaml", CM.format(name="a", value="2"))
    repo.commit()
    attempts = []

    def failing(*_args, **_kw):
        attempts.append(1)
        return [], [], [ManifestError(f"problem {i}", "cm.yaml", 1)
                        for i in range(len(attempts))]
    monkeypatch.setattr(engine_module, "render_apps", failing)
    web = apps.get("web").engine
    for trigger in ("interval", "webhook", "manual", "interval"):
        assert root.sync_once(trigger).result == "failed"
        web.sync_once("manual")         # the app's own lines come in between
    root_lines = [e["result"] for e in store.history(50) if not e.get("app")]
    assert root_lines == ["failed", "synced"]


def test_the_apps_run_their_own_sync_loops_once_started(env):
    """Started, the manager runs each app's sync loop: an app appears synced without a
    pass driven by hand."""
    repo, store, apps, root = env
    repo.write("root/web.yaml", APP.format(name="web", path="apps/web", namespace="web",
                                           extra_meta=""))
    repo.write("apps/web/cm.yaml", CM.format(name="looped", value="1"))
    repo.commit()

    async def scenario() -> dict | None:
        await apps.start()
        await asyncio.to_thread(root.sync_once)
        for _ in range(200):                     # bounded: 20 s at most
            if cm(store, "web", "looped") is not None:
                break
            await asyncio.sleep(0.1)
        found = cm(store, "web", "looped")
        await apps.stop()
        return found

    assert asyncio.run(scenario()) is not None


def test_one_object_belongs_to_one_app(env):
    repo, store, apps, root = env
    repo.write("root/own.yaml", CM.format(name="shared", value="root"))
    repo.write("root/web.yaml", APP.format(name="web", path="apps/web", namespace="default",
                                           extra_meta=""))
    repo.write("apps/web/cm.yaml", CM.format(name="shared", value="web"))
    repo.commit()
    root.sync_once()
    res = apps.get("web").engine.sync_once()
    assert res.result == "failed"
    assert [(e.file, e.line) for e in res.errors] == [("cm.yaml", 1)]
    assert "already managed by the agent's source" in res.errors[0].message
    assert cm(store, "default", "shared")["data"] == {"k": "root"}


def test_a_live_change_to_an_apps_object_is_healed_by_that_app(tmp_path):
    """With the loops running: `kubectl edit` of an object an app manages is corrected by
    the app's own live-drift watch and sync loop, with the poll far away."""
    repo = Repo(tmp_path / "repo")
    store = Registry(SqliteStore(tmp_path / "state.db"))
    apps = Applications(store, tmp_path / "data", SyncPolicy(self_heal_delay=0.1),
                        DriftRecorder())
    source = GitSource(url=repo.url, ref="main", path="root", workdir=tmp_path / "clones")
    root = SyncEngine(store, source, SyncPolicy(), on_apps=apps.declared_by("", source))
    repo.write("root/web.yaml", APP.format(name="web", path="apps/web", namespace="web",
                                           extra_meta=""))
    repo.write("apps/web/cm.yaml", CM.format(name="healed", value="git"))
    repo.commit()

    async def scenario() -> str:
        await apps.start()
        try:
            await asyncio.to_thread(root.sync_once)
            for _ in range(200):                    # bounded: 20 s at most
                if cm(store, "web", "healed") is not None and \
                        apps.get("web").engine.status.applied_revision():
                    break
                await asyncio.sleep(0.1)
            live = cm(store, "web", "healed")
            store.update({**live, "data": {"k": "by-hand"}})
            for _ in range(200):
                if cm(store, "web", "healed")["data"] == {"k": "git"}:
                    break
                await asyncio.sleep(0.1)
            return cm(store, "web", "healed")["data"]["k"]
        finally:
            await apps.stop()

    try:
        assert asyncio.run(scenario()) == "git"
    finally:
        store.close()


@pytest.mark.parametrize("repo_url", ["/etc", "file:///var/lib/other-team/repo.git"])
def test_an_app_may_not_point_the_agent_at_the_hosts_files(env, repo_url):
    repo, store, apps, root = env
    repo.write("root/api.yaml", ARGO_APP.format(name="api", repo=repo_url, path="apps/api",
                                                namespace="api"))
    repo.commit()
    res = root.sync_once()
    assert res.result == "failed" and apps.all() == []
    assert [(e.file, e.line, e.path) for e in res.errors] == [
        ("api.yaml", 9, "spec.source.repoURL")]
    assert "git URL" in res.errors[0].message


def test_apps_on_etcd_never_hold_up_the_stores_watch(tmp_path, monkeypatch):
    """On etcd, store watchers run on the watch thread while a write waits for that thread
    to pass its revision: a watcher waiting for a lock the writer holds stalled both for
    the whole wait (10 s per write: every sync that changed the apps, every cascade
    delete). The app-of-apps flow on a real etcd, with no write left waiting."""
    import structlog

    from gitops.store import etcd as etcd_store
    from tests.etcd_support import start_cluster
    monkeypatch.setattr(etcd_store, "DISPATCH_WAIT", 3.0)
    cluster = start_cluster(tmp_path / "etcd")
    store = Registry(etcd_store.EtcdStore(cluster.url, prefix="/apps-test/"))
    apps = Applications(store, tmp_path / "data", SyncPolicy(), DriftRecorder())
    try:
        repo = Repo(tmp_path / "repo")
        source = GitSource(url=repo.url, ref="main", path="root", workdir=tmp_path / "cl")
        root = SyncEngine(store, source, SyncPolicy(), on_apps=apps.declared_by("", source))
        with structlog.testing.capture_logs() as logs:
            test_app_of_apps_and_removal_orphans_or_cascades((repo, store, apps, root))
        assert [e for e in logs if e["event"] == "etcd_watch_lagging"] == []
    finally:
        asyncio.run(apps.stop())
        store.close()
        cluster.stop()
