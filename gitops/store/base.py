"""What every store offers; loops depend on this protocol, not on a backend.

Two kinds of object implement it. A backend (SqliteStore, MemoryStore, etcd next) keeps
what it is given: it checks existence and resourceVersion preconditions, hands out
resourceVersions, commits transactions, tells watchers and logs changes for API watches.
The registry (gitops.store.registry) wraps a backend and is what every writer uses: it
owns Kubernetes' rules (identity, generation, no-op writes, deletion, allocations, ...).
A backend's writes take over the object they are given (its resourceVersion is set in
place): pass a copy nobody else changes, as the registry does.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Protocol

from gitops.errors import GitopsError
from gitops.model import ObjectKey
from gitops.store.changes import ChangeLog


class NotFound(GitopsError):
    pass


class Conflict(GitopsError):
    """Optimistic concurrency: the object changed since it was read, or already exists."""


@dataclass(frozen=True)
class InventoryEntry:
    key: ObjectKey
    api_version: str
    file: str
    line: int
    applied_hash: str = ""          # hash of the desired object last applied from git
    sync_status: str = "Synced"     # Synced | OutOfSync (drift reported, not corrected)


Watcher = Callable[[str, dict], None]   # (ADDED|MODIFIED|DELETED, object)


class Store(Protocol):
    def get(self, key: ObjectKey) -> dict | None: ...
    def list(self, kind: str, namespace: str | None = None) -> list[dict]: ...
    # create: Conflict when the key exists. update: NotFound when it does not, Conflict
    # when obj carries a resourceVersion that is not the stored one.
    def create(self, obj: dict) -> dict: ...
    def update(self, obj: dict) -> dict: ...
    def update_status(self, key: ObjectKey, status: dict) -> dict: ...
    def delete(self, key: ObjectKey) -> dict | None: ...
    def transaction(self) -> AbstractContextManager[None]: ...
    def inventory(self) -> dict[ObjectKey, InventoryEntry]: ...
    def set_inventory(self, entries: list[InventoryEntry]) -> None: ...
    def get_state(self, name: str, default: object = None) -> object: ...
    def set_state(self, name: str, value: object) -> None: ...
    def record_sync(self, entry: dict) -> None: ...
    def history(self, limit: int = 20) -> list[dict]: ...
    def watch(self, fn: Watcher) -> None: ...
    def all_objects(self) -> Iterator[dict]: ...
    def close(self) -> None: ...
    # For the Kubernetes API: consistent lists and watches resumed by resourceVersion.
    changes: ChangeLog
    def resource_version(self) -> int: ...
    def snapshot(self, kind: str, namespace: str | None = None) -> tuple[int, list[dict]]: ...
    def page(self, kind: str, namespace: str | None, after: tuple[str, str] | None,
             limit: int | None) -> tuple[int, list[dict], int]: ...
    def get_by_uid(self, uid: str) -> dict | None: ...
    # What git last applied per object: fields it stopped declaring are removed, fields it
    # never declared (set through the Kubernetes API) stay.
    def applied(self, key: ObjectKey) -> dict | None: ...
    def set_applied(self, bodies: dict[ObjectKey, dict | None]) -> None: ...
