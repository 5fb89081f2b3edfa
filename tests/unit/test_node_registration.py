"""The Node object the agent registers: the kubelet's labels, and labels added later kept."""

from __future__ import annotations

from gitops.agent.node import NodeAgent
from gitops.model import ObjectKey
from gitops.testing import RecordingRuntime, memory_store


def test_node_labels_are_the_kubelets_and_survive_a_restart(tmp_path):
    store = memory_store()
    runtime = RecordingRuntime()
    runtime.ping = lambda: {"NCPU": 2, "MemTotal": 2 << 30, "ServerVersion": "20.10",
                            "OSType": "linux", "Architecture": "x86_64"}
    node = NodeAgent(store, runtime, "n1", "net", tmp_path / "pods")
    node.register_node()
    key = ObjectKey("Node", "", "n1")
    labels = store.get(key)["metadata"]["labels"]
    assert labels == {"kubernetes.io/hostname": "n1", "kubernetes.io/os": "linux",
                      "kubernetes.io/arch": "amd64"}
    info = store.get(key)["status"]["nodeInfo"]
    assert info["architecture"] == "amd64" and info["kubeletVersion"].startswith("v1.")

    # `kubectl label node n1 disktype=ssd`, and a Node from a version without the arch label
    obj = store.get(key)
    obj["metadata"]["labels"] = {"kubernetes.io/hostname": "n1", "disktype": "ssd"}
    store.update(obj)
    node.register_node()                          # the agent starts again
    after = store.get(key)
    assert after["metadata"]["labels"] == {"kubernetes.io/hostname": "n1", "disktype": "ssd",
                                           "kubernetes.io/os": "linux",
                                           "kubernetes.io/arch": "amd64"}
    assert after["status"]["capacity"]["cpu"] == "2"
    node.close()
    store.close()
