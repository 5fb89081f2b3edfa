"""metadata.managedFields: who set which field, and server-side apply on top of it (pure).

Every write through the API records its field manager. An Update (create, PUT, patch)
gives the writer the fields whose values it changed and takes them from everyone else.
An Apply (server-side apply) declares the writer's complete intent: fields another
manager owns with a different value conflict (409) unless forced; fields the applier
owned before and no longer declares are removed when nobody else owns them.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from typing import Any

from gitops.api.kube import fields as F
from gitops.api.kube import schema as sch
from gitops.api.kube.openapi import kind_schema
from gitops.api.kube.registry import for_kind
from gitops.errors import PermanentError
from gitops.model.times import now_iso


def _entries(obj: dict | None) -> list[dict]:
    return list(((obj or {}).get("metadata") or {}).get("managedFields") or [])


def _entry(manager: str, operation: str, api_version: str, paths: set[F.Path],
           subresource: str) -> dict:
    out = {"manager": manager, "operation": operation, "apiVersion": api_version,
           "time": now_iso(), "fieldsType": "FieldsV1", "fieldsV1": F.to_v1(paths)}
    if subresource:
        out["subresource"] = subresource
    return out


def _owned(entry: dict) -> set[F.Path]:
    return F.from_v1(entry.get("fieldsV1") or {})


def record_update(old: dict | None, new: dict, manager: str, api_version: str,
                  schema: sch.Schema, subresource: str = "") -> list[dict]:
    """managedFields of `new` after `manager` wrote it with an Update operation."""
    status = subresource == "status"
    present = F.field_set(new, schema, status)
    touched = F.changed(old or {}, new, present)
    out: list[dict] = []
    mine: set[F.Path] = set(touched)
    at = -1                           # where manager's own Update entry was
    for e in _entries(old):
        if e.get("subresource", "") != subresource:
            out.append(e)
            continue
        paths = _owned(e) & present
        if e.get("manager") == manager and e.get("operation") == "Update":
            mine |= paths
            if at < 0:
                at = len(out)
                out.append(e)
            continue
        paths -= touched
        if paths:
            out.append({**e, "fieldsV1": F.to_v1(paths)})
    previous = out.pop(at) if at >= 0 else None
    if mine:
        entry = _entry(manager, "Update", api_version, mine, subresource)
        if not touched and previous is not None and \
                {**previous, "time": entry["time"]} == entry:
            # A write that changed nothing keeps its entry (time and place), as the API
            # server does since 1.27: the object is unchanged, so the write is a no-op
            # with no new resourceVersion and no watch event (a kubelet writes the same
            # status again and again).
            out.insert(at, previous)
        else:
            out.append(entry)
    return out


@dataclass(frozen=True)
class FieldConflict:
    manager: str
    api_version: str
    path: F.Path


class ApplyConflict(PermanentError):
    def __init__(self, conflicts: list[FieldConflict]) -> None:
        super().__init__(describe(conflicts))
        self.conflicts = conflicts


def display(path: F.Path) -> str:
    """.spec.template.spec.containers[name="app"].image"""
    out = ""
    for element in path:
        kind, _, rest = element.partition(":")
        if kind == "f":
            out += "." + rest
        elif kind == "k":
            out += "[" + ",".join(f"{k}={json.dumps(v)}" for k, v in json.loads(rest).items()) \
                + "]"
        else:
            out += f"[{rest}]"
    return out


def describe(conflicts: list[FieldConflict]) -> str:
    n = len(conflicts)
    by_manager: dict[tuple[str, str], list[str]] = {}
    for c in conflicts:
        by_manager.setdefault((c.manager, c.api_version), []).append(display(c.path))
    parts = []
    for (manager, api_version), paths in by_manager.items():
        using = f" using {api_version}" if api_version else ""
        if len(paths) == 1:
            parts.append(f'conflict with "{manager}"{using}: {paths[0]}')
        else:
            parts.append(f'conflicts with "{manager}"{using}:\n' +
                         "\n".join(f"- {p}" for p in sorted(paths)))
    return f"Apply failed with {n} conflict{'s' if n != 1 else ''}: " + "\n".join(parts)


def merge_applied(live: Any, applied: Any, schema: sch.Schema) -> Any:
    """Applied configuration over the live object: maps merge, keyed lists merge by key,
    sets unite, everything else is replaced."""
    if isinstance(applied, dict) and isinstance(live, dict):
        out = copy.deepcopy(live)
        for name, value in applied.items():
            out[name] = merge_applied(live.get(name), value, sch.field(schema, name))
        return out
    if isinstance(applied, list) and isinstance(live, list):
        rule = sch.list_rule(schema)
        if rule.kind == "map" and all(isinstance(i, dict) for i in applied + live):
            item_schema = sch.items(schema)
            out = copy.deepcopy(live)
            for item in applied:
                want = sch.key_values(item, rule.keys)
                index = next((i for i, o in enumerate(out) if sch.same_item(o, want)), None)
                if index is None:
                    out.append(copy.deepcopy(item))
                else:
                    out[index] = merge_applied(out[index], item, item_schema)
            return out
        if rule.kind == "set":
            return copy.deepcopy(live) + [copy.deepcopy(v) for v in applied if v not in live]
    return copy.deepcopy(applied)


def apply(live: dict | None, applied: dict, manager: str, api_version: str,
          schema: sch.Schema, force: bool, subresource: str = "") -> tuple[dict, list[dict]]:
    """(the object after the apply, its managedFields). Raises ApplyConflict."""
    status = subresource == "status"
    live = live or {}
    declared = F.field_set(applied, schema, status)
    entries = _entries(live)
    conflicts: list[FieldConflict] = []
    others: list[tuple[dict, set[F.Path]]] = []
    previous: set[F.Path] = set()
    for e in entries:
        if e.get("subresource", "") != subresource:
            continue
        paths = _owned(e)
        if e.get("manager") == manager and e.get("operation") == "Apply":
            previous = paths
            continue
        others.append((e, paths))
        for path in declared & paths:
            wanted = F.value_at(applied, path)
            if path[-1].startswith("k:") or isinstance(wanted, dict):
                continue            # items and maps: their fields are compared instead
            if F.value_at(live, path) != wanted:
                conflicts.append(FieldConflict(e.get("manager", ""), e.get("apiVersion", ""),
                                               path))
    if conflicts and not force:
        raise ApplyConflict(conflicts)
    merged = merge_applied(live, applied, schema)
    taken = {c.path for c in conflicts}
    still_owned: set[F.Path] = set()
    for _, paths in others:
        still_owned |= paths - taken
    for path in sorted(previous - declared, key=len, reverse=True):
        if path in still_owned or any(p[:len(path)] == path for p in still_owned | declared):
            continue
        F.remove_at(merged, path)
        for depth in range(len(path) - 1, 0, -1):      # maps emptied by the removal go too
            parent = path[:depth]
            if F.value_at(merged, parent) != {} or parent in declared | still_owned:
                break
            F.remove_at(merged, parent)
    out: list[dict] = [e for e in entries if e.get("subresource", "") != subresource]
    for e, paths in others:
        kept = paths - taken
        if kept:
            out.append(e if kept == paths else {**e, "fieldsV1": F.to_v1(kept)})
    out.append(_entry(manager, "Apply", api_version, declared, subresource))
    return merged, out


class GitFieldOwner:
    """Git's sync as a field manager (gitops.sync.fields.FieldOwner): a forced server-side
    apply of what git declares, with each kind's merge rules from the API's schemas."""

    def __init__(self, manager: str = "gitops") -> None:
        self.manager = manager

    def apply(self, live: dict | None, declared: dict) -> tuple[dict, list[dict]]:
        resource = for_kind(str(declared.get("kind", "")))
        schema = kind_schema(resource) if resource is not None else None
        return apply(live, declared, self.manager, str(declared.get("apiVersion", "")),
                     schema, force=True)
