"""Pure diffing: normalise, compare only what git declares, and plan the changes."""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from gitops.manifests import paths
from gitops.model import KINDS, ObjectKey, key_of
from gitops.model.meta import stable_hash
from gitops.model.secrets import MASK, mask_secret, values_of
from gitops.sync.defaults import json_copy, with_defaults
from gitops.sync.ignore import IgnoreRule, ignored, without
from gitops.sync.options import DEFAULT, PRUNE_ANNOTATION, SyncOptions, options_of

__all__ = ["PRUNE_ANNOTATION", "Change", "Desired", "FieldDiff", "Plan", "compute_plan"]
_SERVER_META = ("uid", "resourceVersion", "generation", "creationTimestamp",
                "managedFields", "deletionTimestamp", "ownerReferences")


@dataclass(frozen=True)
class FieldDiff:
    path: str
    desired: Any
    live: Any
    line: int = 0          # where git declares the field (0: not declared / unknown)


@dataclass(frozen=True)
class Desired:
    """One object as git declares it, with where it was declared."""
    body: dict
    file: str = ""
    line: int = 0
    field_lines: Mapping[str, int] = field(default_factory=dict, repr=False)

    @functools.cached_property
    def key(self) -> ObjectKey:
        return key_of(self.body)

    @functools.cached_property
    def view(self) -> dict:
        """The normalised body (shares nested values with body: read only)."""
        return _view(self.body)

    @functools.cached_property
    def hash(self) -> str:
        """What the inventory records as applied; computed once per rendered object (a
        revision's rendering is reused by every sync of it)."""
        return stable_hash(self.view, 16)

    def line_of(self, path: str) -> int:
        for prefix in paths.prefixes(path):
            if line := self.field_lines.get(prefix):
                return line
        return self.line


@dataclass(frozen=True)
class Change:
    action: str                     # create | update | prune | unchanged | skip
    key: ObjectKey
    desired: dict | None
    live: dict | None
    file: str = ""
    line: int = 0
    fields: tuple[FieldDiff, ...] = ()
    reason: str = ""
    drift: str = ""                 # "" (git changed) | modified | missing: live moved away
    desired_hash: str = ""


@dataclass
class Plan:
    changes: list[Change] = field(default_factory=list)

    def count(self, action: str) -> int:
        return sum(1 for c in self.changes if c.action == action)

    @property
    def drifted(self) -> list[Change]:
        return [c for c in self.changes if c.drift]

    @property
    def has_changes(self) -> bool:
        return any(c.action in ("create", "update", "prune") for c in self.changes)


def _view(body: dict) -> dict:
    """normalize() without the deep copy: nested values are shared, so read it only."""
    obj = {k: v for k, v in body.items() if k != "status"}
    meta = {k: v for k, v in (obj.get("metadata") or {}).items() if k not in _SERVER_META}
    info = KINDS.get(obj.get("kind", ""))
    if info is None or info.namespaced:
        meta["namespace"] = meta.get("namespace") or "default"
    obj["metadata"] = meta
    return obj


def normalize(body: dict) -> dict:
    """The desired object as the store will hold it: namespace set, no status/server meta."""
    return json_copy(_view(body))


def declared_view(live: Any, desired: Any, keyed: bool = False) -> Any:
    """Project `live` onto the shape of `desired`, so fields git does not declare (server
    defaults, controller-owned fields such as an allocated nodePort) never count as drift.
    Lists of the same length are projected item by item; an item added or removed shows
    as a difference of the whole list. keyed (server-side apply): lists of named items are
    matched by name, and items git does not declare (a sidecar someone else owns) are
    left out, as a server-side diff sees them."""
    if isinstance(desired, dict) and isinstance(live, dict):
        return {k: declared_view(live[k], v, keyed) for k, v in desired.items() if k in live}
    if isinstance(desired, list) and isinstance(live, list):
        if keyed and desired and all(isinstance(i, dict) and "name" in i
                                     for i in [*desired, *live]):
            by_name = {i["name"]: i for i in live}
            if all(d["name"] in by_name for d in desired):
                return [declared_view(by_name[d["name"]], d, keyed) for d in desired]
        if len(desired) == len(live):
            return [declared_view(item, want, keyed) for item, want in zip(live, desired)]
    return live


def field_diffs(desired: Any, live: Any, path: str = "") -> list[FieldDiff]:
    if desired == live:     # the common case, compared at C speed
        return []
    if isinstance(desired, dict) and isinstance(live, dict):
        out: list[FieldDiff] = []
        for k in desired.keys() | live.keys():
            sub = paths.child(path, k)
            if k not in live:
                out.append(FieldDiff(sub, desired[k], None))
            elif k not in desired:
                out.append(FieldDiff(sub, None, live[k]))
            else:
                out.extend(field_diffs(desired[k], live[k], sub))
        return sorted(out, key=lambda d: d.path)
    if isinstance(desired, list) and isinstance(live, list) and len(desired) == len(live):
        out = []
        for i, (d, l) in enumerate(zip(desired, live)):
            out.extend(field_diffs(d, l, paths.child(path, i)))
        return out
    return [] if desired == live else [FieldDiff(path, desired, live)]


def _masked_fields(key: ObjectKey, fields: list[FieldDiff],
                   *copies: dict | None) -> tuple[FieldDiff, ...]:
    """A Secret's field diffs with its values masked, whatever the path: data.pw, data
    (a whole map added), metadata.annotations["kubectl.kubernetes.io/last-applied-
    configuration"] (a JSON copy), metadata... copies: the desired and live Secret, whose
    values are also looked for in free-text annotations."""
    if key.kind != "Secret" or not fields:
        return tuple(fields)
    values = set().union(*(values_of(c) for c in copies if c))
    return tuple(FieldDiff(f.path, _masked_value(f.path, f.desired, values),
                           _masked_value(f.path, f.live, values), f.line) for f in fields)


def _masked_value(path: str, value: Any, values: set[str]) -> Any:
    """The value at `path` of a Secret, as mask_secret would show it: the value is placed
    at its path in an otherwise empty Secret, masked, and read back."""
    if value is None:
        return None
    parts = paths.split(path)
    if not parts:
        return MASK
    nested: Any = value
    for part in reversed(parts):
        nested = {part: nested}
    shown: Any = mask_secret({"kind": "Secret", **nested}, values)
    for part in parts:
        shown = shown[part]
    return shown


def _compare(want: dict, live: dict, rules: tuple[IgnoreRule, ...] = (),
             keyed: bool = False) -> tuple[FieldDiff, ...]:
    """want: a normalised view of the desired object. Only what git declares is compared
    (a field it leaves out, such as replicas under `kubectl scale` or an HPA, is never
    drift); the live side gets the kind's API defaults first, so a declared value that
    equals a server default the live copy leaves implicit is no drift either. Fields the
    ignore rules name are left out on both sides."""
    key = key_of(want)
    if rules:
        skip = set(ignored(rules, key, want, want.get("apiVersion", ""))) | \
            set(ignored(rules, key, live, want.get("apiVersion", "")))
        want, live = without(want, skip), without(live, skip)
    return _masked_fields(key, field_diffs(want, _live_view(want, live, keyed)), want, live)


def _live_view(want: dict, live: dict, keyed: bool = False) -> dict:
    return declared_view(with_defaults(_view(live)), want, keyed)


def compared_views(desired: dict, live: dict) -> tuple[dict, dict]:
    """(live, desired) exactly as _compare sees them, for showing a unified diff whose
    lines match the plan's field paths."""
    want = _view(desired)
    return _live_view(want, live), want


def diff_object(desired: dict, live: dict,
                rules: tuple[IgnoreRule, ...] = ()) -> tuple[FieldDiff, ...]:
    return _compare(_view(desired), live, rules)


def desired_hash(body: dict) -> str:
    return stable_hash(_view(body), 16)


def apply_rank(key: ObjectKey) -> tuple[int, str, str, str]:
    info = KINDS.get(key.kind)
    return (info.apply_order if info else 100, key.kind, key.namespace, key.name)


def removed_fields(last: dict, desired: dict, live: object, path: str = "") -> list[FieldDiff]:
    """Fields git declared last time, declares no more, and the live object still has."""
    out: list[FieldDiff] = []
    if not isinstance(live, dict):
        return out
    for key, before in last.items():
        sub = paths.child(path, key)
        if key not in desired:
            if key in live:
                out.append(FieldDiff(sub, None, live[key]))
        elif isinstance(before, dict) and isinstance(desired[key], dict):
            out.extend(removed_fields(before, desired[key], live.get(key), sub))
    return out


def compute_plan(desired: Iterable[Desired], live: Mapping[ObjectKey, dict],
                 applied: Mapping[ObjectKey, str],
                 last_applied: Mapping[ObjectKey, dict | None] | None = None,
                 memo: dict[ObjectKey, tuple] | None = None,
                 rules: tuple[IgnoreRule, ...] = (), app: SyncOptions = DEFAULT) -> Plan:
    """desired: what git declares; live: the store's copy of every key involved;
    applied: inventory key -> hash of what git last applied (only those may be pruned);
    last_applied: what git last applied, where known: a field git stops declaring is then
    a change (removed on update) rather than invisible;
    memo: a dict kept between calls; a pair already compared (same desired hash, same
    live uid and resourceVersion, so the same contents) is not compared again (a caller
    that changes `rules` clears it);
    rules: ignoreDifferences, fields never compared;
    app: the app's sync options (ServerSideApply objects are compared as a server-side
    diff would: named list items matched by name, undeclared ones left out).

    A difference on an object whose desired state git did not change since it was last
    applied is drift: something other than git moved the live object."""
    plan = Plan()
    wanted: dict[ObjectKey, Desired] = {d.key: d for d in desired}
    for key in sorted(wanted, key=apply_rank):
        d = wanted[key]
        current = live.get(key)
        want, dhash = d.view, d.hash
        unchanged_in_git = applied.get(key) == dhash
        if current is None:
            plan.changes.append(Change("create", key, json_copy(want), None, d.file, d.line,
                                       drift="missing" if unchanged_in_git else "",
                                       desired_hash=dhash))
            continue
        meta = current.get("metadata") or {}
        version = (dhash, d.file, d.line, meta.get("uid"), meta.get("resourceVersion"))
        cached = memo.get(key) if memo is not None and version[-1] is not None else None
        if cached is not None and cached[0] == version:
            fields = cached[1]
        else:
            fields = tuple(FieldDiff(f.path, f.desired, f.live, d.line_of(f.path))
                           for f in _compare(want, current, rules,
                                             options_of(want, app).server_side_apply))
            if memo is not None and version[-1] is not None:
                memo[key] = (version, fields)
        last = (last_applied or {}).get(key)
        if last and not unchanged_in_git:
            fields += _masked_fields(key, removed_fields(last, want, current), want, current,
                                     last)
        # An unchanged object's desired body is only read (waves, inventory): no copy.
        plan.changes.append(Change(
            "update" if fields else "unchanged", key, json_copy(want) if fields else want,
            current, d.file,
            d.line, fields, drift="modified" if fields and unchanged_in_git else "",
            desired_hash=dhash))
    gone = [k for k in applied if k not in wanted]
    for key in sorted(gone, key=apply_rank, reverse=True):
        current = live.get(key)
        if current is None:
            continue
        if options_of(current).prune is False:
            plan.changes.append(Change("skip", key, None, current, reason="Prune=false"))
        else:
            plan.changes.append(Change("prune", key, None, current))
    return plan
