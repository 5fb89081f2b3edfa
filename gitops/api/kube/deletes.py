"""delete and deletecollection: propagation (Background, Foreground, Orphan),
preconditions, finalizers, graceful pod deletion, namespaces with their contents."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

from gitops.api.kube import status as st
from gitops.api.kube.present import present
from gitops.api.kube.reads import key, list_page
from gitops.api.kube.request import Target, int_param
from gitops.api.kube.writes import body_of
from gitops.controllers.base import request_delete
from gitops.model.meta import key_of
from gitops.model.times import now_iso

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
    if policy not in ("Background", "Foreground", "Orphan"):
        raise st.bad_request(f"propagationPolicy: unsupported value {policy!r}: supported "
                             "values: Background, Foreground, Orphan")
    opts["propagationPolicy"] = policy
    return opts


def _dependents(store, uid: str) -> list[dict]:
    return [o for o in store.all_objects()
            if any(ref.get("uid") == uid for ref in o["metadata"].get("ownerReferences") or [])]


def delete_one(api: "KubeApi", target: Target, k, opts: dict) -> dict:
    r = target.resource
    store = api.store
    name = k.name
    with store.transaction():
        obj = store.get(k)
        if obj is None:
            raise st.not_found(r.plural, r.group, name)
        pre = opts.get("preconditions") or {}
        meta = obj["metadata"]
        if pre.get("uid") and pre["uid"] != meta.get("uid"):
            raise st.conflict(r.plural, r.group, name, f"Precondition failed: UID in "
                              f"precondition: {pre['uid']}, UID in object meta: {meta['uid']}")
        if pre.get("resourceVersion") and pre["resourceVersion"] != meta.get("resourceVersion"):
            raise st.conflict(r.plural, r.group, name, "Precondition failed: "
                              f"ResourceVersion in precondition: {pre['resourceVersion']}, "
                              f"ResourceVersion in object meta: {meta['resourceVersion']}")
        if k.kind == "Namespace" and name == "default":
            raise st.ApiError(403, "Forbidden", 'namespaces "default" is forbidden: this '
                              "namespace may not be deleted")
        if opts.get("dryRun"):
            return present(obj)
        if k.kind == "Namespace":          # its contents go with it
            for inner in list(store.all_objects()):
                if inner["metadata"].get("namespace") == name:
                    request_delete(store, key_of(inner))
        policy = opts["propagationPolicy"]
        if policy == "Orphan":
            for dep in _dependents(store, meta["uid"]):
                dep["metadata"]["ownerReferences"] = [
                    ref for ref in dep["metadata"]["ownerReferences"] if ref.get("uid") !=
                    meta["uid"]]
                if not dep["metadata"]["ownerReferences"]:
                    del dep["metadata"]["ownerReferences"]
                dep["metadata"].pop("resourceVersion", None)
                store.update(dep)
        elif policy == "Foreground":
            _delete_tree(store, meta["uid"])
        if meta.get("finalizers"):
            if not meta.get("deletionTimestamp"):
                meta["deletionTimestamp"] = now_iso()
                obj = store.update(obj)
            return present(obj)
        if k.kind == "Pod" and opts.get("gracePeriodSeconds") == 0:
            store.delete(k)            # --force --grace-period=0: the node removes orphans
        else:
            request_delete(store, k)
        after = store.get(k)
    return present(after or obj)


def _delete_tree(store, uid: str, depth: int = 0) -> None:
    """Foreground cascading, done at once: dependents (theirs first), then the owner."""
    if depth > 10:
        return
    for dep in _dependents(store, uid):
        _delete_tree(store, dep["metadata"]["uid"], depth + 1)
        request_delete(store, key_of(dep))


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
