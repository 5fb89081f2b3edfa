"""One pass over every controller, reading current state from the store.

One object that a reconciler cannot handle (a value no validation caught, say) fails
alone: it is logged and gets a Warning event, and every other object and controller of the
pass still runs, as one bad object never stops a Kubernetes controller's work queue.
"""

from __future__ import annotations

import random
import socket
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import structlog

from gitops.controllers import (
    cronjob,
    daemonset,
    deployment,
    disruption,
    endpoints,
    gc,
    job,
    pvc,
    replicaset,
    service,
    statefulset,
)
from gitops.controllers.claims import claim
from gitops.model import KINDS, ObjectKey, key_of
from gitops.model.actions import Action, SetStatus
from gitops.model.addresses import SERVICE_CIDR
from gitops.model.events import WARNING, event_for
from gitops.model.meta import controller_of
from gitops.model.times import rfc3339
from gitops.scheduler import scheduler
from gitops.store.base import Store
from gitops.store.events import EventRecorder
from gitops.store.registry import execute

log = structlog.get_logger(component="controllers")


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
        self._failing: dict[tuple[str, str], str] = {}     # failures of the last pass
        self._failed_now: dict[tuple[str, str], str] = {}

    @contextmanager
    def _isolated(self, controller: str, obj: dict | None = None) -> Iterator[None]:
        """Contain a failure to one object (or one controller's pass): logged and told as
        an event when it first appears or changes, not on every pass."""
        try:
            yield
        except Exception as exc:   # noqa: BLE001 - whatever it is, the pass goes on
            where = (controller, str(key_of(obj)) if obj is not None else "")
            message = f"{type(exc).__name__}: {exc}"
            self._failed_now[where] = message
            if self._failing.get(where) == message:
                return
            log.exception("reconcile_failed", controller=controller, object=where[1])
            if obj is not None:
                self.events.record(event_for(obj, "ReconcileFailed",
                                             f"{controller} cannot reconcile it: {message}",
                                             WARNING, controller))

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
        self._failed_now = {}
        with self._isolated("garbage-collector"):
            self._execute(gc.reconcile(self._gc_snapshot()), "garbage-collector")
        with self._isolated("service"):
            self._execute(service.reconcile(s.list("Service"), self.service_cidr), "service")
        with self._isolated("persistentvolumeclaim"):
            self._execute(pvc.reconcile(s.list("PersistentVolumeClaim")),
                          "persistentvolumeclaim")
        self._workloads()
        self._batch()
        with self._isolated("scheduler"):
            self._execute(scheduler.reconcile(s.list("Pod"), s.list("Node"), self.clock(),
                                              lambda: s.list("Namespace")),
                          "scheduler")
        self._endpoints()
        if pdbs := s.list("PodDisruptionBudget"):
            with self._isolated("disruption"):
                self._execute(disruption.reconcile(pdbs, s.list("Pod"), self._lookup,
                                                   rfc3339(self.clock())), "disruption")
        self.events.prune()
        self._failing = self._failed_now

    def _gc_snapshot(self) -> list[dict]:
        """Every kind read at one instant: listed one after the other, an owner created
        through the API between two lists could be missed while its dependent is seen,
        and the dependent would be collected. Events own nothing and are owned by
        nothing: the collector need not read them."""
        with self.store.transaction():
            return [o for kind in KINDS if kind != "Event" for o in self.store.list(kind)]

    def _workloads(self) -> None:
        s = self.store
        now = self.clock()
        replicasets = s.list("ReplicaSet")
        rs_by_owner, rs_orphans = _by_controller(replicasets), _orphans(replicasets)
        pods_by_owner = _by_controller(s.list("Pod"))
        for deploy in s.list("Deployment"):
            with self._isolated("deployment", deploy):
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
            with self._isolated("replicaset", rs):
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
        revisions = _by_controller(s.list("ControllerRevision"))
        for sts in s.list("StatefulSet"):
            with self._isolated("statefulset", sts):
                uid, ns = sts["metadata"]["uid"], sts["metadata"]["namespace"]
                _, adopt = claim(sts, sts["spec"].get("selector"),
                                 [*pods_by_owner[uid], *pod_orphans[ns]])
                self._execute(adopt, "statefulset")
                self._execute(statefulset.reconcile(
                    sts, _claimed(pods_by_ns[ns], adopt), claims_by_ns[ns], now,
                    self._lookup, revisions[uid]), "statefulset", sts)
        nodes = s.list("Node")
        for ds in s.list("DaemonSet"):
            with self._isolated("daemonset", ds):
                uid, ns = ds["metadata"]["uid"], ds["metadata"]["namespace"]
                owned, adopt = claim(ds, ds["spec"].get("selector"),
                                     [*pods_by_owner[uid], *pod_orphans[ns]])
                self._execute(adopt, "daemonset")
                self._execute(daemonset.reconcile(ds, owned, nodes, now, self.rng,
                                                  self._lookup, revisions[uid]),
                              "daemonset", ds)

    def _batch(self) -> None:
        s = self.store
        now = self.clock()
        jobs_by_owner = _by_controller(s.list("Job"))
        for cj in s.list("CronJob"):
            with self._isolated("cronjob", cj):
                self._execute(cronjob.reconcile(cj, jobs_by_owner[cj["metadata"]["uid"]],
                                                now), "cronjob", cj)
        pods_by_owner = _by_controller(s.list("Pod"))
        for j in s.list("Job"):          # listed again: includes Jobs CronJobs just made
            with self._isolated("job", j):
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
            with self._isolated("endpoints", services.get(key) or current.get(key)):
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
