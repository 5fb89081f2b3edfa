"""ignoreDifferences: fields git declares but someone else manages (pure).

Argo CD's format, from a file in the repo (`ignoreDifferences:` as in an Application's
spec), an Application, or the `--ignore-difference` flag:

    ignoreDifferences:
      - group: apps                 # optional here: kinds are unique in this API
        kind: Deployment
        name: web                   # optional, and namespace
        jsonPointers: [/spec/replicas]
        jqPathExpressions: ['.spec.template.spec.initContainers[] | select(.name == "x")']
        managedFieldsManagers: [kube-controller-manager]

An ignored field is left out of the comparison on both sides (so it is never drift), and a
sync keeps its live value (Argo CD's RespectIgnoreDifferences, always on): an HPA's replicas
are not fought over. Git's field manager does not claim it either.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from gitops.errors import ManifestError
from gitops.manifests import paths
from gitops.model import ObjectKey
from gitops.sync.defaults import json_copy
from gitops.sync.jqpath import JqError, JqPath, compile_path

FieldPath = tuple[str | int, ...]
_KEYS = {"group", "kind", "name", "namespace", "jsonPointers", "jqPathExpressions",
         "managedFieldsManagers"}


@dataclass(frozen=True)
class IgnoreRule:
    kind: str
    group: str | None = None          # None: any group
    name: str = ""
    namespace: str = ""
    json_pointers: tuple[str, ...] = ()
    jq_paths: tuple[JqPath, ...] = ()
    managers: tuple[str, ...] = ()

    def matches(self, key: ObjectKey, api_version: str = "") -> bool:
        if self.kind not in ("*", key.kind):
            return False
        if self.group is not None and self.group != "*" and api_version and \
                self.group != api_version.rpartition("/")[0]:
            return False
        return (not self.name or self.name == key.name) and \
            (not self.namespace or self.namespace == key.namespace)


# -- reading rules ------------------------------------------------------------------------
def pointer_path(pointer: str) -> list[str]:
    """RFC 6901: "/spec/template/metadata/annotations/a~1b" -> its tokens."""
    if pointer == "":
        return []
    if not pointer.startswith("/"):
        raise ValueError(f'JSON pointer "{pointer}" must start with "/"')
    return [t.replace("~1", "/").replace("~0", "~") for t in pointer[1:].split("/")]


def parse_rule(raw: object) -> tuple[IgnoreRule | None, list[tuple[str, str]]]:
    """One rule as written; problems as (field within the rule, message)."""
    if not isinstance(raw, dict):
        return None, [("", "each rule must be a mapping with kind and what to ignore")]
    problems = [(k, f'unknown field "{k}" (known: {", ".join(sorted(_KEYS))})')
                for k in raw if k not in _KEYS]
    kind = raw.get("kind")
    if not isinstance(kind, str) or not kind:
        problems.append(("kind", 'required field "kind" is missing'))
    lists = {}
    for field in ("jsonPointers", "jqPathExpressions", "managedFieldsManagers"):
        value = raw.get(field) or []
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            problems.append((field, "must be a list of strings"))
            value = []
        lists[field] = value
    for i, pointer in enumerate(lists["jsonPointers"]):
        try:
            pointer_path(pointer)
        except ValueError as exc:
            problems.append((f"jsonPointers[{i}]", str(exc)))
    jq = []
    for i, text in enumerate(lists["jqPathExpressions"]):
        try:
            jq.append(compile_path(text))
        except JqError as exc:
            problems.append((f"jqPathExpressions[{i}]", str(exc)))
    if not any(lists.values()):
        problems.append(("", "a rule needs jsonPointers, jqPathExpressions or "
                             "managedFieldsManagers"))
    for field in ("group", "name", "namespace"):
        if field in raw and not isinstance(raw[field], str):
            problems.append((field, "must be a string"))
    if problems:
        return None, problems
    group = raw.get("group")
    return IgnoreRule(str(kind), group if isinstance(group, str) and group else None,
                      raw.get("name") or "", raw.get("namespace") or "",
                      tuple(lists["jsonPointers"]), tuple(jq),
                      tuple(lists["managedFieldsManagers"])), []


def load_rules(data: object, file: str = "", lines: Mapping[str, int] | None = None,
               key: str = "ignoreDifferences") -> tuple[list[IgnoreRule], list[ManifestError]]:
    """Rules from a mapping holding `key` (a file's content, an Application's spec)."""
    lines = lines or {}
    if not isinstance(data, dict) or key not in data:
        return [], [ManifestError(f'expected a mapping with "{key}": a list of rules', file,
                                  1, key)]
    items = data[key] or []
    if not isinstance(items, list):
        return [], [ManifestError("must be a list of rules", file, lines.get(key, 1), key)]
    rules, errors = [], []
    for i, raw in enumerate(items):
        rule, problems = parse_rule(raw)
        for field, message in problems:
            where = paths.child(key, i) + (f".{field}" if field else "")
            line = next((lines[p] for p in paths.prefixes(where) if p in lines), 1)
            errors.append(ManifestError(message, file, line, where))
        if rule is not None:
            rules.append(rule)
    return rules, errors


def parse_flag(text: str) -> IgnoreRule:
    """`KIND[/NAME | /NAMESPACE/NAME]:PATH`, PATH a JSON pointer (/spec/replicas) or a jq
    path (.spec.replicas): `Deployment/web:/spec/replicas`. Raises ValueError."""
    target, sep, path = text.partition(":")
    parts = target.split("/") if target else []
    if not sep or not path or not 1 <= len(parts) <= 3 or not all(parts):
        raise ValueError(f'"{text}": expected KIND[/NAME or /NAMESPACE/NAME]:PATH, e.g. '
                         "Deployment/web:/spec/replicas")
    kind, namespace, name = parts[0], parts[1] if len(parts) == 3 else "", parts[-1] \
        if len(parts) > 1 else ""
    raw: dict = {"kind": kind, "name": name, "namespace": namespace}
    raw["jsonPointers" if path.startswith("/") else "jqPathExpressions"] = [path]
    rule, problems = parse_rule(raw)
    if rule is None:
        raise ValueError(f'"{text}": ' + "; ".join(m for _, m in problems))
    return rule


# -- applying them -------------------------------------------------------------------------
def _resolve(obj: Any, tokens: list[str]) -> FieldPath | None:
    """A JSON pointer's tokens as a path into obj (list tokens become indexes)."""
    out: list[str | int] = []
    value = obj
    for token in tokens:
        if isinstance(value, list):
            if not token.isdigit() or int(token) >= len(value):
                return None
            out.append(int(token))
            value = value[int(token)]
        elif isinstance(value, dict) and token in value:
            out.append(token)
            value = value[token]
        else:
            return None
    return tuple(out)


def owned_paths(obj: dict, managers: Iterable[str]) -> list[FieldPath]:
    """Leaf paths the listed field managers own in obj (metadata.managedFields)."""
    wanted = set(managers)
    out: list[FieldPath] = []
    for entry in (obj.get("metadata") or {}).get("managedFields") or []:
        if entry.get("manager") in wanted:
            _walk_fields(entry.get("fieldsV1") or {}, obj, (), out)
    return out


def _walk_fields(tree: dict, value: Any, at: FieldPath, out: list[FieldPath]) -> None:
    for key, sub in tree.items():
        if key == ".":
            continue
        if key.startswith("f:") and isinstance(value, dict) and key[2:] in value:
            here, child = (*at, key[2:]), value[key[2:]]
        elif key.startswith("k:") and isinstance(value, list):
            try:
                match = json.loads(key[2:])
            except ValueError:
                continue
            index = next((i for i, item in enumerate(value) if isinstance(item, dict)
                          and all(item.get(f) == v for f, v in match.items())), None)
            if index is None:
                continue
            here, child = (*at, index), value[index]
        else:
            continue
        if sub and isinstance(sub, dict) and set(sub) != {"."}:
            _walk_fields(sub, child, here, out)
        else:
            out.append(here)


def ignored(rules: Iterable[IgnoreRule], key: ObjectKey, obj: dict | None,
            api_version: str = "") -> list[FieldPath]:
    """Paths in obj that the rules for key leave alone."""
    if not obj:
        return []
    out: list[FieldPath] = []
    for rule in rules:
        if not rule.matches(key, api_version):
            continue
        for pointer in rule.json_pointers:
            path = _resolve(obj, pointer_path(pointer))
            if path:
                out.append(path)
        for jq in rule.jq_paths:
            out += [p for p in jq.paths(obj) if p]
        if rule.managers:
            out += owned_paths(obj, rule.managers)
    return out


def _order(path: FieldPath) -> tuple:
    return tuple((0, p, "") if isinstance(p, int) else (1, 0, p) for p in path)


def without(obj: dict, remove: Iterable[FieldPath]) -> dict:
    """A copy of obj without the given paths (list items removed from the last one up)."""
    remove = sorted(set(remove), key=_order, reverse=True)
    if not remove:
        return obj
    out = json_copy(obj)
    for path in remove:
        parent = _at(out, path[:-1])
        last = path[-1]
        if isinstance(parent, dict) and isinstance(last, str):
            parent.pop(last, None)
        elif isinstance(parent, list) and isinstance(last, int) and last < len(parent):
            del parent[last]
    return out


def keep_live(merged: dict, live: dict, live_paths: Iterable[FieldPath],
              desired_paths: Iterable[FieldPath]) -> dict:
    """merged (what a sync would write) with the ignored fields as they are live: live
    values put back, fields the live object lacks left out."""
    for path in sorted(set(desired_paths) - set(live_paths), key=_order, reverse=True):
        parent = _at(merged, path[:-1])
        if isinstance(parent, dict) and isinstance(path[-1], str):
            parent.pop(path[-1], None)
    for path in sorted(set(live_paths), key=_order):
        value = _at(live, path)
        parent = _at(merged, path[:-1], create=True)
        last = path[-1]
        if isinstance(parent, dict) and isinstance(last, str):
            parent[last] = json_copy(value)
        elif isinstance(parent, list) and isinstance(last, int):
            if last < len(parent):
                parent[last] = json_copy(value)
            elif last == len(parent):
                parent.append(json_copy(value))
    return merged


def _at(obj: Any, path: FieldPath, create: bool = False) -> Any:
    for part in path:
        if isinstance(obj, dict) and isinstance(part, str):
            if part not in obj and create:
                obj[part] = {}
            obj = obj.get(part)
        elif isinstance(obj, list) and isinstance(part, int) and part < len(obj):
            obj = obj[part]
        else:
            return None
    return obj
