"""What every backend does around its storage: transactions that nest, watchers told only
after commit (they never see a change that could still roll back), and the change log
API watches resume from, kept in commit order.

A backend subclasses Backend and provides its storage: _begin/_commit/_rollback and the
Store protocol's reads and raw writes (see gitops.store.base).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from gitops.model import ObjectKey
from gitops.store.base import NotFound, Watcher
from gitops.store.changes import Change, ChangeLog

# Sync history entries kept: a sync that fails on every poll writes one each time, for as
# long as the agent runs. Rollback looks back 200.
HISTORY_LIMIT = 1000


def as_json(obj: object) -> str:
    return json.dumps(obj, separators=(",", ":"))


class Backend:
    def __init__(self, start_rv: int) -> None:
        # Writes are serialised by one lock, so loops on worker threads share a backend.
        self._lock = threading.RLock()
        self._depth = 0
        self._pending: list[tuple[str, dict, Change]] = []
        self._watchers: list[Watcher] = []
        self.changes = ChangeLog(start_rv)

    # -- what a backend provides ----------------------------------------------------------
    def _begin(self) -> None:
        raise NotImplementedError

    def _commit(self) -> None:
        raise NotImplementedError

    def _rollback(self) -> None:
        raise NotImplementedError

    def resource_version(self) -> int:
        raise NotImplementedError

    def get(self, key: ObjectKey) -> dict | None:
        raise NotImplementedError

    def list(self, kind: str, namespace: str | None = None) -> list[dict]:
        raise NotImplementedError

    def update(self, obj: dict) -> dict:
        raise NotImplementedError

    # -- shared -----------------------------------------------------------------------------
    @contextmanager
    def transaction(self) -> Iterator[None]:
        """All writes inside commit together or not at all (nested calls join the outer)."""
        with self._lock:
            if self._depth == 0:
                self._begin()
            self._depth += 1
            try:
                yield
            except BaseException:
                self._depth -= 1
                if self._depth == 0:
                    self._rollback()
                    self._pending.clear()
                raise
            self._depth -= 1
            if self._depth:
                return
            self._commit()
            events, self._pending = self._pending, []
            # under the lock: the log is in commit order
            self.changes.extend_serialized([change for _, _, change in events])
        for event_type, obj, _ in events:
            for fn in self._watchers:
                fn(event_type, obj)

    def watch(self, fn: Watcher) -> None:
        self._watchers.append(fn)

    def snapshot(self, kind: str, namespace: str | None = None) -> tuple[int, list[dict]]:
        """A list and the resourceVersion it is consistent with (a watch resumes there)."""
        with self._lock:
            return self.resource_version(), self.list(kind, namespace)

    def page(self, kind: str, namespace: str | None, after: tuple[str, str] | None,
             limit: int | None) -> tuple[int, list[dict], int]:
        """(resourceVersion, up to `limit` objects ordered by (namespace, name) strictly
        after `after`, how many more follow them): one page of a chunked list. A backend
        that can seek overrides this, so a list of N objects in pages costs O(N), not
        O(N * pages)."""
        rv, objects = self.snapshot(kind, namespace)
        if after is not None:
            objects = [o for o in objects if _position(o) > after]
        if limit and len(objects) > limit:
            return rv, objects[:limit], len(objects) - limit
        return rv, objects, 0

    def prefetch(self, keys: list[ObjectKey]) -> None:
        """A hint inside a transaction: these objects are about to be read. A backend
        whose reads are remote (etcd) reads them together now."""

    @contextmanager
    def unobserved(self) -> Iterator[None]:
        """Writes made inside (by this thread) return without waiting for this server's
        watchers to see them: for a write nothing reads back through a watch, such as a
        Lease renewal, whose deadline a lagging watch must not eat. Only a backend whose
        watchers can lag its writes (etcd) waits at all."""
        yield

    def update_status(self, key: ObjectKey, status: dict) -> dict:
        """The stored object with this status, at a new resourceVersion."""
        with self.transaction():
            old = self.get(key)
            if old is None:
                raise NotFound(f"{key} not found")
            return self.update({**old, "status": status})

    def _changed(self, event_type: str, obj: dict, body: str, before: str = "") -> None:
        """Record a write of this transaction; watchers and the log get it at commit."""
        change = Change(int(obj["metadata"]["resourceVersion"]), event_type,
                        str(obj.get("kind", "")), body, before)
        self._pending.append((event_type, obj, change))


def _position(obj: dict) -> tuple[str, str]:
    meta = obj["metadata"]
    return meta.get("namespace", "") or "", meta["name"]
