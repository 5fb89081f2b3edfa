"""Every built-in kind through the real kubectl: discovery (`get` by short name, `api-resources`,
`get all`), the printer columns a cluster shows, OpenAPI v3 (`explain`), client-side and
server-side apply, and a clean `kubectl diff` right after."""

from __future__ import annotations

from pathlib import Path

import pytest

from gitops.model import KINDS
from gitops.store import Registry, SqliteStore
from tests.kube_support import KubeServer, kubectl_path

MANIFESTS = Path(__file__).parent / "cases" / "builtin_kinds.yaml"


@pytest.fixture
def kube(tmp_path):
    kubectl_path()
    store = Registry(SqliteStore(tmp_path / "state.db"))
    with KubeServer(store, tmp_path) as server:
        yield server
    store.close()


def ok(result) -> str:
    assert result.returncode == 0, f"kubectl failed ({result.returncode}): {result.stderr}"
    return result.stdout


def headers(text: str) -> list[list[str]]:
    """The header line of each table kubectl printed (split on 2+ spaces)."""
    import re
    blocks = [b for b in text.strip().split("\n\n") if b.strip()]
    return [re.split(r"\s{2,}", b.splitlines()[0].strip()) for b in blocks]


def test_api_resources_lists_every_built_in_kind(kube):
    out = ok(kube.kubectl("api-resources", "--no-headers"))
    served = {line.split()[-1] for line in out.splitlines() if line.strip()}
    assert set(KINDS) <= served, set(KINDS) - served
    assert {"SelfSubjectAccessReview", "SelfSubjectReview"} <= served


def test_kinds_apply_get_explain_and_diff_as_on_a_cluster(kube):
    created = ok(kube.kubectl("apply", "-f", str(MANIFESTS)))
    assert "horizontalpodautoscaler.autoscaling/web created" in created
    assert "replicationcontroller/old created" in created
    out = ok(kube.kubectl("get", "hpa,ing,netpol,clusterrole,rolebinding,pc,rc,pv,limits,"
                          "quota,lease"))
    assert headers(out) == [
        ["NAME", "REFERENCE", "TARGETS", "MINPODS", "MAXPODS", "REPLICAS", "AGE"],
        ["NAME", "CLASS", "HOSTS", "ADDRESS", "PORTS", "AGE"],
        ["NAME", "POD-SELECTOR", "AGE"],
        ["NAME", "CREATED AT"],
        ["NAME", "ROLE", "AGE"],
        ["NAME", "VALUE", "GLOBAL-DEFAULT", "AGE", "PREEMPTIONPOLICY"],
        ["NAME", "DESIRED", "CURRENT", "READY", "AGE"],
        ["NAME", "CAPACITY", "ACCESS MODES", "RECLAIM POLICY", "STATUS", "CLAIM",
         "STORAGECLASS", "VOLUMEATTRIBUTESCLASS", "REASON", "AGE"],
        ["NAME", "CREATED AT"],
        ["NAME", "AGE", "REQUEST", "LIMIT"],
        ["NAME", "HOLDER", "AGE"]]
    assert "Deployment/web   cpu: <unknown>/80%" in out
    assert "ClusterRole/reader" in out and "pods: 0/10" in out
    everything = ok(kube.kubectl("get", "all"))
    assert "replicationcontroller/old" in everything
    assert "horizontalpodautoscaler.autoscaling/web" in everything
    assert "ingress" not in everything            # not in the "all" category
    explained = ok(kube.kubectl("explain", "hpa.spec.maxReplicas"))
    assert "VERSION:    v2" in explained and "maxReplicas <integer>" in explained
    assert ok(kube.kubectl("explain", "ingress.spec.rules.host")).count("host <string>")
    assert kube.kubectl("diff", "-f", str(MANIFESTS)).returncode == 0
    applied = ok(kube.kubectl("apply", "--server-side", "-f", str(MANIFESTS)))
    assert applied.count("serverside-applied") == 12
    assert kube.kubectl("diff", "--server-side", "-f", str(MANIFESTS)).returncode == 0
    scaled = ok(kube.kubectl("scale", "rc/old", "--replicas=3"))
    assert "scaled" in scaled
    assert ok(kube.kubectl("get", "rc", "old", "-o", "jsonpath={.spec.replicas}")) == "3"
    ok(kube.kubectl("delete", "-f", str(MANIFESTS)))
    assert "No resources found" in kube.kubectl("get", "hpa").stderr
