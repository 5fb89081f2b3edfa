"""Simulated nodes (gitops.agent.simulated; `gitops simulate-nodes`): Nodes that are Ready
with Leases heartbeating, whose bound pods go Running without containers, on a real etcd
shared with the control plane's scheduler."""

from __future__ import annotations

import subprocess
import sys

from gitops.agent.simulated import SimulatedNodes
from gitops.model import ObjectKey
from gitops.scheduler.loop import SchedulerLoop
from gitops.store import Registry
from gitops.store.etcd import EtcdStore
from gitops.store.informer import Informer
from gitops.store.registry import execute
from tests.etcd_support import start_cluster


def pod(i: int) -> dict:
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": f"p{i}", "namespace": "default"},
            "spec": {"containers": [{"name": "c", "image": "gitops/pause:1"}]}}


def test_pods_scheduled_to_simulated_nodes_go_running_and_leases_renew(tmp_path):
    etcd = start_cluster(tmp_path)
    try:
        store = Registry(EtcdStore(etcd.url))
        clock = iter(range(1_000_000, 2_000_000, 10))
        sim = SimulatedNodes(store, 3, clock=lambda: float(next(clock)))
        sim.register()
        assert [n["metadata"]["name"] for n in store.list("Node")] == \
            ["sim-node-00000", "sim-node-00001", "sim-node-00002"]
        lease = store.get(ObjectKey("Lease", "kube-node-lease", "sim-node-00001"))
        sim.heartbeat()
        renewed = store.get(ObjectKey("Lease", "kube-node-lease", "sim-node-00001"))
        assert renewed["spec"]["renewTime"] > lease["spec"]["renewTime"]
        informer = Informer(store)
        sched = SchedulerLoop(informer, lambda actions: execute(store, actions, "scheduler"))
        for i in range(6):
            store.create(pod(i))
        sched._next_flush = 0
        sched.run_once()
        assert sim.run_pods() == 6
        pods = store.list("Pod")
        assert {p["spec"]["nodeName"] for p in pods} <= set(sim.names)
        assert all(p["status"]["phase"] == "Running" and
                   p["status"]["containerStatuses"][0]["ready"] for p in pods)
        assert sim.run_pods() == 0                    # nothing left to do
        store.close()

        done = subprocess.run([sys.executable, "-m", "gitops", "simulate-nodes", "2",
                               "--datastore", etcd.url, "--prefix", "cli-",
                               "--duration", "1"], capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        again = Registry(EtcdStore(etcd.url))
        assert {"cli-00000", "cli-00001"} <= {n["metadata"]["name"]
                                              for n in again.list("Node")}
        again.close()
    finally:
        etcd.stop()
