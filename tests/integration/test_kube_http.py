"""The Kubernetes API over real HTTP(S) on 127.0.0.1: discovery, OpenAPI, Status errors,
lists, Tables, watches, subresources and deletion, against a real SQLite store."""

from __future__ import annotations

import json
import time
import urllib.request

import pytest

from gitops.model import ObjectKey
from gitops.store.changes import ChangeLog
from gitops.store import Registry, SqliteStore
from tests.kube_support import TOKEN, KubeServer

AGG = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json"
TABLE = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json"


@pytest.fixture
def api(tmp_path):
    store = Registry(SqliteStore(tmp_path / "state.db"))
    with KubeServer(store, tmp_path) as server:
        yield server
    store.close()


def cm(name, data=None, labels=None, ns=None):
    meta = {"name": name, **({"labels": labels} if labels else {}),
            **({"namespace": ns} if ns else {})}
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta, "data": data or {"k": "v"}}


def deployment(name="web", replicas=None):
    spec = {"selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}},
                         "spec": {"containers": [{"name": "app", "image": "gitops/busybox:1"}]}}}
    if replicas is not None:
        spec["replicas"] = replicas
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name},
            "spec": spec}


CMS = "/api/v1/namespaces/default/configmaps"
DEPLOYS = "/apis/apps/v1/namespaces/default/deployments"


def test_discovery_legacy_and_aggregated(api):
    status, _, version = api.request("GET", "/version")
    assert status == 200 and (version["major"], version["minor"]) == ("1", "32")
    status, _, core = api.request("GET", "/api")
    assert core["kind"] == "APIVersions" and core["versions"] == ["v1"]
    status, headers, agg = api.request("GET", "/api", headers={"Accept": AGG})
    assert headers["Content-Type"].startswith("application/json;g=apidiscovery.k8s.io;v=v2")
    [group] = agg["items"]
    pods = next(r for r in group["versions"][0]["resources"] if r["resource"] == "pods")
    assert pods["scope"] == "Namespaced" and pods["shortNames"] == ["po"]
    assert {s["subresource"] for s in pods["subresources"]} >= {
        "status", "log", "exec", "attach", "portforward", "eviction"}
    _, _, groups = api.request("GET", "/apis")
    assert {g["name"] for g in groups["groups"]} == {
        "apps", "batch", "policy", "authentication.k8s.io", "authorization.k8s.io",
        "coordination.k8s.io"}
    _, _, apps = api.request("GET", "/apis/apps")
    assert apps["preferredVersion"]["groupVersion"] == "apps/v1"
    _, _, resources = api.request("GET", "/apis/apps/v1")
    names = {r["name"]: r for r in resources["resources"]}
    assert names["deployments"]["shortNames"] == ["deploy"]
    assert names["deployments"]["categories"] == ["all"]
    assert names["deployments/scale"]["kind"] == "Scale"
    status, _, missing = api.request("GET", "/apis/extensions/v1beta1")
    assert status == 404 and missing["kind"] == "Status" and missing["reason"] == "NotFound"


def test_openapi_v3_documents_carry_merge_keys_and_field_validation(api):
    _, _, index = api.request("GET", "/openapi/v3")
    url = index["paths"]["apis/apps/v1"]["serverRelativeURL"]
    assert url.startswith("/openapi/v3/apis/apps/v1?hash=")
    _, _, doc = api.request("GET", url)
    deploy = doc["components"]["schemas"]["io.k8s.api.apps.v1.Deployment"]
    assert deploy["x-kubernetes-group-version-kind"] == [
        {"group": "apps", "kind": "Deployment", "version": "v1"}]
    pod_spec = doc["components"]["schemas"]["io.k8s.api.core.v1.PodSpec"]
    assert pod_spec["properties"]["containers"]["x-kubernetes-patch-merge-key"] == "name"
    assert pod_spec["properties"]["nodeName"]["type"] == "string"       # not [string, null]
    patch = doc["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments/{name}"]["patch"]
    assert "fieldValidation" in {p["name"] for p in patch["parameters"]}
    assert patch["x-kubernetes-group-version-kind"]["kind"] == "Deployment"
    text = json.dumps(doc)
    assert "/api/_definitions.json" not in text and "#/$defs/" not in text


def test_requests_without_the_token_get_401_on_both_listeners(api):
    for secure in (False, True):
        for token in (None, "wrong"):
            status, _, body = api.request("GET", CMS, token=token, secure=secure)
            assert status == 401 and body["kind"] == "Status"
            assert body["reason"] == "Unauthorized"
    assert api.request("GET", CMS, secure=True)[0] == 200


def test_errors_are_status_objects_with_kubernetes_codes(api):
    status, _, body = api.request("GET", DEPLOYS + "/nope")
    assert (status, body["reason"], body["message"]) == (
        404, "NotFound", 'deployments.apps "nope" not found')
    assert body["details"] == {"name": "nope", "group": "apps", "kind": "deployments"}
    assert api.request("GET", "/api/v1/widgets")[0] == 404
    assert api.request("POST", CMS, cm("a"))[0] == 201
    status, _, body = api.request("POST", CMS, cm("a"))
    assert (status, body["reason"]) == (409, "AlreadyExists")
    current = api.request("GET", CMS + "/a")[2]
    stale = {**current, "data": {"k": "2"}}
    assert api.request("PUT", CMS + "/a", {**current, "data": {"k": "1"}})[0] == 200
    status, _, body = api.request("PUT", CMS + "/a", stale)
    assert (status, body["reason"]) == (409, "Conflict")
    assert "the object has been modified" in body["message"]
    unknown = {**cm("b"), "spec": {"bogus": 1}}
    status, _, body = api.request("POST", CMS + "?fieldValidation=Strict", unknown)
    assert (status, body["reason"]) == (400, "BadRequest")
    assert body["message"] == 'strict decoding error: unknown field "spec"'
    status, headers, _ = api.request("POST", CMS + "?fieldValidation=Warn", unknown)
    assert status == 201 and 'unknown field' in headers["Warning"]
    bad = deployment("bad")
    bad["spec"]["replicas"] = "three"
    status, _, body = api.request("POST", DEPLOYS, bad)
    assert (status, body["reason"]) == (422, "Invalid")
    assert body["details"]["causes"][0]["field"] == "spec.replicas"
    status, _, body = api.request("POST", CMS, cm("c", ns="other"))
    assert (status, body["reason"]) == (400, "BadRequest")
    status, _, body = api.request("PATCH", CMS + "/a", {"data": {}},
                                  headers={"Content-Type": "text/plain"})
    assert (status, body["reason"]) == (415, "UnsupportedMediaType")
    status, _, body = api.request("PATCH", CMS + "/a", b"data: {}",
                                  headers={"Content-Type": "application/apply-patch+yaml"})
    assert status == 400 and "fieldManager" in body["message"]
    assert api.request("PUT", CMS, cm("a"))[2]["reason"] == "MethodNotAllowed"
    status, _, body = api.request("POST", CMS, b"k8s\x00\n\x0f", headers={
        "Content-Type": "application/vnd.kubernetes.protobuf"})
    assert (status, body["reason"]) == (415, "UnsupportedMediaType")
    assert "--dry-run=client -o yaml | kubectl apply -f -" in body["message"]
    hostpath = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "h"}, "spec": {
        "containers": [{"name": "c", "image": "i"}],
        "volumes": [{"name": "v", "hostPath": {"path": "/etc"}}]}}
    status, _, body = api.request("POST", "/api/v1/namespaces/default/pods", hostpath)
    assert (status, body["reason"]) == (403, "Forbidden") and "hostPath" in body["message"]
    # malformed bodies are the client's error (400), never the server's (500)
    api.store.create(deployment("scaled", replicas=1))
    for method, path, body, headers in (
            ("POST", CMS, {"metadata": "x"}, {}),
            ("PUT", CMS + "/a", {"metadata": ["x"]}, {}),
            ("PATCH", CMS + "/a", {"metadata": "x"},
             {"Content-Type": "application/merge-patch+json"}),
            ("PUT", DEPLOYS + "/scaled/scale", "x", {}),
            ("PUT", DEPLOYS + "/scaled/scale", {"spec": "x"}, {})):
        status, _, answer = api.request(method, path, body, headers=headers)
        assert (status, answer["reason"]) == (400, "BadRequest"), (method, path, answer)
    # a negative limit is no limit, as in Kubernetes
    status, _, listed = api.request("GET", CMS + "?limit=-1")
    assert status == 200 and [i["metadata"]["name"] for i in listed["items"]] == ["a", "b"]
    assert "continue" not in listed["metadata"]


def test_list_selectors_pages_and_tables(api):
    for i in range(5):
        api.store.create(cm(f"c{i}", labels={"tier": "a" if i % 2 else "b"}))
    api.store.create(cm("elsewhere", ns="prod"))
    _, _, body = api.request("GET", CMS + "?labelSelector=tier%3Da")
    assert [o["metadata"]["name"] for o in body["items"]] == ["c1", "c3"]
    assert body["kind"] == "ConfigMapList" and int(body["metadata"]["resourceVersion"]) >= 6
    _, _, body = api.request("GET", "/api/v1/configmaps?fieldSelector=metadata.namespace%3Dprod")
    assert [o["metadata"]["name"] for o in body["items"]] == ["elsewhere"]
    _, _, first = api.request("GET", CMS + "?limit=2")
    assert [o["metadata"]["name"] for o in first["items"]] == ["c0", "c1"]
    assert first["metadata"]["remainingItemCount"] == 3
    _, _, rest = api.request("GET", CMS + "?limit=10&continue=" + first["metadata"]["continue"])
    assert [o["metadata"]["name"] for o in rest["items"]] == ["c2", "c3", "c4"]
    assert "continue" not in rest["metadata"]
    # a continue token older than the change log keeps is 410 Expired
    api.store.changes = ChangeLog(api.store.resource_version() + 5)
    status, _, body = api.request("GET", CMS + "?limit=2&continue=" +
                                  first["metadata"]["continue"])
    assert (status, body["reason"]) == (410, "Expired")
    _, _, table = api.request("GET", CMS + "?labelSelector=tier%3Db",
                              headers={"Accept": TABLE})
    assert table["kind"] == "Table"
    assert [c["name"] for c in table["columnDefinitions"]] == ["Name", "Data", "Age"]
    assert [r["cells"][:2] for r in table["rows"]] == [["c0", 1], ["c2", 1], ["c4", 1]]
    assert table["rows"][0]["object"]["metadata"]["labels"] == {"tier": "b"}
    _, _, one = api.request("GET", CMS + "/c0?includeObject=Object", headers={"Accept": TABLE})
    assert one["rows"][0]["object"]["data"] == {"k": "v"}


def stream(api, path: str) -> list[dict]:
    """Every event of a watch (the path carries timeoutSeconds, so it ends)."""
    req = urllib.request.Request(api.url + path, headers={"Authorization": f"Bearer {TOKEN}"})
    with urllib.request.urlopen(req, timeout=30) as resp:
        return [json.loads(line) for line in resp.read().decode().splitlines() if line]


def test_watch_resumes_from_a_resource_version_and_expires_old_ones(api):
    first = api.store.create(cm("a", labels={"w": "1"}))
    rv = first["metadata"]["resourceVersion"]
    api.store.create(cm("b", labels={"w": "1"}))
    a = api.store.get(ObjectKey("ConfigMap", "default", "a"))
    a["metadata"]["labels"] = {"w": "2"}          # leaves the selection below
    api.store.update(a)
    api.store.delete(ObjectKey("ConfigMap", "default", "b"))
    events = stream(api, f"{CMS}?watch=1&resourceVersion={rv}&timeoutSeconds=1")
    assert [(e["type"], e["object"]["metadata"]["name"]) for e in events] == [
        ("ADDED", "b"), ("MODIFIED", "a"), ("DELETED", "b")]
    rvs = [int(e["object"]["metadata"]["resourceVersion"]) for e in events]
    assert rvs == sorted(rvs) and rvs[0] > int(rv)
    # without a resourceVersion: the current state first, as ADDED
    events = stream(api, f"{CMS}?watch=true&timeoutSeconds=1")
    assert [(e["type"], e["object"]["metadata"]["name"]) for e in events] == [("ADDED", "a")]
    # selectors apply to changes: leaving the selection is a DELETED for this watch
    c = api.store.create(cm("c", labels={"w": "1"}))
    c["metadata"]["labels"] = {"w": "3"}
    moved = api.store.update(c)
    # from c's creation on, c was in the selection: it leaves it, whatever the current
    # state (judged on the object before and after the change, as the watch cache does)
    [event] = stream(api, f"{CMS}?watch=1&labelSelector=w%3D1&resourceVersion="
                          f"{c['metadata']['resourceVersion']}&timeoutSeconds=1")
    assert (event["type"], event["object"]["metadata"]["labels"]) == ("DELETED", {"w": "1"})
    assert event["object"]["metadata"]["resourceVersion"] == moved["metadata"][
        "resourceVersion"]
    assert stream(api, f"{CMS}?watch=1&labelSelector=w%3D1&resourceVersion="
                       f"{moved['metadata']['resourceVersion']}&timeoutSeconds=1") == []
    events = stream(api, f"{CMS}?watch=1&labelSelector=w%3D1&resourceVersion={rv}"
                         "&timeoutSeconds=1")
    assert [(e["type"], e["object"]["metadata"]["name"]) for e in events][-2:] == [
        ("ADDED", "c"), ("DELETED", "c")]
    # too old: an ERROR event carrying a 410 Expired Status
    api.store.changes = ChangeLog(api.store.resource_version())
    [error] = stream(api, f"{CMS}?watch=1&resourceVersion={rv}&timeoutSeconds=1")
    assert error["type"] == "ERROR"
    assert (error["object"]["code"], error["object"]["reason"]) == (410, "Expired")
    # initial events end with a bookmark when asked for (watch-list)
    events = stream(api, f"{CMS}?watch=1&sendInitialEvents=true&allowWatchBookmarks=true"
                         "&resourceVersionMatch=NotOlderThan&timeoutSeconds=1")
    assert [e["type"] for e in events] == ["ADDED", "ADDED", "BOOKMARK"]
    assert events[-1]["object"]["metadata"]["annotations"] == {
        "k8s.io/initial-events-end": "true"}


def test_watch_as_table_sends_headers_once(api):
    api.store.create(cm("a"))
    api.store.create(cm("b"))
    req = urllib.request.Request(api.url + CMS + "?watch=1&timeoutSeconds=1", headers={
        "Authorization": f"Bearer {TOKEN}", "Accept": TABLE})
    with urllib.request.urlopen(req, timeout=30) as resp:
        events = [json.loads(line) for line in resp.read().decode().splitlines() if line]
    assert [e["object"]["kind"] for e in events] == ["Table", "Table"]
    assert events[0]["object"]["columnDefinitions"] and not events[1]["object"][
        "columnDefinitions"]
    assert events[1]["object"]["rows"][0]["cells"][0] == "b"


def test_scale_status_and_secret_masking(api):
    api.store.create(deployment(replicas=2))
    _, _, scale = api.request("GET", DEPLOYS + "/web/scale")
    assert (scale["kind"], scale["spec"]["replicas"]) == ("Scale", 2)
    assert scale["status"]["selector"] == "app=web"
    status, _, _ = api.request("PATCH", DEPLOYS + "/web/scale", {"spec": {"replicas": 4}},
                               headers={"Content-Type": "application/merge-patch+json"})
    assert status == 200
    live = api.store.get(ObjectKey("Deployment", "default", "web"))
    assert live["spec"]["replicas"] == 4
    assert live["metadata"]["managedFields"][-1]["subresource"] == "scale"
    scale = api.request("GET", DEPLOYS + "/web/scale")[2]
    scale["spec"]["replicas"] = 1
    assert api.request("PUT", DEPLOYS + "/web/scale", scale)[0] == 200
    assert api.request("PUT", DEPLOYS + "/web/scale", scale)[2]["reason"] == "Conflict"
    # status moves only through /status; the main resource keeps it
    obj = api.request("GET", DEPLOYS + "/web")[2]
    obj["status"] = {"replicas": 9}
    obj = api.request("PUT", DEPLOYS + "/web/status", obj)[2]
    assert obj["status"] == {"replicas": 9}
    obj["status"] = {"replicas": 0}
    obj["metadata"]["labels"] = {"x": "y"}
    obj = api.request("PUT", DEPLOYS + "/web", obj)[2]
    assert obj["status"] == {"replicas": 9} and obj["metadata"]["labels"] == {"x": "y"}
    # a status no Kubernetes server stores (controllers and health read it) is refused
    status, _, body = api.request("PATCH", DEPLOYS + "/web/status",
                                  {"status": {"replicas": "many"}},
                                  headers={"Content-Type": "application/merge-patch+json"})
    assert (status, body["reason"]) == (422, "Invalid")
    assert body["details"]["causes"][0]["field"] == "status.replicas"
    assert api.store.get(ObjectKey("Deployment", "default", "web"))["status"] == {"replicas": 9}
    # Secret values never leave; written back masked, they keep their stored value
    secret = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"},
              "data": {"password": "aHVudGVyMg=="}}
    _, _, created = api.request("POST", "/api/v1/namespaces/default/secrets", secret)
    assert created["data"] == {"password": "***"}
    created["metadata"]["labels"] = {"a": "b"}
    assert api.request("PUT", "/api/v1/namespaces/default/secrets/s", created)[0] == 200
    stored = api.store.get(ObjectKey("Secret", "default", "s"))
    assert stored["data"] == {"password": "aHVudGVyMg=="} and stored["metadata"]["labels"]
    # nor through an error or a selector: a failing JSON patch test, a missing path, a
    # field selector on a value (which would answer "is the password X?")
    for op in ({"op": "test", "path": "/data/password", "value": "x"},
               {"op": "add", "path": "/nope/x", "value": 1}):
        status, _, body = api.request("PATCH", "/api/v1/namespaces/default/secrets/s", [op],
                                      headers={"Content-Type": "application/json-patch+json"})
        assert status == 422 and "aHVudGVyMg" not in json.dumps(body)
    status, _, body = api.request(
        "GET", "/api/v1/secrets?fieldSelector=data.password%3DaHVudGVyMg%3D%3D")
    assert (status, body["message"]) == (400, "field label not supported: data.password")
    _, _, body = api.request("GET", "/api/v1/secrets?fieldSelector=metadata.name%3Ds")
    assert [i["metadata"]["name"] for i in body["items"]] == ["s"]


def owned(name: str, owner: dict) -> dict:
    obj = cm(name)
    obj["metadata"]["ownerReferences"] = [{"apiVersion": "apps/v1", "kind": "Deployment",
                                           "name": owner["metadata"]["name"],
                                           "uid": owner["metadata"]["uid"], "controller": True}]
    return obj


def test_delete_propagation_preconditions_and_collections(api):
    store = api.store
    for policy, survives in (("Orphan", True), ("Foreground", False), ("Background", True)):
        owner = store.create(deployment(f"o-{policy.lower()}"))
        dep = store.create(owned(f"d-{policy.lower()}", owner))
        status, _, gone = api.request("DELETE", f"{DEPLOYS}/{owner['metadata']['name']}",
                                      {"propagationPolicy": policy})
        assert status == 200 and gone["metadata"]["name"] == owner["metadata"]["name"]
        assert store.get(ObjectKey("Deployment", "default", owner["metadata"]["name"])) is None
        left = store.get(ObjectKey("ConfigMap", "default", dep["metadata"]["name"]))
        assert (left is not None) == survives
        if policy == "Orphan":
            assert "ownerReferences" not in left["metadata"]
        if policy == "Background":          # the garbage collector finishes the job later
            assert left["metadata"]["ownerReferences"]
    store.create(cm("p"))
    status, _, body = api.request("DELETE", CMS + "/p", {"preconditions": {"uid": "other"}})
    assert (status, body["reason"]) == (409, "Conflict") and "Precondition" in body["message"]
    assert api.request("DELETE", CMS + "/p?dryRun=All")[0] == 200
    assert store.get(ObjectKey("ConfigMap", "default", "p")) is not None
    assert api.request("DELETE", CMS + "/p")[0] == 200
    assert api.request("DELETE", CMS + "/p")[2]["reason"] == "NotFound"
    for i in range(3):
        store.create(cm(f"x{i}", labels={"batch": "1"}))
    store.create(cm("y"))
    _, _, body = api.request("DELETE", CMS + "?labelSelector=batch%3D1")
    assert sorted(o["metadata"]["name"] for o in body["items"]) == ["x0", "x1", "x2"]
    assert [o["metadata"]["name"] for o in store.list("ConfigMap")] == [
        "d-background", "d-orphan", "y"]


def test_namespaces_default_exists_and_deleting_one_takes_its_contents(api):
    _, _, ns = api.request("GET", "/api/v1/namespaces/default")
    assert ns["status"] == {"phase": "Active"}
    status, _, body = api.request("DELETE", "/api/v1/namespaces/default")
    assert (status, body["reason"]) == (403, "Forbidden")
    api.request("POST", "/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace",
                                               "metadata": {"name": "team"}})
    api.store.create(cm("inside", ns="team"))
    api.store.create(cm("outside"))
    assert api.request("DELETE", "/api/v1/namespaces/team")[0] == 200
    assert api.store.get(ObjectKey("ConfigMap", "team", "inside")) is None
    assert api.store.get(ObjectKey("ConfigMap", "default", "outside")) is not None


def test_pod_deletion_is_graceful_unless_forced(api):
    pods = "/api/v1/namespaces/default/pods"
    for name in ("slow", "forced"):
        api.store.create({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
                          "spec": {"nodeName": "n1", "containers": [{"name": "c",
                                                                      "image": "i"}]}})
    status, _, pod = api.request("DELETE", f"{pods}/slow")
    assert status == 200 and pod["metadata"]["deletionTimestamp"]     # the node finishes
    assert api.store.get(ObjectKey("Pod", "default", "slow")) is not None
    status, _, _ = api.request("DELETE", f"{pods}/forced", {"gracePeriodSeconds": 0})
    assert status == 200 and api.store.get(ObjectKey("Pod", "default", "forced")) is None


def test_requests_waiting_for_the_store_never_hold_the_event_loop(api):
    """The loop also carries watches and the service proxy: a request waiting for another
    thread's store transaction waits on a worker thread."""
    import threading
    api.store.create(cm("c"))
    api.store.create(deployment(replicas=1))
    holding, release = threading.Event(), threading.Event()

    def long_transaction() -> None:
        with api.store.transaction():
            holding.set()
            release.wait(30)

    holder = threading.Thread(target=long_transaction)
    holder.start()
    assert holding.wait(10)
    answers: dict[str, int] = {}
    paths = {"get": CMS + "/c", "status": DEPLOYS + "/web/status",
             "scale": DEPLOYS + "/web/scale", "log": "/api/v1/namespaces/default/pods/p/log",
             "list": CMS}
    waiting = [threading.Thread(target=lambda n=n, p=p: answers.update(
        {n: api.request("GET", p)[0]})) for n, p in paths.items()]
    try:
        for t in waiting:
            t.start()
        time.sleep(0.5)                         # let them reach the server first
        status, _, version = api.request("GET", "/version", timeout=10)
        assert status == 200 and version["major"] == "1"
        assert answers == {}                    # all still waiting for the store
    finally:
        release.set()
        holder.join(10)
        for t in waiting:
            t.join(30)
    assert answers == {"get": 200, "status": 200, "scale": 200, "log": 404, "list": 200}


def test_create_with_generate_name_gets_a_fresh_name_each_time(api):
    body = {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"generateName": "seed-"},
            "spec": {"template": {"spec": {"restartPolicy": "Never", "containers": [
                {"name": "c", "image": "gitops/busybox:1"}]}}}}
    names = []
    for _ in range(2):
        status, _, made = api.request("POST", "/apis/batch/v1/namespaces/default/jobs", body)
        assert status == 201, made
        names.append(made["metadata"]["name"])
    assert all(n.startswith("seed-") and len(n) == 10 for n in names) and names[0] != names[1]
    bad = {**body, "metadata": {"generateName": "Seed_"}}
    status, _, err = api.request("POST", "/apis/batch/v1/namespaces/default/jobs", bad)
    assert status == 422, err
