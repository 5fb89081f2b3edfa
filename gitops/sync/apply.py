"""Apply a plan to the store in one transaction: creates/updates in kind order, prunes last."""

from __future__ import annotations

import copy

from gitops.controllers.base import request_delete
from gitops.controllers.service import keep_allocations
from gitops.store.base import InventoryEntry, Store
from gitops.sync.diff import Change, Plan


def merged(change: Change) -> dict:
    """The desired object on top of the live one: git owns what it declares; identity,
    status and fields owned by controllers are kept from the store."""
    assert change.desired is not None and change.live is not None
    obj = copy.deepcopy(change.desired)
    live_meta = change.live.get("metadata", {})
    meta = obj["metadata"]
    for keep in ("ownerReferences", "finalizers"):
        if keep in live_meta and keep not in meta:
            meta[keep] = live_meta[keep]
    meta.pop("resourceVersion", None)
    return keep_allocations(obj, change.live)


def apply_plan(store: Store, plan: Plan, allow_prune: bool = True) -> None:
    entries = []
    with store.transaction():
        for change in plan.changes:
            match change.action:
                case "create":
                    store.create(change.desired)
                case "update":
                    store.update(merged(change))
                case "prune" if allow_prune:
                    request_delete(store, change.key)
            if change.action in ("create", "update", "unchanged"):
                entries.append(InventoryEntry(change.key, change.desired["apiVersion"],
                                              change.file, change.line))
            elif change.action == "skip" or (change.action == "prune" and not allow_prune):
                # Not pruned: it stays ours, so a later revision can still prune it.
                entries.append(InventoryEntry(change.key, change.live["apiVersion"],
                                              change.file, change.line))
        store.set_inventory(entries)
