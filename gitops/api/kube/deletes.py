"""delete and deletecollection: DeleteOptions read from the request (propagation,
preconditions, grace period, dry run); the store's registry deletes."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

from gitops.api.kube import status as st
from gitops.api.kube.present import present
from gitops.api.kube.reads import key, list_page
from gitops.api.kube.request import Target, int_param
from gitops.api.kube.writes import body_of
from gitops.model import ObjectKey
from gitops.model.deletion import PROPAGATIONS
from gitops.model.meta import key_of
from gitops.store.base import NotFound
from gitops.store.registry import DeleteOptions, Forbidden, PreconditionFailed

if TYPE_CHECKING:
    from gitops.api.kube.api import KubeApi


def _delete_options(request: web.Request, raw: bytes) -> dict:
    opts: dict = {}
    try:
        body = body_of(request, raw)
    except st.ApiError:
        body = None
    if isinstance(body, dict):
        opts.update(body)
    q = request.query
    if "propagationPolicy" in q:
        opts["propagationPolicy"] = q["propagationPolicy"]
    if "gracePeriodSeconds" in q:
        opts["gracePeriodSeconds"] = int_param(q, "gracePeriodSeconds")
    if q.getall("dryRun", []):
        opts["dryRun"] = q.getall("dryRun")
    if opts.get("orphanDependents") is not None and "propagationPolicy" not in opts:
        opts["propagationPolicy"] = "Orphan" if opts["orphanDependents"] else "Background"
    policy = opts.get("propagationPolicy") or "Background"
    if policy not in PROPAGATIONS:
        raise st.bad_request(f"propagationPolicy: unsupported value {policy!r}: supported "
                             "values: Background, Foreground, Orphan")
    opts["propagationPolicy"] = policy
    return opts


def delete_one(api: "KubeApi", target: Target, k: ObjectKey, opts: dict) -> dict:
    """Delete through the store's registry; its refusals as Kubernetes Status errors."""
    r = target.resource
    options = DeleteOptions(
        propagation=opts["propagationPolicy"],
        uid=(opts.get("preconditions") or {}).get("uid") or "",
        resource_version=(opts.get("preconditions") or {}).get("resourceVersion") or "",
        grace_period=opts.get("gracePeriodSeconds"), dry_run=bool(opts.get("dryRun")))
    try:
        return present(api.store.delete_with_options(k, options))
    except NotFound:
        raise st.not_found(r.plural, r.group, k.name)
    except PreconditionFailed as exc:
        raise st.conflict(r.plural, r.group, k.name, str(exc))
    except Forbidden as exc:
        raise st.ApiError(403, "Forbidden", str(exc))


def delete(api: "KubeApi", request: web.Request, target: Target,
           raw: bytes) -> tuple[dict, int]:
    opts = _delete_options(request, raw)
    return delete_one(api, target, key(target), opts), 200


def delete_collection(api: "KubeApi", request: web.Request, target: Target,
                      raw: bytes) -> dict:
    opts = _delete_options(request, raw)
    r = target.resource
    _, page, _, _ = list_page(api.store, target, request.query)
    gone = []
    for obj in page:
        try:
            gone.append(delete_one(api, target, key_of(obj), opts))
        except st.ApiError as exc:
            if exc.code != 404:
                raise
    return {"kind": r.list_kind, "apiVersion": r.api_version,
            "metadata": {"resourceVersion": str(api.store.resource_version())}, "items": gone}
