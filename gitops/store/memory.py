"""An in-memory backend: the Store protocol without a file, for tests and throwaway runs.

Objects are kept as JSON text, as SQLite keeps them: every read is a fresh copy nobody
else holds, and what a test sees is what a real backend would give back. A transaction
keeps an undo log and replays it backwards on rollback.
"""

from __future__ import annotations

import json
from collections import deque
from collections.abc import Callable, Iterator

from gitops.model import ObjectKey, key_of
from gitops.store.backend import HISTORY_LIMIT, Backend, as_json
from gitops.store.base import Conflict, InventoryEntry, NotFound

Stored = tuple[int, str, str]       # resourceVersion, uid, the object as JSON


class MemoryStore(Backend):
    def __init__(self, history_limit: int = HISTORY_LIMIT) -> None:
        super().__init__(0)
        self._rv = 0
        self._objects: dict[str, dict[tuple[str, str], Stored]] = {}  # kind -> (ns, name)
        self._uids: dict[str, ObjectKey] = {}
        self._inventory: dict[ObjectKey, InventoryEntry] = {}
        self._applied: dict[ObjectKey, str] = {}
        self._state: dict[str, str] = {}
        self._history: deque[str] = deque(maxlen=history_limit)
        self._undo: list[Callable[[], None]] | None = None

    # -- transactions -----------------------------------------------------------------
    def _begin(self) -> None:
        self._undo = []

    def _commit(self) -> None:
        self._undo = None

    def _rollback(self) -> None:
        undo, self._undo = self._undo or [], None
        for step in reversed(undo):
            step()

    def _remember(self, table: dict, key: object) -> None:
        """Inside a transaction: how to put table[key] back as it is now."""
        if self._undo is None:
            return
        if key in table:
            value = table[key]
            self._undo.append(lambda: table.__setitem__(key, value))
        else:
            self._undo.append(lambda: table.pop(key, None))

    def _set(self, table: dict, key: object, value: object) -> None:
        self._remember(table, key)
        table[key] = value

    def _pop(self, table: dict, key: object) -> None:
        self._remember(table, key)
        table.pop(key, None)

    def resource_version(self) -> int:
        with self._lock:
            return self._rv

    def _next_rv(self) -> int:
        rv = self._rv + 1
        if self._undo is not None:
            before = self._rv
            self._undo.append(lambda: setattr(self, "_rv", before))
        self._rv = rv
        return rv

    # -- objects ---------------------------------------------------------------------
    def _table(self, kind: str) -> dict[tuple[str, str], Stored]:
        return self._objects.setdefault(kind, {})

    def get(self, key: ObjectKey) -> dict | None:
        with self._lock:
            stored = self._objects.get(key.kind, {}).get((key.namespace, key.name))
        return json.loads(stored[2]) if stored else None

    def get_by_uid(self, uid: str) -> dict | None:
        with self._lock:
            key = self._uids.get(uid)
            return self.get(key) if key is not None else None

    def list(self, kind: str, namespace: str | None = None) -> list[dict]:
        with self._lock:
            table = self._objects.get(kind, {})
            bodies = [table[k][2] for k in sorted(table)
                      if namespace is None or k[0] == namespace]
        return [json.loads(b) for b in bodies]

    def all_objects(self) -> Iterator[dict]:
        with self._lock:
            bodies = []
            for kind in sorted(self._objects):
                table = self._objects[kind]
                bodies += [table[k][2] for k in sorted(table)]
        return (json.loads(b) for b in bodies)

    def create(self, obj: dict) -> dict:
        key = key_of(obj)
        with self.transaction():
            if (key.namespace, key.name) in self._table(key.kind):
                raise Conflict(f"{key} already exists")
            obj["metadata"]["resourceVersion"] = str(self._next_rv())
            self._changed("ADDED", obj, self._write(key, obj))
        return obj

    def update(self, obj: dict) -> dict:
        key = key_of(obj)
        with self.transaction():
            stored = self._table(key.kind).get((key.namespace, key.name))
            if stored is None:
                raise NotFound(f"{key} not found")
            rv, old_uid, before = stored
            given = obj["metadata"].get("resourceVersion")
            if given not in (None, str(rv)):
                raise Conflict(f"{key} was modified (resourceVersion {given} != {rv})")
            if old_uid != obj["metadata"].get("uid", "") and self._uids.get(old_uid) == key:
                self._pop(self._uids, old_uid)
            obj["metadata"]["resourceVersion"] = str(self._next_rv())
            self._changed("MODIFIED", obj, self._write(key, obj), before)
        return obj

    def delete(self, key: ObjectKey) -> dict | None:
        with self.transaction():
            old = self.get(key)
            if old is None:
                return None
            self._pop(self._table(key.kind), (key.namespace, key.name))
            uid = old["metadata"].get("uid", "")
            if self._uids.get(uid) == key:
                self._pop(self._uids, uid)
            # Watchers see the deletion at its own resourceVersion, as Kubernetes reports it.
            gone = {**old, "metadata": {**old["metadata"],
                                        "resourceVersion": str(self._next_rv())}}
            self._changed("DELETED", gone, as_json(gone))
        return old

    def _write(self, key: ObjectKey, obj: dict) -> str:
        meta = obj["metadata"]
        body = as_json(obj)
        self._set(self._table(key.kind), (key.namespace, key.name),
                  (int(meta["resourceVersion"]), meta.get("uid", ""), body))
        if meta.get("uid"):
            self._set(self._uids, meta["uid"], key)
        return body

    # -- inventory, state, history ------------------------------------------------------
    def inventory(self) -> dict[ObjectKey, InventoryEntry]:
        with self._lock:
            return dict(self._inventory)

    def set_inventory(self, entries: list[InventoryEntry]) -> None:
        with self.transaction():
            for key in list(self._inventory):
                self._pop(self._inventory, key)
            for entry in entries:
                self._set(self._inventory, entry.key, entry)

    def applied(self, key: ObjectKey) -> dict | None:
        with self._lock:
            body = self._applied.get(key)
        return json.loads(body) if body is not None else None

    def set_applied(self, bodies: dict[ObjectKey, dict | None]) -> None:
        with self.transaction():
            for key, body in bodies.items():
                if body is None:
                    self._pop(self._applied, key)
                else:
                    self._set(self._applied, key, as_json(body))

    def get_state(self, name: str, default: object = None) -> object:
        with self._lock:
            value = self._state.get(name)
        return json.loads(value) if value is not None else default

    def set_state(self, name: str, value: object) -> None:
        with self.transaction():
            self._set(self._state, name, json.dumps(value))

    def record_sync(self, entry: dict) -> None:
        with self.transaction():
            history = self._history
            if self._undo is not None:
                kept = list(history)
                self._undo.append(lambda: (history.clear(), history.extend(kept)))
            history.append(json.dumps(entry))

    def history(self, limit: int = 20) -> list[dict]:
        with self._lock:
            newest = list(self._history)[::-1][:limit]
        return [json.loads(e) for e in newest]

    def close(self) -> None:
        pass
