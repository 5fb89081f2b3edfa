"""What every store offers; loops depend on this protocol, not on SQLite."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Protocol

from gitops.errors import GitopsError
from gitops.model import ObjectKey


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
