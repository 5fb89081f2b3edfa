"""The inventory (what git applied: key, file, line, hash, sync status), kept in memory by
its only writer and written to the store when it changes. The sync pass and the live
drift watch both change it, so each change is a delta applied under one lock to the
current entries, never a whole snapshot that could undo the other's."""

from __future__ import annotations

import threading
from collections.abc import Iterable
from dataclasses import replace

from gitops.model import ObjectKey
from gitops.store.base import InventoryEntry, Store

SYNCED, OUT_OF_SYNC = "Synced", "OutOfSync"
PRUNE_SKIPPED = "OutOfSync (prune skipped)"      # git no longer declares it: kept
EXTRANEOUS_IGNORED = "Synced (extraneous, ignored)"  # the same, with IgnoreExtraneous


class InventoryBook:
    def __init__(self, store: Store) -> None:
        self.store = store
        self._lock = threading.Lock()
        self._entries: dict[ObjectKey, InventoryEntry] | None = None

    def read(self) -> dict[ObjectKey, InventoryEntry]:
        """The entries now (a copy: the caller may keep it)."""
        with self._lock:
            return dict(self._load())

    def _load(self) -> dict[ObjectKey, InventoryEntry]:
        if self._entries is None:
            self._entries = self.store.inventory()
        return self._entries

    def reload(self) -> None:
        with self._lock:
            self._entries = None

    def change(self, upserts: Iterable[InventoryEntry] = (),
               removals: Iterable[ObjectKey] = ()) -> bool:
        """Apply a delta; the store is written only when something differs."""
        with self._lock:
            entries = self._load()
            new = dict(entries)
            for key in removals:
                new.pop(key, None)
            for entry in upserts:
                new[entry.key] = entry
            if new == entries:
                return False
            self.store.set_inventory(list(new.values()))
            self._entries = new
            return True

    def mark(self, key: ObjectKey, status: str) -> bool:
        """Set one entry's sync status (the drift watch's OutOfSync / Synced)."""
        with self._lock:
            entries = self._load()
            entry = entries.get(key)
            if entry is None or entry.sync_status == status:
                return False
            new = {**entries, key: replace(entry, sync_status=status)}
            self.store.set_inventory(list(new.values()))
            self._entries = new
            return True
