"""`gitops get` tables as kubectl prints them: columns per kind, -o wide extras, name/json."""

from __future__ import annotations

import json

import pytest

from gitops.cli import output
from gitops.model import KINDS

OLD = "2020-01-01T00:00:00Z"
TEMPLATE = {"selector": {"matchLabels": {"app": "web"}},
            "template": {"spec": {"containers": [{"name": "web", "image": "gitops/python:3.11"},
                                                 {"name": "log", "image": "gitops/busybox:1"}]}}}


def obj(kind, spec=None, status=None, **extra):
    return {"kind": kind, "metadata": {"name": "x", "namespace": "default",
                                       "creationTimestamp": OLD},
            "spec": spec or {}, "status": status or {}, **extra}


CASES = [
    (obj("Deployment", {**TEMPLATE, "replicas": 2},
         {"readyReplicas": 1, "updatedReplicas": 2, "availableReplicas": 1}),
     ["x", "1/2", "2", "1"], ["web,log", "gitops/python:3.11,gitops/busybox:1", "app=web"]),
    (obj("Service", {"type": "NodePort", "clusterIP": "10.96.0.5", "selector": {"app": "web"},
                     "ports": [{"port": 80, "nodePort": 30080}]}),
     ["x", "NodePort", "10.96.0.5", "<none>", "80:30080/TCP"], ["app=web"]),
    (obj("PersistentVolumeClaim", {}, {"phase": "Bound", "capacity": {"storage": "1Gi"},
                                       "accessModes": ["ReadWriteOnce"]}),
     ["x", "Bound", "1Gi", "RWO"], []),
    (obj("Job", {**TEMPLATE, "completions": 1},
         {"succeeded": 1, "startTime": "2020-01-01T00:00:00Z",
          "completionTime": "2020-01-01T00:01:05Z",
          "conditions": [{"type": "Complete", "status": "True"}]}),
     ["x", "Complete", "1/1", "1m5s"], ["web,log", "gitops/python:3.11,gitops/busybox:1",
                                         "app=web"]),
    (obj("CronJob", {"schedule": "0 3 * * *"}, {}), ["x", "0 3 * * *", "False", "0", "<none>"],
     []),
    (obj("Endpoints", subsets=[{"addresses": [{"ip": "10.213.0.2"}, {"ip": "10.213.0.3"}],
                                "ports": [{"port": 8080}]}]),
     ["x", "10.213.0.2:8080,10.213.0.3:8080"], []),
    (obj("Namespace", {}, {"phase": "Active"}), ["x", "Active"], []),
]


@pytest.mark.parametrize("item, cells, wide_cells", CASES, ids=[c[0]["kind"] for c in CASES])
def test_table_columns_per_kind(item, cells, wide_cells):
    info = KINDS[item["kind"]]
    for fmt, want in (("", cells), ("wide", cells + wide_cells)):
        lines = output.render_objects(info, [item], fmt, single=False,
                                      show_namespace=False).splitlines()
        header, row = lines[0].split(), [c for c in lines[1].split("   ") if c.strip()]
        row = [c.strip() for c in row]
        assert row[:len(cells)] == cells
        if fmt and wide_cells:
            assert row[-len(wide_cells):] == wide_cells
        assert row[len(cells)].endswith("d")                     # AGE, in days
        n_header = len(output._HEADERS[item["kind"]]) + (
            len(output._WIDE.get(item["kind"], [])) if fmt else 0)
        assert len(row) == n_header == len(want) + 1, (header, row)


def test_name_json_yaml_and_namespaces():
    items = [obj("ConfigMap", data={"a": "1"})]
    info = KINDS["ConfigMap"]
    assert output.render_objects(info, items, "name", False, False) == "configmap/x"
    assert json.loads(output.render_objects(info, items, "json", False, False))["kind"] == "List"
    assert json.loads(output.render_objects(info, items, "json", True, False))["kind"] \
        == "ConfigMap"
    assert "kind: List" in output.render_objects(info, items, "yaml", False, False)
    table = output.render_objects(info, items, "", False, True)
    assert table.splitlines()[0].split() == ["NAMESPACE", "NAME", "DATA", "AGE"]
    assert output.render_objects(info, [], "", False, False) == "No resources found."


def test_watch_prints_the_table_then_changed_rows():
    def pod(name, phase, ready):
        return {"kind": "Pod", "metadata": {"name": name, "namespace": "default",
                                            "creationTimestamp": OLD},
                "spec": {"containers": [{"name": "c"}]},
                "status": {"phase": phase, "containerStatuses": [
                    {"name": "c", "ready": ready, "restartCount": 0, "state": {}}]}}
    polls = iter([[pod("a", "Pending", False)],
                  [{**pod("a", "Pending", False),                        # only AGE moved
                    "metadata": {"name": "a", "namespace": "default",
                                 "creationTimestamp": "2021-01-01T00:00:00Z"}}],
                  [pod("a", "Running", True), pod("b", "Pending", False)],
                  ])

    def fetch():
        return next(polls)              # StopIteration after the last poll ends the watch
    lines = list(output.watch_lines(KINDS["Pod"], fetch, "", False, sleep=lambda s: None))
    cells = [ln.split() for ln in lines]
    assert cells[0] == ["NAME", "READY", "STATUS", "RESTARTS", "AGE"]
    assert [c[:3] for c in cells[1:]] == [["a", "0/1", "ContainerCreating"], ["a", "1/1", "Running"],
                                          ["b", "0/1", "ContainerCreating"]]
    names = list(output.watch_lines(KINDS["Pod"], iter([[pod("a", "Pending", False)]]).__next__,
                                    "name", False, sleep=lambda s: None))
    assert names == ["pod/a"]
