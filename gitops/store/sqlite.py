"""Embedded SQLite backend (WAL): objects as Kubernetes JSON plus inventory, state, history.

One connection, shared by the loops' worker threads under the backend's lock. Like every
backend it keeps what it is given; Kubernetes' rules are the registry's.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

from gitops.model import ObjectKey, jsoncodec, key_of
from gitops.store.backend import HISTORY_LIMIT, Backend, as_json
from gitops.store.base import Conflict, InventoryEntry, NotFound
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


def _owner_only(path: Path, create: bool = True) -> None:
    """Secret data is stored in clear: the file is 0600 before SQLite writes a byte to it.
    A file of another owner is left as it is (only its owner may chmod it)."""
    if create:
        os.close(os.open(path, os.O_RDONLY | os.O_CREAT, 0o600))
    try:
        os.chmod(path, 0o600)
    except (FileNotFoundError, PermissionError):
        pass


class SqliteStore(Backend):
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
        super().__init__(self._stored_rv())

    # -- transactions -----------------------------------------------------------------
    def _begin(self) -> None:
        self._db.execute("BEGIN IMMEDIATE")

    def _commit(self) -> None:
        self._db.execute("COMMIT")

    def _rollback(self) -> None:
        self._db.execute("ROLLBACK")

    def resource_version(self) -> int:
        """The newest resourceVersion handed out (what a list is consistent with)."""
        with self._lock:
            return self._stored_rv()

    def _stored_rv(self) -> int:
        row = self._db.execute("SELECT value FROM state WHERE name='resourceVersion'").fetchone()
        return int(json.loads(row[0])) if row else 0

    def _next_rv(self) -> int:
        rv = self._stored_rv() + 1
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
            return [jsoncodec.loads(r[0]) for r in rows.fetchall()]

    def page(self, kind: str, namespace: str | None, after: tuple[str, str] | None,
             limit: int | None) -> tuple[int, list[dict], int]:
        # Seeks on the primary key (kind, namespace, name): a page reads only its rows.
        where, args = "kind=?", [kind]
        if namespace is not None:
            where, args = where + " AND namespace=?", args + [namespace]
        if after is not None:
            where, args = where + " AND (namespace, name) > (?, ?)", args + list(after)
        with self._lock:
            rv = self.resource_version()
            if not limit:
                rows = self._db.execute(
                    f"SELECT body FROM objects WHERE {where} ORDER BY namespace, name", args)
                return rv, [jsoncodec.loads(r[0]) for r in rows.fetchall()], 0
            rows = self._db.execute(f"SELECT body, namespace, name FROM objects WHERE {where}"
                                    " ORDER BY namespace, name LIMIT ?", args + [limit])
            got = rows.fetchall()
            remaining = 0
            if len(got) == limit:
                last = (got[-1][1], got[-1][2])
                remaining = self._db.execute(
                    f"SELECT COUNT(*) FROM objects WHERE {where} AND (namespace, name) > (?, ?)",
                    args + list(last)).fetchone()[0]
            return rv, [jsoncodec.loads(r[0]) for r in got], remaining

    def all_objects(self) -> Iterator[dict]:
        with self._lock:
            rows = self._db.execute("SELECT body FROM objects ORDER BY kind, namespace, name")
            bodies = rows.fetchall()
        return (json.loads(r[0]) for r in bodies)

    def create(self, obj: dict) -> dict:
        key = key_of(obj)
        with self.transaction():
            if self._stored(key) is not None:
                raise Conflict(f"{key} already exists")
            obj["metadata"]["resourceVersion"] = str(self._next_rv())
            self._changed("ADDED", obj, self._write(key, obj))
        return obj

    def update(self, obj: dict) -> dict:
        key = key_of(obj)
        with self.transaction():
            stored = self._stored(key)
            if stored is None:
                raise NotFound(f"{key} not found")
            rv, before = stored
            given = obj["metadata"].get("resourceVersion")
            if given not in (None, str(rv)):
                raise Conflict(f"{key} was modified (resourceVersion {given} != {rv})")
            obj["metadata"]["resourceVersion"] = str(self._next_rv())
            self._changed("MODIFIED", obj, self._write(key, obj), before)
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
            self._changed("DELETED", gone, as_json(gone))
        return old

    def _stored(self, key: ObjectKey) -> tuple[int, str] | None:
        """(resourceVersion, body as JSON) of what is stored at key."""
        return self._db.execute(
            "SELECT resource_version, body FROM objects WHERE kind=? AND namespace=? AND name=?",
            key).fetchone()

    def _write(self, key: ObjectKey, obj: dict) -> str:
        meta = obj["metadata"]
        body = as_json(obj)
        self._db.execute("INSERT OR REPLACE INTO objects VALUES (?,?,?,?,?,?)",
                         (*key, meta.get("uid", ""), int(meta["resourceVersion"]), body))
        return body

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

    # -- backup and restore (gitops.store.backup) -----------------------------------------
    def dump(self) -> dict:
        """Everything stored, as of one instant (one read transaction)."""
        with self.transaction():
            data = {
                "resourceVersion": self._stored_rv(),
                "objects": [json.loads(r[0]) for r in self._db.execute(
                    "SELECT body FROM objects ORDER BY kind, namespace, name")],
                "inventory": [list(r) for r in self._db.execute("SELECT * FROM inventory")],
                "applied": [[*r[:3], json.loads(r[3])] for r in self._db.execute(
                    "SELECT * FROM applied")],
                "state": {n: json.loads(v) for n, v in self._db.execute(
                    "SELECT name, value FROM state WHERE name != 'resourceVersion'")},
                "history": [json.loads(r[0]) for r in self._db.execute(
                    "SELECT entry FROM history ORDER BY id")],
            }
        return data

    def load(self, data: dict) -> None:
        """Replace everything stored with a dump, in one transaction. Objects keep their
        resourceVersions; the store's goes on from the newest of the dump's and its own."""
        with self.transaction():
            rv = max(self._stored_rv(), int(data.get("resourceVersion", 0)))
            for table in ("objects", "inventory", "applied", "state", "history"):
                self._db.execute(f"DELETE FROM {table}")
            for obj in data.get("objects", []):
                rv = max(rv, int(obj["metadata"].get("resourceVersion") or 0))
                self._write(key_of(obj), obj)
            self._db.executemany("INSERT INTO inventory VALUES (?,?,?,?,?,?,?,?)",
                                 [tuple(r) for r in data.get("inventory", [])])
            self._db.executemany("INSERT INTO applied VALUES (?,?,?,?)",
                                 [(*r[:3], as_json(r[3])) for r in data.get("applied", [])])
            self._db.executemany("INSERT INTO state VALUES (?, ?)",
                                 [(n, json.dumps(v)) for n, v in data.get("state", {}).items()])
            self._db.executemany("INSERT INTO history (at, entry) VALUES (?, ?)",
                                 [(time.time(), json.dumps(e)) for e in data.get("history", [])])
            self._db.execute("INSERT OR REPLACE INTO state VALUES ('resourceVersion', ?)",
                             (str(rv),))
        self.changes = ChangeLog(rv)        # watches from before the restore relist

    def close(self) -> None:
        with self._lock:
            self._db.close()

