"""Pure parts of the Kubernetes API: table cells, durations, selectors, the change log,
discovery documents."""

import pytest

from gitops.api.kube import discovery, tables
from gitops.api.kube.selection import Selection, parse_fields, parse_labels
from gitops.model.times import human_duration
from gitops.store.changes import ChangeLog, Gone

NOW = 1_800_000_000.0


def iso(ago: float) -> str:
    from datetime import datetime, timezone
    return datetime.fromtimestamp(NOW - ago, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


@pytest.mark.parametrize("seconds, shown", [
    (-5, "<invalid>"), (-1, "0s"), (0, "0s"), (119, "119s"), (120, "2m"), (330, "5m30s"),
    (600, "10m"), (179 * 60, "179m"), (3 * 3600, "3h"), (3 * 3600 + 720, "3h12m"),
    (8 * 3600 + 60, "8h"), (47 * 3600, "47h"), (2 * 86400, "2d"), (2 * 86400 + 5 * 3600, "2d5h"),
    (30 * 86400, "30d"), (800 * 86400, "2y70d"), (10 * 365 * 86400, "10y"),
])
def test_human_duration_matches_kubectl(seconds, shown):
    assert human_duration(seconds) == shown


def pod(phase="Running", ready=True, restarts=0, finished=None, deleting=False):
    status = {"phase": phase, "podIP": "10.0.0.5", "containerStatuses": [
        {"name": "app", "ready": ready, "restartCount": restarts, "state": {"running": {}},
         "lastState": {"terminated": {"finishedAt": finished}} if finished else {}}]}
    meta = {"name": "p", "namespace": "default", "creationTimestamp": iso(300)}
    if deleting:
        meta["deletionTimestamp"] = iso(1)
    return {"kind": "Pod", "metadata": meta, "status": status,
            "spec": {"nodeName": "n1", "containers": [{"name": "app", "image": "i"},
                                                       {"name": "side", "image": "s"}]}}


@pytest.mark.parametrize("obj, cells", [
    (pod(), ["p", "0/2", "Running", "0", "5m", "10.0.0.5", "n1", "<none>", "<none>"]),
    (pod(restarts=3, finished=iso(65)), ["p", "0/2", "Running", "3 (65s ago)", "5m",
                                         "10.0.0.5", "n1", "<none>", "<none>"]),
    (pod(deleting=True), ["p", "0/2", "Terminating", "0", "5m", "10.0.0.5", "n1", "<none>",
                          "<none>"]),
])
def test_pod_rows(obj, cells):
    obj["status"]["containerStatuses"][0]["ready"] = False
    table = tables.table("Pod", [obj], now=NOW)
    assert [c["name"] for c in table["columnDefinitions"]] == [
        "Name", "Ready", "Status", "Restarts", "Age", "IP", "Node", "Nominated Node",
        "Readiness Gates"]
    assert [c["priority"] for c in table["columnDefinitions"]] == [0, 0, 0, 0, 0, 1, 1, 1, 1]
    assert table["rows"][0]["cells"] == cells
    assert table["rows"][0]["object"]["kind"] == "PartialObjectMetadata"


def test_workload_service_and_event_rows():
    deploy = {"kind": "Deployment", "metadata": {"name": "web", "creationTimestamp": iso(90)},
              "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web"}},
                       "template": {"spec": {"containers": [{"name": "a", "image": "x:1"},
                                                            {"name": "b", "image": "y:2"}]}}},
              "status": {"readyReplicas": 2, "updatedReplicas": 3, "availableReplicas": 2}}
    assert tables.table("Deployment", [deploy], now=NOW)["rows"][0]["cells"] == [
        "web", "2/3", 3, 2, "90s", "a,b", "x:1,y:2", "app=web"]
    svc = {"kind": "Service", "metadata": {"name": "s", "creationTimestamp": iso(10)},
           "spec": {"type": "NodePort", "clusterIP": "10.96.0.10", "selector": {"app": "web"},
                    "ports": [{"port": 80, "nodePort": 30080, "protocol": "TCP"},
                              {"port": 53, "protocol": "UDP"}]}}
    assert tables.table("Service", [svc], now=NOW)["rows"][0]["cells"] == [
        "s", "NodePort", "10.96.0.10", "<none>", "80:30080/TCP,53/UDP", "10s", "app=web"]
    event = {"kind": "Event", "metadata": {"name": "p.1", "creationTimestamp": iso(40)},
             "involvedObject": {"kind": "Pod", "name": "p"}, "type": "Normal",
             "reason": "Started", "message": "Started container app", "count": 2,
             "lastTimestamp": iso(30), "firstTimestamp": iso(40),
             "source": {"component": "kubelet", "host": "n1"}}
    assert tables.table("Event", [event], now=NOW)["rows"][0]["cells"] == [
        "30s", "Normal", "Started", "pod/p", "", "kubelet, n1", "Started container app",
        "40s", 2, "p.1"]
    assert tables.table("Widget", [{"metadata": {"name": "w"}}], now=NOW)["rows"][0][
        "cells"] == ["w", "<unknown>"]
    assert tables.format_selector({"matchLabels": {"a": "1"}, "matchExpressions": [
        {"key": "t", "operator": "In", "values": ["x", "y"]},
        {"key": "old", "operator": "DoesNotExist"}]}) == "a=1,t in (x,y),!old"


def test_selection_by_namespace_labels_and_fields():
    obj = {"metadata": {"name": "a", "namespace": "prod", "labels": {"app": "web"}},
           "status": {"phase": "Running"}, "spec": {"nodeName": "n1", "hostNetwork": False}}
    assert Selection("prod", parse_labels("app=web"), parse_fields("status.phase=Running"))(obj)
    assert not Selection("dev")(obj)
    assert not Selection(None, parse_labels("app!=web"))(obj)
    assert Selection(None, None, parse_fields("metadata.name==a,spec.nodeName!=n2"))(obj)
    assert not Selection(None, None, parse_fields("metadata.name!=a"))(obj)
    assert Selection(None, None, parse_fields("spec.hostNetwork=false"))(obj)
    assert Selection(None, None, parse_fields("spec.missing="))(obj)


def change(rv, kind="MODIFIED"):
    return (kind, {"metadata": {"name": f"o{rv}", "resourceVersion": str(rv)}})


def test_change_log_resumes_by_resource_version_and_expires_old_ones():
    log = ChangeLog(start_rv=10, capacity=3)
    assert log.since(10) == []
    log.extend([change(11, "ADDED"), change(12)])
    assert [(c.rv, c.type) for c in log.since(10)] == [(11, "ADDED"), (12, "MODIFIED")]
    assert [c.rv for c in log.since(11)] == [12]
    with pytest.raises(Gone):
        log.since(9)
    log.extend([change(13), change(14)])        # 11 is dropped: capacity 3
    assert [c.rv for c in log.since(11)] == [12, 13, 14]
    with pytest.raises(Gone):
        log.since(10)
    assert log.since(14) == []


def test_change_log_is_bounded_in_bytes_too():
    """Count alone does not bound memory: ten thousand 1 MiB ConfigMaps would be 10 GiB."""
    big = "x" * 1000
    log = ChangeLog(start_rv=0, capacity=100, max_bytes=3500)
    log.extend([("MODIFIED", {"kind": "ConfigMap", "metadata": {"resourceVersion": str(rv)},
                              "data": {"k": big}}) for rv in range(1, 6)])
    kept = log.since(log.floor)
    assert [c.rv for c in kept] == [3, 4, 5] and log.floor == 2
    assert kept[0].kind == "ConfigMap" and kept[0].obj["data"]["k"] == big
    kept[0].obj["data"]["k"] = "changed"           # every read is a fresh copy
    assert kept[0].obj["data"]["k"] == big


def test_discovery_lists_short_names_categories_and_subresources():
    core = discovery.resource_list("v1")
    names = {r["name"]: r for r in core["resources"]}
    assert names["pods"]["shortNames"] == ["po"] and names["pods"]["categories"] == ["all"]
    assert names["pods/exec"]["kind"] == "PodExecOptions"
    assert names["pods/log"]["verbs"] == ["get"]
    assert names["events"]["shortNames"] == ["ev"]
    apps = {r["name"]: r for r in discovery.resource_list("apps/v1")["resources"]}
    assert apps["deployments/scale"]["group"] == "autoscaling"
    every = {s for gv in ("v1", "apps/v1", "batch/v1")
             for r in discovery.resource_list(gv)["resources"] for s in r.get("shortNames", [])}
    assert {"deploy", "svc", "cm", "po", "rs", "sts", "ds", "cj", "ns", "no", "ev"} <= every
    agg = discovery.aggregated(core=False)
    groups = {i["metadata"]["name"] for i in agg["items"]}
    assert groups == {"apps", "batch", "policy", "authentication.k8s.io", "authorization.k8s.io",
                      "coordination.k8s.io"}      # Leases: leader election
    eviction = names["pods/eviction"]
    assert (eviction["kind"], eviction["group"], eviction["verbs"]) == \
        ("Eviction", "policy", ["create"])
    assert names["pods/attach"]["kind"] == "PodAttachOptions"
    assert discovery.wants_aggregated(
        "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json")
    assert not discovery.wants_aggregated("application/json")


def test_go_zero_values_are_dropped_from_writes():
    from gitops.api.kube.writes import without_go_zero_values
    template = {"metadata": {"creationTimestamp": None, "labels": {"app": "w"}},
                "spec": {"containers": [{"name": "a", "image": "i", "resources": {}}],
                         "volumes": [{"name": "v", "emptyDir": {}}]}}
    assert without_go_zero_values(template) == {
        "metadata": {"labels": {"app": "w"}},
        "spec": {"containers": [{"name": "a", "image": "i"}],
                 "volumes": [{"name": "v", "emptyDir": {}}]}}


def test_drift_actor_is_the_manager_owning_the_drifted_field():
    from gitops.sync.engine import drift_actor
    live = {"metadata": {"labels": {"a": "1"}, "managedFields": [
        {"manager": "kubectl-set", "time": "2026-01-01T00:00:01Z", "fieldsV1": {
            "f:spec": {"f:template": {"f:spec": {"f:containers": {
                'k:{"name":"app"}': {".": {}, "f:image": {}}}}}}}},
        {"manager": "kubectl-label", "time": "2026-01-01T00:00:09Z",
         "fieldsV1": {"f:metadata": {"f:labels": {"f:a": {}}}}}]},
        "spec": {"template": {"spec": {"containers": [{"name": "app", "image": "x:2"}]}}}}
    assert drift_actor(live, ["spec.template.spec.containers[0].image"]) == "kubectl-set"
    assert drift_actor(live, ["metadata.labels.a"]) == "kubectl-label"
    assert drift_actor(live, ["spec.replicas"]) == "kubectl-label"        # newest, unowned
    assert drift_actor({"metadata": {}}, ["data.x"]) == "unknown"


@pytest.mark.parametrize("spec, shown", [
    ({}, {"completions": 1, "parallelism": 1, "backoffLimit": 6}),
    ({"parallelism": 3}, {"parallelism": 3, "backoffLimit": 6}),     # a work queue
    ({"completions": 4}, {"completions": 4, "parallelism": 1, "backoffLimit": 6}),
])
def test_job_defaults_shown_as_kubernetes_defaults_them(spec, shown):
    from gitops.api.kube.present import present
    job = {"kind": "Job", "metadata": {"name": "j"}, "spec": spec}
    assert present(job)["spec"] == shown and job["spec"] == spec


def _cm(rv, tier):
    return {"kind": "ConfigMap", "metadata": {"name": "c", "resourceVersion": str(rv),
                                              "labels": {"tier": tier}}}


@pytest.mark.parametrize("event, before, after, seen", [
    ("MODIFIED", "web", "web", ("MODIFIED", "web")),
    ("MODIFIED", "db", "web", ("ADDED", "web")),         # enters the selection
    ("MODIFIED", "web", "db", ("DELETED", "web")),       # leaves it: what it was
    ("MODIFIED", "db", "db", None),
    ("ADDED", None, "web", ("ADDED", "web")),
    ("ADDED", None, "db", None),
    ("DELETED", None, "web", ("DELETED", "web")),
    ("DELETED", None, "db", None),
])
def test_a_watch_with_a_selector_judges_the_object_before_and_after(event, before, after,
                                                                     seen):
    from gitops.api.kube.watch import _as_seen
    log = ChangeLog(start_rv=0)
    log.extend([(event, _cm(5, after), _cm(4, before) if before else None)])
    [change] = log.since(0)
    got = _as_seen(change, Selection(None, parse_labels("tier=web")))
    assert (got[0], got[1]["metadata"]["labels"]["tier"],
            got[1]["metadata"]["resourceVersion"]) == (*seen, "5") if seen else got is None
