"""The state store: Kubernetes-shaped objects, inventory of what git declared, history."""

from gitops.store.base import Conflict, InventoryEntry, NotFound, Store
from gitops.store.sqlite import SqliteStore

__all__ = ["Conflict", "InventoryEntry", "NotFound", "Store", "SqliteStore"]
