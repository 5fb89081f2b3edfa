"""One pass over every controller, reading current state from the store."""

from __future__ import annotations

import random
import time
from collections import defaultdict
from collections.abc import Callable

from gitops.controllers import (cronjob, daemonset, deployment, endpoints, gc, job, pvc,
                                replicaset, service, statefulset)
from gitops.controllers.base import execute
from gitops.model import ObjectKey
from gitops.model.meta import controller_of
from gitops.proxy.vip import SERVICE_CIDR
from gitops.scheduler import scheduler
from gitops.store.base import Store


class ControllerManager:
    def __init__(self, store: Store, rng: random.Random | None = None,
                 clock: Callable[[], float] = time.time,
                 service_cidr: str = SERVICE_CIDR) -> None:
        self.store = store
        self.service_cidr = service_cidr
        self.rng = rng or random.Random()
        self.clock = clock

    def run_once(self) -> None:
        s = self.store
        execute(s, gc.reconcile(s.all_objects()), "garbage-collector")
        execute(s, service.reconcile(s.list("Service"), self.service_cidr), "service")
        execute(s, pvc.reconcile(s.list("PersistentVolumeClaim")), "persistentvolumeclaim")
        self._workloads()
        self._batch()
        execute(s, scheduler.reconcile(s.list("Pod"), s.list("Node")), "scheduler")
        self._endpoints()

    def _workloads(self) -> None:
        s = self.store
        now = self.clock()
        rs_by_owner = _by_controller(s.list("ReplicaSet"))
        for deploy in s.list("Deployment"):
            execute(s, deployment.reconcile(deploy, rs_by_owner[deploy["metadata"]["uid"]], now,
                                            self._lookup), "deployment")
        pods_by_owner = _by_controller(s.list("Pod"))
        for rs in s.list("ReplicaSet"):
            execute(s, replicaset.reconcile(rs, pods_by_owner[rs["metadata"]["uid"]], self.rng,
                                            now), "replicaset")
        pods_by_ns = _by_namespace(s.list("Pod"))
        claims_by_ns = _by_namespace(s.list("PersistentVolumeClaim"))
        for sts in s.list("StatefulSet"):
            ns = sts["metadata"]["namespace"]
            execute(s, statefulset.reconcile(sts, pods_by_ns[ns], claims_by_ns[ns], now,
                                             self._lookup), "statefulset")
        nodes = s.list("Node")
        for ds in s.list("DaemonSet"):
            execute(s, daemonset.reconcile(ds, pods_by_owner[ds["metadata"]["uid"]], nodes, now,
                                           self.rng, self._lookup), "daemonset")

    def _batch(self) -> None:
        s = self.store
        now = self.clock()
        jobs_by_owner = _by_controller(s.list("Job"))
        for cj in s.list("CronJob"):
            execute(s, cronjob.reconcile(cj, jobs_by_owner[cj["metadata"]["uid"]], now),
                    "cronjob")
        pods_by_owner = _by_controller(s.list("Pod"))
        for j in s.list("Job"):          # listed again: includes Jobs CronJobs just made
            execute(s, job.reconcile(j, pods_by_owner[j["metadata"]["uid"]], now, self.rng),
                    "job")

    def _lookup(self, kind: str, namespace: str, name: str) -> dict | None:
        return self.store.get(ObjectKey(kind, namespace, name))

    def _endpoints(self) -> None:
        s = self.store
        pods_by_ns: dict[str, list[dict]] = defaultdict(list)
        for pod in s.list("Pod"):
            pods_by_ns[pod["metadata"]["namespace"]].append(pod)
        services = {(o["metadata"]["namespace"], o["metadata"]["name"]): o
                    for o in s.list("Service")}
        current = {(o["metadata"]["namespace"], o["metadata"]["name"]): o
                   for o in s.list("Endpoints")}
        for key in services.keys() | current.keys():
            execute(s, endpoints.reconcile(services.get(key), current.get(key),
                                           pods_by_ns[key[0]]), "endpoints")


def _by_controller(objs: list[dict]) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = defaultdict(list)
    for obj in objs:
        if ref := controller_of(obj):
            out[ref["uid"]].append(obj)
    return out


def _by_namespace(objs: list[dict]) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = defaultdict(list)
    for obj in objs:
        out[obj["metadata"].get("namespace") or "default"].append(obj)
    return out
