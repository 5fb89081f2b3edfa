"""Git stays the source of truth for changes made through the Kubernetes API: the sync
engine and the API on one real store (no Docker)."""

from __future__ import annotations


import pytest
from structlog.testing import capture_logs

from gitops.api.server import unmanaged_objects
from gitops.model import ObjectKey
from gitops.source import make_source
from gitops.store import Registry, SqliteStore
from gitops.sync.engine import SyncEngine, SyncPolicy
from tests.kube_support import KubeServer

MANIFESTS = """\
apiVersion: v1
kind: ConfigMap
metadata: {name: settings, labels: {app: web}}
data: {mode: prod}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers: [{name: app, image: "gitops/busybox:1"}]
"""
SETTINGS = "/api/v1/namespaces/default/configmaps/settings"
WEB = "/apis/apps/v1/namespaces/default/deployments/web"
MERGE = {"Content-Type": "application/merge-patch+json"}


@pytest.fixture
def world(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    (src / "app.yaml").write_text(MANIFESTS)
    store = Registry(SqliteStore(tmp_path / "state.db"))
    with KubeServer(store, tmp_path) as server:
        yield server, make_source(str(src), tmp_path / "work")
    store.close()


def drift_records(logs: list[dict]) -> list[dict]:
    return [e for e in logs if e["event"] == "drift.detected"]


@pytest.mark.parametrize("self_heal", [True, False])
def test_api_changes_to_git_objects_are_drift(world, self_heal):
    api, source = world
    engine = SyncEngine(api.store, source, SyncPolicy(self_heal=self_heal))
    assert engine.sync_once().result == "synced"
    # declared fields changed through the API, plus fields git does not declare
    assert api.request("PATCH", SETTINGS, {"data": {"mode": "dev", "extra": "1"},
                                           "metadata": {"labels": {"team": "blue"}}},
                       headers={**MERGE, "User-Agent": "kubectl-edit/v1.32"})[0] == 200
    assert api.request("PATCH", WEB + "/scale", {"spec": {"replicas": 3}}, headers=MERGE)[0] \
        == 200
    with capture_logs() as logs:
        engine.sync_once("interval")
    [record] = drift_records(logs)
    assert record["object"]["name"] == "settings" and record["drift"]["actor"] == "kubectl-edit"
    assert record["drift"]["fields"] == [{"path": "data.mode", "desired": "prod",
                                          "live": "dev", "line": 4}]
    settings = api.store.get(ObjectKey("ConfigMap", "default", "settings"))
    web = api.store.get(ObjectKey("Deployment", "default", "web"))
    assert web["spec"]["replicas"] == 3                  # not declared: never drift
    entry = api.store.inventory()[ObjectKey("ConfigMap", "default", "settings")]
    if self_heal:
        assert record["action"] == "corrected" and entry.sync_status == "Synced"
        assert settings["data"] == {"mode": "prod", "extra": "1"}
        assert settings["metadata"]["labels"] == {"app": "web", "team": "blue"}
    else:
        assert record["action"] == "reported" and entry.sync_status == "OutOfSync"
        assert settings["data"] == {"mode": "dev", "extra": "1"}


def test_objects_made_through_the_api_are_unmanaged(world):
    api, source = world
    engine = SyncEngine(api.store, source)
    engine.sync_once()
    made = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "handmade"},
            "data": {"a": "1"}}
    assert api.request("POST", "/api/v1/namespaces/default/configmaps?fieldManager=kubectl-create",
                       made)[0] == 201
    assert engine.sync_once().result in ("synced", "unchanged")
    assert api.store.get(ObjectKey("ConfigMap", "default", "handmade")) is not None
    unmanaged = unmanaged_objects(api.store)
    assert [(o["kind"], o["name"], o["managers"]) for o in unmanaged] == [
        ("ConfigMap", "handmade", ["kubectl-create"])]
    # what controllers make (no field manager) and what git declares are not listed
    api.store.create({"apiVersion": "v1", "kind": "Endpoints", "metadata": {"name": "web"}})
    assert len(unmanaged_objects(api.store)) == 1


def test_a_git_change_keeps_what_git_never_declared(world, tmp_path):
    api, source = world
    engine = SyncEngine(api.store, source)
    engine.sync_once()
    api.request("PATCH", WEB + "/scale", {"spec": {"replicas": 4}}, headers=MERGE)
    api.request("PATCH", WEB, {"metadata": {"labels": {"team": "blue"}}}, headers=MERGE)
    # git changes the image and stops declaring the ConfigMap's label
    manifests = MANIFESTS.replace("gitops/busybox:1", "gitops/busybox:2").replace(
        "metadata: {name: settings, labels: {app: web}}", "metadata: {name: settings}")
    (tmp_path / "src" / "app.yaml").write_text(manifests)
    assert engine.sync_once().result == "synced"
    web = api.store.get(ObjectKey("Deployment", "default", "web"))
    assert web["spec"]["template"]["spec"]["containers"][0]["image"] == "gitops/busybox:2"
    assert web["spec"]["replicas"] == 4 and web["metadata"]["labels"] == {"team": "blue"}
    settings = api.store.get(ObjectKey("ConfigMap", "default", "settings"))
    assert "labels" not in settings["metadata"]          # removed from git: removed live
    # pruned objects forget what was applied
    (tmp_path / "src" / "app.yaml").write_text(manifests.split("---")[1])
    engine.sync_once()
    assert api.store.applied(ObjectKey("ConfigMap", "default", "settings")) is None
    assert api.store.applied(ObjectKey("Deployment", "default", "web"))["spec"]["template"][
        "spec"]["containers"][0]["image"] == "gitops/busybox:2"
