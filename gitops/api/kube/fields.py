"""Field sets: which fields of an object a manager owns, in Kubernetes' FieldsV1 form (pure).

A path is a tuple of FieldsV1 elements: `f:<name>` for a field, `k:<json key>` for an item
of a keyed list, `v:<json value>` for a member of a set. Scalars, atomic lists and empty
maps are leaves; a keyed-list item is itself a member (FieldsV1's ".") as well as the
parent of its fields. Server-managed metadata never belongs to anyone.
"""

from __future__ import annotations

import json
from typing import Any

from gitops.api.kube import schema as sch

Path = tuple[str, ...]
_SERVER_META = {"name", "namespace", "uid", "resourceVersion", "generation",
                "creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds",
                "managedFields", "selfLink", "generateName"}
_TOP_IGNORED = {"apiVersion", "kind"}


def _key_element(item: dict, keys: tuple[str, ...]) -> str:
    return "k:" + json.dumps(sch.key_values(item, keys), separators=(",", ":"),
                             sort_keys=True)


def _value_element(value: Any) -> str:
    return "v:" + json.dumps(value, separators=(",", ":"), sort_keys=True)


def field_set(obj: dict, schema: sch.Schema, status: bool = False) -> set[Path]:
    """Every path set in obj; status only (status=True) or everything but status."""
    out: set[Path] = set()
    for name, value in obj.items():
        if name in _TOP_IGNORED or (name == "status") != status:
            continue
        sub = sch.field(schema, name)
        if name == "metadata" and isinstance(value, dict):
            value = {k: v for k, v in value.items() if k not in _SERVER_META}
            if not value:
                continue
        _walk(value, sub, ("f:" + name,), out)
    return out


def _walk(value: Any, schema: sch.Schema, path: Path, out: set[Path]) -> None:
    if isinstance(value, dict):
        if not value:
            out.add(path)
        for name, sub_value in value.items():
            _walk(sub_value, sch.field(schema, name), path + ("f:" + name,), out)
        return
    if isinstance(value, list):
        rule = sch.list_rule(schema)
        if rule.kind == "map" and all(isinstance(i, dict) for i in value):
            item_schema = sch.items(schema)
            for item in value:
                item_path = path + (_key_element(item, rule.keys),)
                out.add(item_path)
                for name, sub_value in item.items():
                    _walk(sub_value, sch.field(item_schema, name), item_path + ("f:" + name,),
                          out)
            return
        if rule.kind == "set" and all(not isinstance(i, (dict, list)) for i in value):
            for item in value:
                out.add(path + (_value_element(item),))
            if not value:
                out.add(path)
            return
    out.add(path)


_MISSING = object()


def value_at(obj: Any, path: Path) -> Any:
    """The value a path names in obj, or _MISSING."""
    cur = obj
    for element in path:
        kind, _, rest = element.partition(":")
        if kind == "f":
            if not isinstance(cur, dict) or rest not in cur:
                return _MISSING
            cur = cur[rest]
        elif kind == "k":
            want = json.loads(rest)
            if not isinstance(cur, list):
                return _MISSING
            cur = next((i for i in cur if isinstance(i, dict) and sch.same_item(i, want)),
                       _MISSING)
            if cur is _MISSING:
                return _MISSING
        elif kind == "v":
            want = json.loads(rest)
            if not isinstance(cur, list) or want not in cur:
                return _MISSING
            cur = want
        else:
            return _MISSING
    return cur


def missing(value: Any) -> bool:
    return value is _MISSING


def remove_at(obj: Any, path: Path) -> None:
    """Delete what path names from obj, if present (in place)."""
    if not path:
        return
    parent = value_at(obj, path[:-1]) if len(path) > 1 else obj
    if parent is _MISSING:
        return
    kind, _, rest = path[-1].partition(":")
    if kind == "f" and isinstance(parent, dict):
        parent.pop(rest, None)
    elif kind == "k" and isinstance(parent, list):
        want = json.loads(rest)
        parent[:] = [i for i in parent if not (isinstance(i, dict) and sch.same_item(i, want))]
    elif kind == "v" and isinstance(parent, list):
        want = json.loads(rest)
        parent[:] = [i for i in parent if i != want]


def to_v1(paths: set[Path]) -> dict:
    tree: dict = {}
    for path in paths:
        node = tree
        for element in path:
            node = node.setdefault(element, {})
        node.setdefault(".", {}) if _is_item(path) else None
    return _clean(tree)


def _is_item(path: Path) -> bool:
    return bool(path) and path[-1].startswith("k:")


def _clean(node: dict) -> dict:
    """A "." marker is only written where a member also has children (FieldsV1 form)."""
    out = {}
    for key, child in node.items():
        if key == ".":
            continue
        cleaned = _clean(child)
        if "." in child and cleaned:
            cleaned = {".": {}, **cleaned}
        out[key] = cleaned
    return out


def from_v1(tree: dict, prefix: Path = ()) -> set[Path]:
    out: set[Path] = set()
    for key, child in (tree or {}).items():
        if key == ".":
            out.add(prefix)
            continue
        path = prefix + (key,)
        if not child or key.startswith("k:"):
            out.add(path)
        if child:
            out |= from_v1(child, path)
    return out


def changed(old: dict, new: dict, paths: set[Path]) -> set[Path]:
    """The paths of new whose values differ from (or are absent in) old."""
    return {p for p in paths if value_at(old, p) != value_at(new, p) or
            missing(value_at(old, p))}


def ancestors_or_self(path: Path, owned: set[Path]) -> bool:
    return any(path[:i] in owned for i in range(1, len(path) + 1))
