"""One pass over every controller, reading current state from the store."""

from __future__ import annotations

import random
import socket
import time
from collections import defaultdict
from collections.abc import Callable

from gitops.controllers import (cronjob, daemonset, deployment, endpoints, gc, job, pvc,
                                replicaset, service, statefulset)
from gitops.controllers.base import Action, SetStatus, execute
from gitops.controllers.claims import claim
from gitops.events import EventRecorder
from gitops.model import KINDS, ObjectKey, key_of
from gitops.model.meta import controller_of
from gitops.proxy.vip import SERVICE_CIDR
from gitops.scheduler import scheduler
from gitops.store.base import Store


class ControllerManager:
    def __init__(self, store: Store, rng: random.Random | None = None,
                 clock: Callable[[], float] = time.time,
                 service_cidr: str = SERVICE_CIDR,
                 events: EventRecorder | None = None) -> None:
        self.store = store
        self.service_cidr = service_cidr
        self.rng = rng or random.Random()
        self.clock = clock
        self.events = events or EventRecorder(store, clock, host=socket.gethostname())

    def _execute(self, actions: list[Action], controller: str,
                 obj: dict | None = None) -> None:
        """obj: the object reconciled, whose unchanged status need not be written again."""
        if obj is not None:
            actions = [a for a in actions if not (isinstance(a, SetStatus) and a.event is None
                                                  and a.key == key_of(obj)
                                                  and a.status == obj.get("status"))]
        execute(self.store, actions, controller, self.events)

    def run_once(self) -> None:
        s = self.store
        # Events own nothing and are owned by nothing: the collector need not read them.
        self._execute(gc.reconcile(o for kind in KINDS if kind != "Event"
                                   for o in s.list(kind)), "garbage-collector")
        self._execute(service.reconcile(s.list("Service"), self.service_cidr), "service")
        self._execute(pvc.reconcile(s.list("PersistentVolumeClaim")), "persistentvolumeclaim")
        self._workloads()
        self._batch()
        self._execute(scheduler.reconcile(s.list("Pod"), s.list("Node"), self.clock()),
                      "scheduler")
        self._endpoints()
        self.events.prune()

    def _workloads(self) -> None:
        s = self.store
        now = self.clock()
        replicasets = s.list("ReplicaSet")
        rs_by_owner, rs_orphans = _by_controller(replicasets), _orphans(replicasets)
        pods_by_owner = _by_controller(s.list("Pod"))
        for deploy in s.list("Deployment"):
            uid, ns = deploy["metadata"]["uid"], deploy["metadata"]["namespace"]
            owned, adopt = claim(deploy, deploy["spec"].get("selector"),
                                 [*rs_by_owner[uid], *rs_orphans[ns]])
            self._execute(adopt, "deployment")
            pods = [p for rs in owned for p in pods_by_owner[rs["metadata"]["uid"]]]
            self._execute(deployment.reconcile(deploy, owned, now, self._lookup, pods),
                          "deployment", deploy)
        all_pods = s.list("Pod")
        pods_by_owner, pod_orphans = _by_controller(all_pods), _orphans(all_pods)
        replicasets = s.list("ReplicaSet")
        siblings = _by_controller(replicasets)
        for rs in replicasets:
            uid, ns = rs["metadata"]["uid"], rs["metadata"]["namespace"]
            owned, adopt = claim(rs, rs["spec"].get("selector"),
                                 [*pods_by_owner[uid], *pod_orphans[ns]])
            self._execute(adopt, "replicaset")
            parent = controller_of(rs)
            related = [p for sib in (siblings[parent["uid"]] if parent else [rs])
                       for p in pods_by_owner[sib["metadata"]["uid"]]]
            related += [p for p in owned if p not in related]
            self._execute(replicaset.reconcile(rs, owned, self.rng, now, related),
                          "replicaset", rs)
        all_pods = s.list("Pod")         # with the ReplicaSets' new pods
        pods_by_ns, pods_by_owner = _by_namespace(all_pods), _by_controller(all_pods)
        pod_orphans = _orphans(all_pods)
        claims_by_ns = _by_namespace(s.list("PersistentVolumeClaim"))
        for sts in s.list("StatefulSet"):
            uid, ns = sts["metadata"]["uid"], sts["metadata"]["namespace"]
            _, adopt = claim(sts, sts["spec"].get("selector"),
                             [*pods_by_owner[uid], *pod_orphans[ns]])
            self._execute(adopt, "statefulset")
            self._execute(statefulset.reconcile(sts, _claimed(pods_by_ns[ns], adopt),
                                                claims_by_ns[ns], now, self._lookup),
                          "statefulset", sts)
        nodes = s.list("Node")
        for ds in s.list("DaemonSet"):
            uid, ns = ds["metadata"]["uid"], ds["metadata"]["namespace"]
            owned, adopt = claim(ds, ds["spec"].get("selector"),
                                 [*pods_by_owner[uid], *pod_orphans[ns]])
            self._execute(adopt, "daemonset")
            self._execute(daemonset.reconcile(ds, owned, nodes, now, self.rng, self._lookup),
                          "daemonset", ds)

    def _batch(self) -> None:
        s = self.store
        now = self.clock()
        jobs_by_owner = _by_controller(s.list("Job"))
        for cj in s.list("CronJob"):
            self._execute(cronjob.reconcile(cj, jobs_by_owner[cj["metadata"]["uid"]], now),
                          "cronjob", cj)
        pods_by_owner = _by_controller(s.list("Pod"))
        for j in s.list("Job"):          # listed again: includes Jobs CronJobs just made
            self._execute(job.reconcile(j, pods_by_owner[j["metadata"]["uid"]], now,
                                        self.rng), "job", j)

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
            self._execute(endpoints.reconcile(services.get(key), current.get(key),
                                              pods_by_ns[key[0]]), "endpoints")


def _by_controller(objs: list[dict]) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = defaultdict(list)
    for obj in objs:
        if ref := controller_of(obj):
            out[ref["uid"]].append(obj)
    return out


def _claimed(objs: list[dict], actions: list[Action]) -> list[dict]:
    """objs with the copies that adoption or release just wrote in their place."""
    changed = {a.obj["metadata"].get("uid"): a.obj for a in actions if hasattr(a, "obj")}
    return [changed.get(o["metadata"].get("uid"), o) for o in objs]


def _orphans(objs: list[dict]) -> dict[str, list[dict]]:
    """Per namespace, the objects no controller owns (candidates for adoption)."""
    return _by_namespace([o for o in objs if controller_of(o) is None])


def _by_namespace(objs: list[dict]) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = defaultdict(list)
    for obj in objs:
        out[obj["metadata"].get("namespace") or "default"].append(obj)
    return out
