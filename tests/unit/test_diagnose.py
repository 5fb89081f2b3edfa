"""Why an object is not healthy, from the YAML cases in tests/unit/cases/diagnose/: each pod
state turned into the reason a CI log reader acts on (pod.yaml), each status entry explained
through the pods a workload's selector picks (one file per kind); no Docker."""

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
    found = explain(case["entry"], case["object"], case["pods"])
    assert found == [Finding(**f) for f in case["findings"]]


def test_every_case_is_run():
    assert all("pod" in c.values[0] or "entry" in c.values[0] for c in CASES)


def pod(name="web-1", labels=None, ns="default"):
    return {"kind": "Pod",
            "metadata": {"name": name, "namespace": ns, "labels": labels or {"app": "web"}}}


def test_pods_of_uses_the_selector_and_namespace():
    deploy = {"kind": "Deployment", "metadata": {"name": "web", "namespace": "default"},
              "spec": {"selector": {"matchLabels": {"app": "web"}}}}
    pods = [pod("web-1"), pod("web-2", ns="other"), pod("db-1", labels={"app": "db"})]
    assert [p["metadata"]["name"] for p in pods_of(deploy, pods)] == ["web-1"]
    job = {"kind": "Job", "metadata": {"name": "backup", "namespace": "default"}, "spec": {}}
    assert pods_of(job, [pod("b-1", labels={"job-name": "backup"})])[0]["metadata"]["name"] \
        == "b-1"
    assert pods_of({"kind": "ConfigMap", "metadata": {"name": "x"}}, pods) == []
