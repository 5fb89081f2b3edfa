"""What the API stores, defaults and refuses, seen through the unmodified kubectl (no
Docker: the controllers run pass by pass on the same store)."""

from __future__ import annotations

import json
import random
import re
import subprocess

import pytest
import yaml

from gitops.model import ObjectKey
from gitops.source import make_source
from gitops.store import Registry, SqliteStore
from gitops.sync.engine import SyncEngine
from tests.control_plane import ControlPlane
from tests.kube_support import KubeServer, kubectl_path


@pytest.fixture
def kube(tmp_path):
    kubectl_path()
    store = Registry(SqliteStore(tmp_path / "state.db"))
    with KubeServer(store, tmp_path) as server:
        yield server
    store.close()


def ok(result: subprocess.CompletedProcess) -> str:
    assert result.returncode == 0, f"kubectl failed ({result.returncode}): {result.stderr}"
    return result.stdout


def refused(result: subprocess.CompletedProcess) -> str:
    assert result.returncode != 0, result.stdout
    return result.stderr


def apply(kube, tmp_path, docs: list[dict], *flags: str) -> subprocess.CompletedProcess:
    path = tmp_path / "apply.yaml"
    path.write_text(yaml.safe_dump_all(docs))
    return kube.kubectl("apply", *flags, "-f", str(path))


def deployment(selector: str = "web", image: str = "gitops/busybox:1") -> dict:
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
            "spec": {"selector": {"matchLabels": {"app": selector}},
                     "template": {"metadata": {"labels": {"app": selector}},
                                  "spec": {"containers": [{"name": "app", "image": image}]}}}}


def test_a_missing_namespace_is_404_as_on_a_cluster(kube, tmp_path):
    cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "namespace": "x"},
          "data": {"a": "1"}}
    err = refused(apply(kube, tmp_path, [cm]))
    assert 'namespaces "x" not found' in err
    status, _, body = kube.request("POST", "/api/v1/namespaces/x/configmaps", cm)
    assert (status, body["reason"], body["details"]) == (404, "NotFound",
                                                         {"name": "x", "kind": "namespaces"})
    assert 'namespaces "x" not found' in refused(kube.kubectl(
        "run", "p", "-n", "x", "--image", "gitops/busybox:1"))
    ok(apply(kube, tmp_path, [{"apiVersion": "v1", "kind": "Namespace",
                               "metadata": {"name": "x"}}, cm]))     # the namespace first
    assert kube.store.get(ObjectKey("ConfigMap", "x", "c"))["data"] == {"a": "1"}


def test_immutable_fields_are_refused_with_422(kube, tmp_path):
    ok(apply(kube, tmp_path, [deployment()]))
    err = refused(apply(kube, tmp_path, [deployment(selector="other")]))
    assert re.search(r'The Deployment "web" is invalid: spec.selector: Invalid value: .*: '
                     r"field is immutable", err), err
    job = {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "j"},
           "spec": {"template": {"spec": {"restartPolicy": "Never", "containers": [
               {"name": "c", "image": "gitops/busybox:1"}]}}}}
    ok(apply(kube, tmp_path, [job]))
    job["spec"]["template"]["spec"]["containers"][0]["image"] = "gitops/busybox:2"
    assert "spec.template: Invalid value" in refused(apply(kube, tmp_path, [job]))
    svc = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s"},
           "spec": {"ports": [{"port": 80}]}}
    ok(apply(kube, tmp_path, [svc]))
    ip = kube.store.get(ObjectKey("Service", "default", "s"))["spec"]["clusterIP"]
    other = ip.rsplit(".", 1)[0] + (".9" if not ip.endswith(".9") else ".10")
    err = refused(kube.kubectl("patch", "svc", "s", "-p",
                               json.dumps({"spec": {"clusterIP": other}})))
    assert "spec.clusterIP" in err and "field is immutable" in err
    pvc = {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "data"},
           "spec": {"accessModes": ["ReadWriteOnce"],
                    "resources": {"requests": {"storage": "1Gi"}}}}
    ok(apply(kube, tmp_path, [pvc]))
    pvc["spec"]["accessModes"] = ["ReadWriteMany"]
    assert "spec is immutable after creation" in refused(apply(kube, tmp_path, [pvc]))
    sts = {"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "db"},
           "spec": {"serviceName": "db", "selector": {"matchLabels": {"app": "db"}},
                    "template": {"metadata": {"labels": {"app": "db"}}, "spec": {
                        "containers": [{"name": "db", "image": "gitops/busybox:1"}]}},
                    "volumeClaimTemplates": [{"metadata": {"name": "data"}, "spec": {
                        "accessModes": ["ReadWriteOnce"],
                        "resources": {"requests": {"storage": "1Gi"}}}}]}}
    ok(apply(kube, tmp_path, [sts]))
    sts["spec"]["volumeClaimTemplates"][0]["spec"]["resources"]["requests"]["storage"] = "2Gi"
    assert "updates to statefulset spec for fields other than" in refused(
        apply(kube, tmp_path, [sts]))
    # what may change still does, and nothing refused was stored
    ok(kube.kubectl("scale", "sts", "db", "--replicas", "2"))
    stored = kube.store.get(ObjectKey("StatefulSet", "default", "db"))
    assert stored["spec"]["replicas"] == 2
    assert stored["spec"]["volumeClaimTemplates"][0]["spec"]["resources"]["requests"] == {
        "storage": "1Gi"}


@pytest.mark.parametrize("field, value", [
    ("limits.memory", "64Mb"), ("requests.memory", "32MB"), ("limits.cpu", "1.5 cores")])
def test_invalid_quantities_are_refused_naming_the_field(kube, tmp_path, field, value):
    kind, name = field.split(".")
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
           "spec": {"containers": [{"name": "c", "image": "gitops/busybox:1",
                                    "resources": {kind: {name: value}}}]}}
    err = refused(apply(kube, tmp_path, [pod]))
    assert f"spec.containers[0].resources.{field}: Invalid value: \"{value}\"" in err, err
    assert kube.store.list("Pod") == []
    claim = {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "c"},
             "spec": {"accessModes": ["ReadWriteOnce"],
                      "resources": {"requests": {"storage": value}}}}
    assert "spec.resources.requests.storage: Invalid value" in refused(
        apply(kube, tmp_path, [claim]))
    ok(apply(kube, tmp_path, [deployment()]))
    err = refused(kube.kubectl("patch", "deploy", "web", "--type", "json", "-p", json.dumps([
        {"op": "add", "path": "/spec/template/spec/containers/0/resources",
         "value": {kind: {name: value}}}])))
    assert f"spec.template.spec.containers[0].resources.{field}" in err, err


def test_kubectl_run_and_describe_show_the_api_servers_defaults(kube, tmp_path):
    ok(kube.kubectl("run", "web", "--image", "gitops/busybox:1", "--port", "4200"))
    pod = json.loads(ok(kube.kubectl("get", "pod", "web", "-o", "json")))
    spec, container = pod["spec"], pod["spec"]["containers"][0]
    assert (container["imagePullPolicy"], container["terminationMessagePath"],
            container["terminationMessagePolicy"]) == ("IfNotPresent", "/dev/termination-log",
                                                       "File")
    assert container["ports"] == [{"containerPort": 4200, "protocol": "TCP"}]
    assert {k: spec[k] for k in ("dnsPolicy", "restartPolicy", "schedulerName",
                                 "serviceAccountName", "securityContext",
                                 "enableServiceLinks", "terminationGracePeriodSeconds")} == {
        "dnsPolicy": "ClusterFirst", "restartPolicy": "Always",
        "schedulerName": "default-scheduler", "serviceAccountName": "default",
        "securityContext": {}, "enableServiceLinks": True, "terminationGracePeriodSeconds": 30}
    assert [t["key"] for t in spec["tolerations"]] == ["node.kubernetes.io/not-ready",
                                                       "node.kubernetes.io/unreachable"]
    assert pod["status"]["qosClass"] == "BestEffort"
    described = ok(kube.kubectl("describe", "pod", "web"))
    assert re.search(r"^QoS Class:\s+BestEffort$", described, re.M), described
    assert "node.kubernetes.io/not-ready:NoExecute op=Exists for 300s" in described
    ok(kube.kubectl("expose", "pod", "web", "--port", "4200"))
    described = ok(kube.kubectl("describe", "svc", "web"))
    assert re.search(r"^Port:\s+<unset>\s+4200/TCP$", described, re.M), described
    assert re.search(r"^TargetPort:\s+4200/TCP$", described, re.M), described
    probe = deployment()
    probe["spec"]["template"]["spec"]["containers"][0]["readinessProbe"] = {
        "httpGet": {"port": 4200}}
    ok(apply(kube, tmp_path, [probe]))
    described = ok(kube.kubectl("describe", "deploy", "web"))
    assert re.search(r"Readiness:\s+http-get http://:4200/ delay=0s timeout=1s period=10s "
                     r"#success=1 #failure=3$", described, re.M), described


def test_a_secrets_string_data_is_stored_as_data(kube, tmp_path):
    secret = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "creds"},
              "stringData": {"user": "me", "password": "hunter2"}}
    ok(apply(kube, tmp_path, [secret]))
    listed = ok(kube.kubectl("get", "secret", "creds")).splitlines()
    assert listed[1].split()[:3] == ["creds", "Opaque", "2"]
    shown = yaml.safe_load(ok(kube.kubectl("get", "secret", "creds", "-o", "yaml")))
    assert "stringData" not in shown and sorted(shown["data"]) == ["password", "user"]
    assert "hunter2" not in json.dumps(shown)                 # values stay masked


CONFIGURED = """\
apiVersion: v1
kind: ConfigMap
metadata: {name: web-config}
data: {greeting: hello}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
      - name: web
        image: gitops/busybox:1
        envFrom: [{configMapRef: {name: web-config}}]
"""


def replica_sets(described: str) -> tuple[str, str]:
    """(NewReplicaSet, OldReplicaSets) as `kubectl describe deploy` prints them."""
    new = re.search(r"^NewReplicaSet:\s+(\S+)", described, re.M)
    old = re.search(r"^OldReplicaSets:\s+(.+)$", described, re.M)
    assert new and old, described
    return new.group(1), old.group(1).strip()


def test_describe_deploy_finds_its_new_replicaset_through_config_rollouts_and_undo(
        kube, tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    (src / "app.yaml").write_text(CONFIGURED)
    engine = SyncEngine(kube.store, make_source(str(src), tmp_path / "work"))
    plane = ControlPlane(kube.store, random.Random(0))

    def settle() -> tuple[str, str]:
        for _ in range(4):
            plane.run_once()
        return replica_sets(ok(kube.kubectl("describe", "deploy", "web")))

    assert engine.sync_once().result == "synced"
    first, old = settle()
    assert first.startswith("web-") and old == "<none>"
    # a config-only change rolls out: a new ReplicaSet, shown as the new one
    (src / "app.yaml").write_text(CONFIGURED.replace("hello", "bonjour"))
    assert engine.sync_once().result == "synced"
    second, old = settle()
    assert second != first and old.startswith(first + " ("), old
    # git's next sync sees no drift: the hash in the template is not git's to declare
    assert engine.sync_once().result == "unchanged"
    # an image change, then `kubectl rollout undo`: the previous ReplicaSet is new again
    (src / "app.yaml").write_text(CONFIGURED.replace("hello", "bonjour").replace(
        "busybox:1", "busybox:2"))
    assert engine.sync_once().result == "synced"
    third, _ = settle()
    assert third not in (first, second)
    assert "rolled back" in ok(kube.kubectl("rollout", "undo", "deploy/web"))
    back, old = settle()
    assert back == second and third in old
    sets = {rs["metadata"]["name"]: rs for rs in kube.store.list("ReplicaSet")}
    assert len(sets) == 3                                  # undo made no fourth one


MANY = """\
apiVersion: v1
kind: Namespace
metadata: {name: shop}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: settings, namespace: shop}
data: {mode: prod}
---
apiVersion: v1
kind: Secret
metadata: {name: creds, namespace: shop}
stringData: {password: hunter2}
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: shop}
spec:
  type: NodePort
  selector: {app: web}
  ports: [{port: 80, targetPort: 8080}]
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: shop}
spec:
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
      - name: web
        image: gitops/busybox:1
        ports: [{containerPort: 8080}]
        envFrom: [{configMapRef: {name: settings}}]
        readinessProbe: {httpGet: {port: 8080}}
---
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: db, namespace: shop}
spec:
  serviceName: db
  selector: {matchLabels: {app: db}}
  template:
    metadata: {labels: {app: db}}
    spec: {containers: [{name: db, image: "gitops/busybox:1"}]}
  volumeClaimTemplates:
  - metadata: {name: data}
    spec: {accessModes: [ReadWriteOnce], resources: {requests: {storage: 1Gi}}}
---
apiVersion: apps/v1
kind: DaemonSet
metadata: {name: agent, namespace: shop}
spec:
  selector: {matchLabels: {app: agent}}
  template:
    metadata: {labels: {app: agent}}
    spec: {containers: [{name: agent, image: "gitops/busybox:1"}]}
---
apiVersion: batch/v1
kind: Job
metadata: {name: migrate, namespace: shop}
spec:
  template:
    spec:
      restartPolicy: Never
      containers: [{name: migrate, image: "gitops/busybox:1"}]
---
apiVersion: batch/v1
kind: CronJob
metadata: {name: report, namespace: shop}
spec:
  schedule: "0 3 * * *"
  jobTemplate:
    spec:
      template:
        spec:
          restartPolicy: OnFailure
          containers: [{name: report, image: "gitops/busybox:1"}]
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: cache, namespace: shop}
spec:
  accessModes: [ReadWriteOnce]
  resources: {requests: {storage: 1Gi}}
"""


def test_kubectl_diff_of_what_git_holds_is_clean_right_after_a_sync(kube, tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    (src / "app.yaml").write_text(MANY)
    engine = SyncEngine(kube.store, make_source(str(src), tmp_path / "work"))
    assert engine.sync_once().result == "synced"
    plane = ControlPlane(kube.store, random.Random(0))
    for check in range(2):               # before the controllers ran, and after
        for flags in ((), ("--server-side",)):
            diff = kube.kubectl("diff", *flags, "-f", str(src / "app.yaml"))
            assert diff.returncode == 0, (check, flags, diff.stdout, diff.stderr)
        for _ in range(3):
            plane.run_once()
    (src / "app.yaml").write_text(MANY.replace("prod", "dev"))
    diff = kube.kubectl("diff", "-f", str(src / "app.yaml"))
    assert diff.returncode == 1 and "-  mode: prod" in diff.stdout and \
        "+  mode: dev" in diff.stdout
