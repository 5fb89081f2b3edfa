"""Custom kinds (pure): a CRD's kind registered, its schema's defaults, pruning and rules,
its printer columns' JSONPaths, and the CRD checks admission makes."""

from __future__ import annotations

import pytest
import yaml

from gitops.admission import custom as rules
from gitops.admission.errors import Invalid
from gitops.api.kube.custom_tables import path_value
from gitops.model import KINDS, custom, key_of

CRD = yaml.safe_load("""
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: crontabs.stable.example.com}
spec:
  group: stable.example.com
  scope: Cluster
  names: {plural: crontabs, kind: CronTab, shortNames: [ct]}
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            properties:
              cron: {type: string}
              replicas: {type: integer, default: 1, nullable: true}
              port: {x-kubernetes-int-or-string: true}
              jobs:
                type: array
                items: {type: object, properties: {name: {type: string, default: x}}}
              free: {type: object, x-kubernetes-preserve-unknown-fields: true}
""")


@pytest.fixture(autouse=True)
def registered():
    custom.register([CRD])
    yield
    custom.register([])


def test_a_crds_kind_is_registered_with_its_scope_and_goes_with_it():
    assert KINDS["CronTab"].api_version == "stable.example.com/v1"
    assert key_of({"kind": "CronTab", "metadata": {"name": "a"}}).namespace == ""
    custom.register([])
    assert "CronTab" not in KINDS and "Deployment" in KINDS


def test_defaults_pruning_and_rules_as_the_api_server_applies_them():
    obj = {"apiVersion": "stable.example.com/v1", "kind": "CronTab",
           "metadata": {"name": "a", "labels": {"kept": "yes"}},
           "spec": {"cron": "* * * * *", "junk": 1, "jobs": [{"other": 2}],
                    "free": {"any": {"thing": 1}}, "port": "http"}, "top": 1}
    assert rules.unknown_fields(obj, custom.schema_of(CRD)) == [
        "top", "spec.junk", "spec.jobs[0].other"]
    rules.fill(obj)
    assert obj == {"apiVersion": "stable.example.com/v1", "kind": "CronTab",
                   "metadata": {"name": "a", "labels": {"kept": "yes"}},
                   "spec": {"cron": "* * * * *", "jobs": [{"name": "x"}], "replicas": 1,
                            "free": {"any": {"thing": 1}}, "port": "http"}}
    rules.validate(obj, None)
    obj["spec"]["replicas"] = None                       # nullable
    obj["spec"]["port"] = 8080                           # int-or-string
    rules.validate(obj, None)
    obj["spec"]["cron"] = 5
    with pytest.raises(Invalid) as caught:
        rules.validate(obj, None)
    assert caught.value.causes == [("spec.cron",
                                    'Invalid value: "integer": must be of type string')]


def test_crd_checks():
    bad = yaml.safe_load(yaml.safe_dump(CRD))
    bad["metadata"]["name"] = "wrong"
    bad["spec"]["versions"][0]["storage"] = False
    bad["spec"]["names"]["kind"] = "Deployment"
    paths = [p for p, _ in rules.crd_problems(bad, None)]
    assert paths == ["metadata.name", "spec.versions", "spec.names.kind"]
    moved = yaml.safe_load(yaml.safe_dump(CRD))
    moved["spec"]["scope"] = "Namespaced"
    assert ("spec.scope", "Invalid value: field is immutable") in \
        rules.crd_problems(moved, CRD)
    stored = yaml.safe_load(yaml.safe_dump(CRD))
    rules.fill(stored)
    rules.mutate(stored, None)
    assert stored["spec"]["names"]["singular"] == "crontab"
    assert [c["type"] for c in stored["status"]["conditions"]] == ["NamesAccepted",
                                                                    "Established"]
    assert stored["status"]["storedVersions"] == ["v1"]


@pytest.mark.parametrize("path, want", [
    (".spec.replicas", 2), (".spec.items[1].name", "b"), (".spec.items[*].name", "a"),
    ('.status.conditions[?(@.type=="Ready")].status', "True"), (".spec.missing", None),
    ("{.metadata.name}", "n")])
def test_printer_column_paths(path, want):
    obj = {"metadata": {"name": "n"},
           "spec": {"replicas": 2, "items": [{"name": "a"}, {"name": "b"}]},
           "status": {"conditions": [{"type": "Synced", "status": "False"},
                                     {"type": "Ready", "status": "True"}]}}
    assert path_value(obj, path) == want
