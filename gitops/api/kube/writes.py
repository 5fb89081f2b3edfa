"""create, update (PUT), patch and server-side apply, written through the store's registry.

Kubernetes rules kept here, for requests: identity fields are the server's; the main
resource never changes status (the status subresource does); a stale resourceVersion is
409 Conflict; dryRun=All answers without writing; every write names its field manager,
which the registry records against the stored object. Patches are retried on a
concurrent write, as the API server does, since they carry no resourceVersion of their
own. What holds for every writer (identity, generation, finalizers, ...) is the
registry's (gitops.store.registry).
"""

from __future__ import annotations

import asyncio
import json
import random
from typing import TYPE_CHECKING, Any

import yaml
from aiohttp import web

from gitops.api.kube import managed, openapi
from gitops.api.kube import patch as P
from gitops.api.kube import status as st
from gitops.api.kube.present import present, typed_mask, unmask_secret
from gitops.api.kube.reads import get_object, key
from gitops.api.kube.request import WARNINGS, Target, bool_param
from gitops.api.kube.validation import check
from gitops.model.meta import key_of
from gitops.model.times import now_iso
from gitops.store.base import Conflict, NotFound
from gitops.store.registry import RecordFields

if TYPE_CHECKING:
    from gitops.api.kube.api import KubeApi

_IDENTITY = ("uid", "creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds",
             "generation", "selfLink")
_SUFFIX = "bcdfghjklmnpqrstvwxz2456789"     # Kubernetes' generateName alphabet
PATCH_RETRIES = 5


# -- request helpers ---------------------------------------------------------------------
PROTOBUF = "application/vnd.kubernetes.protobuf"


def body_of(request: web.Request, raw: bytes, yaml_ok: bool = False) -> Any:
    """The request body (already read: handlers run on worker threads) as JSON or YAML,
    or Kubernetes protobuf (kubectl's generators send it for built-in kinds)."""
    if request.headers.get("Content-Type", "").startswith(PROTOBUF):
        from gitops.api.kube import protobuf     # kubectl's create only: not at start-up
        try:
            return protobuf.decode(raw)
        except protobuf.Malformed as exc:
            raise st.bad_request(str(exc)) from exc
        except protobuf.NotDecodable as exc:
            raise st.ApiError(415, "UnsupportedMediaType", (
                f"{exc}; this server reads JSON, YAML and the protobuf of Kubernetes' "
                "built-in kinds")) from exc
    if not raw.strip():
        return None
    try:
        return yaml.safe_load(raw) if yaml_ok else json.loads(raw)
    except (ValueError, yaml.YAMLError) as exc:
        raise st.bad_request(f"the request body is not valid "
                             f"{'YAML' if yaml_ok else 'JSON'}: {exc}")


def manager_of(request: web.Request, default: str = "") -> str:
    given = request.query.get("fieldManager", "")
    if given:
        return given
    agent = request.headers.get("User-Agent", "")
    return default or agent.split("/", 1)[0] or "unknown"


def dry_run(request: web.Request) -> bool:
    values = request.query.getall("dryRun", [])
    if any(v != "All" for v in values):
        raise st.bad_request(f"dryRun: unsupported value {values!r} (only All)")
    return bool(values)


_CONTAINER_LISTS = ("containers", "initContainers", "ephemeralContainers")


def without_go_zero_values(value: Any) -> Any:
    """Drop what Go clients send for unset fields: nulls (`creationTimestamp: null`) and
    empty container `resources: {}` (defaulting puts it back). Kubernetes decodes both as
    "not set"."""
    if isinstance(value, dict):
        out = {k: without_go_zero_values(v) for k, v in value.items() if v is not None}
        for name in _CONTAINER_LISTS:
            for c in out.get(name) or []:
                if isinstance(c, dict) and c.get("resources") == {}:
                    del c["resources"]
        return out
    if isinstance(value, list):
        return [without_go_zero_values(v) for v in value]
    return value


def an_object(obj: Any) -> dict:
    """The body (or a patch's result) as an object whose metadata is one, or a 400."""
    if not isinstance(obj, dict):
        raise st.bad_request("the request body must be a JSON object")
    if not isinstance(obj.get("metadata", {}), (dict, type(None))):
        raise st.bad_request("metadata: must be an object")
    return obj


def _check_identity(target: Target, obj: Any, name_required: bool = True) -> dict:
    r = target.resource
    obj = without_go_zero_values(an_object(obj))
    if obj.get("kind") not in (None, r.kind):
        raise st.bad_request(f"the kind of the body ({obj.get('kind')}) does not match the "
                             f"resource ({r.kind})")
    if obj.get("apiVersion") not in (None, r.api_version):
        raise st.bad_request(f"the apiVersion of the body ({obj.get('apiVersion')}) does "
                             f"not match the resource ({r.api_version})")
    obj = {**obj, "kind": r.kind, "apiVersion": r.api_version}
    meta = obj.setdefault("metadata", {}) or {}
    obj["metadata"] = meta
    if r.namespaced:
        ns = target.namespace or "default"
        if meta.get("namespace") not in (None, "", ns):
            raise st.bad_request("the namespace of the provided object does not match the "
                                 "namespace sent on the request")
        meta["namespace"] = ns
    else:
        meta.pop("namespace", None)
    if target.name and meta.get("name") not in (None, target.name):
        raise st.bad_request(f'the name of the object ({meta.get("name")}) does not match '
                             f'the name on the URL ({target.name})')
    if target.name:
        meta["name"] = target.name
    if name_required and not meta.get("name"):
        raise st.invalid(r.kind, r.group, "", [("metadata.name", "name or generateName is "
                                                "required")])
    return obj


def _schema(target: Target):
    return openapi.kind_schema(target.resource)


def _has_status(target: Target) -> bool:
    return "status" in target.resource.subresources


def _validate(api: "KubeApi", request: web.Request, target: Target, obj: dict,
              default: str = "", sub: str = "") -> None:
    """Field validation; its warnings go back as `Warning: 299` headers."""
    outcome = check(target.resource, obj, request.query.get("fieldValidation", default),
                    api.allow_host_access, status=sub == "status")
    if outcome.warnings:
        request[WARNINGS] = [*request.get(WARNINGS, []), *outcome.warnings]


async def in_thread(fn, api: "KubeApi", request: web.Request, target: Target, *args):
    """Run a write on a worker thread with the body already read: store calls may wait
    for another thread's transaction, and the event loop also carries the service proxy."""
    raw = await request.read()
    return await asyncio.to_thread(fn, api, request, target, raw, *args)


# -- create ------------------------------------------------------------------------------
def create(api: "KubeApi", request: web.Request, target: Target,
           raw: bytes) -> tuple[dict, int]:
    r = target.resource
    obj = an_object(body_of(request, raw))
    if not (obj.get("metadata") or {}).get("name") and \
            isinstance((obj.get("metadata") or {}).get("generateName"), str):
        meta = obj["metadata"]
        meta["name"] = meta["generateName"] + "".join(random.choice(_SUFFIX) for _ in range(5))
    obj = _check_identity(target, obj)
    meta = obj["metadata"]
    for field in (*_IDENTITY, "resourceVersion", "managedFields"):
        meta.pop(field, None)
    if _has_status(target):
        obj.pop("status", None)
    _validate(api, request, target, obj)
    fields = field_manager(request, target)
    if dry_run(request):
        api.store.admit(obj, None)
        meta["managedFields"] = fields(None, obj)
        if api.store.get(key_of(obj)) is not None:
            raise st.already_exists(r.plural, r.group, meta["name"])
        return _shown(request, {**obj, "metadata": {**meta, "uid": "",
                                                    "creationTimestamp": now_iso()}}), 201
    try:
        created = api.store.create(obj, record_fields=fields)
    except Conflict:
        raise st.already_exists(r.plural, r.group, meta["name"])
    return _shown(request, created), 201


def _shown(request: web.Request, obj: dict) -> dict:
    """present(); a typed client (one that sent protobuf) decodes a Secret's data as
    base64, so its masked values are the base64 of the mask."""
    shown = present(obj)
    if request.headers.get("Content-Type", "").startswith(PROTOBUF):
        shown = typed_mask(shown)
    return shown


# -- update ------------------------------------------------------------------------------
def _carry_server_fields(obj: dict, old: dict, target: Target, sub: str = "") -> dict:
    """Identity from the stored object; status from it too unless writing status (and
    the rest from it when writing status)."""
    if sub == "status":
        out = json.loads(json.dumps(old))
        out["status"] = obj.get("status", {})
        out["metadata"]["resourceVersion"] = obj["metadata"].get("resourceVersion")
        return out
    meta = obj["metadata"]
    for field in _IDENTITY:
        if field in old["metadata"]:
            meta[field] = old["metadata"][field]
        else:
            meta.pop(field, None)
    if _has_status(target):
        if "status" in old:
            obj["status"] = old["status"]
        else:
            obj.pop("status", None)
    return unmask_secret(obj, old)


def field_manager(request: web.Request, target: Target, sub: str = "") -> RecordFields:
    """The request's field manager, as an Update: (stored, new) -> managedFields of new."""
    manager, api_version, schema = manager_of(request), target.resource.api_version, \
        _schema(target)
    return lambda old, new: managed.record_update(old, new, manager, api_version, schema, sub)


def stored_update(api: "KubeApi", target: Target, obj: dict,
                  fields: RecordFields | None = None) -> dict:
    """obj written through the registry (a deleting object whose last finalizer is gone
    goes), as the API presents it; 409 when stale, 404 when gone."""
    r = target.resource
    try:
        return present(api.store.update(obj, record_fields=fields))
    except Conflict:
        raise st.stale(r.plural, r.group, target.name)
    except NotFound:
        raise st.not_found(r.plural, r.group, target.name)


def dry_run_update(api: "KubeApi", obj: dict, old: dict,
                   fields: RecordFields | None = None) -> dict:
    """What an update would store, admitted and its fields recorded as the registry would,
    without writing."""
    api.store.admit(obj, old)
    if fields is not None:
        obj["metadata"]["managedFields"] = fields(old, obj)
    return present(obj)


def replace(api: "KubeApi", request: web.Request, target: Target, raw: bytes,
            sub: str = "") -> dict:
    r = target.resource
    obj = _check_identity(target, body_of(request, raw))
    old = get_object(api.store, target)
    given_rv = obj["metadata"].get("resourceVersion")
    if given_rv and given_rv != old["metadata"].get("resourceVersion"):
        raise st.stale(r.plural, r.group, target.name)
    obj = _carry_server_fields(obj, old, target, sub)
    _validate(api, request, target, obj, sub=sub)
    fields = field_manager(request, target, sub)
    if dry_run(request):
        return dry_run_update(api, obj, old, fields)
    return stored_update(api, target, obj, fields)


# -- patch -------------------------------------------------------------------------------
def content_type(request: web.Request) -> str:
    return request.headers.get("Content-Type", "").split(";")[0].strip().lower()


def apply_patch(kind: str, current: dict, body: Any, schema) -> dict:
    try:
        if kind == P.JSON_PATCH:
            return P.json_patch(current, body)
        if kind == P.MERGE_PATCH:
            return P.merge_patch(current, body)
        if kind == P.STRATEGIC:
            merged = P.strategic_merge(current, body, schema)
            return merged if merged is not None else {}
    except P.PatchError as exc:
        raise st.ApiError(422, "Invalid", str(exc))
    raise st.ApiError(415, "UnsupportedMediaType",
                      f"the body of the request was in an unknown format - accepted media "
                      f"types include: {P.JSON_PATCH}, {P.MERGE_PATCH}, {P.STRATEGIC}, "
                      f"{P.APPLY}")


def patch(api: "KubeApi", request: web.Request, target: Target, raw: bytes,
          sub: str = "") -> tuple[dict, int]:
    r = target.resource
    kind = content_type(request)
    if kind == P.APPLY:
        return server_side_apply(api, request, target, raw, sub)
    body = body_of(request, raw)
    if body is None:
        raise st.bad_request("the patch is empty")
    schema = _schema(target)
    for attempt in range(PATCH_RETRIES):
        old = get_object(api.store, target)
        current = present(old) if sub != "status" else json.loads(json.dumps(old))
        if old.get("kind") == "Secret":
            current = json.loads(json.dumps(old))     # patched as stored, shown masked
        patched = apply_patch(kind, current, body, schema)
        if not isinstance(patched, dict):
            raise st.ApiError(422, "Invalid", "the patch result is not an object")
        an_object(patched)
        precondition = (patched.get("metadata") or {}).get("resourceVersion")
        if precondition and precondition != old["metadata"].get("resourceVersion"):
            raise st.stale(r.plural, r.group, target.name)
        obj = _check_identity(target, patched)
        obj["metadata"]["resourceVersion"] = old["metadata"]["resourceVersion"]
        obj = _carry_server_fields(obj, old, target, sub)
        _validate(api, request, target, obj, sub=sub)
        fields = field_manager(request, target, sub)
        if dry_run(request):
            return dry_run_update(api, obj, old, fields), 200
        try:
            return stored_update(api, target, obj, fields), 200
        except st.ApiError as exc:
            if exc.code != 409 or attempt == PATCH_RETRIES - 1 or precondition:
                raise
    raise st.stale(r.plural, r.group, target.name)


def server_side_apply(api: "KubeApi", request: web.Request, target: Target, raw: bytes,
                      sub: str = "") -> tuple[dict, int]:
    r = target.resource
    manager = request.query.get("fieldManager", "")
    if not manager:
        raise st.bad_request("PATCH requests with apply content type (application/"
                             "apply-patch+yaml) require a fieldManager query parameter")
    force = bool_param(request.query, "force")
    applied = _check_identity(target, body_of(request, raw, yaml_ok=True))
    schema = _schema(target)
    for attempt in range(PATCH_RETRIES):
        old = api.store.get(key(target))
        live = (present(old) if old.get("kind") != "Secret" else json.loads(json.dumps(old))) \
            if old else None
        try:
            merged, fields = managed.apply(live, applied, manager, r.api_version, schema,
                                           force, sub)
        except managed.ApplyConflict as exc:
            raise st.ApiError(409, "Conflict", str(exc), {
                "name": target.name, **({"group": r.group} if r.group else {}),
                "kind": r.plural, "causes": [
                    {"reason": "FieldManagerConflict",
                     "message": f'conflict with "{c.manager}"'
                                + (f" using {c.api_version}" if c.api_version else ""),
                     "field": managed.display(c.path)} for c in exc.conflicts]})
        obj = _check_identity(target, merged)
        if old is None:
            if sub:
                raise st.not_found(r.plural, r.group, target.name)
            for field in (*_IDENTITY, "resourceVersion"):
                obj["metadata"].pop(field, None)
            if _has_status(target):
                obj.pop("status", None)
            _validate(api, request, target, obj, "Strict")
            obj["metadata"]["managedFields"] = fields     # the apply's, against no object
            if dry_run(request):
                api.store.admit(obj, None)
                return present(obj), 201
            try:
                return present(api.store.create(obj)), 201
            except Conflict:
                continue             # created meanwhile: apply onto it
        obj["metadata"]["resourceVersion"] = old["metadata"]["resourceVersion"]
        obj = _carry_server_fields(obj, old, target, sub)
        _validate(api, request, target, obj, "Strict", sub)
        obj["metadata"]["managedFields"] = fields     # the apply's, against the live object
        if dry_run(request):
            return dry_run_update(api, obj, old), 200
        try:
            return stored_update(api, target, obj), 200
        except st.ApiError as exc:
            if exc.code != 409 or attempt == PATCH_RETRIES - 1:
                raise
    raise st.stale(r.plural, r.group, target.name)
