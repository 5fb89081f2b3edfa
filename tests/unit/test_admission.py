"""The API server's admission rules (gitops.admission), table-driven from the YAML cases
in tests/unit/cases/defaults/ and cases/immutable/, and as the store's registry runs them
for every writer."""

from __future__ import annotations

import base64

import pytest

from gitops.admission import defaults, immutable, prepare
from gitops.admission.errors import Invalid, NamespaceNotFound, NamespaceTerminating
from gitops.model import ObjectKey
from gitops.model.qos import qos_class
from gitops.store.registry import DeleteOptions
from gitops.testing import memory_store, namespace
from tests.unit.cases import load


@pytest.mark.parametrize("case", load("defaults"))
def test_defaults(case):
    before = defaults.json_copy(case["object"])
    out = defaults.with_defaults(case["object"])
    assert case["object"] == before                       # a copy: the input is untouched
    got = out
    for part in case.get("expected_path", []):
        got = got[part] if isinstance(got, list) else got.get(part)
    assert got == case["expected"]
    assert defaults.with_defaults(out) == out             # filling twice changes nothing


@pytest.mark.parametrize("case", load("immutable"))
def test_immutable_fields(case):
    found = immutable.violations(case["new"], case["old"])
    assert [path for path, _ in found] == [path for path, _ in case["refused"]]
    for (_, message), (_, start) in zip(found, case["refused"]):
        assert message.startswith(" ".join(start.split())), message


def test_string_data_is_merged_into_data_and_never_kept():
    secret = {"kind": "Secret", "data": {"a": base64.b64encode(b"old").decode(),
                                         "b": base64.b64encode(b"kept").decode()},
              "stringData": {"a": "new", "c": "plain\ntext"}}
    prepare.merge_string_data(secret)
    assert secret == {"kind": "Secret", "data": {
        "a": base64.b64encode(b"new").decode(), "b": base64.b64encode(b"kept").decode(),
        "c": base64.b64encode(b"plain\ntext").decode()}}
    odd = {"kind": "Secret", "stringData": {"a": 1}}      # validation refuses it
    prepare.merge_string_data(odd)
    assert odd == {"kind": "Secret", "stringData": {"a": 1}}


@pytest.mark.parametrize("spec, qos", [
    ({"containers": [{"name": "c"}]}, "BestEffort"),
    ({"containers": [{"resources": {"limits": {"cpu": "1", "memory": "1Gi"},
                                    "requests": {"cpu": "1", "memory": "1Gi"}}}]},
     "Guaranteed"),
    ({"containers": [{"resources": {"limits": {"cpu": "1", "memory": "1Gi"},
                                    "requests": {"cpu": "500m", "memory": "1Gi"}}}]},
     "Burstable"),
    ({"containers": [{"resources": {"limits": {"cpu": "1"}, "requests": {"cpu": "1"}}}]},
     "Burstable"),
    ({"containers": [{"resources": {"requests": {"nvidia.com/gpu": "1"}}}]}, "BestEffort"),
    ({"initContainers": [{"resources": {"requests": {"memory": "1Mi"}}}],
      "containers": [{}]}, "Burstable"),
])
def test_qos_class(spec, qos):
    assert qos_class(spec) == qos


# -- the registry: every writer ---------------------------------------------------------
def test_a_created_pod_is_stored_as_the_api_server_stores_it():
    store = memory_store()
    pod = store.create({"apiVersion": "v1", "kind": "Pod",
                        "metadata": {"name": "p", "annotations": {}, "labels": {}},
                        "spec": {"containers": [{"name": "c", "image": "b:1", "resources": {
                            "limits": {"cpu": "1", "memory": "64Mi"}}}]}})
    assert pod["status"] == {"phase": "Pending", "qosClass": "Guaranteed"}
    assert "annotations" not in pod["metadata"] and "labels" not in pod["metadata"]
    assert pod["spec"]["serviceAccountName"] == "default"
    assert pod["spec"]["containers"][0]["resources"]["requests"] == {"cpu": "1",
                                                                     "memory": "64Mi"}
    key = ObjectKey("Pod", "default", "p")
    status = store.update_status(key, {"phase": "Running"})    # a node's status write
    assert status["status"] == {"phase": "Running", "qosClass": "Guaranteed"}


def test_a_secrets_string_data_is_never_stored():
    store = memory_store()
    made = store.create({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"},
                         "stringData": {"password": "hunter2"}})
    assert made["data"] == {"password": base64.b64encode(b"hunter2").decode()}
    assert "stringData" not in made and made["type"] == "Opaque"
    again = store.update({**made, "stringData": {"user": "me"}})
    assert set(again["data"]) == {"password", "user"} and "stringData" not in again


def test_objects_go_into_namespaces_that_exist():
    store = memory_store()
    cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}}
    with pytest.raises(NamespaceNotFound, match='namespaces "team" not found'):
        store.create({**cm, "metadata": {"name": "c", "namespace": "team"}})
    assert store.list("ConfigMap") == []
    store.create(cm)                                     # default: always there
    store.create({**cm, "metadata": {"name": "c", "namespace": "kube-system"}})
    store.create(namespace("team"))
    made = store.create({**cm, "metadata": {"name": "c", "namespace": "team"}})
    assert made["metadata"]["namespace"] == "team"
    assert store.get(ObjectKey("Namespace", "", "team"))["status"] == {"phase": "Active"}
    store.update(namespace("team") | {"metadata": {"name": "team", "finalizers": ["x/y"]}})
    store.delete_with_options(ObjectKey("Namespace", "", "team"), DeleteOptions())
    with pytest.raises(NamespaceTerminating, match="is being terminated"):
        store.create({**cm, "metadata": {"name": "d", "namespace": "team"}})


def test_a_job_gets_a_generated_selector_and_keeps_it():
    store = memory_store()
    job = {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "migrate"},
           "spec": {"template": {"spec": {"restartPolicy": "Never",
                                          "containers": [{"name": "c", "image": "b:1"}]}}}}
    made = store.create(job)
    uid = made["metadata"]["uid"]
    assert made["spec"]["selector"] == {"matchLabels": {
        "batch.kubernetes.io/controller-uid": uid}}
    labels = made["spec"]["template"]["metadata"]["labels"]
    assert labels == {"batch.kubernetes.io/controller-uid": uid, "controller-uid": uid,
                      "batch.kubernetes.io/job-name": "migrate", "job-name": "migrate"}
    assert made["metadata"]["labels"] == labels
    # a declarative writer (git) sends the Job without them: they are kept, no change
    same = store.update({**job, "metadata": {"name": "migrate", "labels": {"team": "a"}}})
    assert same["spec"]["selector"] == made["spec"]["selector"]
    with pytest.raises(Invalid, match="spec.template: Invalid value"):
        store.update({**job, "spec": {"template": {"spec": {
            "restartPolicy": "Never", "containers": [{"name": "c", "image": "b:2"}]}}}})
    with pytest.raises(Invalid, match="`selector` not auto-generated"):
        store.create({**job, "metadata": {"name": "mine"},
                      "spec": {**job["spec"], "selector": {"matchLabels": {"a": "b"}}}})
    manual = store.create({**job, "metadata": {"name": "manual"}, "spec": {
        **job["spec"], "manualSelector": True, "selector": {"matchLabels": {"a": "b"}},
        "template": {"metadata": {"labels": {"a": "b"}}, **job["spec"]["template"]}}})
    assert manual["spec"]["selector"] == {"matchLabels": {"a": "b"}}


def test_service_addresses_are_allocated_checked_and_kept():
    store = memory_store()

    def service(name, **spec):
        return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name},
                "spec": {"ports": [{"port": 80}], **spec}}
    web = store.create(service("web", type="NodePort"))
    spec = web["spec"]
    assert spec["clusterIPs"] == [spec["clusterIP"]] and spec["ipFamilies"] == ["IPv4"]
    assert spec["ipFamilyPolicy"] == "SingleStack" and 30000 <= spec["ports"][0]["nodePort"]
    with pytest.raises(Invalid, match="provided IP is already allocated"):
        store.create(service("twin", clusterIP=spec["clusterIP"]))
    with pytest.raises(Invalid, match="is not in the valid range"):
        store.create(service("far", clusterIP="192.0.2.1"))
    with pytest.raises(Invalid, match="provided port is already allocated"):
        store.create(service("clash", type="NodePort",
                             ports=[{"port": 80, "nodePort": spec["ports"][0]["nodePort"]}]))
    mine = store.create(service("mine", clusterIP="10.96.200.7"))
    assert mine["spec"]["clusterIPs"] == ["10.96.200.7"]
    with pytest.raises(Invalid, match='spec.clusterIP: Invalid value: "10.96.200.8": field '
                                      "is immutable"):
        store.update(service("mine", clusterIP="10.96.200.8"))
    assert store.update(service("web", type="NodePort"))["spec"] == spec
    assert [s["metadata"]["name"] for s in store.list("Service")] == ["mine", "web"]
