"""Controller and scheduler costs without Docker, printed as a table:

CPU time of this process is reported (the machine may be shared), in seconds or ms.

- converge: N Deployments x 3 replicas from nothing to every pod bound and Ready (a fake
  kubelet marks bound pods Ready between passes): passes and seconds
- steady_pass_ms: one controller pass once everything has converged (nothing queued: what
  an idle pass costs)
- resync_pass_ms: one pass after the long resync queued every key again
- rollout: a template change of all N Deployments rolled to completion (maxSurge 1,
  maxUnavailable 0): passes and seconds
- schedule_ms: the scheduler placing P pending pods on 10 nodes in one pass

    python bench/controllers_bench.py [--deployments 10 50 200] [--pods 100 1000]

Everything runs in-process on a temporary SQLite store; bounded by pass counts.
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from gitops.controllers.manager import ControllerManager  # noqa: E402
from gitops.model import key_of  # noqa: E402
from gitops.scheduler import scheduler  # noqa: E402
from gitops.scheduler.loop import SchedulerLoop  # noqa: E402
from gitops.store import Registry, SqliteStore  # noqa: E402
from gitops.store.informer import Informer  # noqa: E402
from gitops.store.registry import execute  # noqa: E402


class ControlPlane:
    """The controllers and the scheduler on one informer, as the daemon wires them."""

    def __init__(self, store: Registry) -> None:
        informer = Informer(store)
        self.controllers = ControllerManager(store, random.Random(0), informer=informer)
        self.scheduler = SchedulerLoop(informer, lambda actions: execute(
            store, actions, "scheduler", self.controllers.events))

    def run_once(self) -> None:
        self.controllers.run_once()
        self.scheduler.run_once()

READY = [{"type": "Ready", "status": "True", "lastTransitionTime": "2026-01-01T00:00:00Z"}]


def node(name: str) -> dict:
    return {"apiVersion": "v1", "kind": "Node", "metadata": {"name": name},
            "status": {"allocatable": {"cpu": "64", "memory": "256Gi", "pods": "1000"},
                       "conditions": [{"type": "Ready", "status": "True"}]}}


def deployment(i: int, image: str) -> dict:
    return {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": f"app-{i}", "namespace": "default"},
            "spec": {"replicas": 3, "selector": {"matchLabels": {"app": f"app-{i}"}},
                     "strategy": {"rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}},
                     "template": {"metadata": {"labels": {"app": f"app-{i}"}},
                                  "spec": {"containers": [{
                                      "name": "c", "image": image,
                                      "resources": {"requests": {"cpu": "10m",
                                                                 "memory": "16Mi"}}}]}}}}


def kubelet(store: Registry) -> None:
    """Bound pods run and are Ready at once; deleted ones go at once."""
    for pod in store.list("Pod"):
        if pod["metadata"].get("deletionTimestamp"):
            store.delete(key_of(pod))
        elif pod["spec"].get("nodeName") and pod.get("status", {}).get("phase") != "Running":
            store.update_status(key_of(pod), {"phase": "Running", "conditions": READY})


def converged(store: Registry, n: int, image: str) -> bool:
    pods = [p for p in store.list("Pod") if p["spec"]["containers"][0]["image"] == image]
    return len(store.list("Pod")) == 3 * n and len(pods) == 3 * n and all(
        p.get("status", {}).get("phase") == "Running" for p in pods)


def drive(mgr: ControlPlane, store: Registry, n: int, image: str) -> tuple[int, float]:
    started, passes = time.process_time(), 0
    while passes < 200:
        mgr.run_once()
        kubelet(store)
        passes += 1
        if converged(store, n, image):
            break
    return passes, time.process_time() - started


def bench_deployments(n: int) -> list[str]:
    with tempfile.TemporaryDirectory() as tmp:
        store = Registry(SqliteStore(Path(tmp) / "s.db"))
        store.create(node("n1"))
        for i in range(n):
            store.create(deployment(i, "img:1"))
        mgr = ControlPlane(store)
        passes, secs = drive(mgr, store, n, "img:1")
        for _ in range(3):             # statuses catch up with the last pod changes
            mgr.run_once()
        t0 = time.process_time()
        mgr.run_once()
        steady = (time.process_time() - t0) * 1000
        mgr.controllers.resync_all()
        t0 = time.process_time()
        mgr.run_once()
        resync = (time.process_time() - t0) * 1000
        for d in store.list("Deployment"):
            d["spec"]["template"]["spec"]["containers"][0]["image"] = "img:2"
            store.update(d)
        r_passes, r_secs = drive(mgr, store, n, "img:2")
        events = len(store.list("Event"))
        store.close()
    return [str(n), str(passes), f"{secs:.2f}", f"{steady:.1f}", f"{resync:.1f}",
            str(r_passes), f"{r_secs:.2f}", str(events)]


def bench_scheduler(pods: int) -> list[str]:
    nodes = [node(f"n{i}") for i in range(10)]
    pending = [{"apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": f"p{i}", "namespace": "default", "uid": f"u{i}",
                             "ownerReferences": [{"uid": f"rs{i % 20}", "controller": True}]},
                "spec": {"containers": [{"name": "c", "resources": {"requests": {
                    "cpu": "10m", "memory": "16Mi"}}}]}, "status": {"phase": "Pending"}}
               for i in range(pods)]
    t0 = time.process_time()
    actions = scheduler.reconcile(pending, nodes, time.time())
    ms = (time.process_time() - t0) * 1000
    per_node: dict[str, int] = {}
    for a in actions:
        per_node[a.obj["spec"]["nodeName"]] = per_node.get(a.obj["spec"]["nodeName"], 0) + 1
    return [str(pods), f"{ms:.0f}", f"{min(per_node.values())}-{max(per_node.values())}"]


def table(headers: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(x) for x in col) for col in zip(headers, *rows)]
    return "\n".join("  ".join(v.rjust(w) for v, w in zip(r, widths)) for r in [headers, *rows])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--deployments", type=int, nargs="+", default=[10, 50, 200])
    ap.add_argument("--pods", type=int, nargs="+", default=[100, 1000])
    args = ap.parse_args()
    print(table(["deployments", "converge_passes", "converge_s", "steady_pass_ms",
                 "resync_pass_ms", "rollout_passes", "rollout_s", "events"],
                [bench_deployments(n) for n in args.deployments]))
    print()
    print(table(["pending_pods", "schedule_ms", "pods_per_node(10 nodes)"],
                [bench_scheduler(p) for p in args.pods]))


if __name__ == "__main__":
    main()
