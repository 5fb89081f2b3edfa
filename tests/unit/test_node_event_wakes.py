"""Which Docker events wake the node agent: state changes do, the noise of exec probes
and of the agent's own creates does not (each wake is a pass listing every container)."""

from __future__ import annotations

import pytest

from gitops.agent.node import NodeAgent
from gitops.agent.runtime import CONTAINER, POD_UID
from gitops.testing import memory_store


class NoRuntime:
    """Events alone are under test: nothing may reach the engine."""
    instance = "feed0002"

    def exec(self, cid, cmd, timeout):
        raise AssertionError("no probe runs here")


@pytest.fixture
def node(tmp_path):
    store = memory_store()
    agent = NodeAgent(store, NoRuntime(), "n1", "net", tmp_path / "pods")
    yield agent
    agent.close()
    store.close()


def event(action: str, cid: str = "c1") -> dict:
    return {"Action": action, "id": cid,
            "Actor": {"ID": cid, "Attributes": {POD_UID: "u1", CONTAINER: "app"}}}


@pytest.mark.parametrize("action, wakes", [
    ("start", True), ("die", True), ("oom", True), ("destroy", True), ("kill", True),
    ("stop", True), ("pause", True), ("unpause", True), ("restart", True),
    ("rename", True), ("update", True),
    ("create", False), ("attach", False), ("resize", False),
    ("exec_create: sh -c true", False), ("exec_start: sh -c true", False),
    ("exec_die", False),
])
def test_only_state_changes_wake_the_agent(node, action, wakes):
    assert node.on_runtime_event(event(action)) is wakes


def test_an_external_kill_is_kept_for_the_drift_report_and_ours_is_not(node):
    node.on_runtime_event(event("kill", "theirs"))
    node._drift.mark_ours("mine")
    node.on_runtime_event(event("kill", "mine"))
    assert [e.id for e in node._drift.pending()] == ["theirs"]
