"""Git's revisions meet the API server's admission (no Docker): a revision that breaks a
rule (an object in a namespace nothing makes, an immutable field changed) is refused
whole with file:line, and what it stores is what a cluster would store."""

from __future__ import annotations

import base64

import pytest
from structlog.testing import capture_logs

from gitops.model import ObjectKey
from gitops.store import Registry, SqliteStore
from gitops.sync.engine import SyncEngine, SyncPolicy
from gitops.sync.options import SyncOptions
from tests.integration.test_sync_engine import Repo

JOB = """\
apiVersion: batch/v1
kind: Job
metadata: {name: migrate}
spec:
  template:
    spec:
      restartPolicy: Never
      containers:
      - name: migrate
        image: gitops/busybox:1
"""
APP = """\
apiVersion: v1
kind: ConfigMap
metadata: {name: settings, namespace: shop}
data: {mode: prod}
"""
NAMESPACE = "apiVersion: v1\nkind: Namespace\nmetadata: {name: shop}\n"
SERVICE = """\
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  clusterIP: 10.96.7.7
  ports: [{port: 80}]
"""
SECRET = """\
apiVersion: v1
kind: Secret
metadata: {name: creds}
stringData: {password: hunter2}
"""


@pytest.fixture
def env(tmp_path):
    from gitops.source.git import GitSource
    repo = Repo(tmp_path / "repo")
    store = Registry(SqliteStore(tmp_path / "state.db"))
    yield repo, store, GitSource(url=f"file://{repo.path}", workdir=tmp_path / "clones")
    store.close()


def test_an_object_in_a_namespace_nothing_makes_refuses_the_revision(env):
    repo, store, source = env
    repo.write("app.yaml", APP)
    repo.write("job.yaml", JOB)
    repo.commit()
    engine = SyncEngine(store, source)
    with capture_logs() as logs:
        result = engine.sync_once()
    assert result.result == "failed" and "revision refused" in result.message
    [err] = result.errors
    assert (err.file, err.line, err.path, err.kind) == ("app.yaml", 3, "metadata.namespace",
                                                        "ConfigMap")
    assert 'namespaces "shop" not found' in err.message and "--create-namespace" in err.message
    assert any(e["event"] == "manifest_refused" and e["file"] == "app.yaml" for e in logs)
    assert store.list("Job") == [] and store.inventory() == {}      # nothing of it applied
    repo.write("namespace.yaml", NAMESPACE)                          # declared: applied first
    repo.commit("declare it")
    assert engine.sync_once().result == "synced"
    assert store.get(ObjectKey("ConfigMap", "shop", "settings"))["data"] == {"mode": "prod"}
    assert store.get(ObjectKey("Namespace", "", "shop"))["status"] == {"phase": "Active"}


def test_create_namespace_makes_the_namespace_and_never_prunes_it(env):
    repo, store, source = env
    repo.write("app.yaml", APP)
    repo.commit()
    engine = SyncEngine(store, source, SyncPolicy(options=SyncOptions(create_namespace=True)))
    with capture_logs() as logs:
        assert engine.sync_once().result == "synced"
    assert [e["namespace"] for e in logs if e["event"] == "namespace_created"] == ["shop"]
    assert store.get(ObjectKey("ConfigMap", "shop", "settings")) is not None
    assert ObjectKey("Namespace", "", "shop") not in store.inventory()
    (repo.path / "app.yaml").unlink()
    repo.write("other.yaml", APP.replace("settings", "other").replace(", namespace: shop", ""))
    repo.commit("move")
    assert engine.sync_once().result == "synced"
    assert store.get(ObjectKey("Namespace", "", "shop")) is not None


def test_a_namespace_declared_in_a_later_wave_refuses_the_revision(env):
    repo, store, source = env
    repo.write("app.yaml", APP)
    repo.write("namespace.yaml", NAMESPACE.replace(
        "metadata: {name: shop}", "metadata:\n  name: shop\n  annotations:\n"
        "    argocd.argoproj.io/sync-wave: \"1\""))
    repo.commit()
    result = SyncEngine(store, source).sync_once()
    [err] = result.errors
    assert (err.file, err.path) == ("app.yaml", "metadata.namespace")
    assert "sync wave 1" in err.message


def test_an_immutable_field_changed_in_git_refuses_the_revision_with_its_line(env):
    repo, store, source = env
    repo.write("job.yaml", JOB)
    repo.write("svc.yaml", SERVICE)
    repo.write("settings.yaml", APP.replace(", namespace: shop", ""))
    good = repo.commit()
    engine = SyncEngine(store, source)
    assert engine.sync_once().result == "synced"
    job = store.get(ObjectKey("Job", "default", "migrate"))
    assert job["spec"]["selector"]["matchLabels"]          # generated, and kept by re-syncs
    repo.write("job.yaml", JOB.replace("gitops/busybox:1", "gitops/busybox:2"))
    repo.write("svc.yaml", SERVICE.replace("10.96.7.7", "10.96.7.8"))
    repo.write("settings.yaml", APP.replace(", namespace: shop", "").replace("prod", "dev"))
    repo.commit("immutable changes")
    result = engine.sync_once()
    assert result.result == "failed"
    found = sorted((e.file, e.line, e.path, e.message.split(":")[-1].strip())
                   for e in result.errors)
    assert found == [("job.yaml", 5, "spec.template", "field is immutable"),
                     ("svc.yaml", 5, "spec.clusterIP", "field is immutable")]
    assert store.get(ObjectKey("ConfigMap", "default", "settings"))["data"] == {"mode": "prod"}
    assert store.get_state("applied_revision") == good


def test_an_objects_own_create_namespace_option_lets_it_through(env):
    """Argo CD's per-object CreateNamespace=true: admission counts the namespace as made."""
    repo, store, source = env
    repo.write("app.yaml", APP.replace("metadata: {name: settings, namespace: shop}",
                                       "metadata:\n  name: settings\n  namespace: shop\n"
                                       "  annotations:\n    argocd.argoproj.io/sync-options:"
                                       " CreateNamespace=true"))
    repo.commit()
    result = SyncEngine(store, source).sync_once()
    assert result.result == "synced", (result.message, result.errors)
    assert store.get(ObjectKey("Namespace", "", "shop")) is not None


def test_replace_and_force_recreate_past_an_immutable_field(env):
    """Force=true,Replace=true (a Job run again on every change, as in Argo CD) is judged as
    the new object it writes, not as an update of the old one's immutable template."""
    repo, store, source = env
    forced = JOB.replace("metadata: {name: migrate}", "metadata:\n  name: migrate\n"
                         "  annotations:\n    argocd.argoproj.io/sync-options: "
                         "Force=true,Replace=true")
    repo.write("job.yaml", forced)
    repo.commit()
    engine = SyncEngine(store, source)
    assert engine.sync_once().result == "synced"
    uid = store.get(ObjectKey("Job", "default", "migrate"))["metadata"]["uid"]
    repo.write("job.yaml", forced.replace("gitops/busybox:1", "gitops/busybox:2"))
    repo.commit("new image")
    result = engine.sync_once()
    assert result.result == "synced", (result.message, result.errors)
    job = store.get(ObjectKey("Job", "default", "migrate"))
    assert job["metadata"]["uid"] != uid
    assert job["spec"]["template"]["spec"]["containers"][0]["image"] == "gitops/busybox:2"


def test_a_secret_from_string_data_is_stored_as_data_and_never_drifts(env):
    repo, store, source = env
    repo.write("secret.yaml", SECRET)
    repo.commit()
    engine = SyncEngine(store, source)
    assert engine.sync_once().result == "synced"
    stored = store.get(ObjectKey("Secret", "default", "creds"))
    assert stored["data"] == {"password": base64.b64encode(b"hunter2").decode()}
    assert "stringData" not in stored
    with capture_logs() as logs:
        again = engine.sync_once("interval")
    assert again.result == "unchanged" and not again.plan.drifted
    assert not [e for e in logs if e["event"] == "drift.detected"]
    repo.write("secret.yaml", SECRET.replace("hunter2", "hunter3"))
    repo.commit("rotate")
    assert engine.sync_once().result == "synced"
    assert store.get(ObjectKey("Secret", "default", "creds"))["data"] == {
        "password": base64.b64encode(b"hunter3").decode()}


def test_gitops_diff_says_what_the_agent_would_refuse(tmp_path):
    """The CI preview of a merge (`gitops diff` against the data dir) refuses what the
    agent's sync would: exit 2 with file:line."""
    from click.testing import CliRunner

    from gitops import cli
    from gitops.paths import DataDir
    from gitops.source import make_source
    src = tmp_path / "src"
    src.mkdir()
    (src / "job.yaml").write_text(JOB)
    data = tmp_path / "data"
    data.mkdir()
    store = Registry(SqliteStore(DataDir.at(data).store))
    assert SyncEngine(store, make_source(str(src), tmp_path / "work")).sync_once().result \
        == "synced"
    store.close()
    (src / "job.yaml").write_text(JOB.replace("busybox:1", "busybox:2"))
    (src / "app.yaml").write_text(APP)
    try:
        res = CliRunner().invoke(cli.main, ["diff", str(src), "--data-dir", str(data)])
        assert res.exit_code == 2, res.output
        assert "app.yaml:3: ConfigMap/settings: metadata.namespace: namespaces \"shop\" not " \
               "found" in res.output
        assert "job.yaml:5: Job/migrate: spec.template: Invalid value:" in res.output
        (src / "job.yaml").write_text(JOB)
        res = CliRunner().invoke(cli.main, ["diff", str(src), "--create-namespace",
                                            "--data-dir", str(data)])
        assert res.exit_code == 1 and "ConfigMap/shop/settings" in res.output, res.output
    finally:
        import structlog
        structlog.reset_defaults()
