"""Embedded SQLite store (WAL): objects as Kubernetes JSON plus inventory, state, history.

Writes are serialised by a lock so loops on worker threads can share one connection;
watchers are told after commit, so they never see a change that could still roll back.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from gitops.model import ObjectKey, key_of
from gitops.model.times import now_iso
from gitops.model.volumepaths import is_safe_uid
from gitops.store.base import Conflict, InventoryEntry, NotFound, Watcher
from gitops.store.changes import ChangeLog

_SCHEMA = """
CREATE TABLE IF NOT EXISTS objects (
  kind TEXT NOT NULL, namespace TEXT NOT NULL, name TEXT NOT NULL,
  uid TEXT NOT NULL, resource_version INTEGER NOT NULL, body TEXT NOT NULL,
  PRIMARY KEY (kind, namespace, name));
CREATE INDEX IF NOT EXISTS objects_uid ON objects(uid);
CREATE TABLE IF NOT EXISTS inventory (
  kind TEXT NOT NULL, namespace TEXT NOT NULL, name TEXT NOT NULL,
  api_version TEXT NOT NULL, file TEXT NOT NULL, line INTEGER NOT NULL,
  applied_hash TEXT NOT NULL DEFAULT '', sync_status TEXT NOT NULL DEFAULT 'Synced',
  PRIMARY KEY (kind, namespace, name));
CREATE TABLE IF NOT EXISTS applied (
  kind TEXT NOT NULL, namespace TEXT NOT NULL, name TEXT NOT NULL, body TEXT NOT NULL,
  PRIMARY KEY (kind, namespace, name));
CREATE TABLE IF NOT EXISTS state (name TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS history (
  id INTEGER PRIMARY KEY AUTOINCREMENT, at REAL NOT NULL, entry TEXT NOT NULL);
"""

# Parts of an object that are not its spec: changing only these leaves generation alone.
_NON_SPEC = ("metadata", "status", "apiVersion", "kind")


# Sync history rows kept: a sync that fails on every poll writes one each time, for as
# long as the agent runs. Rollback looks back 200.
HISTORY_LIMIT = 1000


def _owner_only(path: Path, create: bool = True) -> None:
    """Secret data is stored in clear: the file is 0600 before SQLite writes a byte to it.
    A file of another owner is left as it is (only its owner may chmod it)."""
    if create:
        os.close(os.open(path, os.O_RDONLY | os.O_CREAT, 0o600))
    try:
        os.chmod(path, 0o600)
    except (FileNotFoundError, PermissionError):
        pass


class SqliteStore:
    def __init__(self, path: str | Path, history_limit: int = HISTORY_LIMIT) -> None:
        self.path = str(path)
        self.history_limit = history_limit
        if self.path != ":memory:":
            _owner_only(Path(self.path))
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None,
                                   timeout=30)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        if self.path != ":memory:":
            # SQLite makes -wal/-shm with the database's mode; an older version's stay
            # as they were unless tightened.
            for suffix in ("-wal", "-shm"):
                _owner_only(Path(self.path + suffix), create=False)
        self._db.executescript(_SCHEMA)
        self._lock = threading.RLock()
        self._depth = 0
        self._pending: list[tuple[str, dict, dict | None]] = []   # type, object, before
        self._watchers: list[Watcher] = []
        self.changes = ChangeLog(self.resource_version())   # what API watches resume from

    # -- transactions and notification ------------------------------------------------
    @contextmanager
    def transaction(self) -> Iterator[None]:
        """All writes inside commit together or not at all (nested calls join the outer)."""
        with self._lock:
            if self._depth == 0:
                self._db.execute("BEGIN IMMEDIATE")
            self._depth += 1
            try:
                yield
            except BaseException:
                self._depth -= 1
                if self._depth == 0:
                    self._db.execute("ROLLBACK")
                    self._pending.clear()
                raise
            self._depth -= 1
            if self._depth:
                return
            self._db.execute("COMMIT")
            events, self._pending = self._pending, []
            self.changes.extend(events)      # under the lock: the log is in commit order
        for event_type, obj, _before in events:
            for fn in self._watchers:
                fn(event_type, obj)

    def watch(self, fn: Watcher) -> None:
        self._watchers.append(fn)

    def resource_version(self) -> int:
        """The newest resourceVersion handed out (what a list is consistent with)."""
        with self._lock:
            row = self._db.execute(
                "SELECT value FROM state WHERE name='resourceVersion'").fetchone()
        return int(json.loads(row[0])) if row else 0

    def snapshot(self, kind: str, namespace: str | None = None) -> tuple[int, list[dict]]:
        """A list and the resourceVersion it is consistent with (a watch resumes there)."""
        with self._lock:
            return self.resource_version(), self.list(kind, namespace)

    def _next_rv(self) -> int:
        row = self._db.execute("SELECT value FROM state WHERE name='resourceVersion'").fetchone()
        rv = int(json.loads(row[0])) + 1 if row else 1
        self._db.execute("INSERT OR REPLACE INTO state VALUES ('resourceVersion', ?)", (str(rv),))
        return rv

    # -- objects ---------------------------------------------------------------------
    def get(self, key: ObjectKey) -> dict | None:
        with self._lock:
            row = self._db.execute(
                "SELECT body FROM objects WHERE kind=? AND namespace=? AND name=?", key).fetchone()
        return json.loads(row[0]) if row else None

    def get_by_uid(self, uid: str) -> dict | None:
        with self._lock:
            row = self._db.execute("SELECT body FROM objects WHERE uid=?", (uid,)).fetchone()
        return json.loads(row[0]) if row else None

    def list(self, kind: str, namespace: str | None = None) -> list[dict]:
        with self._lock:
            if namespace is None:
                rows = self._db.execute(
                    "SELECT body FROM objects WHERE kind=? ORDER BY namespace, name", (kind,))
            else:
                rows = self._db.execute(
                    "SELECT body FROM objects WHERE kind=? AND namespace=? ORDER BY name",
                    (kind, namespace))
            return [json.loads(r[0]) for r in rows.fetchall()]

    def all_objects(self) -> Iterator[dict]:
        with self._lock:
            rows = self._db.execute("SELECT body FROM objects ORDER BY kind, namespace, name")
            bodies = rows.fetchall()
        return (json.loads(r[0]) for r in bodies)

    def create(self, obj: dict) -> dict:
        key = key_of(obj)
        with self.transaction():
            if self.get(key) is not None:
                raise Conflict(f"{key} already exists")
            obj = json.loads(json.dumps(obj))
            meta = obj.setdefault("metadata", {})
            if key.namespace:
                meta["namespace"] = key.namespace
            # Writers from outside (git, the API) never choose a uid; a trusted caller's
            # is kept only when the node may use it as a directory name.
            given = meta.get("uid")
            meta["uid"] = given if isinstance(given, str) and is_safe_uid(given) \
                else str(uuid.uuid4())
            meta["creationTimestamp"] = meta.get("creationTimestamp") or now_iso()
            meta["generation"] = 1
            meta["resourceVersion"] = str(self._next_rv())
            self._write(key, obj)
            self._pending.append(("ADDED", obj, None))
        return obj

    def update(self, obj: dict) -> dict:
        """Replace an object. A resourceVersion in obj must match (optimistic concurrency)."""
        key = key_of(obj)
        with self.transaction():
            old = self.get(key)
            if old is None:
                raise NotFound(f"{key} not found")
            meta = obj.setdefault("metadata", {})
            if meta.get("resourceVersion") not in (None, old["metadata"]["resourceVersion"]):
                raise Conflict(f"{key} was modified (resourceVersion "
                               f"{meta['resourceVersion']} != {old['metadata']['resourceVersion']})")
            obj = json.loads(json.dumps(obj))
            meta = obj["metadata"]
            for field in ("uid", "creationTimestamp"):
                meta[field] = old["metadata"][field]
            if key.namespace:
                meta["namespace"] = key.namespace
            spec_changed = _spec(old) != _spec(obj)
            meta["generation"] = old["metadata"].get("generation", 1) + (1 if spec_changed else 0)
            if "status" not in obj and "status" in old:
                obj["status"] = old["status"]
            meta["resourceVersion"] = old["metadata"]["resourceVersion"]
            if obj == old:
                return old   # no-op writes don't wake every loop
            meta["resourceVersion"] = str(self._next_rv())
            self._write(key, obj)
            self._pending.append(("MODIFIED", obj, old))
        return obj

    def update_status(self, key: ObjectKey, status: dict) -> dict:
        with self.transaction():
            old = self.get(key)
            if old is None:
                raise NotFound(f"{key} not found")
            if old.get("status") == status:
                return old
            obj = {**old, "status": status,
                   "metadata": {**old["metadata"], "resourceVersion": str(self._next_rv())}}
            self._write(key, obj)
            self._pending.append(("MODIFIED", obj, old))
        return obj

    def delete(self, key: ObjectKey) -> dict | None:
        with self.transaction():
            old = self.get(key)
            if old is None:
                return None
            self._db.execute("DELETE FROM objects WHERE kind=? AND namespace=? AND name=?", key)
            # Watchers see the deletion at its own resourceVersion, as Kubernetes reports it.
            gone = {**old, "metadata": {**old["metadata"],
                                        "resourceVersion": str(self._next_rv())}}
            self._pending.append(("DELETED", gone, None))
        return old

    def _write(self, key: ObjectKey, obj: dict) -> None:
        meta = obj["metadata"]
        self._db.execute("INSERT OR REPLACE INTO objects VALUES (?,?,?,?,?,?)",
                         (*key, meta["uid"], int(meta["resourceVersion"]),
                          json.dumps(obj, separators=(",", ":"))))

    # -- inventory, state, history ------------------------------------------------------
    def inventory(self) -> dict[ObjectKey, InventoryEntry]:
        with self._lock:
            rows = self._db.execute("SELECT * FROM inventory").fetchall()
        return {ObjectKey(*r[:3]): InventoryEntry(ObjectKey(*r[:3]), *r[3:]) for r in rows}

    def set_inventory(self, entries: list[InventoryEntry]) -> None:
        with self.transaction():
            self._db.execute("DELETE FROM inventory")
            self._db.executemany("INSERT INTO inventory VALUES (?,?,?,?,?,?,?,?)",
                                 [(*e.key, e.api_version, e.file, e.line, e.applied_hash,
                                   e.sync_status) for e in entries])

    def applied(self, key: ObjectKey) -> dict | None:
        """What git last applied for key (the base of a three-way merge), if recorded."""
        with self._lock:
            row = self._db.execute(
                "SELECT body FROM applied WHERE kind=? AND namespace=? AND name=?",
                key).fetchone()
        return json.loads(row[0]) if row else None

    def set_applied(self, bodies: dict[ObjectKey, dict | None]) -> None:
        """Record what git applied per key; None forgets the key (pruned)."""
        with self.transaction():
            for key, body in bodies.items():
                if body is None:
                    self._db.execute(
                        "DELETE FROM applied WHERE kind=? AND namespace=? AND name=?", key)
                else:
                    self._db.execute("INSERT OR REPLACE INTO applied VALUES (?,?,?,?)",
                                     (*key, json.dumps(body, separators=(",", ":"))))

    def get_state(self, name: str, default: object = None) -> object:
        with self._lock:
            row = self._db.execute("SELECT value FROM state WHERE name=?", (name,)).fetchone()
        return json.loads(row[0]) if row else default

    def set_state(self, name: str, value: object) -> None:
        with self.transaction():
            self._db.execute("INSERT OR REPLACE INTO state VALUES (?, ?)",
                             (name, json.dumps(value)))

    def record_sync(self, entry: dict) -> None:
        with self.transaction():
            row = self._db.execute("INSERT INTO history (at, entry) VALUES (?, ?)",
                                   (time.time(), json.dumps(entry)))
            self._db.execute("DELETE FROM history WHERE id <= ?",
                             (row.lastrowid - self.history_limit,))

    def history(self, limit: int = 20) -> list[dict]:
        with self._lock:
            rows = self._db.execute(
                "SELECT entry FROM history ORDER BY id DESC LIMIT ?", (limit,)).fetchall()
        return [json.loads(r[0]) for r in rows]

    def close(self) -> None:
        with self._lock:
            self._db.close()


def _spec(obj: dict) -> dict:
    return {k: v for k, v in obj.items() if k not in _NON_SPEC}
