"""The unmodified kubectl against the Kubernetes API served from a real store (no Docker:
objects and their status are written to the store directly, as controllers would)."""

from __future__ import annotations

import json
import re
import subprocess
import time

import pytest
import yaml

from gitops.model import ObjectKey
from gitops.store import Registry, SqliteStore
from tests.kube_support import KubeServer, kubectl_path, run_kubectl, write_kubeconfig


@pytest.fixture
def kube(tmp_path):
    kubectl_path()                     # fails clearly when kubectl is missing
    store = Registry(SqliteStore(tmp_path / "state.db"))
    with KubeServer(store, tmp_path) as server:
        yield server
    store.close()


def ok(result: subprocess.CompletedProcess) -> str:
    assert result.returncode == 0, f"kubectl failed ({result.returncode}): {result.stderr}"
    return result.stdout


def seed(store) -> None:
    deploy = store.create({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "labels": {"app": "web"}},
        "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}},
                 "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [
                     {"name": "app", "image": "gitops/busybox:1"}]}}}})
    store.update_status(ObjectKey("Deployment", "default", "web"), {
        "replicas": 2, "updatedReplicas": 2, "readyReplicas": 2, "availableReplicas": 2,
        "observedGeneration": 1})
    for i, phase in enumerate(("Running", "Pending")):
        name = f"web-abc-{i}"
        store.create({"apiVersion": "v1", "kind": "Pod",
                      "metadata": {"name": name, "labels": {"app": "web", "n": str(i)},
                                   "ownerReferences": [{
                                       "apiVersion": "apps/v1", "kind": "ReplicaSet",
                                       "name": "web-abc", "uid": "rs-uid", "controller": True}]},
                      "spec": {"nodeName": "node-1",
                               "containers": [{"name": "app", "image": "gitops/busybox:1"}]}})
        store.update_status(ObjectKey("Pod", "default", name), {
            "phase": phase, "podIP": f"10.213.0.{10 + i}",
            "containerStatuses": [{"name": "app", "ready": phase == "Running",
                                   "restartCount": i, "image": "gitops/busybox:1",
                                   "state": {"running": {}} if phase == "Running" else
                                   {"waiting": {"reason": "ContainerCreating"}}}]})
    pod = store.get(ObjectKey("Pod", "default", "web-abc-0"))
    store.create({"apiVersion": "v1", "kind": "Event",
                  "metadata": {"name": "web-abc-0.1", "namespace": "default"},
                  "involvedObject": {"kind": "Pod", "name": "web-abc-0", "namespace": "default",
                                     "uid": pod["metadata"]["uid"], "apiVersion": "v1"},
                  "reason": "Started", "message": "Started container app", "type": "Normal",
                  "count": 1, "source": {"component": "gitops-node"},
                  "firstTimestamp": pod["metadata"]["creationTimestamp"],
                  "lastTimestamp": pod["metadata"]["creationTimestamp"]})
    store.create({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"},
                  "spec": {"type": "NodePort", "clusterIP": "10.96.0.20",
                           "selector": {"app": "web"},
                           "ports": [{"port": 80, "nodePort": 30080, "protocol": "TCP"}]}})
    assert deploy


def test_get_list_output_formats_selectors_and_describe(kube):
    seed(kube.store)
    lines = ok(kube.kubectl("get", "pods")).splitlines()
    assert lines[0].split() == ["NAME", "READY", "STATUS", "RESTARTS", "AGE"]
    assert [line.split()[:4] for line in lines[1:]] == [
        ["web-abc-0", "1/1", "Running", "0"], ["web-abc-1", "0/1", "ContainerCreating", "1"]]
    wide = ok(kube.kubectl("get", "po", "-o", "wide")).splitlines()
    assert wide[0].split()[5:7] == ["IP", "NODE"]
    assert wide[1].split()[5:7] == ["10.213.0.10", "node-1"]
    assert ok(kube.kubectl("get", "pods", "-l", "n=1", "-o", "name")).split() == [
        "pod/web-abc-1"]
    assert ok(kube.kubectl("get", "pods", "--field-selector", "status.phase=Running",
                           "-o", "jsonpath={.items[*].metadata.name}")) == "web-abc-0"
    deploy = ok(kube.kubectl("get", "deploy")).splitlines()
    assert deploy[0].split() == ["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"]
    assert deploy[1].split()[:4] == ["web", "2/2", "2", "2"]
    assert ok(kube.kubectl("get", "deployment", "web", "-o",
                           "jsonpath={.spec.template.spec.containers[0].image}")) == \
        "gitops/busybox:1"
    as_yaml = ok(kube.kubectl("get", "svc", "web", "-o", "yaml"))
    assert "nodePort: 30080" in as_yaml and "kind: Service" in as_yaml
    svc = ok(kube.kubectl("get", "svc")).splitlines()
    assert svc[1].split()[:5] == ["web", "NodePort", "10.96.0.20", "<none>", "80:30080/TCP"]
    every = ok(kube.kubectl("get", "all"))
    assert "pod/web-abc-0" in every and "deployment.apps/web" in every and \
        "service/web" in every
    events = ok(kube.kubectl("get", "events")).splitlines()
    assert events[0].split()[:4] == ["LAST", "SEEN", "TYPE", "REASON"]
    assert "pod/web-abc-0" in events[1] and "Started container app" in events[1]
    described = ok(kube.kubectl("describe", "pod", "web-abc-0"))
    assert re.search(r"^Node:\s+node-1/", described, re.M), described
    assert "Started container app" in described          # its events
    described = ok(kube.kubectl("describe", "deploy", "web"))
    assert "2 desired | 2 updated | 2 total | 2 available" in described
    explained = ok(kube.kubectl("explain", "deployment.spec.replicas"))
    assert "FIELD: replicas <integer>" in explained
    assert ok(kube.kubectl("auth", "can-i", "delete", "deployments")).strip() == "yes"
    assert "gitops-admin" in ok(kube.kubectl("auth", "whoami"))
    missing = kube.kubectl("get", "pod", "nope")
    assert missing.returncode == 1 and 'pods "nope" not found' in missing.stderr


def test_apply_client_and_server_side_patch_scale_and_conflicts(kube, tmp_path):
    manifest = tmp_path / "app.yaml"

    def write(value: str, extra: str = "") -> None:
        manifest.write_text(f"""apiVersion: v1
kind: ConfigMap
metadata:
  name: settings
data:
  mode: "{value}"
{extra}""")

    write("one")
    assert "configmap/settings created" in ok(kube.kubectl("apply", "-f", str(manifest)))
    write("two")
    assert "configmap/settings configured" in ok(kube.kubectl("apply", "-f", str(manifest)))
    stored = kube.store.get(ObjectKey("ConfigMap", "default", "settings"))
    assert stored["data"] == {"mode": "two"}
    assert "kubectl.kubernetes.io/last-applied-configuration" in stored["metadata"]["annotations"]
    assert {e["manager"] for e in stored["metadata"]["managedFields"]} == {
        "kubectl-client-side-apply"}
    # server-side apply: a new object, then a change, then a conflicting manager
    write("ssa", "  other: x\n")
    manifest2 = tmp_path / "ssa.yaml"
    manifest2.write_text(manifest.read_text().replace("settings", "shared"))
    assert "serverside-applied" in ok(kube.kubectl("apply", "--server-side", "-f",
                                                   str(manifest2)))
    manifest2.write_text(manifest2.read_text().replace("  other: x\n", ""))
    ok(kube.kubectl("apply", "--server-side", "-f", str(manifest2)))
    shared = kube.store.get(ObjectKey("ConfigMap", "default", "shared"))
    assert shared["data"] == {"mode": "ssa"}          # dropped from the applied config: gone
    manifest2.write_text(manifest2.read_text().replace('"ssa"', '"theirs"'))
    clash = kube.kubectl("apply", "--server-side", "--field-manager", "ci", "-f",
                         str(manifest2))
    assert clash.returncode == 1 and 'conflict with "kubectl"' in clash.stderr
    assert ".data.mode" in clash.stderr
    ok(kube.kubectl("apply", "--server-side", "--field-manager", "ci", "--force-conflicts",
                    "-f", str(manifest2)))
    assert kube.store.get(ObjectKey("ConfigMap", "default", "shared"))["data"] == {
        "mode": "theirs"}
    # edit-style patches: strategic (default), merge, json
    seed(kube.store)
    ok(kube.kubectl("patch", "deploy", "web", "-p", json.dumps({"spec": {"template": {"spec": {
        "containers": [{"name": "app", "image": "gitops/busybox:2"}]}}}})))
    ok(kube.kubectl("patch", "deploy", "web", "--type", "merge", "-p",
                    '{"metadata": {"labels": {"tier": "front"}}}'))
    ok(kube.kubectl("patch", "deploy", "web", "--type", "json", "-p",
                    '[{"op": "add", "path": "/spec/minReadySeconds", "value": 5}]'))
    live = kube.store.get(ObjectKey("Deployment", "default", "web"))
    assert live["spec"]["template"]["spec"]["containers"] == [   # with the API's defaults
        {"name": "app", "image": "gitops/busybox:2", "imagePullPolicy": "IfNotPresent",
         "resources": {}, "terminationMessagePath": "/dev/termination-log",
         "terminationMessagePolicy": "File"}]
    assert live["metadata"]["labels"] == {"app": "web", "tier": "front"}
    assert live["spec"]["minReadySeconds"] == 5 and live["metadata"]["generation"] == 3
    assert {e["manager"] for e in live["metadata"]["managedFields"]} == {"kubectl-patch"}
    edit = run_kubectl(kube.kubeconfig, "edit", "deploy", "web", env_extra={
        "EDITOR": "sed -i s#gitops/busybox:2#gitops/busybox:3#"})
    assert edit.returncode == 0 and "edited" in edit.stdout, edit.stderr
    assert kube.store.get(ObjectKey("Deployment", "default", "web"))["spec"]["template"][
        "spec"]["containers"][0]["image"] == "gitops/busybox:3"
    assert "scaled" in ok(kube.kubectl("scale", "deploy", "web", "--replicas", "4"))
    assert kube.store.get(ObjectKey("Deployment", "default", "web"))["spec"]["replicas"] == 4
    # a stale update: replace with the resourceVersion read before someone else wrote
    before = ok(kube.kubectl("get", "deploy", "web", "-o", "json"))
    ok(kube.kubectl("label", "deploy", "web", "touched=yes"))
    stale = tmp_path / "stale.json"
    stale.write_text(before)
    result = kube.kubectl("replace", "-f", str(stale))
    assert result.returncode == 1 and "Conflict" in result.stderr
    assert "the object has been modified" in result.stderr
    # unknown fields are refused by server-side validation (kubectl sends Strict)
    manifest.write_text("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: bad}\n"
                        "data: {a: b}\nbogus: 1\n")
    result = kube.kubectl("apply", "-f", str(manifest))
    assert result.returncode == 1 and 'unknown field "bogus"' in result.stderr
    assert "deleted" in ok(kube.kubectl("delete", "cm", "settings"))
    assert kube.store.get(ObjectKey("ConfigMap", "default", "settings")) is None


def test_watch_receives_updates_and_the_token_is_required(kube, tmp_path):
    seed(kube.store)
    watcher = subprocess.Popen(
        [kubectl_path(), "--cache-dir", str(tmp_path / "kcache"), "get", "deploy", "-w",
         "--request-timeout", "30s"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True, env={"KUBECONFIG": str(kube.kubeconfig), "HOME": str(tmp_path)})
    try:
        header = watcher.stdout.readline()
        first = watcher.stdout.readline()
        assert header.split()[:2] == ["NAME", "READY"] and first.split()[:2] == ["web", "2/2"]
        kube.store.update_status(ObjectKey("Deployment", "default", "web"), {
            "replicas": 2, "updatedReplicas": 2, "readyReplicas": 1, "availableReplicas": 1,
            "observedGeneration": 1})
        deadline = time.monotonic() + 20
        line = ""
        while time.monotonic() < deadline and "1/2" not in line:
            line = watcher.stdout.readline()
        assert line.split()[:2] == ["web", "1/2"]
    finally:
        watcher.kill()
        watcher.communicate(timeout=10)
    # kubectl with a wrong token is turned away (no token at all: see test_kube_http)
    (tmp_path / "other").mkdir()
    wrong = write_kubeconfig(tmp_path / "other" / "config", kube.kube_url, "not-the-token",
                             (tmp_path / "ca.crt").read_bytes())
    result = run_kubectl(wrong, "get", "pods")
    assert result.returncode == 1
    assert "You must be logged in to the server" in result.stderr


def test_logs_parameters_and_follow(tmp_path):
    kubectl_path()
    seen = []

    async def logs(req):
        seen.append(req)
        if not req.follow:
            return f"lines of {req.container or 'app'}\n"

        async def chunks():
            for i in range(3):
                yield f"tick{i}\n".encode()
        return chunks()

    store = Registry(SqliteStore(tmp_path / "state.db"))
    seed(store)
    with KubeServer(store, tmp_path, logs=logs) as kube:
        assert ok(kube.kubectl("logs", "web-abc-0")) == "lines of app\n"
        assert ok(kube.kubectl("logs", "web-abc-0", "-c", "app", "--tail", "5", "-p")) == \
            "lines of app\n"
        assert ok(kube.kubectl("logs", "-f", "web-abc-0")) == "tick0\ntick1\ntick2\n"
        missing = kube.kubectl("logs", "nope")
        assert missing.returncode == 1 and 'pods "nope" not found' in missing.stderr
    store.close()
    assert [(r.pod, r.container, r.tail, r.previous, r.follow) for r in seen] == [
        ("web-abc-0", "app", -1, False, False), ("web-abc-0", "app", 5, True, False),
        ("web-abc-0", "app", -1, False, True)]


def test_rollout_status_of_statefulsets_and_daemonsets(kube):
    template = {"metadata": {"labels": {"app": "x"}},
                "spec": {"containers": [{"name": "c", "image": "gitops/busybox:1"}]}}
    for kind, status in (
            ("StatefulSet", {"observedGeneration": 1, "replicas": 2, "readyReplicas": 2,
                             "updatedReplicas": 2, "currentReplicas": 2,
                             "currentRevision": "x-1", "updateRevision": "x-1"}),
            ("DaemonSet", {"observedGeneration": 1, "desiredNumberScheduled": 1,
                           "updatedNumberScheduled": 1, "numberAvailable": 1,
                           "numberReady": 1, "currentNumberScheduled": 1})):
        spec = {"selector": {"matchLabels": {"app": "x"}}, "template": template}
        if kind == "StatefulSet":
            spec |= {"replicas": 2, "serviceName": "x"}
        kube.store.create({"apiVersion": "apps/v1", "kind": kind, "metadata": {"name": "x"},
                           "spec": spec})
        kube.store.update_status(ObjectKey(kind, "default", "x"), status)
    assert "partitioned roll out complete: 2 new pods" in ok(
        kube.kubectl("rollout", "status", "sts/x", "--timeout", "10s"))
    assert 'daemon set "x" successfully rolled out' in ok(
        kube.kubectl("rollout", "status", "ds/x", "--timeout", "10s"))


def test_rollout_history_and_undo_of_statefulsets_and_daemonsets(kube, tmp_path):
    """Their history is ControllerRevisions, which kubectl lists by the object's selector
    and patches back on undo; the controllers (run here by hand) keep it."""
    import random
    from gitops.controllers.manager import ControllerManager
    manager = ControllerManager(kube.store, random.Random(0))
    manifest = tmp_path / "sets.yaml"

    def apply(image: str) -> None:
        template = {"metadata": {"labels": {"app": "x"}},
                    "spec": {"containers": [{"name": "c", "image": image}]}}
        spec = {"selector": {"matchLabels": {"app": "x"}}, "template": template}
        manifest.write_text(yaml.safe_dump_all((
            {"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "x"},
             "spec": {**spec, "serviceName": "x", "replicas": 1}},
            {"apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": "agent"},
             "spec": spec})))
        ok(kube.kubectl("apply", "-f", str(manifest)))
        manager.run_once()

    def image(kind: str) -> str:
        name = "x" if kind == "StatefulSet" else "agent"
        return kube.store.get(ObjectKey(kind, "default", name))["spec"]["template"]["spec"][
            "containers"][0]["image"]

    apply("gitops/busybox:1")
    apply("gitops/busybox:2")
    for kind, short in (("StatefulSet", "sts/x"), ("DaemonSet", "ds/agent")):
        listed = ok(kube.kubectl("rollout", "history", short)).splitlines()
        assert listed[0].strip() == f"{kind.lower()}.apps/{short.split('/')[1]}"
        assert [line.split() for line in listed[1:] if line] == [
            ["REVISION", "CHANGE-CAUSE"], ["1", "<none>"], ["2", "<none>"]]
        first = ok(kube.kubectl("rollout", "history", short, "--revision=1"))
        assert "gitops/busybox:1" in first and "gitops/busybox:2" not in first
        assert "rolled back" in ok(kube.kubectl("rollout", "undo", short))
        assert image(kind) == "gitops/busybox:1"
    manager.run_once()
    assert sorted((r["metadata"]["ownerReferences"][0]["kind"], r["revision"])
                  for r in kube.store.list("ControllerRevision")) == [
        ("DaemonSet", 2), ("DaemonSet", 3), ("StatefulSet", 2), ("StatefulSet", 3)]
    assert ok(kube.kubectl("rollout", "undo", "sts/x", "--to-revision=2"))
    assert image("StatefulSet") == "gitops/busybox:2"
    listed = ok(kube.kubectl("get", "controllerrevisions")).splitlines()
    assert listed[0].split() == ["NAME", "CONTROLLER", "REVISION", "AGE"]
    assert {line.split()[1] for line in listed[1:]} == {"statefulset.apps/x",
                                                        "daemonset.apps/agent"}


def test_drain_evicts_within_the_disruption_budget(kube, tmp_path):
    """`kubectl drain`: the node is cordoned and its pods evicted while the budget allows;
    the last healthy one is refused with the API server's 429 and message."""
    from gitops.controllers import disruption
    store = kube.store
    store.create({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "node-1"},
                  "spec": {}})
    for i in range(2):
        name = f"web-{i}"
        store.create({"apiVersion": "v1", "kind": "Pod",
                      "metadata": {"name": name, "labels": {"app": "web"}},
                      "spec": {"nodeName": "node-1",
                               "containers": [{"name": "app", "image": "gitops/busybox:1"}]}})
        store.update_status(ObjectKey("Pod", "default", name), {
            "phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]})
    (tmp_path / "pdb.yaml").write_text(yaml.safe_dump({
        "apiVersion": "policy/v1", "kind": "PodDisruptionBudget", "metadata": {"name": "web"},
        "spec": {"minAvailable": 1, "selector": {"matchLabels": {"app": "web"}}}}))
    ok(kube.kubectl("apply", "-f", str(tmp_path / "pdb.yaml")))
    for action in disruption.reconcile(store.list("PodDisruptionBudget"), store.list("Pod"),
                                       lambda *k: None, "2027-01-01T00:00:00Z"):
        store.update_status(action.key, action.status)
    table = ok(kube.kubectl("get", "pdb"))
    assert re.search(r"web\s+1\s+N/A\s+1\s", table), table

    drained = kube.kubectl("drain", "node-1", "--force", "--timeout", "8s", "--grace-period", "1")
    assert drained.returncode != 0          # the second pod may not go
    assert "Cannot evict pod as it would violate the pod's disruption budget" in drained.stderr
    node = store.get(ObjectKey("Node", "", "node-1"))
    assert node["spec"].get("unschedulable") is True
    deleting = [p["metadata"]["name"] for p in store.list("Pod")
                if p["metadata"].get("deletionTimestamp")]
    assert len(deleting) == 1

    # straight through the API: 201 and a Success Status when the budget allows
    status, _, body = kube.request(
        "POST", "/api/v1/namespaces/default/pods/gone/eviction",
        {"apiVersion": "policy/v1", "kind": "Eviction", "metadata": {"name": "gone"}})
    assert status == 404
    store.delete(ObjectKey("PodDisruptionBudget", "default", "web"))
    last = next(p["metadata"]["name"] for p in store.list("Pod")
                if not p["metadata"].get("deletionTimestamp"))
    status, _, body = kube.request(
        "POST", f"/api/v1/namespaces/default/pods/{last}/eviction",
        {"apiVersion": "policy/v1", "kind": "Eviction", "metadata": {"name": last}})
    assert status == 201 and body["status"] == "Success"
    assert store.get(ObjectKey("Pod", "default", last))["metadata"].get("deletionTimestamp")
