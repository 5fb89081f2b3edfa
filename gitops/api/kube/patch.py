"""The three patch formats kubectl sends, applied to an object (pure).

- JSON patch (RFC 6902), through the jsonpatch library. One leniency: `replace` of a
  missing member of an object acts as `add` (`kubectl rollout undo` replaces
  /metadata/annotations, which objects from git often lack).
- JSON merge patch (RFC 7386): maps merge, null deletes, anything else replaces.
- Strategic merge patch: like a merge patch, but lists Kubernetes declares mergeable merge
  by their key (containers by name, ports by containerPort, env by name) or as sets
  (finalizers), with the directives kubectl generates: `$patch: replace|delete|merge`,
  `$setElementOrder/<list>`, `$deleteFromPrimitiveList/<list>` and `$retainKeys`.
"""

from __future__ import annotations

import copy
import json
from typing import Any

import jsonpatch

from gitops.api.kube import schema as sch
from gitops.errors import GitopsError

JSON_PATCH = "application/json-patch+json"
MERGE_PATCH = "application/merge-patch+json"
STRATEGIC = "application/strategic-merge-patch+json"
APPLY = "application/apply-patch+yaml"
_ORDER = "$setElementOrder/"
_DELETE_PRIMITIVE = "$deleteFromPrimitiveList/"


class PatchError(GitopsError):
    pass


# -- JSON patch ------------------------------------------------------------------------
def json_patch(obj: dict, ops: Any) -> dict:
    if not isinstance(ops, list):
        raise PatchError("a JSON patch must be a list of operations")
    doc = copy.deepcopy(obj)
    for op in ops:
        if not isinstance(op, dict) or "op" not in op or "path" not in op:
            raise PatchError(f"invalid JSON patch operation {json.dumps(op)[:200]}")
        if op["op"] == "replace" and _missing_member(doc, op["path"]):
            op = {**op, "op": "add"}
        try:
            doc = jsonpatch.JsonPatch([op]).apply(doc)
        except (jsonpatch.JsonPatchException, jsonpatch.JsonPointerException) as exc:
            raise PatchError(_why(op, exc)) from None
    return doc


def _why(op: dict, exc: Exception) -> str:
    """Worded as Kubernetes words it, never with the library's text: that quotes the
    values compared and the document walked, which may be a Secret's."""
    path = str(op.get("path"))
    if isinstance(exc, jsonpatch.JsonPatchTestFailed):
        return f"testing value {path} failed: test failed"
    if isinstance(exc, jsonpatch.JsonPointerException):
        return f'doc is missing path: "{path}": missing value'
    return f"the JSON patch does not apply: {op.get('op')} at {path} is not possible here"


def _missing_member(doc: Any, path: str) -> bool:
    try:
        pointer = jsonpatch.JsonPointer(path)
    except jsonpatch.JsonPointerException:
        return False
    parts = pointer.parts
    if not parts:
        return False
    try:
        parent = jsonpatch.JsonPointer.from_parts(parts[:-1]).resolve(doc)
    except jsonpatch.JsonPointerException:
        return False
    return isinstance(parent, dict) and parts[-1] not in parent


# -- JSON merge patch ------------------------------------------------------------------
def merge_patch(target: Any, patch: Any) -> Any:
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    out = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = merge_patch(out.get(key), value)
    return out


# -- strategic merge patch -------------------------------------------------------------
def strategic_merge(original: Any, patch: Any, schema: sch.Schema) -> Any:
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    if not isinstance(original, dict):
        original = {}
    directive = patch.get("$patch")
    if directive == "delete":
        return None
    if directive == "replace":
        return _strip(patch)
    out = copy.deepcopy(original)
    retain = patch.get("$retainKeys")
    for key, value in patch.items():
        if key.startswith("$"):
            continue
        sub = sch.field(schema, key)
        if value is None:
            out.pop(key, None)
        elif isinstance(value, dict):
            merged = strategic_merge(out.get(key), value, sub)
            if merged is None:
                out.pop(key, None)
            else:
                out[key] = merged
        elif isinstance(value, list):
            out[key] = _merge_list(out.get(key), value, sub,
                                   patch.get(_DELETE_PRIMITIVE + key),
                                   patch.get(_ORDER + key))
        else:
            out[key] = copy.deepcopy(value)
    for key, values in patch.items():
        if key.startswith(_DELETE_PRIMITIVE) and key[len(_DELETE_PRIMITIVE):] not in patch:
            name = key[len(_DELETE_PRIMITIVE):]
            if isinstance(out.get(name), list):
                out[name] = [v for v in out[name] if v not in (values or [])]
        elif key.startswith(_ORDER) and key[len(_ORDER):] not in patch:
            name = key[len(_ORDER):]
            if isinstance(out.get(name), list):
                out[name] = _ordered(out[name], values, sch.list_rule(sch.field(schema, name)))
    if isinstance(retain, list):
        out = {k: v for k, v in out.items() if k in retain}
    return out


def _strip(value: Any) -> Any:
    """Drop directives from a value that replaces wholesale."""
    if isinstance(value, dict):
        return {k: _strip(v) for k, v in value.items() if not k.startswith("$")}
    if isinstance(value, list):
        return [_strip(v) for v in value]
    return value


def _merge_list(original: Any, patch: list, schema: sch.Schema, delete: Any,
                order: Any) -> list:
    rule = sch.list_rule(schema)
    original = original if isinstance(original, list) else []
    if any(isinstance(i, dict) and i.get("$patch") == "replace" for i in patch):
        return [_strip(i) for i in patch if not (isinstance(i, dict) and "$patch" in i)]
    if not rule.patch_merge:
        return _strip(patch)
    if rule.kind == "set" or not rule.patch_key:
        out = [copy.deepcopy(v) for v in original if v not in (delete or [])]
        out += [copy.deepcopy(v) for v in patch if v not in out]
        return _ordered(out, order, rule)
    key = rule.patch_key
    out = copy.deepcopy(original)
    item_schema = sch.items(schema)
    for item in patch:
        if not isinstance(item, dict):
            continue
        index = next((i for i, o in enumerate(out)
                      if isinstance(o, dict) and o.get(key) == item.get(key)), None)
        if item.get("$patch") == "delete":
            if index is not None:
                out.pop(index)
            continue
        if index is None:
            out.append(_strip(item))
        else:
            out[index] = strategic_merge(out[index], item, item_schema)
    return _ordered(out, order, rule)


def _ordered(items: list, order: Any, rule: sch.ListRule) -> list:
    """$setElementOrder: listed items in the given order first; the rest keep theirs."""
    if not isinstance(order, list) or not order:
        return items

    def ident(v: Any) -> Any:
        return json.dumps(v.get(rule.patch_key) if isinstance(v, dict) and rule.patch_key
                          else v, sort_keys=True)

    rank = {ident(o): i for i, o in enumerate(order)}
    listed = sorted((v for v in items if ident(v) in rank), key=lambda v: rank[ident(v)])
    return listed + [v for v in items if ident(v) not in rank]
