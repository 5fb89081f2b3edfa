import random

import pytest

from gitops.controllers import deployment, endpoints, gc, replicaset, service
from gitops.controllers.manager import ControllerManager
from gitops.model import ObjectKey
from gitops.model.actions import Create, Delete, Update
from gitops.testing import memory_store
from tests.control_plane import ControlPlane


def deploy(replicas=2, image="img:1", uid="d-uid"):
    return {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "namespace": "default", "uid": uid, "generation": 1},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": "web"}},
                     "template": {"metadata": {"labels": {"app": "web"}},
                                  "spec": {"containers": [{"name": "c", "image": image}]}}}}


def pod(name, ready=True, node="n1", created="2026-01-01T00:00:00Z", ip="10.0.0.1",
        labels=None, owner=None, deleting=False):
    meta = {"name": name, "namespace": "default", "uid": f"{name}-uid",
            "creationTimestamp": created, "labels": labels or {"app": "web"}}
    if owner:
        meta["ownerReferences"] = [{"uid": owner, "controller": True, "kind": "ReplicaSet",
                                    "name": "rs", "apiVersion": "apps/v1"}]
    if deleting:
        meta["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta,
            "spec": {"nodeName": node, "containers": [
                {"name": "c", "image": "img:1", "ports": [{"name": "http", "containerPort": 8080}]}]},
            "status": {"phase": "Running", "podIP": ip,
                       "conditions": [{"type": "Ready", "status": str(ready)}]}}


NOW = 1_800_000_000.0


def test_deployment_creates_replicaset_with_template_hash():
    actions = deployment.reconcile(deploy(), [], NOW)
    created = [a.obj for a in actions if isinstance(a, Create)]
    assert len(created) == 1
    rs = created[0]
    thash = deployment.template_hash(deployment.effective_template(deploy()))
    assert rs["metadata"]["name"] == f"web-{thash}"
    assert rs["spec"]["replicas"] == 2
    assert rs["spec"]["selector"]["matchLabels"] == {"app": "web", "pod-template-hash": thash}
    assert rs["spec"]["template"]["metadata"]["labels"]["pod-template-hash"] == thash
    assert rs["metadata"]["ownerReferences"][0]["uid"] == "d-uid"
    assert rs["metadata"]["annotations"][deployment.REVISION] == "1"


def _rs(d, replicas, available, revision):
    template = deployment.effective_template(d)
    thash = deployment.template_hash(template)
    rs = deployment.new_replicaset(d, template, f"web-{thash}", thash, replicas, revision)
    rs["metadata"]["uid"] = f"rs-{revision}"
    rs["status"] = {"replicas": replicas, "availableReplicas": available,
                    "readyReplicas": available}
    return rs


def _scales(actions):
    out = {a.obj["metadata"]["annotations"][deployment.REVISION]: a.obj["spec"]["replicas"]
           for a in actions if isinstance(a, (Create, Update))
           and a.obj["kind"] == "ReplicaSet"}
    return {int(k): v for k, v in out.items()}


@pytest.mark.parametrize("want, have, creates, deletes", [
    (3, 0, 3, 0), (3, 3, 0, 0), (1, 3, 0, 2), (0, 2, 0, 2)])
def test_replicaset_scales(want, have, creates, deletes):
    rs = _rs(deploy(), want, 0, 1)
    pods = [pod(f"p{i}", owner="rs-1") for i in range(have)]
    actions = replicaset.reconcile(rs, pods, random.Random(1), NOW)
    assert sum(isinstance(a, Create) for a in actions) == creates
    assert sum(isinstance(a, Delete) for a in actions) == deletes
    names = [a.obj["metadata"]["name"] for a in actions if isinstance(a, Create)]
    assert len(set(names)) == len(names)
    assert all(n.startswith(rs["metadata"]["name"] + "-") for n in names)


def test_replicaset_deletes_unready_and_newest_first():
    rs = _rs(deploy(), 1, 0, 1)
    pods = [pod("old-ready", created="2026-01-01T00:00:00Z"),
            pod("new-ready", created="2026-01-02T00:00:00Z"),
            pod("unready", ready=False, created="2025-01-01T00:00:00Z")]
    deleted = [a.key.name for a in replicaset.reconcile(rs, pods, random.Random(0), NOW)
               if isinstance(a, Delete)]
    assert deleted == ["unready", "new-ready"]


def test_replicaset_ignores_terminating_pods_in_count():
    rs = _rs(deploy(), 2, 0, 1)
    pods = [pod("a"), pod("b", deleting=True)]
    assert sum(isinstance(a, Create)
               for a in replicaset.reconcile(rs, pods, random.Random(0), NOW)) == 1


def svc(selector=None, target="http", type_="ClusterIP", node_port=None):
    port = {"name": "http", "port": 80, "targetPort": target}
    if node_port:
        port["nodePort"] = node_port
    return {"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "web", "namespace": "default", "uid": "s-uid"},
            "spec": {"type": type_, "selector": selector if selector is not None else {"app": "web"},
                     "ports": [port]}}


def test_endpoints_split_ready_and_resolve_named_port():
    pods = [pod("a", ip="10.0.0.2"), pod("b", ready=False, ip="10.0.0.3"),
            pod("c", labels={"app": "other"}, ip="10.0.0.4"),
            pod("d", deleting=True, ip="10.0.0.5")]
    ep = endpoints.desired_endpoints(svc(), pods)
    assert ep["subsets"] == [{
        "addresses": [{"ip": "10.0.0.2", "nodeName": "n1", "targetRef": {
            "kind": "Pod", "name": "a", "namespace": "default", "uid": "a-uid"}}],
        "notReadyAddresses": [{"ip": "10.0.0.3", "nodeName": "n1", "targetRef": {
            "kind": "Pod", "name": "b", "namespace": "default", "uid": "b-uid"}}],
        "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}]}]


def test_endpoints_numeric_target_and_selectorless_service():
    ep = endpoints.desired_endpoints(svc(target=9000), [pod("a")])
    assert ep["subsets"][0]["ports"][0]["port"] == 9000
    assert endpoints.reconcile(svc(selector={}), None, [pod("a")]) == []


def test_gc_deletes_dependents_of_missing_owners_only():
    rs = {"kind": "ReplicaSet", "metadata": {"name": "rs", "namespace": "default", "uid": "rs-1"}}
    objs = [rs, pod("kept", owner="rs-1"), pod("orphan", owner="gone"), pod("free")]
    assert [a.key.name for a in gc.reconcile(objs)] == ["orphan"]


def node(name, ready=True, labels=None):
    return {"kind": "Node", "metadata": {"name": name, "labels": labels or {}},
            "status": {"allocatable": {"cpu": "4", "memory": "8Gi", "pods": "110"},
                       "conditions": [{"type": "Ready", "status": str(ready)}]}}


def test_service_node_port_and_cluster_ip_allocation_is_stable_and_unique():
    a = svc(type_="NodePort")
    b = svc(type_="NodePort")
    b["metadata"]["name"] = "other"
    taken = svc(type_="NodePort", node_port=30001)
    taken["metadata"]["name"] = "taken"
    headless = svc()
    headless["metadata"]["name"] = "headless"
    headless["spec"]["clusterIP"] = "None"

    def allocated(services):
        out = {}
        for action in service.reconcile(services, "10.96.0.0/16"):
            spec = action.obj["spec"]
            out[action.obj["metadata"]["name"]] = (spec.get("clusterIP"),
                                                   spec["ports"][0].get("nodePort"))
        return out
    first = allocated([a, b, taken, headless])
    assert set(first) == {"web", "other", "taken"}
    ports = [first["web"][1], first["other"][1]]
    assert len(set(ports)) == 2 and 30001 not in ports
    assert all(30000 <= p <= 32767 for p in ports) and first["taken"][1] == 30001
    ips = {ip for ip, _ in first.values()}
    assert len(ips) == 3 and all(ip.startswith("10.96.") for ip in ips)
    assert allocated([a, b, taken, headless]) == first


def test_manager_drives_deployment_to_pods_and_endpoints(tmp_path):
    store = memory_store()
    store.create(node("n1"))
    store.create({k: v for k, v in deploy().items()})
    store.create(svc(target=8080))
    mgr = ControlPlane(store, random.Random(0))
    for _ in range(3):
        mgr.run_once()
    pods = store.list("Pod")
    assert len(pods) == 2 and all(p["spec"]["nodeName"] == "n1" for p in pods)
    assert len(store.list("ReplicaSet")) == 1
    # pods report ready with IPs: endpoints follow
    for i, p in enumerate(pods):
        store.update_status(ObjectKey("Pod", "default", p["metadata"]["name"]),
                            {"phase": "Running", "podIP": f"10.0.0.{i + 2}",
                             "conditions": [{"type": "Ready", "status": "True"}]})
    mgr.run_once()
    ep = store.get(ObjectKey("Endpoints", "default", "web"))
    assert sorted(a["ip"] for a in ep["subsets"][0]["addresses"]) == ["10.0.0.2", "10.0.0.3"]
    # deleting the Deployment cascades: ReplicaSet, then pods are marked for deletion
    store.delete(ObjectKey("Deployment", "default", "web"))
    mgr.run_once()
    mgr.run_once()
    assert store.list("ReplicaSet") == []
    assert all(p["metadata"].get("deletionTimestamp") for p in store.list("Pod"))
    store.close()


def test_one_object_a_reconciler_cannot_handle_fails_alone(tmp_path):
    """A value no validation caught (maxSurge "abc" passes the schema) must not stop the
    other objects, nor the controllers that run after it in the pass."""
    store = memory_store()
    store.create(node("n1"))
    bad = deploy(uid="bad-uid")
    bad["metadata"]["name"] = "bad"
    bad["spec"]["strategy"] = {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "abc"}}
    store.create(bad)
    store.create(deploy())
    mgr = ControlPlane(store, random.Random(0))
    for _ in range(3):
        mgr.run_once()
    pods = store.list("Pod")
    assert len(pods) == 2 and all(p["spec"].get("nodeName") == "n1" for p in pods)
    assert [rs["metadata"]["name"].split("-")[0] for rs in store.list("ReplicaSet")] == ["web"]
    [warning] = [e for e in store.list("Event") if e["reason"] == "ReconcileFailed"]
    assert warning["involvedObject"]["name"] == "bad" and warning["type"] == "Warning"
    assert warning["message"] == (
        "deployment cannot reconcile it: PermanentError: spec.strategy.rollingUpdate.maxSurge: "
        "invalid value 'abc': must be an integer or a percentage such as \"25%\"")
    assert warning["count"] == 1             # told once, not on every pass
    store.close()


def test_the_garbage_collector_reads_every_kind_at_one_instant(tmp_path, monkeypatch):
    """An owner and its dependent created through the API while the collector lists kind
    after kind: seeing the dependent without its owner would collect it."""
    import threading

    from gitops.controllers import manager as manager_module
    store = memory_store()
    mgr = ControllerManager(store, random.Random(0))

    def api_writer() -> None:
        owner = store.create({"apiVersion": "v1", "kind": "ConfigMap",
                              "metadata": {"name": "owner", "namespace": "default"}})
        dependent = pod("dependent")
        dependent["metadata"]["ownerReferences"] = [{
            "apiVersion": "v1", "kind": "ConfigMap", "name": "owner",
            "uid": owner["metadata"]["uid"]}]
        store.create(dependent)

    writer = threading.Thread(target=api_writer)

    class Listing(dict):             # the kinds, in the order the collector lists them
        def __iter__(self):
            for kind in super().__iter__():
                yield kind
                if kind == "ConfigMap":      # the writer comes in right after this list
                    writer.start()
                    writer.join(0.5)         # it waits for the snapshot to end

    monkeypatch.setattr(manager_module, "KINDS", Listing(manager_module.KINDS))
    assert [a for a in gc.reconcile(mgr._gc_snapshot()) if isinstance(a, Delete)] == []
    monkeypatch.undo()
    writer.join(10)
    assert store.get(ObjectKey("Pod", "default", "dependent")) is not None
    mgr.run_once()
    assert store.get(ObjectKey("Pod", "default", "dependent")) is not None
    store.close()


def test_endpoints_name_statefulset_pods_so_srv_records_name_the_pod():
    """A pod with hostname + subdomain = the Service gets `hostname` on its address (as
    Kubernetes' Endpoints controller does); the DNS zone's SRV target is then the pod's
    name (db-0.db.default.svc.cluster.local), not a dashed-IP name."""
    from gitops.proxy.dns import SrvRecord, build_zone
    db = {"apiVersion": "v1", "kind": "Service",
          "metadata": {"name": "db", "namespace": "default", "uid": "s-uid"},
          "spec": {"clusterIP": "None", "selector": {"app": "web"},
                   "ports": [{"name": "pg", "port": 5432, "targetPort": 5432}]}}
    p0, p1, other = pod("db-0", ip="10.0.0.2"), pod("db-1", ip="10.0.0.3"), pod("x", ip="10.0.0.4")
    for p, sub in ((p0, "db"), (p1, "db"), (other, "elsewhere")):
        p["spec"].update(hostname=p["metadata"]["name"], subdomain=sub)
    ep = endpoints.desired_endpoints(db, [p0, p1, other])
    hosts = [a.get("hostname") for a in ep["subsets"][0]["addresses"]]
    assert hosts == ["db-0", "db-1", None]
    zone = build_zone([db], [{**ep, "metadata": {**ep["metadata"]}}], [p0, p1])
    assert zone.srv["_pg._tcp.db.default.svc.cluster.local"] == (
        SrvRecord(0, 100, 5432, "10-0-0-4.db.default.svc.cluster.local"),
        SrvRecord(0, 100, 5432, "db-0.db.default.svc.cluster.local"),
        SrvRecord(0, 100, 5432, "db-1.db.default.svc.cluster.local"))
    assert zone.a["db-0.db.default.svc.cluster.local"] == ("10.0.0.2",)
