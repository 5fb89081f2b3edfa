"""The gitops CLI against the Kubernetes API of a real store: `get all`, comma lists,
every built-in kind, custom kinds from discovery, `logs deploy/NAME`, and errors worded
as kubectl's (no HTTP method or URL)."""

from __future__ import annotations

import os

import pytest
import structlog
from click.testing import CliRunner

from gitops import cli
from gitops.model import ObjectKey, custom
from gitops.paths import DataDir
from gitops.store import Registry, SqliteStore
from tests.integration.test_custom_resources import CRD, WIDGET
from tests.kube_support import TOKEN, KubeServer


@pytest.fixture
def agent(tmp_path):
    store = Registry(SqliteStore(tmp_path / "state.db"))

    async def logs(req):
        return f"logs of {req.pod}\n"
    data = tmp_path / "data"
    data.mkdir()
    with KubeServer(store, tmp_path, logs=logs) as server:
        dd = DataDir.at(data)
        dd.token_file.write_text(TOKEN + "\n")
        dd.agent_file.write_text(f'{{"pid": {os.getpid()}, "url": "{server.url}"}}')
        yield store, str(data)
    store.close()
    custom.register([])
    structlog.reset_defaults()


def run(*args: str):
    return CliRunner().invoke(cli.main, list(args))


def seed(store) -> None:
    store.create({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
                  "spec": {"selector": {"matchLabels": {"app": "web"}},
                           "template": {"metadata": {"labels": {"app": "web"}},
                                        "spec": {"containers": [{"name": "c",
                                                                 "image": "gitops/busybox:1"}]}}}})
    for name, phase in (("web-old", "Pending"), ("web-new", "Running"), ("other", "Running")):
        store.create({"apiVersion": "v1", "kind": "Pod",
                      "metadata": {"name": name,
                                   "labels": {"app": "web" if name != "other" else "x"}},
                      "spec": {"containers": [{"name": "c", "image": "gitops/busybox:1"}]}})
        store.update_status(ObjectKey("Pod", "default", name), {"phase": phase})
    store.create({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"},
                  "spec": {"selector": {"app": "web"}, "ports": [{"port": 80}]}})
    store.create({"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
                  "metadata": {"name": "web"},
                  "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment",
                                              "name": "web"}, "maxReplicas": 3}})


def test_get_all_comma_lists_kinds_and_custom_kinds(agent):
    import yaml
    store, data = agent
    seed(store)
    res = run("get", "all", "--data-dir", data)
    assert res.exit_code == 0, res.output
    for name in ("pod/web-new", "service/web", "deployment.apps/web",
                 "horizontalpodautoscaler.autoscaling/web"):
        assert name in res.output
    res = run("get", "svc,deploy", "--data-dir", data)
    assert res.exit_code == 0 and "service/web" in res.output and \
        "deployment.apps/web" in res.output and "pod/" not in res.output
    res = run("get", "hpa", "--data-dir", data)
    assert res.exit_code == 0 and "web" in res.output
    store.create(yaml.safe_load(CRD))
    store.create(yaml.safe_load(WIDGET))
    for word in ("widgets", "wd", "widgets.example.com", "Widget"):
        res = run("get", word, "--data-dir", data)
        assert res.exit_code == 0 and "w1" in res.output, (word, res.output)
    res = run("get", "all", "--data-dir", data)          # Widget is in category "all"
    assert "widget.example.com/w1" in res.output
    res = run("get", "nosuchthing", "--data-dir", data)
    assert res.exit_code != 0 and 'doesn\'t have a resource type "nosuchthing"' in res.output


def test_logs_of_a_workload_and_errors_as_kubectl_words_them(agent):
    store, data = agent
    seed(store)
    res = run("logs", "deploy/web", "--data-dir", data)
    assert res.exit_code == 0 and res.output == "logs of web-new\n", res.output
    assert run("logs", "pod/other", "--data-dir", data).output == "logs of other\n"
    res = run("get", "pod", "missing", "--data-dir", data)
    assert res.exit_code == 1
    assert 'Error from server (NotFound): pods "missing" not found' in res.output
    assert "GET" not in res.output and "/api/v1" not in res.output
    res = run("logs", "cm/settings", "--data-dir", data)
    assert res.exit_code != 0 and "name a pod" in res.output
