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


CLAIM = """\
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: data}
spec:
  accessModes: [ReadWriteOnce]
  resources: {requests: {storage: 1Gi}}
"""
POD = """\
apiVersion: v1
kind: Pod
metadata: {name: web-0, labels: {app: web}}
spec:
  nodeName: node-1
  containers: [{name: app, image: gitops/busybox:1, ports: [{containerPort: 8080}]}]
---
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  selector: {app: web}
  ports: [{port: 80, targetPort: 8080}]
"""


def test_system_namespaces_root_ca_volumes_and_slices_as_kubectl_shows_them(kube, tmp_path):
    import random

    from gitops.model import ObjectKey
    from tests.control_plane import ControlPlane
    pem = (tmp_path / "ca.crt").read_text()
    plane = ControlPlane(kube.store, random.Random(0), root_ca=pem)
    rows = ok(kube.kubectl("get", "ns", "--no-headers")).splitlines()
    assert sorted(r.split()[0] for r in rows) == ["default", "kube-node-lease", "kube-public",
                                                  "kube-system"]
    (tmp_path / "claim.yaml").write_text(CLAIM + "---\napiVersion: v1\nkind: Namespace\n"
                                         "metadata: {name: shop}\n")
    (tmp_path / "web.yaml").write_text(POD)
    ok(kube.kubectl("apply", "-f", str(tmp_path / "claim.yaml"), "-f", str(tmp_path / "web.yaml")))
    kube.store.update_status(ObjectKey("Pod", "default", "web-0"), {
        "phase": "Running", "podIP": "10.213.0.9",
        "conditions": [{"type": "Ready", "status": "True"}]})
    for _ in range(3):
        plane.run_once()
    cms = ok(kube.kubectl("get", "cm", "-A", "--field-selector",
                          "metadata.name=kube-root-ca.crt", "--no-headers")).splitlines()
    assert sorted(r.split()[0] for r in cms) == ["default", "kube-node-lease", "kube-public",
                                                 "kube-system", "shop"]
    got = ok(kube.kubectl("get", "cm", "kube-root-ca.crt", "-n", "shop",
                          "-o", "jsonpath={.data.ca\\.crt}"))
    assert got == pem
    uid = ok(kube.kubectl("get", "pvc", "data", "-o", "jsonpath={.metadata.uid}"))
    pvc = ok(kube.kubectl("get", "pvc", "data")).splitlines()
    assert pvc[0].split()[:4] == ["NAME", "STATUS", "VOLUME", "CAPACITY"]
    assert pvc[1].split()[:4] == ["data", "Bound", f"pvc-{uid}", "1Gi"]
    pv = ok(kube.kubectl("get", "pv", "--no-headers")).split()
    assert pv[:6] == [f"pvc-{uid}", "1Gi", "RWO", "Retain", "Bound", "default/data"]
    slices = ok(kube.kubectl("get", "endpointslices", "-l",
                             "kubernetes.io/service-name=web")).splitlines()
    assert slices[0].split() == ["NAME", "ADDRESSTYPE", "PORTS", "ENDPOINTS", "AGE"]
    assert slices[1].split()[1:4] == ["IPv4", "8080", "10.213.0.9"]
    refused = kube.kubectl("delete", "namespace", "kube-system")
    assert refused.returncode != 0 and "may not be deleted" in refused.stderr


def test_kubectl_create_sends_protobuf_and_it_is_stored_as_json_would_be(kube):
    import base64

    from gitops.model import ObjectKey
    store = kube.store
    ok(kube.kubectl("create", "configmap", "settings", "--from-literal=mode=prod"))
    ok(kube.kubectl("create", "secret", "generic", "creds", "--from-literal=password=hunter2"))
    ok(kube.kubectl("create", "deployment", "web", "--image=gitops/busybox:1",
                    "--replicas=2", "--port=8080"))
    ok(kube.kubectl("create", "job", "once", "--image=gitops/busybox:1", "--", "echo", "hi"))
    ok(kube.kubectl("create", "namespace", "shop"))
    ok(kube.kubectl("create", "service", "clusterip", "web", "--tcp=80:8080"))
    ok(kube.kubectl("create", "ingress", "web", "--rule=web.example.test/=web:80"))
    assert store.get(ObjectKey("ConfigMap", "default", "settings"))["data"] == {"mode": "prod"}
    secret = store.get(ObjectKey("Secret", "default", "creds"))
    assert base64.b64decode(secret["data"]["password"]) == b"hunter2"
    deploy = store.get(ObjectKey("Deployment", "default", "web"))
    assert deploy["spec"]["replicas"] == 2
    [container] = deploy["spec"]["template"]["spec"]["containers"]
    assert container["ports"] == [{"containerPort": 8080, "protocol": "TCP"}]
    assert "stdin" not in container and "hostPort" not in container["ports"][0]
    job = store.get(ObjectKey("Job", "default", "once"))
    assert job["spec"]["template"]["spec"]["containers"][0]["command"] == ["echo", "hi"]
    assert store.get(ObjectKey("Namespace", "", "shop")) is not None
    rule = store.get(ObjectKey("Ingress", "default", "web"))["spec"]["rules"][0]
    assert rule["host"] == "web.example.test" and "http" in rule      # inlined as in JSON
    assert kube.kubectl("diff", "-f", "-", input=ok(kube.kubectl(
        "create", "configmap", "settings", "--from-literal=mode=prod", "--dry-run=client",
        "-o", "yaml"))).returncode == 0
