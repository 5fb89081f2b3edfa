"""One bad pod never stops the node (issue 15, robustness 1): beside each kind of bad pod
(a bad quantity, a bad key, a bad volume), an innocent pod runs on the real engine; each
bad pod alone is CreateContainerConfigError with the reason, in its status and a Warning
event. The same pods written in git are refused by validation first, with their field."""

from __future__ import annotations

import pytest
import yaml

from gitops.manifests import checks
from gitops.manifests.loader import load_text
from gitops.model import ObjectKey
from tests.docker import test_pod_spec_fields as spec_fields
from tests.docker.test_pod_spec_fields import c, get, make, until

node = spec_fields.node          # the real-engine node fixture

pytestmark = pytest.mark.docker

SLEEP = "exec sleep 3600"
CFG = [{"name": "cfg", "configMap": {"name": "settings"}}]
# name: (container fields, pod spec fields, what the status says, what validation says)
BAD = {
    "quantity": ({"resources": {"limits": {"memory": "64Mb"}}}, {},
                 "64Mb", "resources.limits.memory"),
    "cpu-quantity": ({"resources": {"limits": {"cpu": "one"}}}, {},
                     "one", "resources.limits.cpu"),
    "missing-key": ({"env": [{"name": "MODE", "valueFrom": {"configMapKeyRef": {
        "name": "settings", "key": "absent"}}}]}, {},
        'key "absent" in configmap "settings" not found', None),
    "bad-key": ({"env": [{"name": "MODE", "valueFrom": {"configMapKeyRef": {
        "name": "settings", "key": "bad key!"}}}]}, {},
        'key "bad key!"', "valueFrom.configMapKeyRef.key"),
    "items-key": ({"volumeMounts": [{"name": "cfg", "mountPath": "/cfg"}]},
                  {"volumes": [{"name": "cfg", "configMap": {
                      "name": "settings", "items": [{"key": "absent", "path": "a"}]}}]},
                  'key "absent" not found', None),
    "undeclared-volume": ({"volumeMounts": [{"name": "data", "mountPath": "/d"}]}, {},
                          'volume "data" is not defined', "volumeMounts[0].name"),
    "nfs-volume": ({"volumeMounts": [{"name": "share", "mountPath": "/d"}]},
                   {"volumes": [{"name": "share", "nfs": {"server": "nfs.example",
                                                          "path": "/x"}}]},
                   "nfs volumes are not supported", None),
    "missing-configmap": ({"volumeMounts": [{"name": "cfg", "mountPath": "/cfg"}]},
                          {"volumes": [{"name": "cfg", "configMap": {"name": "nope"}}]},
                          'configmap "nope" not found', None),
}


def waiting(pod: dict) -> dict:
    statuses = (pod.get("status") or {}).get("containerStatuses") or [{}]
    return (statuses[0].get("state") or {}).get("waiting") or {}


def test_an_innocent_pod_runs_beside_each_kind_of_bad_pod(node):
    node.store.create({"apiVersion": "v1", "kind": "ConfigMap",
                       "metadata": {"name": "settings", "namespace": "default"},
                       "data": {"mode": "fast"}})
    # Stored as they are (written before a rule existed, or through a bug): the node
    # must cope with whatever reaches it.
    for name, (fields, spec, _, _) in BAD.items():
        make(node, name, [c("app", SLEEP, **fields)], **spec)
    make(node, "innocent", [c("app", SLEEP, volumeMounts=[{"name": "cfg", "mountPath": "/cfg"}],
                              env=[{"name": "MODE", "valueFrom": {"configMapKeyRef": {
                                  "name": "settings", "key": "mode"}}}])], volumes=CFG)

    def settled():
        innocent = get(node, "innocent")
        return (innocent.get("status") or {}).get("phase") == "Running" and all(
            waiting(get(node, n)).get("reason") == "CreateContainerConfigError" for n in BAD)
    until(node, settled, timeout=60)

    for name, (_, _, says, _) in BAD.items():
        message = waiting(get(node, name)).get("message", "")
        assert says in message, (name, message)
    warned = {e["involvedObject"]["name"]: e["message"] for e in node.store.list("Event")
              if e.get("type") == "Warning" and e.get("reason") == "Failed"}
    assert set(BAD) <= set(warned), warned
    running = [x for x in node.runtime.list_containers() if x.state == "running"]
    assert [x.labels.get("gitops.pod.name") for x in running] == ["innocent"]
    assert get(node, "innocent")["status"]["containerStatuses"][0]["ready"]
    # a fixed pod recovers on the next pass, and the innocent one was never touched
    restarts = get(node, "innocent")["status"]["containerStatuses"][0]["restartCount"]
    node.store.update({**node.store.get(ObjectKey("ConfigMap", "default", "settings")),
                       "data": {"mode": "fast", "absent": "here"}})
    until(node, lambda: (get(node, "missing-key").get("status") or {}).get("phase")
          == "Running")
    assert get(node, "innocent")["status"]["containerStatuses"][0]["restartCount"] \
        == restarts


@pytest.mark.parametrize("name", [n for n, (*_, field) in BAD.items() if field])
def test_validation_refuses_the_bad_pods_it_can_see(name):
    """What only the node can know (a key or ConfigMap missing at run time, a volume type
    this node lacks) is left to it, as on a cluster; the rest never gets there."""
    fields, spec, _, field = BAD[name]
    text = yaml.safe_dump({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
                           "spec": {"containers": [c("app", SLEEP, **fields)], **spec}})
    (obj,) = load_text(text).objects
    problems = checks.run(obj)
    assert any(path.endswith(field) for path, _ in problems), problems
