"""A shared cache of the store fed by its watch, as client-go's informer and indexer.

Every loop that reconciles (the controllers, the scheduler) reads lists from here instead
of the store, and is told of each change through a handler, so it can queue just the keys
the change concerns. The cache follows the store's change log in commit order (a watch
callback only says "something committed"; the log says what, in order), so it is at every
instant the store as it was at one resourceVersion: a snapshot of it is consistent across
kinds. A writer sees its own write in the cache as soon as the write returns (the callback
runs on the writer's thread after commit). When the log no longer reaches back far enough,
the cache relists and tells handlers what changed meanwhile.

Cached objects are shared, never copied on read: callers must not change them (the
reconcilers work on copies). Events are not cached: they record what loops did and never
ask for work.
"""

from __future__ import annotations

import threading
from collections import defaultdict
from collections.abc import Callable, Iterable

import structlog

from gitops.model import ObjectKey, key_of
from gitops.model.meta import controller_of
from gitops.store.base import Store
from gitops.store.changes import Gone

log = structlog.get_logger(component="informer")

ADDED, MODIFIED, DELETED = "ADDED", "MODIFIED", "DELETED"

# (ADDED|MODIFIED|DELETED, the object before or None, the object now or None)
Handler = Callable[[str, "dict | None", "dict | None"], None]

_Index = dict[ObjectKey, dict]


def _namespace(key: ObjectKey) -> str:
    return key.namespace


class Informer:
    def __init__(self, store: Store, skip: Iterable[str] = ("Event",)) -> None:
        self.store = store
        self._skip = frozenset(skip)
        self._lock = threading.RLock()
        self._handlers: list[Handler] = []
        self._rv = 0
        self._objects: dict[str, _Index] = defaultdict(dict)
        self._by_ns: dict[tuple[str, str], _Index] = defaultdict(dict)
        self._by_controller: dict[tuple[str, str], _Index] = defaultdict(dict)
        self._orphans: dict[tuple[str, str], _Index] = defaultdict(dict)
        self._by_uid: dict[str, dict] = {}
        self._dependents: dict[str, _Index] = defaultdict(dict)   # owner uid -> objects
        store.watch(self._on_commit)
        self._relist(initial=True)

    # -- reading -----------------------------------------------------------------------
    def get(self, key: ObjectKey) -> dict | None:
        if key.kind in self._skip:          # not cached: read from the store
            return self.store.get(key)
        with self._lock:
            return self._objects[key.kind].get(key) if key.kind in self._objects else None

    def lookup(self, kind: str, namespace: str, name: str) -> dict | None:
        return self.get(ObjectKey(kind, namespace, name))

    def list(self, kind: str, namespace: str | None = None) -> list[dict]:
        """Ordered by namespace and name, as the store lists."""
        with self._lock:
            index = self._objects.get(kind, {}) if namespace is None \
                else self._by_ns.get((kind, namespace), {})
            return _sorted(index)

    def controlled_by(self, kind: str, uid: str) -> list[dict]:
        """Objects of kind whose controller reference names uid."""
        with self._lock:
            return _sorted(self._by_controller.get((kind, uid), {}))

    def orphans(self, kind: str, namespace: str) -> list[dict]:
        """Objects of kind in namespace that no controller owns (adoption candidates)."""
        with self._lock:
            return _sorted(self._orphans.get((kind, namespace), {}))

    def by_uid(self, uid: str) -> dict | None:
        with self._lock:
            return self._by_uid.get(uid)

    def has_dependents(self, uid: str) -> bool:
        with self._lock:
            return bool(self._dependents.get(uid))

    def snapshot(self, kinds: Iterable[str]) -> list[dict]:
        """Every object of these kinds, kind by kind, as of one instant."""
        with self._lock:
            return [o for kind in kinds for o in _sorted(self._objects.get(kind, {}))]

    def cached(self) -> list[dict]:
        """Every object cached (not the kinds it skips), kind by kind."""
        with self._lock:
            return self.snapshot(sorted(self._objects))

    @property
    def resource_version(self) -> int:
        """The store's resourceVersion the cache is at."""
        return self._rv

    # -- handlers ----------------------------------------------------------------------
    def add_handler(self, handler: Handler) -> None:
        """Tell handler of every change from now on, and of every cached object now (as
        ADDED, kind by kind, by namespace and name), as a new informer handler is."""
        with self._lock:
            self._handlers.append(handler)
            for kind in sorted(self._objects):
                for obj in _sorted(self._objects[kind]):
                    self._tell(handler, ADDED, None, obj)

    def _tell(self, handler: Handler, event: str, old: dict | None, new: dict | None) -> None:
        try:
            handler(event, old, new)
        except Exception:   # noqa: BLE001 - one handler's bug must not starve the others
            log.exception("informer_handler_failed", handler=getattr(handler, "__name__", ""))

    # -- following the store -----------------------------------------------------------
    def _on_commit(self, _event: str, _obj: dict) -> None:
        with self._lock:
            try:
                changes = self.store.changes.since(self._rv)
            except Gone:
                log.warning("informer_relist", resource_version=self._rv)
                self._relist(initial=False)
                return
            for change in changes:
                self._rv = change.rv
                if change.kind not in self._skip:
                    self._apply(change.type, change.obj)

    def _relist(self, initial: bool) -> None:
        with self._lock:
            with self.store.transaction():      # every kind at one resourceVersion
                rv = self.store.resource_version()
                fresh = {key_of(o): o for o in self.store.all_objects()
                         if o.get("kind") not in self._skip}
            before = {k: o for index in self._objects.values() for k, o in index.items()}
            self._rv = rv
            for key in sorted(before.keys() - fresh.keys()):
                self._apply(DELETED, before[key])
            for key in sorted(fresh):
                old = before.get(key)
                if initial or old is None or \
                        old["metadata"].get("resourceVersion") != \
                        fresh[key]["metadata"].get("resourceVersion"):
                    self._apply(MODIFIED if old is not None else ADDED, fresh[key])

    def _apply(self, change: str, obj: dict) -> None:
        key = key_of(obj)
        objects = self._objects[key.kind]
        old = objects.get(key)
        if old is not None:
            self._unindex(key, old)
        if change == DELETED:
            if old is None:
                return
            del objects[key]
            new = None
        else:
            objects[key] = obj
            self._index(key, obj)
            new = obj
        event = DELETED if new is None else (ADDED if old is None else MODIFIED)
        for handler in self._handlers:
            self._tell(handler, event, old, new)

    def _index(self, key: ObjectKey, obj: dict) -> None:
        meta = obj.get("metadata") or {}
        self._by_ns[(key.kind, key.namespace)][key] = obj
        ref = controller_of(obj)
        if ref is not None and ref.get("uid"):
            self._by_controller[(key.kind, ref["uid"])][key] = obj
        else:
            self._orphans[(key.kind, key.namespace)][key] = obj
        if meta.get("uid"):
            self._by_uid[meta["uid"]] = obj
        for owner in meta.get("ownerReferences") or []:
            if owner.get("uid"):
                self._dependents[owner["uid"]][key] = obj

    def _unindex(self, key: ObjectKey, obj: dict) -> None:
        meta = obj.get("metadata") or {}
        _drop(self._by_ns, (key.kind, key.namespace), key)
        ref = controller_of(obj)
        if ref is not None and ref.get("uid"):
            _drop(self._by_controller, (key.kind, ref["uid"]), key)
        else:
            _drop(self._orphans, (key.kind, key.namespace), key)
        if meta.get("uid") and self._by_uid.get(meta["uid"]) is obj:
            del self._by_uid[meta["uid"]]
        for owner in meta.get("ownerReferences") or []:
            if owner.get("uid"):
                _drop(self._dependents, owner["uid"], key)


def _drop(indexes: dict, name: object, key: ObjectKey) -> None:
    index = indexes.get(name)
    if index is not None:
        index.pop(key, None)
        if not index:
            del indexes[name]


def _sorted(index: _Index) -> list[dict]:
    return [index[k] for k in sorted(index)]
