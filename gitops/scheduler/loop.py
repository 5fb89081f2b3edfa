"""The scheduler as a loop of its own, with its own queue of unbound pods.

As kube-scheduler's scheduling queue: a pod is queued when it appears or changes while
unbound; a pass binds the queued pods (scheduler.reconcile decides, an injected executor
writes); one that fits nowhere is set aside until the cluster changes in a way that may
make room for it (a node appears or changes, a pod is bound, finishes, goes or is
relabelled elsewhere, a namespace is relabelled), and at the latest on the flush period.
Pods and nodes are read from the informer's cache. (A Service has its ClusterIP from
the moment it is stored: the store's registry allocates it, as the API server does, so no
pod can start before the Services made before it have one.)
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from gitops.model import ObjectKey, key_of
from gitops.model.actions import Action
from gitops.model.meta import is_deleting
from gitops.model.pods import has_finished
from gitops.runnable import Loop
from gitops.scheduler import scheduler
from gitops.scheduler.cache import ClusterCache
from gitops.scheduler.equivalence import EquivalenceCache
from gitops.scheduler.interpod import Placement, depends_on_others
from gitops.store.informer import ADDED, DELETED, Informer

FLUSH = 60.0        # seconds: pods set aside are tried again at least this often

Bind = Callable[[list[Action]], None]      # performs the scheduler's Updates (and events)


def _pending(pod: dict) -> bool:
    return not (pod.get("spec") or {}).get("nodeName") and not is_deleting(pod)


def _may_make_room(event: str, old: dict | None, new: dict | None) -> bool:
    """A change of a bound pod that can free resources or satisfy another pod's
    (anti-)affinity or spread."""
    bound = [p for p in (old, new) if p is not None and (p.get("spec") or {}).get("nodeName")]
    if not bound:
        return False
    if event in (ADDED, DELETED) or old is None or new is None:
        return True
    return ((old.get("spec") or {}).get("nodeName") != (new.get("spec") or {}).get("nodeName")
            or old["metadata"].get("labels") != new["metadata"].get("labels")
            or has_finished(old) != has_finished(new)
            or is_deleting(old) != is_deleting(new))


class SchedulingQueue:
    """Active pods (to try in the next pass) and unschedulable ones (set aside)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._active: set[ObjectKey] = set()
        self._unschedulable: set[ObjectKey] = set()

    def add(self, key: ObjectKey) -> None:
        with self._lock:
            self._unschedulable.discard(key)
            self._active.add(key)

    def forget(self, key: ObjectKey) -> None:
        with self._lock:
            self._active.discard(key)
            self._unschedulable.discard(key)

    def move_all(self) -> bool:
        """Unschedulable pods become active; whether there were any."""
        with self._lock:
            moved = bool(self._unschedulable)
            self._active |= self._unschedulable
            self._unschedulable.clear()
            return moved

    def take(self) -> set[ObjectKey]:
        with self._lock:
            keys, self._active = self._active, set()
            return keys

    def set_aside(self, keys: set[ObjectKey]) -> None:
        """Pods that fit nowhere, unless a change queued them again meanwhile."""
        with self._lock:
            self._unschedulable |= keys - self._active

    @property
    def active(self) -> int:
        with self._lock:
            return len(self._active)

    @property
    def unschedulable(self) -> int:
        with self._lock:
            return len(self._unschedulable)


class SchedulerLoop:
    def __init__(self, cache: Informer, bind: Bind, clock: Callable[[], float] = time.time,
                 flush: float = FLUSH) -> None:
        self.name = "scheduler"
        self.cache = cache
        self.bind = bind
        self.clock = clock
        self.flush = flush
        self._next_flush = clock() + flush
        self.queue = SchedulingQueue()
        self.nodes = ClusterCache()              # before the handler replays the cache
        self.verdicts = EquivalenceCache()
        self.loop = Loop(self.name, self.run_once, resync=flush, debounce=0.005)
        cache.add_handler(self._on_change)

    # -- runnable -----------------------------------------------------------------------
    async def start(self) -> None:
        await self.loop.start()

    async def stop(self) -> None:
        await self.loop.stop()

    def healthy(self) -> bool:
        return self.loop.healthy()

    # -- feeding the queue --------------------------------------------------------------
    def _on_change(self, event: str, old: dict | None, new: dict | None) -> None:
        kind = (new or old or {}).get("kind")
        wake = False
        if kind == "Pod":
            self.nodes.pod_changed(old, new)
            key = key_of(new or old)
            if new is not None and _pending(new):
                self.queue.add(key)
                wake = True
            else:
                self.queue.forget(key)
            wake = (_may_make_room(event, old, new) and self.queue.move_all()) or wake
        elif kind == "Node":
            self.nodes.node_changed(old, new)
            self.verdicts.forget((new or old)["metadata"]["name"])
            wake = self.queue.move_all()
        elif (kind == "Namespace" and (
                old is None or new is None
                or old["metadata"].get("labels") != new["metadata"].get("labels"))):
            wake = self.queue.move_all()
        if wake:
            self.loop.poke()

    # -- a pass -------------------------------------------------------------------------
    def run_once(self) -> float:
        """Bind the queued pods that fit; set the others aside. Returns the seconds until
        the next flush."""
        now = self.clock()
        if now >= self._next_flush:
            self._next_flush = now + self.flush
            self.queue.move_all()
        keys = self.queue.take()
        pending = {k: p for k in sorted(keys) if (p := self.cache.get(k)) is not None
                   and _pending(p)}
        if pending:
            # Where the other pods are matters only once some pod's affinity or spread
            # names them.
            others = self.nodes.has_dependent_pods or any(depends_on_others(p)
                                                          for p in pending.values())
            nodes, infos, placed = self.nodes.snapshot(with_placed=others)
            placement = None
            if others:
                placement = Placement(nodes, self.cache.list("Namespace"))
                for pod, node in placed:
                    placement.add(pod, node)
            actions = scheduler.schedule(list(pending.values()), infos, now, placement,
                                         self.verdicts)
            self.bind(actions)
            bound = {key_of(a.obj) for a in actions
                     if getattr(a, "obj", None) and a.obj["spec"].get("nodeName")}
            self.queue.set_aside(set(pending) - bound)
        return max(0.0, self._next_flush - self.clock())
