import random

import pytest

from gitops.controllers import deployment, endpoints, gc, replicaset, service
from gitops.controllers.base import Create, Delete, SetStatus, Update
from gitops.controllers.manager import ControllerManager
from gitops.model import ObjectKey
from gitops.scheduler import scheduler
from gitops.store import SqliteStore


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
           for a in actions if isinstance(a, (Create, Update))}
    return {int(k): v for k, v in out.items()}


@pytest.mark.parametrize("strategy, old, new, want", [
    # maxSurge/maxUnavailable 25% of 4 -> surge 1, unavailable 1
    ({}, (4, 4), None, {2: 1}),                               # new RS starts at the surge
    ({}, (4, 4), (1, 0), {1: 3}),                            # then old shrinks by 1
    ({}, (3, 3), (1, 1), {2: 2}),                            # room again: new grows
    ({}, (3, 3), (2, 1), {1: 2}),                            # keep 3 available
    ({}, (0, 0), (4, 4), {}),                                # done
    # zero downtime: maxUnavailable 0 never goes below 4 available
    ({"rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}}, (4, 4), None, {2: 1}),
    ({"rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}}, (4, 4), (1, 0), {}),
    ({"rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}}, (4, 4), (1, 1), {1: 3}),
    # unhealthy old pods go first, even without new availability
    ({"rollingUpdate": {"maxSurge": 0, "maxUnavailable": 1}}, (4, 2), (0, 0), {1: 3}),
    # Recreate: old to zero first, new only when the old pods are gone
    ({"type": "Recreate"}, (4, 4), None, {1: 0, 2: 0}),
    ({"type": "Recreate"}, (0, 0), (0, 0), {2: 4}),
])
def test_rollout_math(strategy, old, new, want):
    old_d = deploy(replicas=4, image="img:1")
    new_d = deploy(replicas=4, image="img:2")
    new_d["spec"]["strategy"] = strategy
    rses = [_rs(old_d, old[0], old[1], 1)]
    if old[0] == 0 and strategy.get("type") == "Recreate":
        rses[0]["status"]["replicas"] = 0
    if new is not None:
        rses.append(_rs(new_d, new[0], new[1], 2))
    assert _scales(deployment.reconcile(new_d, rses, NOW)) == want


def test_recreate_waits_for_old_pods_to_terminate():
    old = _rs(deploy(replicas=2, image="img:1"), 0, 0, 1)
    old["status"]["replicas"] = 1            # scaled to zero, a pod still terminating
    new_d = deploy(replicas=2, image="img:2")
    new_d["spec"]["strategy"] = {"type": "Recreate"}
    assert _scales(deployment.reconcile(new_d, [old, _rs(new_d, 0, 0, 2)], NOW)) == {}


def test_config_change_rolls_out_unless_opted_out():
    d = deploy()
    d["spec"]["template"]["spec"]["containers"][0]["envFrom"] = [{"configMapRef": {"name": "c"}}]
    configs = {"c": {"data": {"a": "1"}}}
    lookup = lambda kind, ns, name: configs.get(name)   # noqa: E731
    first = deployment.template_hash(deployment.effective_template(d, lookup))
    configs["c"] = {"data": {"a": "2"}}
    second = deployment.template_hash(deployment.effective_template(d, lookup))
    assert first != second
    d["metadata"]["annotations"] = {deployment.CONFIG_ROLLOUT: "false"}
    assert deployment.template_hash(deployment.effective_template(d, lookup)) == \
        deployment.template_hash(deployment.effective_template(d))


def test_deployment_status_counts_replicas():
    d = deploy()
    rs = _rs(d, 2, 2, 1)
    st = next(a.status for a in deployment.reconcile(d, [rs], NOW) if isinstance(a, SetStatus))
    assert st["updatedReplicas"] == 2 and st["availableReplicas"] == 2
    assert {"type": "Available", "status": "True",
            "reason": "MinimumReplicasAvailable"} in st["conditions"]
    progressing = next(c for c in st["conditions"] if c["type"] == "Progressing")
    assert progressing["reason"] == "NewReplicaSetAvailable"


def test_stuck_rollout_exceeds_progress_deadline():
    d = deploy(image="img:2")
    d["spec"]["progressDeadlineSeconds"] = 60
    old = _rs(deploy(image="img:1"), 2, 2, 1)
    new = _rs(d, 1, 0, 2)
    st = next(a.status for a in deployment.reconcile(d, [old, new], NOW)
              if isinstance(a, SetStatus))
    d["status"] = st
    later = next(a.status for a in deployment.reconcile(d, [old, new], NOW + 61)
                 if isinstance(a, SetStatus))
    cond = next(c for c in later["conditions"] if c["type"] == "Progressing")
    assert cond["reason"] == "ProgressDeadlineExceeded" and cond["status"] == "False"
    from gitops.health import assess
    d["status"] = later
    assert assess(d).status == "Degraded"


def test_paused_deployment_does_not_roll():
    d = deploy(image="img:2")
    d["spec"]["paused"] = True
    old = _rs(deploy(image="img:1"), 2, 2, 1)
    assert [type(a) for a in deployment.reconcile(d, [old], NOW)] == [SetStatus]


def test_deployment_prunes_history_beyond_limit():
    d = deploy()
    d["spec"]["revisionHistoryLimit"] = 1
    current = _rs(d, 2, 2, 5)
    olds = []
    for rev in (1, 2, 3):
        o = _rs(deploy(image=f"old:{rev}"), 0, 0, rev)
        o["status"] = {"replicas": 0}
        olds.append(o)
    deleted = [a.key.name for a in deployment.reconcile(d, [current, *olds], NOW)
               if isinstance(a, Delete)]
    assert deleted == [olds[0]["metadata"]["name"], olds[1]["metadata"]["name"]]


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
            "status": {"conditions": [{"type": "Ready", "status": str(ready)}]}}


def test_scheduler_binds_to_least_loaded_ready_node():
    pods = [pod("bound", node="n1"), pod("new", node=None)]
    pods[1]["spec"].pop("nodeName")
    actions = scheduler.reconcile(pods, [node("n1"), node("n2"), node("n3", ready=False)])
    assert [a.obj["spec"]["nodeName"] for a in actions] == ["n2"]


def test_scheduler_reports_unschedulable():
    p = pod("new")
    p["spec"].pop("nodeName")
    p["spec"]["nodeSelector"] = {"disk": "ssd"}
    [action] = scheduler.reconcile([p], [node("n1")])
    assert "nodeName" not in action.obj["spec"]
    assert action.obj["status"]["conditions"][0]["reason"] == "Unschedulable"


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
    store = SqliteStore(tmp_path / "s.db")
    store.create(node("n1"))
    store.create({k: v for k, v in deploy().items()})
    store.create(svc(target=8080))
    mgr = ControllerManager(store, random.Random(0))
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
