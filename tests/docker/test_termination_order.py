"""A deleted pod leaves Service rotation before its containers get SIGTERM (real engine)."""

from __future__ import annotations

import time

import pytest

from gitops.agent.runtime import POD_NAME
from gitops.model import ObjectKey
from tests.docker.test_node_agent import agent, converge  # noqa: F401 - fixture

pytestmark = pytest.mark.docker


def test_deleted_pod_is_signalled_only_after_it_left_rotation(agent):  # noqa: F811
    store = agent.store
    app = {"name": "app", "image": "gitops/busybox:1",
           "command": ["sh", "-c", "trap 'exit 0' TERM; while true; do sleep 0.1; done"]}
    store.create({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "drainer"},
                  "spec": {"nodeName": "test-node", "terminationGracePeriodSeconds": 20,
                           "containers": [app]}})
    pod = converge(agent, "drainer", lambda p: p["status"].get("phase") == "Running")
    ip = pod["status"]["podIP"]
    asked: list[str] = []
    alive_while_routed: list[bool] = []

    def in_rotation(addr: str) -> bool:
        # Still "routed" for the first few checks: the container must not be signalled yet.
        asked.append(addr)
        if len(asked) <= 5:
            alive_while_routed.append(_running(agent, "drainer"))
            return True
        return False

    agent.in_rotation = in_rotation
    store.request_delete(ObjectKey("Pod", "default", "drainer"))
    deadline = time.monotonic() + 30
    while store.get(ObjectKey("Pod", "default", "drainer")) and time.monotonic() < deadline:
        agent.sync_once()
        time.sleep(0.1)
    assert store.get(ObjectKey("Pod", "default", "drainer")) is None
    assert set(asked) == {ip} and len(asked) > 5
    assert alive_while_routed == [True] * 5   # no SIGTERM while the proxy still sent traffic


def _running(agent, pod: str) -> bool:
    return any(c.labels.get(POD_NAME) == pod and c.container == "app"
               and c.state == "running" for c in agent.runtime.list_containers())
