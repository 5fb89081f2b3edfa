"""The controllers on keyed work queues, fed by the informer's watch of the store.

Each controller has a queue of object keys. A change in the store is mapped to the keys
it concerns (controllers/watches.py: a Pod change enqueues its ReplicaSet...), and a pass
reconciles only the keys queued, reading lists from the shared cache: work grows with what
changed, not with the store. A reconcile may ask for a later pass (a Deployment's progress
deadline, a CronJob's next schedule, a Job's back-off, minReadySeconds), a failing key is
retried with a per-key back-off, and every key is queued again on a long resync period.

A pass takes the controllers in a fixed order (the garbage collector, allocations, claims,
the workloads, batch, endpoints, budgets), each over the keys ready when its turn comes,
by namespace and name; a key queued by an earlier controller in the pass (the ReplicaSet a
Deployment just created) is reconciled in the same pass. Adoption is written before the
reconcile that relies on it.

One object that a reconciler cannot handle (a value no validation caught, say) fails
alone: it is logged and gets a Warning event once, is retried with back-off, and every
other key and controller goes on, as in a Kubernetes controller's work queue.
"""

from __future__ import annotations

import random
import socket
import time
from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass

import structlog

from gitops.controllers import (
    autoscaler,
    cronjob,
    daemonset,
    deployment,
    disruption,
    endpoints,
    gc,
    job,
    pvc,
    replicaset,
    replicationcontroller,
    requeue,
    service,
    statefulset,
    watches,
)
from gitops.controllers.claims import claim
from gitops.controllers.queue import WorkQueue
from gitops.errors import TransientError
from gitops.model import KINDS, ObjectKey, key_of
from gitops.model.actions import Action, SetStatus
from gitops.model.addresses import SERVICE_CIDR
from gitops.model.events import WARNING, event_for
from gitops.model.meta import controller_of
from gitops.model.pods import is_active
from gitops.model.times import rfc3339
from gitops.runnable import Loop
from gitops.store.events import EventRecorder
from gitops.store.informer import Informer
from gitops.store.registry import Registry, execute

log = structlog.get_logger(component="controllers")

RESYNC = 600.0           # seconds: every key queued again (what no change asked for)
IDLE_PASS = 60.0         # seconds: a pass at least this often (events are pruned in it)
MIN_REQUEUE = 1.0        # seconds: a time already past asked again waits this long
ALL = watches.ALL


@dataclass
class Controller:
    name: str
    queue: WorkQueue
    watch: watches.Mapper                               # change -> keys
    sync: Callable[[Hashable], float | None]           # key -> when to come back, if ever
    keys: Callable[[], Iterable[Hashable]]              # every key (the resync)
    subject: Callable[[Hashable], dict | None]          # what a failure's event is about


class ControllerManager:
    def __init__(self, store: Registry, rng: random.Random | None = None,
                 clock: Callable[[], float] = time.time,
                 service_cidr: str = SERVICE_CIDR,
                 events: EventRecorder | None = None,
                 informer: Informer | None = None,
                 resync: float = RESYNC,
                 usage: autoscaler.UsageOf | None = None) -> None:
        """usage: a pod's containers' usage by pod uid (the node's samples), which the
        HorizontalPodAutoscaler reads; None: no usage known (only min/max enforced)."""
        self.name = "controllers"
        self.store = store
        self.service_cidr = service_cidr
        self.rng = rng or random.Random()
        self.clock = clock
        self.events = events or EventRecorder(store, clock, host=socket.gethostname())
        self.cache = informer or Informer(store)
        self.resync = resync
        self._next_resync = clock() + resync
        self._failing: dict[tuple[str, str], str] = {}     # (controller, key) -> error
        self.usage: autoscaler.UsageOf = usage or (lambda _uid: None)
        self._autoscaling: dict[str, autoscaler.Memory] = {}   # HPA uid -> its window
        self.loop = Loop(self.name, self.run_once, resync=IDLE_PASS, debounce=0.02)
        self.controllers = self._controllers()
        self.cache.add_handler(self._on_change)

    def _controllers(self) -> list[Controller]:
        c = self.cache

        def make(name: str, watch: watches.Mapper, sync: Callable, kind: str = "",
                 keys: Callable[[], Iterable[Hashable]] | None = None,
                 subject: Callable[[Hashable], dict | None] | None = None) -> Controller:
            return Controller(
                name, WorkQueue(name, self.clock, on_add=self.loop.poke), watch, sync,
                keys or (lambda: [key_of(o) for o in c.list(kind)]),
                subject or (lambda key: c.get(key) if isinstance(key, ObjectKey) else None))

        def one() -> list[str]:
            return [ALL]

        return [
            make("garbage-collector", watches.garbage_collector, self._collect, keys=one),
            make("service", watches.service_allocations, self._allocate, keys=one),
            make("persistentvolumeclaim", watches.claims, self._claim,
                 "PersistentVolumeClaim"),
            make("deployment", watches.deployments, self._deployment, "Deployment"),
            make("replicaset", watches.replicasets, self._replicaset, "ReplicaSet"),
            make("replicationcontroller", watches.replicationcontrollers,
                 self._replicationcontroller, "ReplicationController"),
            make("statefulset", watches.statefulsets, self._statefulset, "StatefulSet"),
            make("daemonset", watches.daemonsets, self._daemonset, "DaemonSet"),
            make("cronjob", watches.cronjobs, self._cronjob, "CronJob"),
            make("job", watches.jobs, self._job, "Job"),
            make("horizontalpodautoscaler", watches.autoscalers, self._autoscale,
                 "HorizontalPodAutoscaler"),
            make("endpoints", watches.endpoints, self._endpoints, "Service",
                 subject=lambda key: c.get(key) or c.get(ObjectKey("Endpoints", *key[1:]))),
            make("disruption", watches.disruption_budgets, self._budget,
                 "PodDisruptionBudget"),
        ]

    # -- runnable -------------------------------------------------------------------------
    async def start(self) -> None:
        await self.loop.start()

    async def stop(self) -> None:
        await self.loop.stop()

    def healthy(self) -> bool:
        return self.loop.healthy()

    # -- feeding the queues ---------------------------------------------------------------
    def _on_change(self, event: str, old: dict | None, new: dict | None) -> None:
        for controller in self.controllers:
            for key in controller.watch(self.cache, event, old, new):
                controller.queue.add(key)

    def resync_all(self) -> None:
        """Queue every key of every controller (the long period's safety net)."""
        for controller in self.controllers:
            for key in controller.keys():
                controller.queue.add(key)

    # -- a pass -----------------------------------------------------------------------------
    def run_once(self) -> float | None:
        """Reconcile the keys ready now, controller by controller. Returns the seconds
        until a pass is next wanted for a key's requeue or the resync."""
        now = self.clock()
        if now >= self._next_resync:
            self._next_resync = now + self.resync
            self.resync_all()
        for controller in self.controllers:
            batch = [k for _ in range(controller.queue.ready())
                     if (k := controller.queue.get()) is not None]
            for key in sorted(batch):        # keys of one queue are of one type
                self._process(controller, key)
        self.events.prune()
        if any(c.queue.ready() for c in self.controllers):
            return 0.0
        due = min(filter(None, (self.next_wakeup(), self._next_resync)))
        return max(0.0, due - self.clock())

    def next_wakeup(self) -> float | None:
        """The clock time of the earliest key some controller asked to come back to."""
        return min(filter(None, (c.queue.next_due() for c in self.controllers)), default=None)

    def _process(self, controller: Controller, key: Hashable) -> None:
        queue = controller.queue
        now = self.clock()
        try:
            due = controller.sync(key)
        except Exception as exc:   # noqa: BLE001 - whatever it is, the pass goes on
            self._failed(controller, key, exc)
            queue.done(key)
            if isinstance(exc, TransientError):
                queue.add_after(key, exc.retry_after)
            else:
                queue.add_rate_limited(key)
            return
        self._failing.pop((controller.name, str(key)), None)
        queue.forget(key)
        queue.done(key)
        if due is not None:         # a time already past (a write that did not take): soon
            queue.add_at(key, due if due > now else now + MIN_REQUEUE)

    def _failed(self, controller: Controller, key: Hashable, exc: Exception) -> None:
        """Logged and told as an event when the failure first appears or changes, not on
        every retry."""
        where = (controller.name, str(key) if key != ALL else "")
        message = f"{type(exc).__name__}: {exc}"
        if self._failing.get(where) == message:
            return
        self._failing[where] = message
        log.error("reconcile_failed", controller=controller.name, object=where[1],
                  exc_info=exc)
        obj = controller.subject(key)
        if obj is not None:
            self.events.record(event_for(obj, "ReconcileFailed",
                                         f"{controller.name} cannot reconcile it: {message}",
                                         WARNING, controller.name))

    def _execute(self, actions: list[Action], controller: str,
                 obj: dict | None = None) -> None:
        """obj: the object reconciled, whose unchanged status need not be written again."""
        if obj is not None:
            actions = [a for a in actions if not (isinstance(a, SetStatus) and a.event is None
                                                  and a.key == key_of(obj)
                                                  and a.status == obj.get("status"))]
        execute(self.store, actions, controller, self.events)

    def allocations_pending(self) -> bool:
        """Whether some Service still waits for its ClusterIP or node port (the scheduler
        holds pods until then, so they start with every Service in their environment)."""
        try:
            return bool(service.reconcile(self.cache.list("Service"), self.service_cidr))
        except Exception:   # noqa: BLE001 - the allocator's own pass reports it
            return False

    def _lookup(self, kind: str, namespace: str, name: str) -> dict | None:
        return self.cache.lookup(kind, namespace, name)

    # -- one key of each controller ---------------------------------------------------------
    def _gc_snapshot(self) -> list[dict]:
        """Every kind as of one instant (the cache follows the store's commits in order):
        an owner created through the API with its dependent is seen with it, never the
        dependent alone. Events own nothing and are owned by nothing."""
        return self.cache.snapshot(kind for kind in KINDS if kind != "Event")

    def _collect(self, _key: Hashable) -> None:
        self._execute(gc.reconcile(self._gc_snapshot()), "garbage-collector")

    def _allocate(self, _key: Hashable) -> None:
        self._execute(service.reconcile(self.cache.list("Service"), self.service_cidr),
                      "service")

    def _claim(self, key: Hashable) -> None:
        if (obj := self.cache.get(key)) is not None:
            self._execute(pvc.reconcile([obj]), "persistentvolumeclaim")

    def _deployment(self, key: Hashable) -> float | None:
        deploy = self.cache.get(key)
        if deploy is None:
            return None
        c, now = self.cache, self.clock()
        uid, ns = deploy["metadata"]["uid"], key.namespace
        owned, adopt = claim(deploy, deploy["spec"].get("selector"),
                             [*c.controlled_by("ReplicaSet", uid), *c.orphans("ReplicaSet", ns)])
        self._execute(adopt, "deployment")
        pods = [p for rs in owned for p in c.controlled_by("Pod", rs["metadata"]["uid"])]
        self._execute(deployment.reconcile(deploy, owned, now, self._lookup, pods),
                      "deployment", deploy)
        return requeue.progress_deadline_at(c.get(key) or deploy, now)

    def _replicaset(self, key: Hashable) -> float | None:
        rs = self.cache.get(key)
        if rs is None:
            return None
        c, now = self.cache, self.clock()
        uid, ns = rs["metadata"]["uid"], key.namespace
        owned, adopt = claim(rs, rs["spec"].get("selector"),
                             [*c.controlled_by("Pod", uid), *c.orphans("Pod", ns)])
        self._execute(adopt, "replicaset")
        parent = controller_of(rs)
        siblings = c.controlled_by("ReplicaSet", parent["uid"]) if parent else [rs]
        related = [p for sib in siblings for p in c.controlled_by("Pod", sib["metadata"]["uid"])]
        related += [p for p in owned if p not in related]
        self._execute(replicaset.reconcile(rs, owned, self.rng, now, related),
                      "replicaset", rs)
        return requeue.first_available(
            (p for p in c.controlled_by("Pod", uid) if is_active(p)),
            int(rs["spec"].get("minReadySeconds") or 0), now)

    def _replicationcontroller(self, key: Hashable) -> float | None:
        rc = self.cache.get(key)
        if rc is None:
            return None
        c, now = self.cache, self.clock()
        uid = rc["metadata"]["uid"]
        owned, adopt = claim(rc, replicationcontroller.selector(rc),
                             [*c.controlled_by("Pod", uid), *c.orphans("Pod", key.namespace)])
        self._execute(adopt, "replicationcontroller")
        self._execute(replicationcontroller.reconcile(rc, owned, self.rng, now),
                      "replicationcontroller", rc)
        return requeue.first_available(
            (p for p in c.controlled_by("Pod", uid) if is_active(p)),
            int(rc["spec"].get("minReadySeconds") or 0), now)

    def _statefulset(self, key: Hashable) -> float | None:
        sts = self.cache.get(key)
        if sts is None:
            return None
        c, now = self.cache, self.clock()
        uid, ns = sts["metadata"]["uid"], key.namespace
        _, adopt = claim(sts, sts["spec"].get("selector"),
                         [*c.controlled_by("Pod", uid), *c.orphans("Pod", ns)])
        self._execute(adopt, "statefulset")
        self._execute(statefulset.reconcile(
            sts, _claimed(c.list("Pod", ns), adopt), c.list("PersistentVolumeClaim", ns), now,
            self._lookup, c.controlled_by("ControllerRevision", uid)), "statefulset", sts)
        return requeue.first_available(c.controlled_by("Pod", uid),
                                       int(sts["spec"].get("minReadySeconds") or 0), now)

    def _daemonset(self, key: Hashable) -> float | None:
        ds = self.cache.get(key)
        if ds is None:
            return None
        c, now = self.cache, self.clock()
        uid, ns = ds["metadata"]["uid"], key.namespace
        owned, adopt = claim(ds, ds["spec"].get("selector"),
                             [*c.controlled_by("Pod", uid), *c.orphans("Pod", ns)])
        self._execute(adopt, "daemonset")
        self._execute(daemonset.reconcile(ds, owned, c.list("Node"), now, self.rng,
                                          self._lookup, c.controlled_by("ControllerRevision",
                                                                        uid)),
                      "daemonset", ds)
        return requeue.first_available(c.controlled_by("Pod", uid),
                                       int(ds["spec"].get("minReadySeconds") or 0), now)

    def _cronjob(self, key: Hashable) -> float | None:
        cj = self.cache.get(key)
        if cj is None:
            return None
        now = self.clock()
        self._execute(cronjob.reconcile(cj, self.cache.controlled_by("Job", cj["metadata"]["uid"]),
                                        now), "cronjob", cj)
        return cronjob.next_schedule(self.cache.get(key) or cj, now)

    def _job(self, key: Hashable) -> float | None:
        j = self.cache.get(key)
        if j is None:
            return None
        now, uid = self.clock(), j["metadata"]["uid"]
        self._execute(job.reconcile(j, self.cache.controlled_by("Pod", uid), now, self.rng),
                      "job", j)
        after = self.cache.get(key)
        return job.next_sync(after, self.cache.controlled_by("Pod", uid), now) \
            if after is not None else None

    def _autoscale(self, key: Hashable) -> float | None:
        hpa = self.cache.get(key)
        if hpa is None:
            self._autoscaling = {uid: m for uid, m in self._autoscaling.items()
                                 if self.cache.by_uid(uid) is not None}
            return None
        now, uid = self.clock(), hpa["metadata"]["uid"]
        ref = (hpa.get("spec") or {}).get("scaleTargetRef") or {}
        target = self.cache.lookup(ref.get("kind", ""), key.namespace, ref.get("name", "")) \
            if ref.get("kind") in autoscaler.SCALABLE else None
        pods = autoscaler.target_pods(target, self.cache.list("Pod", key.namespace)) \
            if target is not None else []
        memory = self._autoscaling.setdefault(uid, autoscaler.Memory())
        self._execute(autoscaler.reconcile(hpa, target, pods, self.usage, memory, now),
                      "horizontalpodautoscaler", hpa)
        return now + autoscaler.SYNC_PERIOD

    def autoscaled_pods(self) -> set[str]:
        """The uids of the pods some HorizontalPodAutoscaler reads the usage of (the node
        samples only those). Thread-safe: reads the informer's cache."""
        uids: set[str] = set()
        for hpa in self.cache.list("HorizontalPodAutoscaler"):
            ref = (hpa.get("spec") or {}).get("scaleTargetRef") or {}
            ns = hpa["metadata"].get("namespace", "default")
            if ref.get("kind") not in autoscaler.SCALABLE or \
                    (target := self.cache.lookup(ref["kind"], ns, ref.get("name", ""))) is None:
                continue
            uids.update(p["metadata"].get("uid", "") for p in
                        autoscaler.target_pods(target, self.cache.list("Pod", ns)))
        return uids

    def _endpoints(self, key: Hashable) -> None:
        ns, name = key.namespace, key.name
        self._execute(endpoints.reconcile(self.cache.get(key),
                                          self.cache.get(ObjectKey("Endpoints", ns, name)),
                                          self.cache.list("Pod", ns)), "endpoints")

    def _budget(self, key: Hashable) -> None:
        if (pdb := self.cache.get(key)) is not None:
            self._execute(disruption.reconcile([pdb], self.cache.list("Pod", key.namespace),
                                               self._lookup, rfc3339(self.clock())),
                          "disruption")


def _claimed(objs: list[dict], actions: list[Action]) -> list[dict]:
    """objs with the copies that adoption or release just wrote in their place."""
    changed = {a.obj["metadata"].get("uid"): a.obj for a in actions if hasattr(a, "obj")}
    return [changed.get(o["metadata"].get("uid"), o) for o in objs]
