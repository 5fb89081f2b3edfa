"""CustomResourceDefinitions and custom resources, from git and from the real kubectl:
validated against the CRD's openAPIV3Schema (defaults, pruning, file:line), served with
discovery, OpenAPI, additionalPrinterColumns, watch, status and scale; health "no
controller"."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from gitops.health import UNKNOWN, assess
from gitops.model import ObjectKey, custom
from gitops.store import Registry, SqliteStore
from gitops.sync.engine import SyncEngine
from tests.integration.test_sync_engine import Repo
from tests.kube_support import KubeServer, kubectl_path

CRD = (Path(__file__).parent / "cases" / "widget_crd.yaml").read_text()
CLUSTER_CRD = """\
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: gadgets.example.com}
spec:
  group: example.com
  scope: Cluster
  names: {plural: gadgets, kind: Gadget}
  versions:
  - name: v1alpha1
    served: true
    storage: true
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec: {type: object, properties: {level: {type: integer, default: 3}}}
"""
WIDGET = """\
apiVersion: example.com/v1
kind: Widget
metadata: {name: w1}
spec:
  size: small
"""
GADGET = """\
apiVersion: example.com/v1alpha1
kind: Gadget
metadata: {name: g1}
spec: {}
"""


@pytest.fixture
def env(tmp_path):
    from gitops.source.git import GitSource
    repo = Repo(tmp_path / "repo")
    store = Registry(SqliteStore(tmp_path / "state.db"))
    yield repo, store, GitSource(url=f"file://{repo.path}", workdir=tmp_path / "clones")
    store.close()
    custom.register([])


def test_a_repo_with_crds_and_custom_resources_syncs_defaults_and_refuses_bad_ones(env):
    repo, store, source = env
    repo.write("crds.yaml", CRD + "---\n" + CLUSTER_CRD)
    repo.write("widget.yaml", WIDGET)
    repo.write("gadget.yaml", GADGET)
    repo.commit()
    engine = SyncEngine(store, source)
    result = engine.sync_once()
    assert result.result == "synced", (result.message, result.errors)
    widget = store.get(ObjectKey("Widget", "default", "w1"))
    assert widget["spec"] == {"size": "small", "replicas": 1, "color": "blue"}   # defaults
    gadget = store.get(ObjectKey("Gadget", "", "g1"))                            # cluster
    assert gadget["spec"] == {"level": 3}
    health = assess(widget)
    assert health.status == UNKNOWN and "no controller" in health.message
    assert engine.sync_once().result == "unchanged"          # defaults are not drift

    repo.write("widget.yaml", WIDGET.replace("small", "huge") + "  extra: 1\n")
    repo.commit("bad widget")
    result = engine.sync_once()
    assert result.result == "failed"
    found = sorted((e.file, e.line, e.path, e.message) for e in result.errors)
    assert found == [
        ("widget.yaml", 5, "spec.size",
         "Unsupported value: 'huge': supported values: \"small\", \"large\""),
        ("widget.yaml", 6, "spec.extra", 'unknown field "spec.extra"')]
    assert store.get(ObjectKey("Widget", "default", "w1"))["spec"]["size"] == "small"


def test_gitops_validate_checks_custom_resources_against_the_repos_crds(tmp_path):
    (tmp_path / "crd.yaml").write_text(CRD)
    (tmp_path / "w.yaml").write_text(WIDGET.replace("size: small", "replicas: two"))
    (tmp_path / "orphan.yaml").write_text(GADGET)
    res = subprocess.run([sys.executable, "-m", "gitops", "validate", str(tmp_path)],
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 1, res.stdout + res.stderr
    assert "w.yaml:4: Widget/w1: spec: Required value: size" in res.stdout
    assert "w.yaml:5: Widget/w1: spec.replicas: Invalid value: \"string\": must be of " \
           "type integer" in res.stdout
    assert "orphan.yaml:2: Gadget/g1: kind: unknown kind Gadget in apiVersion " \
           "example.com/v1alpha1 (no CustomResourceDefinition" in res.stdout


def test_custom_resources_through_kubectl(tmp_path):
    kubectl_path()
    store = Registry(SqliteStore(tmp_path / "state.db"))
    (tmp_path / "crd.yaml").write_text(CRD)
    (tmp_path / "w.yaml").write_text(WIDGET)
    try:
        with KubeServer(store, tmp_path) as kube:
            def ok(*args: str) -> str:
                res = kube.kubectl(*args)
                assert res.returncode == 0, res.stderr
                return res.stdout
            ok("apply", "-f", str(tmp_path / "crd.yaml"))
            assert "Established" in ok("get", "crd", "widgets.example.com", "-o",
                                       "jsonpath={.status.conditions[*].type}")
            ok("apply", "-f", str(tmp_path / "w.yaml"))
            rows = ok("get", "wd").splitlines()
            assert rows[0].split() == ["NAME", "SIZE", "REPLICAS", "READY", "AGE"]
            assert rows[1].split()[:3] == ["w1", "small", "1"]
            assert "widget.example.com/w1" in ok("get", "all")
            assert "ENUM:" in ok("explain", "widget.spec.size")
            assert kube.kubectl("diff", "-f", str(tmp_path / "w.yaml")).returncode == 0
            ok("scale", "widget", "w1", "--replicas=4")
            assert ok("get", "widget", "w1", "-o", "jsonpath={.spec.replicas}") == "4"
            status, _, body = kube.request(
                "PATCH", "/apis/example.com/v1/namespaces/default/widgets/w1/status",
                {"status": {"conditions": [{"type": "Ready", "status": "True"}]}},
                headers={"Content-Type": "application/merge-patch+json"})
            assert status == 200, body
            assert ok("get", "wd", "w1", "--no-headers").split()[3] == "True"
            bad = kube.kubectl("apply", "-f", "-", input=WIDGET.replace("small", "huge"))
            assert bad.returncode != 0 and 'spec.size: Unsupported value: \'huge\'' in bad.stderr
            unknown = kube.kubectl("apply", "-f", "-", input=WIDGET + "  extra: 1\n")
            assert 'unknown field "spec.extra"' in unknown.stderr
            twin = CRD.replace("widgets.example.com", "widgets.other.io").replace(
                "group: example.com", "group: other.io")
            clash = kube.kubectl("apply", "-f", "-", input=twin)
            assert clash.returncode != 0 and "already served by widgets.example.com" in \
                clash.stderr
            ok("delete", "crd", "widgets.example.com")
            assert store.list("Widget") == []
            gone = kube.kubectl("get", "widgets")
            assert gone.returncode != 0
    finally:
        store.close()
        custom.register([])


POOL_CRD = """\
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: pools.example.com}
spec:
  group: example.com
  names: {plural: pools, kind: Pool}
  scope: Namespaced
  versions:
  - name: v1
    served: true
    storage: true
    subresources:
      status: {}
      scale: {specReplicasPath: .spec.workers, statusReplicasPath: .status.ready,
              labelSelectorPath: .status.selector}
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec: {type: object, properties: {workers: {type: integer}}}
          status: {type: object, properties: {ready: {type: integer},
                                              selector: {type: string}}}
"""


def test_the_scale_subresource_follows_the_crds_paths(tmp_path):
    import yaml
    kubectl_path()
    store = Registry(SqliteStore(tmp_path / "state.db"))
    try:
        with KubeServer(store, tmp_path) as kube:
            store.create(yaml.safe_load(POOL_CRD))
            store.create({"apiVersion": "example.com/v1", "kind": "Pool",
                          "metadata": {"name": "p"}, "spec": {"workers": 2}})
            store.update_status(ObjectKey("Pool", "default", "p"),
                                {"ready": 2, "selector": "app=p"})
            res = kube.kubectl("scale", "pool", "p", "--replicas=5")
            assert res.returncode == 0, res.stderr
            assert store.get(ObjectKey("Pool", "default", "p"))["spec"] == {"workers": 5}
            status, _, scale = kube.request(
                "GET", "/apis/example.com/v1/namespaces/default/pools/p/scale")
            assert status == 200
            assert (scale["spec"], scale["status"]) == ({"replicas": 5},
                                                        {"replicas": 2, "selector": "app=p"})
    finally:
        store.close()
        custom.register([])
