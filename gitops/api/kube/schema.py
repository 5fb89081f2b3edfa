"""Walking a kind's OpenAPI schema: the sub-schema of a field, and how a list merges.

Strategic merge patch and server-side apply both need, at every list, the rule Kubernetes
declares for it: merged by a key (`containers` by `name`, `ports` by `containerPort`),
a set of scalars (`finalizers`), or atomic (replaced whole). The rules come from the
schemas' x-kubernetes-patch-* and x-kubernetes-list-* extensions, so every built-in kind
is covered without a hand-kept table. An unknown schema (None) means "no rules": maps
merge, lists are atomic.
"""

from __future__ import annotations

from dataclasses import dataclass

from gitops.api.kube.openapi import definitions

Schema = dict | None


def resolve(schema: Schema) -> Schema:
    """Follow $ref and single-reference allOf wrappers, keeping the list extensions of the
    outer node (they sit on the property, not on the referenced type)."""
    seen = 0
    while isinstance(schema, dict) and seen < 20:
        ref = schema.get("$ref")
        if ref is None and len(schema.get("allOf") or []) == 1:
            ref = schema["allOf"][0].get("$ref")
        if not isinstance(ref, str):
            return schema
        target = definitions().get(ref.rsplit("/", 1)[-1])
        if target is None:
            return schema
        extra = {k: v for k, v in schema.items() if k.startswith("x-kubernetes-")}
        schema = {**target, **extra} if extra else target
        seen += 1
    return schema


def field(schema: Schema, name: str) -> Schema:
    schema = resolve(schema)
    if not isinstance(schema, dict):
        return None
    props = schema.get("properties") or {}
    if name in props:
        return props[name]
    extra = schema.get("additionalProperties")
    return extra if isinstance(extra, dict) else None


def items(schema: Schema) -> Schema:
    schema = resolve(schema)
    return schema.get("items") if isinstance(schema, dict) else None


@dataclass(frozen=True)
class ListRule:
    kind: str                          # map | set | atomic
    keys: tuple[str, ...] = ()         # map: the fields that identify an item
    patch_merge: bool = False          # strategic merge patch merges (vs replaces) it
    patch_key: str = ""                # strategic merge patch's merge key


ATOMIC = ListRule("atomic")

# Keys of keyed lists that have a default (ports' protocol): an item that leaves one out
# is the item with the default, as structured-merge-diff reads the schema's defaults; the
# API server fills it in on every stored object.
KEY_DEFAULTS = {"protocol": "TCP"}


def key_values(item: dict, keys: tuple[str, ...]) -> dict:
    """The fields identifying a keyed list's item, defaults filled in."""
    return {k: item.get(k, KEY_DEFAULTS.get(k)) for k in keys
            if k in item or k in KEY_DEFAULTS}


def same_item(item: dict, want: dict) -> bool:
    """Whether item is the one whose key values are want."""
    return all(item.get(k, KEY_DEFAULTS.get(k)) == v for k, v in want.items())


def list_rule(schema: Schema) -> ListRule:
    """The rule of the list at a property (schema: the property's own node)."""
    if not isinstance(schema, dict):
        return ATOMIC
    strategy = str(schema.get("x-kubernetes-patch-strategy", ""))
    patch_key = str(schema.get("x-kubernetes-patch-merge-key", ""))
    merge = "merge" in strategy.split(",")
    list_type = schema.get("x-kubernetes-list-type")
    keys = tuple(schema.get("x-kubernetes-list-map-keys") or ())
    if list_type == "map" and keys:
        return ListRule("map", keys, merge, patch_key or keys[0])
    if list_type == "set":
        return ListRule("set", (), merge)
    if merge and patch_key:
        return ListRule("map", (patch_key,), True, patch_key)
    if merge:
        return ListRule("set", (), True)
    return ListRule("atomic", (), False, patch_key)


def retain_keys(schema: Schema) -> bool:
    return isinstance(schema, dict) and "retainKeys" in str(
        schema.get("x-kubernetes-patch-strategy", "")).split(",")
