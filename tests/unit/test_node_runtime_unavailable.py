"""The node agent while the engine does not answer: no crash, no verdicts, then reconcile."""

from __future__ import annotations

from structlog.testing import capture_logs

from gitops.agent.node import NodeAgent
from gitops.agent.prober import ProbeWorker
from gitops.agent.probes import ProbeTracker
from gitops.agent.runtime import POD_NAME, RuntimeUnavailable
from gitops.model import ObjectKey
from gitops.testing import RecordingRuntime, memory_store


def test_passes_while_the_engine_is_down_change_nothing_then_the_pod_is_rebuilt(tmp_path):
    store = memory_store()
    runtime = RecordingRuntime()
    node = NodeAgent(store, runtime, "n1", "net", tmp_path / "pods")
    node.register_node()
    store.create({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
                  "spec": {"nodeName": "n1", "containers": [{"name": "c", "image": "i:1"}]}})
    key = ObjectKey("Pod", "default", "p")
    node.sync_once()
    node.sync_once()
    running = store.get(key)
    assert running["status"]["phase"] == "Running"

    runtime.down = True
    with capture_logs() as logs:
        node.sync_once()            # must not raise
        node.sync_once()
    assert [e["event"] for e in logs].count("runtime_unavailable") == 1   # once per outage
    down = store.get(key)["status"]
    assert down["phase"] == running["status"]["phase"]                  # left as last seen
    assert [c["state"] for c in down["containerStatuses"]] == \
        [c["state"] for c in running["status"]["containerStatuses"]]
    assert _condition(down, "Ready")["status"] == "False"               # but nobody vouches
    assert _condition(down, "Ready")["reason"] == "NodeNotReady"
    assert not any(c["ready"] for c in down["containerStatuses"])
    node_status = store.get(ObjectKey("Node", "", "n1"))["status"]
    assert _condition(node_status, "Ready")["status"] == "False"
    assert "container runtime is down" in _condition(node_status, "Ready")["message"]

    # The engine comes back having lost every container (as after a restart).
    runtime.down = False
    runtime.containers.clear()
    with capture_logs() as logs:
        node.sync_once()
    assert any(e["event"] == "runtime_available_again" for e in logs)
    assert "run_container" in runtime.calls
    node.sync_once()
    back = store.get(key)["status"]
    assert back["phase"] == "Running" and _condition(back, "Ready")["status"] == "True"
    node_status = store.get(ObjectKey("Node", "", "n1"))["status"]
    assert _condition(node_status, "Ready")["status"] == "True"
    node.close()
    store.close()


def _condition(status: dict, kind: str) -> dict:
    return next(c for c in status["conditions"] if c["type"] == kind)


def test_a_probe_the_engine_could_not_run_counts_neither_way():
    now = [100.0]
    tracker = ProbeTracker(lambda: now[0])
    container = {"name": "c", "livenessProbe": {"exec": {"command": ["true"]},
                                                "failureThreshold": 1, "periodSeconds": 1}}

    def unavailable(cid, cmd, timeout):
        raise RuntimeUnavailable("engine does not answer")
    worker = ProbeWorker(tracker, unavailable, workers=1)
    for _ in range(3):
        worker.run_due("uid", "10.0.0.2", container, "cid", 100.0)
        worker._pool.shutdown(wait=True)          # let the probe finish
        worker._pool = type(worker._pool)(max_workers=1)
        now[0] += 1.5
    assert tracker.results("uid", "c").live      # failureThreshold 1, yet not failed
    assert tracker.due("uid", container, 100.0, "liveness")   # and due again
    worker.close()


def test_a_started_pod_shows_running_before_the_next_pod_of_the_pass_starts(tmp_path):
    """A scale-up of many starts them in one pass: each pod's status is written right
    after its own containers start, not once all of them have (one worker, so b starts
    after a)."""
    store = memory_store()
    runtime = RecordingRuntime()
    node = NodeAgent(store, runtime, "n1", "net", tmp_path / "pods", pod_workers=1)
    for name in ("a", "b"):
        store.create({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
                      "spec": {"nodeName": "n1", "containers": [{"name": "c", "image": "i:1"}]}})
    seen_when_b_started: list[str] = []
    run_container = runtime.run_container

    def watching(spec):
        if spec.labels[POD_NAME] == "b":
            phase = store.get(ObjectKey("Pod", "default", "a")).get("status", {}).get("phase")
            seen_when_b_started.append(phase or "")
        return run_container(spec)
    runtime.run_container = watching
    node.sync_once()
    assert seen_when_b_started == ["Running"]
    assert store.get(ObjectKey("Pod", "default", "b"))["status"]["phase"] == "Running"
    node.close()
    store.close()
