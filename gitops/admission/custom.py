"""Admission of CustomResourceDefinitions and of custom resources, as kube-apiserver's
apiextensions does it (pure).

A CRD is checked (group, names, one storage version, a structural schema per served
version, a kind not served already) and gets its defaults and its status (Established,
NamesAccepted). A custom resource is defaulted from its schema (`default:` where the
parent object exists), pruned of fields the schema does not declare (unless
`x-kubernetes-preserve-unknown-fields`), then validated against the schema, each problem
at its field path.
"""

from __future__ import annotations

import copy
import re
from typing import TYPE_CHECKING, Any

from gitops.admission.errors import Invalid
from gitops.model import custom
from gitops.model.custom import CRD

if TYPE_CHECKING:      # jsonschema is imported where a CRD's schema is checked: not
    import jsonschema   # at start-up (it costs a third of a second of imports)

_ROOT_KEPT = ("apiVersion", "kind", "metadata")
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


# -- custom resources -----------------------------------------------------------------------
def fill(obj: dict) -> None:
    """Defaults and pruning from the CRD's schema (a defaulting step of admission)."""
    crd = custom.crd_for(str(obj.get("kind", "")))
    if crd is not None:
        schema = custom.schema_of(crd, _version(obj))
        if schema is not None:
            prune(obj, schema, root=True)
            apply_defaults(obj, schema, root=True)
    elif obj.get("kind") == CRD:
        _crd_defaults(obj)


def _version(obj: dict) -> str:
    return str(obj.get("apiVersion", "")).rpartition("/")[2]


def prune(value: Any, schema: dict, root: bool = False, path: str = "",
          removed: list[str] | None = None) -> None:
    """Drop what the schema does not declare, in place; `removed` collects their paths."""
    if isinstance(value, dict) and isinstance(schema, dict):
        props = schema.get("properties")
        keep_all = schema.get("x-kubernetes-preserve-unknown-fields") is True
        extra = schema.get("additionalProperties")
        if isinstance(props, dict) and not keep_all and not isinstance(extra, dict) \
                and extra is not True:
            for key in [k for k in value if k not in props and
                        not (root and k in _ROOT_KEPT)]:
                del value[key]
                if removed is not None:
                    removed.append(f"{path}.{key}" if path else key)
        for key, sub in value.items():
            if root and key == "metadata":
                continue
            child = (props or {}).get(key) if isinstance(props, dict) else None
            if child is None and isinstance(extra, dict):
                child = extra
            if isinstance(child, dict):
                prune(sub, child, False, f"{path}.{key}" if path else key, removed)
    elif isinstance(value, list) and isinstance(schema, dict) and \
            isinstance(schema.get("items"), dict):
        for i, item in enumerate(value):
            prune(item, schema["items"], False, f"{path}[{i}]", removed)


def unknown_fields(obj: dict, schema: dict) -> list[str]:
    """The paths pruning would drop (strict field validation reports them)."""
    removed: list[str] = []
    prune(copy.deepcopy(obj), schema, root=True, removed=removed)
    return removed


def check(obj: dict, crd: dict) -> list[tuple[str, str]]:
    """What git's validation and the API's field validation report for a custom resource:
    its version served, unknown fields, and the schema's rules once defaulted."""
    api_version = str(obj.get("apiVersion", ""))
    group, _, version = api_version.rpartition("/")
    if group != custom.group(crd) or version not in custom.served_versions(crd):
        return [("kind", f"unknown kind {obj.get('kind')} in apiVersion {api_version} "
                         f"(its CRD serves {custom.group(crd)}/"
                         f"{', '.join(custom.served_versions(crd))})")]
    schema = custom.schema_of(crd, version)
    if schema is None:
        return []
    found = [(path, f'unknown field "{path}"') for path in unknown_fields(obj, schema)]
    defaulted = copy.deepcopy(obj)
    prune(defaulted, schema, root=True)
    apply_defaults(defaulted, schema, root=True)
    return found + problems(defaulted, schema)


def apply_defaults(value: Any, schema: dict, root: bool = False) -> None:
    """Fill `default:`s of fields whose parent object exists, in place."""
    if isinstance(value, dict) and isinstance(schema, dict):
        props = schema.get("properties")
        if isinstance(props, dict):
            for key, sub in props.items():
                if root and key == "metadata" or not isinstance(sub, dict):
                    continue
                if key not in value and "default" in sub:
                    value[key] = copy.deepcopy(sub["default"])
                if key in value:
                    apply_defaults(value[key], sub)
        extra = schema.get("additionalProperties")
        if isinstance(extra, dict):
            for key in [k for k in value if not isinstance(props, dict) or k not in props]:
                apply_defaults(value[key], extra)
    elif isinstance(value, list) and isinstance(schema, dict) and \
            isinstance(schema.get("items"), dict):
        for item in value:
            apply_defaults(item, schema["items"])


def problems(obj: dict, schema: dict) -> list[tuple[str, str]]:
    """(field path, message) for what the schema refuses (metadata is the API's)."""
    import jsonschema
    body = {k: v for k, v in obj.items() if k != "metadata"}
    validator = jsonschema.Draft4Validator(json_schema(
        {**schema, "properties": {k: v for k, v in (schema.get("properties") or {}).items()
                                  if k != "metadata"}}))
    out = []
    for error in sorted(validator.iter_errors(body), key=lambda e: list(e.absolute_path)):
        path = ".".join(str(p) if not isinstance(p, int) else f"[{p}]"
                        for p in error.absolute_path).replace(".[", "[")
        out.append((path, _message(error)))
    return out


def _message(error: jsonschema.ValidationError) -> str:
    keyword, expected, instance = error.validator, error.validator_value, error.instance
    if keyword == "required" and isinstance(instance, dict):
        missing = [k for k in expected if k not in instance]
        return f"Required value: {', '.join(missing)}"
    if keyword == "type":
        shown = expected if isinstance(expected, str) else " or ".join(
            t for t in expected if t != "null")
        return f'Invalid value: "{_type_name(instance)}": must be of type {shown}'
    if keyword == "enum":
        return f"Unsupported value: {instance!r}: supported values: " + \
            ", ".join(f'"{v}"' for v in expected)
    message = error.message if len(error.message) <= 160 else error.message[:157] + "..."
    return f"Invalid value: {message}"


def _type_name(value: Any) -> str:
    return {bool: "boolean", int: "integer", float: "number", str: "string", list: "array",
            dict: "object", type(None): "null"}.get(type(value), type(value).__name__)


def json_schema(schema: Any) -> Any:
    """An OpenAPI v3 schema as JSON Schema: nullable, int-or-string, no x- keywords."""
    if isinstance(schema, list):
        return [json_schema(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {k: json_schema(v) if k in ("items", "additionalProperties", "not") else v
           for k, v in schema.items() if not k.startswith("x-kubernetes-") and k not in (
               "properties", "allOf", "anyOf", "oneOf", "nullable", "format", "default")}
    if isinstance(schema.get("properties"), dict):
        out["properties"] = {k: json_schema(v) for k, v in schema["properties"].items()}
    for key in ("allOf", "anyOf", "oneOf"):
        if isinstance(schema.get(key), list):
            out[key] = [json_schema(s) for s in schema[key]]
    if schema.get("x-kubernetes-int-or-string") is True:
        out.pop("type", None)
        out["anyOf"] = [{"type": "integer"}, {"type": "string"}]
    if schema.get("nullable") is True and isinstance(out.get("type"), str):
        out["type"] = [out["type"], "null"]
    return out


def validate(obj: dict, old: dict | None) -> None:
    """Validating admission of CRDs and custom resources."""
    kind = str(obj.get("kind", ""))
    name = (obj.get("metadata") or {}).get("name", "")
    if kind == CRD:
        found = crd_problems(obj, old)
    else:
        crd = custom.crd_for(kind)
        schema = custom.schema_of(crd, _version(obj)) if crd is not None else None
        found = problems(obj, schema) if schema is not None else []
    if found:
        raise Invalid(kind, name, found)


# -- CustomResourceDefinitions ------------------------------------------------------------
def _crd_defaults(crd: dict) -> None:
    spec = crd.get("spec")
    if not isinstance(spec, dict):
        return
    spec.setdefault("scope", "Namespaced")
    names = spec.get("names")
    if isinstance(names, dict) and isinstance(names.get("kind"), str):
        names.setdefault("singular", names["kind"].lower())
        names.setdefault("listKind", names["kind"] + "List")
    spec.setdefault("conversion", {"strategy": "None"})
    for version in custom.versions(crd):
        version.setdefault("served", True)


def mutate(obj: dict, old: dict | None) -> None:
    """A CRD's status: its names accepted and established at once (one API server)."""
    if obj.get("kind") != CRD or not isinstance(obj.get("spec"), dict):
        return
    names = custom.names(obj)
    stored = [v.get("name") for v in custom.versions(obj) if v.get("storage")]
    before = (old or {}).get("status") or {}
    status = obj.get("status") if isinstance(obj.get("status"), dict) else {}
    conditions = [{"type": t, "status": "True", "reason": r, "message": m,
                   "lastTransitionTime": _since(before, t, obj)}
                  for t, r, m in (("NamesAccepted", "NoConflicts", "no conflicts found"),
                                  ("Established", "InitialNamesAccepted",
                                   "the initial names have been accepted"))]
    stored_before = before.get("storedVersions") or []
    obj["status"] = {**status, "acceptedNames": {k: v for k, v in names.items()},
                     "conditions": conditions,
                     "storedVersions": [*stored_before,
                                        *(v for v in stored if v not in stored_before)]}


def _since(before: dict, kind: str, obj: dict) -> str:
    for cond in before.get("conditions") or []:
        if cond.get("type") == kind and cond.get("lastTransitionTime"):
            return cond["lastTransitionTime"]
    return (obj.get("metadata") or {}).get("creationTimestamp") or "1970-01-01T00:00:00Z"


def crd_problems(crd: dict, old: dict | None) -> list[tuple[str, str]]:
    spec = crd.get("spec") if isinstance(crd.get("spec"), dict) else {}
    names, group = custom.names(crd), custom.group(crd)
    out: list[tuple[str, str]] = []
    if not group or "." not in group:
        out.append(("spec.group", f'Invalid value: "{group}": should be a domain with at '
                                  "least one dot"))
    for field in ("plural", "kind"):
        if not names.get(field):
            out.append((f"spec.names.{field}", "Required value"))
    plural = str(names.get("plural") or "")
    if plural and not _DNS_LABEL.match(plural):
        out.append(("spec.names.plural", f'Invalid value: "{plural}": a lowercase RFC 1123 '
                                         "label"))
    name = (crd.get("metadata") or {}).get("name", "")
    if plural and group and name != f"{plural}.{group}":
        out.append(("metadata.name", f'Invalid value: "{name}": must be spec.names.plural+'
                                     f'"."+spec.group ("{plural}.{group}")'))
    if spec.get("scope") not in ("Namespaced", "Cluster"):
        out.append(("spec.scope", f'Unsupported value: "{spec.get("scope")}": supported '
                                  'values: "Cluster", "Namespaced"'))
    versions = custom.versions(crd)
    if not versions:
        out.append(("spec.versions", "Required value: must have exactly one version marked "
                                     "as storage version"))
    elif sum(1 for v in versions if v.get("storage")) != 1:
        out.append(("spec.versions", "Invalid value: must have exactly one version marked "
                                     "as storage version"))
    for i, version in enumerate(versions):
        if version.get("served", True) and custom.schema_of(crd, str(version.get("name"))) \
                is None:
            out.append((f"spec.versions[{i}].schema.openAPIV3Schema",
                        "Required value: schemas are required"))
    kind = str(names.get("kind") or "")
    if kind and custom.is_built_in(kind):
        out.append(("spec.names.kind", f'Invalid value: "{kind}": is a built-in kind; this '
                                       "agent serves one kind per name"))
    elif kind and (other := custom.crd_for(kind)) is not None and \
            custom.group(other) != group:
        out.append(("spec.names.kind", f'Invalid value: "{kind}": already served by '
                                       f'{(other.get("metadata") or {}).get("name")}; this '
                                       "agent serves one kind per name"))
    if old is not None:
        if custom.group(old) != group:
            out.append(("spec.group", "Invalid value: field is immutable"))
        if (old.get("spec") or {}).get("scope") != spec.get("scope"):
            out.append(("spec.scope", "Invalid value: field is immutable"))
    return out
