"""OpenAPI v3 documents per group/version, generated from the schemas kubernetes-validate ships.

kubectl uses them three ways: `kubectl explain` reads the schemas; `kubectl apply` takes
strategic-merge keys (x-kubernetes-patch-merge-key) from them; and a PATCH operation that
lists the `fieldValidation` parameter tells kubectl the server validates, so it sends
`fieldValidation=Strict` instead of downloading OpenAPI v2 to validate locally.

The bundled files are JSON Schema (`type: [string, null]`, `$defs`, `oneOf` for
IntOrString); they are turned into the OpenAPI 3.0 shapes Kubernetes serves.
"""

from __future__ import annotations

import functools
import hashlib
import json
from typing import Any

from gitops.api.kube.registry import Resource, group_versions
from gitops.manifests.schemas import SCHEMAS
from gitops.model import custom

SCHEMA_VERSION = "v1.32.0-local"       # the Kubernetes minor the API reports (/version)
_DEFS = SCHEMAS / SCHEMA_VERSION / "_definitions.json"
_REF_PREFIXES = ("#/$defs/", "/api/_definitions.json#/$defs/")
_SPECIAL = {
    "io.k8s.apimachinery.pkg.util.intstr.IntOrString": {
        "type": "string", "format": "int-or-string", "x-kubernetes-int-or-string": True,
        "description": "IntOrString is a type that can hold an int32 or a string."},
    "io.k8s.apimachinery.pkg.api.resource.Quantity": {
        "type": "string", "format": "quantity",
        "description": "Quantity is a fixed-point representation of a number, e.g. 500m, "
                       "128Mi."},
}
_SCHEMA_LISTS = ("allOf", "oneOf", "anyOf")
_SCHEMA_ONE = ("items", "not")


@functools.lru_cache(maxsize=1)
def definitions() -> dict[str, dict]:
    raw = json.loads(_DEFS.read_text())["$defs"]
    return {name: _SPECIAL.get(name) or convert(schema) for name, schema in raw.items()}


def _ref(ref: str) -> str:
    for prefix in _REF_PREFIXES:
        if ref.startswith(prefix):
            return "#/components/schemas/" + ref[len(prefix):]
    return ref


def convert(schema: Any) -> Any:
    """One JSON Schema node -> its OpenAPI 3.0 form (property names are never keywords)."""
    if not isinstance(schema, dict):
        return schema
    out: dict = {}
    for key, value in schema.items():
        if key == "$ref":
            continue
        if key == "type" and isinstance(value, list):
            kinds = [t for t in value if t != "null"]
            out["type"] = kinds[0] if len(kinds) == 1 else kinds
        elif key == "properties" and isinstance(value, dict):
            out[key] = {name: convert(sub) for name, sub in value.items()}
        elif key == "additionalProperties" and isinstance(value, dict):
            out[key] = convert(value)
        elif key in _SCHEMA_ONE:
            out[key] = convert(value)
        elif key in _SCHEMA_LISTS and isinstance(value, list):
            out[key] = [convert(v) for v in value]
        else:
            out[key] = value
    if "$ref" in schema:
        ref = {"$ref": _ref(schema["$ref"])}
        if out:                     # Kubernetes wraps a described reference in allOf
            out["allOf"] = [ref]
        else:
            out = ref
    return out


def _refs(node: Any, found: set[str]) -> None:
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/components/schemas/"):
            found.add(ref.rsplit("/", 1)[1])
        for value in node.values():
            _refs(value, found)
    elif isinstance(node, list):
        for value in node:
            _refs(value, found)


def _closure(roots: list[str]) -> dict[str, dict]:
    defs = definitions()
    todo, seen = list(roots), set()
    while todo:
        name = todo.pop()
        if name in seen or name not in defs:
            continue
        seen.add(name)
        found: set[str] = set()
        _refs(defs[name], found)
        todo.extend(found - seen)
    return {name: defs[name] for name in sorted(seen)}


@functools.lru_cache(maxsize=None)
def schema_name(resource: Resource) -> str | None:
    """The definition carrying this kind's x-kubernetes-group-version-kind."""
    want = {"group": resource.group, "version": resource.version, "kind": resource.kind}
    for name, schema in definitions().items():
        if want in (schema.get("x-kubernetes-group-version-kind") or []):
            return name
    return None


_COMMON = ("Status", "DeleteOptions", "Patch", "APIResourceList", "WatchEvent")


def _param(name: str, where: str = "query", typ: str = "string", required: bool = False) -> dict:
    return {"name": name, "in": where, "required": required, "schema": {"type": typ},
            "description": name}


def _operation(resource: Resource, verb: str, action: str, schema: str | None,
               params: list[dict]) -> dict:
    body_ref = {"$ref": f"#/components/schemas/{schema}"} if schema else {"type": "object"}
    op: dict = {"operationId": f"{verb}{resource.kind}", "tags": [resource.api_version],
                "parameters": params,
                "responses": {"200": {"description": "OK", "content": {
                    "application/json": {"schema": body_ref}}}},
                "x-kubernetes-action": action,
                "x-kubernetes-group-version-kind": {"group": resource.group,
                                                    "version": resource.version,
                                                    "kind": resource.kind}}
    if verb in ("create", "replace", "patch"):
        types = ["application/json"] if verb != "patch" else [
            "application/json-patch+json", "application/merge-patch+json",
            "application/strategic-merge-patch+json", "application/apply-patch+yaml"]
        op["requestBody"] = {"content": {t: {"schema": body_ref} for t in types}}
    return op


def _write_params() -> list[dict]:
    return [_param("dryRun"), _param("fieldManager"), _param("fieldValidation")]


def _paths(resource: Resource, schema: str | None) -> dict:
    collection = resource.path("{namespace}") if resource.namespaced else resource.path()
    item = collection + "/{name}"
    ns = [_param("namespace", "path", required=True)] if resource.namespaced else []
    name = [_param("name", "path", required=True)]
    selectors = [_param("labelSelector"), _param("fieldSelector"), _param("limit", typ="integer"),
                 _param("continue"), _param("resourceVersion"), _param("watch", typ="boolean")]
    return {
        collection: {
            "get": _operation(resource, "list", "list", schema, ns + selectors),
            "post": _operation(resource, "create", "post", schema, ns + _write_params()),
            "delete": _operation(resource, "deletecollection", "deletecollection", schema,
                                 ns + selectors),
        },
        item: {
            "get": _operation(resource, "read", "get", schema, ns + name),
            "put": _operation(resource, "replace", "put", schema, ns + name + _write_params()),
            "patch": _operation(resource, "patch", "patch", schema,
                                ns + name + _write_params() + [_param("force", typ="boolean")]),
            "delete": _operation(resource, "delete", "delete", schema, ns + name),
        },
    }


def document(api_version: str) -> bytes | None:
    """The OpenAPI v3 document of one group/version (e.g. "v1", "apps/v1"), as JSON."""
    return _document(api_version, custom.generation())


@functools.lru_cache(maxsize=128)
def _document(api_version: str, _generation: int) -> bytes | None:
    resources = group_versions().get(api_version)
    if not resources:
        return None
    roots = []
    paths: dict = {}
    extra: dict[str, dict] = {}
    for r in resources:
        name = schema_name(r)
        if name:
            roots.append(name)
        elif (schema := custom_schema(r)) is not None:
            name = custom_schema_name(r)
            extra[name] = schema
        paths.update(_paths(r, name))
    meta = "io.k8s.apimachinery.pkg.apis.meta.v1."
    roots += [meta + n for n in _COMMON if meta + n in definitions()]
    if extra:
        roots.append(_OBJECT_META)
    doc = {"openapi": "3.0.0", "info": {"title": "Kubernetes (gitops agent)",
                                        "version": SCHEMA_VERSION.split("-")[0]},
           "paths": paths, "components": {"schemas": {**_closure(roots), **extra}}}
    return json.dumps(doc, separators=(",", ":")).encode()


_OBJECT_META = "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"


def custom_schema_name(resource: Resource) -> str:
    """Kubernetes' name for a CRD's schema: the group reversed, the version, the kind."""
    return ".".join([*reversed(resource.group.split(".")), resource.version, resource.kind])


def custom_schema(resource: Resource) -> dict | None:
    """A custom kind's schema as the API server publishes it: the CRD's openAPIV3Schema
    with apiVersion, kind and metadata (ObjectMeta) filled in, and its group/version/kind."""
    crd = custom.crd_for(resource.kind)
    schema = custom.schema_of(crd, resource.version) if crd is not None else None
    if schema is None:
        return None
    props = {**(schema.get("properties") or {}),
             "apiVersion": {"type": "string", "description": "APIVersion defines the "
                            "versioned schema of this representation of an object."},
             "kind": {"type": "string", "description": "Kind is a string value representing "
                      "the REST resource this object represents."},
             "metadata": {"allOf": [{"$ref": f"#/components/schemas/{_OBJECT_META}"}],
                          "description": "Standard object's metadata."}}
    return {**schema, "type": "object", "properties": props,
            "x-kubernetes-group-version-kind": [{"group": resource.group,
                                                 "version": resource.version,
                                                 "kind": resource.kind}]}


def url_path(api_version: str) -> str:
    return f"api/{api_version}" if "/" not in api_version else f"apis/{api_version}"


def index() -> dict:
    """/openapi/v3: where each group/version's document is, with a content hash."""
    return _index(custom.generation())


@functools.lru_cache(maxsize=2)
def _index(_generation: int) -> dict:
    out = {}
    for api_version in group_versions():
        body = document(api_version)
        if body is None:
            continue
        digest = hashlib.sha512(body).hexdigest().upper()
        out[url_path(api_version)] = {
            "serverRelativeURL": f"/openapi/v3/{url_path(api_version)}?hash={digest}"}
    return {"paths": out}


def kind_schema(resource: Resource) -> dict | None:
    """The OpenAPI definition of a kind with its references resolvable (strategic merge)."""
    name = schema_name(resource)
    return definitions().get(name) if name else custom_schema(resource)
