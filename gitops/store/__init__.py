"""The state store: Kubernetes-shaped objects, inventory of what git declared, history.

Writers use a Registry (the one write path) over a backend: SqliteStore, MemoryStore."""

from gitops.store.base import Conflict, InventoryEntry, NotFound, Store
from gitops.store.memory import MemoryStore
from gitops.store.registry import Registry
from gitops.store.sqlite import SqliteStore

__all__ = ["Conflict", "InventoryEntry", "MemoryStore", "NotFound", "Registry", "Store",
           "SqliteStore"]
