"""One app's view of the store: the same objects, its own inventory, sync state and history.

Objects are shared (an app's Deployment is the cluster's Deployment); what belongs to one
app is kept apart so several apps sync side by side on one store: its inventory (what its
git declared, so it prunes only its own), its state (applied revision, pin, suspended, last
sync...) under `app/NAME/` names, and its history lines, which carry `"app": NAME`. Reads
and writes of objects go to the wrapped store (the Registry: the one write path).
"""

from __future__ import annotations

from typing import Any

from gitops.model import ObjectKey
from gitops.store.base import InventoryEntry, Store

PREFIX = "app/"
APPS_STATE = "applications"       # the apps known, by name (what `status` lists)
HISTORY_SCAN = 500                # history lines looked through for one app's


def state_name(app: str, name: str) -> str:
    return f"{PREFIX}{app}/{name}"


class AppScope:
    def __init__(self, store: Store, app: str) -> None:
        self.store = store
        self.app = app

    def __getattr__(self, name: str) -> Any:        # objects, watch, transaction...
        return getattr(self.store, name)

    # -- inventory ------------------------------------------------------------------------
    def inventory(self) -> dict[ObjectKey, InventoryEntry]:
        rows = self.store.get_state(state_name(self.app, "inventory")) or []
        return {ObjectKey(*r[:3]): InventoryEntry(ObjectKey(*r[:3]), *r[3:]) for r in rows}

    def set_inventory(self, entries: list[InventoryEntry]) -> None:
        self.store.set_state(state_name(self.app, "inventory"), [
            [*e.key, e.api_version, e.file, e.line, e.applied_hash, e.sync_status]
            for e in sorted(entries, key=lambda e: e.key)])

    # -- state and history ------------------------------------------------------------------
    def get_state(self, name: str, default: object = None) -> object:
        return self.store.get_state(state_name(self.app, name), default)

    def set_state(self, name: str, value: object) -> None:
        self.store.set_state(state_name(self.app, name), value)

    def record_sync(self, entry: dict) -> None:
        self.store.record_sync({**entry, "app": self.app})

    def history(self, limit: int = 20) -> list[dict]:
        return app_history(self.store, self.app, limit)

    def forget(self) -> None:
        """Drop the app's inventory and state (its objects stay: they are orphaned)."""
        for name in ("inventory", "applied_revision", "fetched_revision", "pin", "suspended",
                     "last_sync", "sync_conditions", "hooks"):
            if self.store.get_state(state_name(self.app, name)) is not None:
                self.store.set_state(state_name(self.app, name), None)


def app_history(store: Store, app: str, limit: int = 20) -> list[dict]:
    """The newest history lines of one app ("" the agent's own source), newest first."""
    return [e for e in store.history(HISTORY_SCAN) if (e.get("app") or "") == app][:limit]
