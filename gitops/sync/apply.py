"""Writing a plan through the store's registry: one wave in one transaction; prunes last,
in reverse order. The registry admits each write as the API server does (defaults, what
git leaves open such as allocations kept) and deletes as it does."""

from __future__ import annotations

import copy

from gitops.store.registry import Registry
from gitops.sync.diff import Change


def merged(change: Change, last: dict | None = None) -> dict:
    """The desired object on top of the live one: git owns what it declares; identity,
    status and fields owned by controllers are kept from the store.

    With what git applied last (`last`; when correcting drift that is the desired object
    itself), this is a three-way merge as `kubectl apply` does: fields git stopped
    declaring are removed, fields git never declared (set through the Kubernetes API:
    replicas after `kubectl scale`, an extra label) stay. Without it, desired replaces."""
    assert change.desired is not None and change.live is not None
    obj = copy.deepcopy(change.desired)
    if change.drift and last is None:
        last = change.desired
    if last is not None:
        live = {k: v for k, v in change.live.items() if k != "status"}
        obj = overlay(without_removed(live, last, obj), obj)
    live_meta = change.live.get("metadata", {})
    meta = obj["metadata"]
    for keep in ("ownerReferences", "finalizers"):
        if keep in live_meta and keep not in meta:
            meta[keep] = live_meta[keep]
    meta.pop("resourceVersion", None)
    return obj


def without_removed(live: dict, last: dict, desired: dict) -> dict:
    """live minus what git declared last time and declares no more (maps recursively)."""
    out = copy.deepcopy(live)
    for key, before in last.items():
        if key not in desired:
            out.pop(key, None)
        elif isinstance(before, dict) and isinstance(desired[key], dict) and \
                isinstance(out.get(key), dict):
            out[key] = without_removed(out[key], before, desired[key])
    return out


def overlay(base: dict, top: dict) -> dict:
    """top over base: maps merge key by key, anything else (lists too) comes from top."""
    out = copy.deepcopy(base)
    for key, value in top.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = overlay(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def apply_changes(store: Registry, changes: list[Change]) -> None:
    with store.transaction():
        for change in changes:
            if change.action == "create":
                store.create(change.desired)
            elif change.action == "update":
                store.update(merged(change, store.applied(change.key)))
        store.set_applied({c.key: c.desired for c in changes
                           if c.action in ("create", "update", "unchanged")})


def prune(store: Registry, changes: list[Change]) -> None:
    """Delete what git no longer declares. PVC objects go, their volumes never do."""
    with store.transaction():
        for change in changes:
            if change.action == "prune":
                store.request_delete(change.key)
        store.set_applied({c.key: None for c in changes if c.action == "prune"})
