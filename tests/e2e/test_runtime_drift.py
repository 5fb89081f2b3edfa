"""A container removed or killed by hand is replaced within seconds, with a JSON drift record."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from tests.conftest import free_port
from tests.e2e.conftest import gitops
from tests.e2e.test_up_down import commit

pytestmark = pytest.mark.docker


def drift_records(data: str) -> list[dict]:
    out = []
    for line in (Path(data) / "agent.log").read_text().splitlines():
        try:
            rec = json.loads(line)
        except ValueError:
            continue
        if rec.get("event") == "drift.detected":
            out.append(rec)
    return out


def wait_for(predicate, timeout: float = 30.0, step: float = 0.2):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if (value := predicate()):
            return value
        time.sleep(step)
    raise AssertionError("condition not met in time")


def app_container(client, instance: str, pod: str):
    found = client.containers.list(all=True, filters={"label": [
        f"gitops.instance={instance}", f"gitops.pod.name={pod}", "gitops.container=web"]})
    return found[0] if len(found) == 1 else None


def test_removed_and_killed_containers_are_replaced_and_reported(docker_client, repo, tmp_path):
    from gitops.paths import DataDir
    commit(repo, "first", replicas=1, greeting="hi", node_port=free_port(30000, 32767))
    data = str(tmp_path / "data")
    instance = DataDir.at(data).instance
    try:
        up = gitops("up", f"file://{repo}", "--wait", "--timeout", "90", "--data-dir", data)
        assert up.returncode == 0, up.stdout + up.stderr
        [pod] = json.loads(gitops("get", "pods", "-o", "json", "--data-dir", data).stdout)["items"]
        name = pod["metadata"]["name"]

        victim = app_container(docker_client, instance, name)
        victim.remove(force=True)                       # `docker rm -f` behind the agent's back
        replacement = wait_for(lambda: next(            # the deadline bounds the wait only
            (c for c in docker_client.containers.list(filters={"label": [
                f"gitops.instance={instance}", f"gitops.pod.name={name}",
                "gitops.container=web"]}) if c.id != victim.id), None), timeout=15)
        record = wait_for(lambda: next((r for r in drift_records(data)
                                        if r["drift"]["type"] == "missing"), None))
        assert record["drift"]["origin"] == "runtime"
        assert record["drift"]["actor"].startswith("docker rm")
        assert record["object"]["kind"] == "Deployment" and record["object"]["name"] == "hello"
        assert record["object"]["file"] == "app/deployment.yaml"
        assert record["object"]["pod"] == name and record["object"]["container"] == "web"
        assert record["drift"]["fields"][0]["path"] == "status.containerStatuses[web].state"
        assert record["action"] == "corrected"

        replacement.kill()                               # `docker kill`
        record = wait_for(lambda: next((r for r in drift_records(data)
                                        if r["drift"]["actor"].startswith("docker kill")), None))
        assert record["drift"]["type"] == "modified" and "signal" in record["drift"]["actor"]
        wait_for(lambda: getattr(app_container(docker_client, instance, name), "status", "")
                 == "running", timeout=15)
    finally:
        gitops("down", "--data-dir", data)
