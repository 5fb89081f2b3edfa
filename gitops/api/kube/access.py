"""Whether the request's user may do what it asks: the agent's token may do everything; a
pod's ServiceAccount token what RBAC grants it (gitops.api.rbac), with Kubernetes' 403."""

from __future__ import annotations

from aiohttp import web

from gitops.api import rbac
from gitops.api.kube import status as st
from gitops.api.kube.request import Target, bool_param
from gitops.api.serviceaccounts import ADMIN_USER, User
from gitops.model import ObjectKey
from gitops.store.base import Store

# Subresources that open a stream into a pod: "create" whatever the method, as Kubernetes
# asks since WebSocket exec.
_STREAMS = {"exec", "attach", "portforward"}


USER = web.RequestKey("user", User) if hasattr(web, "RequestKey") else "user"  # who asks


def user_of(request: web.Request) -> User:
    """Who is asking; a request that passed no authentication (tests of the bare API) is
    the administrator, as the agent's token is."""
    return request.get(USER, ADMIN_USER)


def verb(method: str, target: Target, watching: bool) -> str:
    """The request's Kubernetes verb."""
    if target.sub in _STREAMS:
        return "create"
    if method == "GET":
        return "watch" if watching else ("get" if target.name else "list")
    return {"POST": "create", "PUT": "update", "PATCH": "patch",
            "DELETE": "delete" if target.name else "deletecollection"}.get(method, "")


def attributes(method: str, target: Target, watching: bool) -> rbac.Attributes:
    r = target.resource
    return rbac.Attributes(verb=verb(method, target, watching), group=r.group,
                           resource=r.plural, subresource=target.sub,
                           namespace=target.namespace or "", name=target.name)


def allowed(store: Store, user: User, attrs: rbac.Attributes) -> bool:
    if user.is_admin:
        return True
    return rbac.authorize(user.name, user.groups, attrs, lambda kind, ns, name: _get(
        store, kind, ns, name), store.list)


def _get(store: Store, kind: str, ns: str, name: str) -> dict | None:
    if kind.startswith("Cluster"):      # found by name whatever scope the store gave it
        return next((o for o in store.list(kind) if o["metadata"].get("name") == name), None)
    return store.get(ObjectKey(kind, ns, name))


def check(store: Store, request: web.Request, target: Target) -> None:
    """Raise Kubernetes' 403 unless the request's user may do this."""
    user = user_of(request)
    attrs = attributes(request.method, target, bool_param(request.query, "watch"))
    if not allowed(store, user, attrs):
        raise st.ApiError(403, "Forbidden", rbac.forbidden_message(user.name, attrs),
                          {"name": attrs.name, "group": attrs.group, "kind": attrs.resource})


def review_attributes(spec: dict) -> rbac.Attributes:
    """A SelfSubjectAccessReview's question (kubectl auth can-i)."""
    ra, nra = spec.get("resourceAttributes"), spec.get("nonResourceAttributes")
    if ra:
        return rbac.Attributes(verb=ra.get("verb", ""), group=ra.get("group", ""),
                               resource=ra.get("resource", ""),
                               subresource=ra.get("subresource", ""),
                               namespace=ra.get("namespace", ""), name=ra.get("name", ""))
    nra = nra or {}
    return rbac.Attributes(verb=nra.get("verb", ""), path=nra.get("path", ""))
