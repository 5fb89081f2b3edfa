"""Why an object is not healthy, from the YAML cases in tests/unit/cases/diagnose/: each pod
state turned into the reason a CI log reader acts on (pod.yaml), each status entry explained
through the pods a workload owns (one file per kind); no Docker."""

from __future__ import annotations

import pytest

from gitops.cli.diagnose import Finding, explain, explain_pod, pods_of
from tests.unit.cases import load

CASES = load("diagnose")


@pytest.mark.parametrize("case", [c for c in CASES if "pod" in c.values[0]])
def test_explain_pod(case):
    assert explain_pod(case["pod"]) == [Finding(**f) for f in case["findings"]]


@pytest.mark.parametrize("case", [c for c in CASES if "entry" in c.values[0]])
def test_explain(case):
    found = explain(case["entry"], case["object"], case["pods"], case.get("replicasets", []))
    assert found == [Finding(**f) for f in case["findings"]]


def test_every_case_is_run():
    assert all("pod" in c.values[0] or "entry" in c.values[0] for c in CASES)


def pod(name="web-1", owner="rs-uid", labels=None, ns="default"):
    return {"kind": "Pod",
            "metadata": {"name": name, "namespace": ns, "labels": labels or {"app": "web"},
                         "ownerReferences": [{"uid": owner, "controller": True}]}}


def test_pods_of_follows_owner_references_not_labels():
    deploy = {"kind": "Deployment", "metadata": {"name": "web", "namespace": "default",
                                                 "uid": "web-uid"},
              "spec": {"selector": {"matchLabels": {"app": "web"}}}}
    rs = [{"kind": "ReplicaSet", "metadata": {"uid": "rs-uid", "ownerReferences": [
        {"uid": "web-uid", "controller": True}]}}]
    helm_test = pod("web-test", owner="")
    helm_test["metadata"].pop("ownerReferences")
    pods = [pod("web-1"), pod("other-1", owner="other-rs"), helm_test]
    assert [p["metadata"]["name"] for p in pods_of(deploy, pods, rs)] == ["web-1"]
    assert pods_of(deploy, pods) == []          # without its ReplicaSets: none is known
    job = {"kind": "Job", "metadata": {"name": "backup", "namespace": "default",
                                       "uid": "job-uid"}, "spec": {}}
    assert [p["metadata"]["name"] for p in pods_of(job, [pod("b-1", owner="job-uid"),
                                                         pod("b-2")])] == ["b-1"]
    assert pods_of({"kind": "ConfigMap", "metadata": {"name": "x"}}, pods) == []
