"""The node agent pins each pod's IP: kept across replacement, never shared (fake runtime)."""

from __future__ import annotations

from dataclasses import replace

from gitops.agent.node import NodeAgent
from gitops.agent.runtime import POD_IP, POD_NAME
from gitops.model import ObjectKey
from gitops.testing import RecordingRuntime, memory_store


def _pod(name: str, containers: int = 1, image: str = "i:1", policy: str = "Always") -> dict:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
            "spec": {"nodeName": "n1", "restartPolicy": policy, "containers": [
                {"name": f"c{i}", "image": image,
                 "env": [{"name": "MY_IP", "valueFrom": {"fieldRef": {
                     "fieldPath": "status.podIP"}}}]} for i in range(containers)]}}


def test_pods_get_distinct_pinned_ips_and_keep_them(tmp_path):
    store = memory_store()
    runtime = RecordingRuntime()
    specs = []
    for method in ("run_sandbox", "run_container"):
        real = getattr(runtime, method)
        setattr(runtime, method, lambda spec, real=real: specs.append(spec) or real(spec))
    node = NodeAgent(store, runtime, "n1", "net", tmp_path / "pods")
    node.subnet = "10.0.0.0/24"
    store.create(_pod("one"))
    store.create(_pod("two", containers=2))
    node.sync_once()
    by_pod = {}
    for spec in specs:
        by_pod.setdefault(spec.labels[POD_NAME], []).append(spec)
    lone, = by_pod["one"]
    assert not lone.sandbox_id and lone.ip == "10.0.0.128" == lone.labels[POD_IP]
    assert lone.hostname == "one" and lone.env["MY_IP"] == "10.0.0.128"
    sandbox, *apps = by_pod["two"]
    assert sandbox.ip == "10.0.0.129" == sandbox.labels[POD_IP]
    assert all(a.sandbox_id and not a.ip and POD_IP not in a.labels for a in apps)
    assert all(a.env["MY_IP"] == "10.0.0.129" for a in apps)     # known before the start
    node.sync_once()
    key = ObjectKey("Pod", "default", "one")
    assert store.get(key)["status"]["podIP"] == "10.0.0.128"

    # Its container removed behind the agent's back: the replacement gets the same IP.
    cid = next(c.id for c in runtime.containers.values() if c.labels[POD_NAME] == "one")
    del runtime.containers[cid]
    store.create(_pod("three", policy="Never"))          # and a newcomer does not take it meanwhile
    specs.clear()
    node.sync_once()
    ips = {s.labels[POD_NAME]: s.ip for s in specs}
    assert ips == {"one": "10.0.0.128", "three": "10.0.0.130"}

    # A finished pod's address is free again (Kubernetes frees it too).
    store.update_status(ObjectKey("Pod", "default", "three"), {
        **store.get(ObjectKey("Pod", "default", "three"))["status"], "phase": "Succeeded"})
    for c in list(runtime.containers.values()):
        if c.labels[POD_NAME] == "three":
            runtime.containers[c.id] = replace(c, state="exited", ip="")
    store.create(_pod("four", image="i:2"))
    specs.clear()
    node.sync_once()
    assert [s.ip for s in specs if s.labels[POD_NAME] == "four"] == ["10.0.0.130"]
    node.close()
    store.close()
