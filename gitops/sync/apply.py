"""Writing a plan through the store's registry: one wave in one transaction; prunes last,
in reverse order. The registry keeps what git leaves open (allocations) and deletes as
the API server does. Each object is written as its sync options say (Replace, Force,
ServerSideApply, PrunePropagationPolicy), keeping the live value of fields the ignore
rules name, and recorded as git's field manager's when there is one."""

from __future__ import annotations

import copy
from collections.abc import Iterable

import structlog

from gitops.errors import GitopsError
from gitops.model import ObjectKey
from gitops.store.base import Conflict
from gitops.store.registry import Registry
from gitops.sync.diff import Change
from gitops.sync.fields import FieldOwner, recorder
from gitops.sync.ignore import IgnoreRule, ignored, keep_live, without
from gitops.sync.options import DEFAULT, SyncOptions, options_of

log = structlog.get_logger(component="sync")


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


class Writer:
    """Writes changes as git: its options, its ignore rules, its field manager."""

    def __init__(self, store: Registry, owner: FieldOwner | None = None,
                 rules: tuple[IgnoreRule, ...] = (), app: SyncOptions = DEFAULT) -> None:
        self.store = store
        self.owner = owner
        self.rules = rules
        self.app = app

    def apply(self, changes: list[Change], record: Iterable[ObjectKey] = ()) -> None:
        """Creates and updates of one wave, in one transaction. `record`: unchanged keys
        whose applied body is not recorded yet (git changed, the live object already
        matched)."""
        record = set(record)
        with self.store.transaction():
            for change in changes:
                if change.action == "create":
                    declared = self._declared(change, change.desired)
                    self.store.create(change.desired,
                                      record_fields=recorder(self.owner, declared))
                elif change.action == "update":
                    self._update(change)
            self.store.set_applied({c.key: c.desired for c in changes
                                    if c.action in ("create", "update") or c.key in record})

    def _declared(self, change: Change, body: dict) -> dict:
        """What git claims as its fields: the body without the ignored ones."""
        if not self.rules:
            return body
        return without(body, ignored(self.rules, change.key, body, body.get("apiVersion", "")))

    def _update(self, change: Change) -> None:
        assert change.desired is not None and change.live is not None
        options = options_of(change.desired, self.app)
        declared = self._declared(change, change.desired)
        fields = recorder(self.owner, declared)
        if options.replace and options.force and self._recreate(change, fields):
            return
        if options.replace:
            obj = copy.deepcopy(change.desired)
        elif options.server_side_apply and self.owner is not None:
            obj = self.owner.apply(change.live, declared)[0]
            obj.get("metadata", {}).pop("resourceVersion", None)
        else:
            obj = merged(change, self.store.applied(change.key))
        if self.rules:
            api = change.desired.get("apiVersion", "")
            live_paths = ignored(self.rules, change.key, change.live, api)
            obj = keep_live(obj, change.live, live_paths,
                            [*live_paths, *ignored(self.rules, change.key, obj, api)])
        self.store.update(obj, record_fields=fields, keep_allocations=True)

    def _recreate(self, change: Change, fields) -> bool:
        """Force=true: delete and create again (a Job that should run on every change).
        False when the old object is still there (finalizers, a pod its node stops)."""
        self.store.request_delete(change.key)
        if self.store.get(change.key) is not None:
            log.warning("force_replace_waiting", object=str(change.key))
            return False
        try:
            self.store.create(change.desired, record_fields=fields)
        except Conflict as exc:
            raise GitopsError(f"{change.key}: recreating it failed: {exc}") from exc
        return True

    def prune(self, changes: list[Change]) -> None:
        """Delete what git no longer declares. PVC objects go, their volumes never do."""
        with self.store.transaction():
            for change in changes:
                if change.action == "prune":
                    self.store.request_delete(
                        change.key, options_of(change.live, self.app).prune_propagation)
            self.store.set_applied({c.key: None for c in changes if c.action == "prune"})


def retained(live: dict | None, app: SyncOptions = DEFAULT) -> bool:
    """Whether deleting the app leaves this object running (Delete=false, or Helm's
    `helm.sh/resource-policy: keep`): it is then released from the inventory instead."""
    return not options_of(live, app).delete
