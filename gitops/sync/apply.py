"""Writing a plan to the store: one wave in one transaction; prunes last, in reverse order."""

from __future__ import annotations

import copy

from gitops.controllers.base import request_delete
from gitops.controllers.service import keep_allocations
from gitops.store.base import Store
from gitops.sync.diff import Change


def merged(change: Change) -> dict:
    """The desired object on top of the live one: git owns what it declares; identity,
    status and fields owned by controllers are kept from the store."""
    assert change.desired is not None and change.live is not None
    obj = copy.deepcopy(change.desired)
    if change.drift:
        # Correcting drift: git did not change, so fields it does not declare were set
        # by someone else (kubectl scale, a label) and stay; what git declares is restored.
        live = {k: v for k, v in change.live.items() if k != "status"}
        obj = overlay(live, obj)
    live_meta = change.live.get("metadata", {})
    meta = obj["metadata"]
    for keep in ("ownerReferences", "finalizers"):
        if keep in live_meta and keep not in meta:
            meta[keep] = live_meta[keep]
    meta.pop("resourceVersion", None)
    return keep_allocations(obj, change.live)


def overlay(base: dict, top: dict) -> dict:
    """top over base: maps merge key by key, anything else (lists too) comes from top."""
    out = copy.deepcopy(base)
    for key, value in top.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = overlay(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def apply_changes(store: Store, changes: list[Change]) -> None:
    with store.transaction():
        for change in changes:
            if change.action == "create":
                store.create(change.desired)
            elif change.action == "update":
                store.update(merged(change))


def prune(store: Store, changes: list[Change]) -> None:
    """Delete what git no longer declares. PVC objects go, their volumes never do."""
    with store.transaction():
        for change in changes:
            if change.action == "prune":
                request_delete(store, change.key)
