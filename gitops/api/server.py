"""aiohttp app: bearer-token auth, the Kubernetes API (gitops.api.kube), and the agent's
own /gitops/v1 routes: status, history, sync and the other control verbs, shutdown."""

from __future__ import annotations

import asyncio
import hmac
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from gitops.api.kube.api import KubeApi, KubeBackends
from gitops.api.kube.noderestriction import NODE, node_restriction
from gitops.api.kube.request import LogRequest
from gitops.api.kube.access import USER
from gitops.api.serviceaccounts import ADMIN_USER, User, authenticate
from gitops.model import satoken
from gitops.errors import GitopsError
from gitops.health import assess, assess_in
from gitops.model import ObjectKey, key_of
from gitops.store.base import Store
from gitops.store.informer import Informer
from gitops.store.scoped import app_history
from gitops.sync.hooks import RUN_ANNOTATION


@dataclass
class ApiContext:
    store: Store
    token: str
    status: Callable[[], dict]
    control: Callable[[str, dict], Awaitable[dict]]       # verb, query -> result
    shutdown: Callable[[], None]
    logs: Callable[[LogRequest], Awaitable[str | AsyncIterator[bytes]]]
    kube: KubeBackends | None = None      # exec / port-forward for the Kubernetes API
    allow_host_access: bool = False       # API writes follow the same node policy as git
    public_metrics: bool = False          # /metrics without the token (names Services)
    nodes: Any = None       # join.NodeCredentials: nodes' own credentials (a cluster server)
    service_account_key: bytes = b""      # pods' ServiceAccount tokens ("": none accepted)


CONTROL_VERBS = ("sync", "rollback", "unpin", "suspend", "resume")
CTX = web.AppKey("ctx", ApiContext)


def _status_error(code: int, reason: str, message: str) -> web.Response:
    return web.json_response({"kind": "Status", "apiVersion": "v1", "metadata": {},
                              "status": "Failure", "reason": reason, "message": message,
                              "code": code}, status=code)


@web.middleware
async def _auth(request: web.Request, handler: Any) -> web.StreamResponse:
    if request.path in ("/healthz", "/cacerts", "/gitops/v1/join") or \
            request.path.startswith("/hooks/") or (
            request.path == "/metrics" and request.app[CTX].public_metrics) or \
            request.path == "/ui" or request.path.startswith("/ui/"):
        # Webhooks authenticate by their signature, joining nodes by the join token, the
        # UI (gitops.ui) by its session.
        return await handler(request)
    ctx = request.app[CTX]
    given = _bearer_token(request.headers.get("Authorization", ""))
    user = _user(ctx, given)
    if user is None:
        # A node of a cluster, by its own credential, within what NodeRestriction allows.
        node = ctx.nodes.node_of(given) if ctx.nodes is not None and given else None
        if node is None:
            return _status_error(401, "Unauthorized", "a valid bearer token is required")
        denied = await node_restriction(request, ctx.store, node)
        if denied:
            return _status_error(403, "Forbidden", denied)
        request[NODE] = node
        return await handler(request)
    if not user.is_admin and not request.path.startswith(_KUBE_PATHS):
        # A pod's token speaks the Kubernetes API only (RBAC decides there), never the
        # agent's own verbs.
        return _status_error(403, "Forbidden", f'User "{user.name}" cannot {request.method} '
                             f'path "{request.path}"')
    request[USER] = user
    return await handler(request)


_KUBE_PATHS = ("/api", "/version", "/openapi/")     # /api, /api/..., /apis...


def _user(ctx: ApiContext, given: str) -> User | None:
    """Who the bearer token speaks for: the agent's token (the administrator), a pod's
    ServiceAccount token, or nobody."""
    token = ctx.token.strip()
    # Fail closed: an empty token (a truncated file) must not match an empty header.
    if token and given and hmac.compare_digest(given.encode(), token.encode()):
        return ADMIN_USER
    if ctx.service_account_key and satoken.looks_like(given):
        return authenticate(ctx.store, ctx.service_account_key, given, time.time())
    return None


def _bearer_token(header: str) -> str:
    """The token of an `Authorization: Bearer <token>` header (the scheme in any case, as
    RFC 6750 and Kubernetes read it), or "" for any other header."""
    scheme, _, value = header.strip().partition(" ")
    return value.strip() if scheme.lower() == "bearer" else ""


async def _healthz(_: web.Request) -> web.Response:
    return web.Response(text="ok")


async def _status(request: web.Request) -> web.Response:
    return web.json_response(request.app[CTX].status())


async def _control(request: web.Request) -> web.Response:
    verb = request.match_info["verb"]
    if verb not in CONTROL_VERBS:
        return _status_error(404, "NotFound", f"no such action {verb!r}")
    try:
        result = await request.app[CTX].control(verb, dict(request.query))
    except GitopsError as exc:
        return _status_error(409, "Conflict", str(exc))
    return web.json_response(result)


async def _history(request: web.Request) -> web.Response:
    limit = int(request.query.get("limit", "20"))
    store = request.app[CTX].store
    if "app" in request.query:      # one app's ("" the agent's own source)
        return web.json_response({"items": app_history(store, request.query["app"], limit)})
    return web.json_response({"items": store.history(limit)})


async def _shutdown(request: web.Request) -> web.Response:
    asyncio.get_running_loop().call_later(0.1, request.app[CTX].shutdown)
    return web.json_response({"stopping": True})


def make_app(ctx: ApiContext) -> web.Application:
    # Kubernetes takes objects up to about 3 MiB (etcd's limit); so does this API.
    app = web.Application(middlewares=[_auth], client_max_size=4 * 1024 * 1024)
    app[CTX] = ctx
    app.router.add_get("/healthz", _healthz)
    backends = ctx.kube or KubeBackends()
    backends.logs = backends.logs or ctx.logs
    # The Kubernetes API: discovery, OpenAPI, every kind's verbs, pods/log (kubectl and
    # `gitops get`/`gitops logs` read through it).
    KubeApi(ctx.store, backends, ctx.allow_host_access).add_routes(app)
    app.router.add_get("/gitops/v1/status", _status)
    app.router.add_get("/gitops/v1/history", _history)
    app.router.add_post("/gitops/v1/shutdown", _shutdown)   # before {verb}: routes match in order
    app.router.add_post("/gitops/v1/{verb}", _control)
    return app


def object_health(store: Store, live: Informer | None = None) -> list[dict]:
    """Every object git declared, with its health: what `status` and `up --wait` show.
    live: the informer's cache to read objects from (no decoding: `up --wait` asks often,
    while the agent starts pods)."""
    objects = live if live is not None else store
    out = []
    for key, entry in sorted(store.inventory().items()):
        health = assess_in(objects, objects.get(key))     # workloads judged with their pods
        out.append({"kind": key.kind, "namespace": key.namespace, "name": key.name,
                    "file": entry.file, "line": entry.line, "sync": entry.sync_status,
                    "health": health.status, "message": health.message})
    return out


def unmanaged_objects(store: Store, managed: Iterable[ObjectKey] = (),
                      live: Informer | None = None) -> list[dict]:
    """Objects made through the Kubernetes API that git does not declare: sync leaves them
    alone (never pruned, never corrected). Objects owned by another (pods of a
    ReplicaSet) belong to their owner; those the agent makes itself carry no field manager.
    `managed`: what the apps git declares manage, beyond the agent's own source.
    live: the informer's cache to read from (Events, which it does not keep, are records
    of what happened, not objects anyone manages)."""
    inventory = {*store.inventory(), *managed}
    out = []
    for obj in (live.cached() if live is not None else store.all_objects()):
        meta = obj.get("metadata", {})
        if key_of(obj) in inventory or meta.get("ownerReferences") or \
                not meta.get("managedFields") or \
                RUN_ANNOTATION in (meta.get("annotations") or {}):    # git's hooks
            continue
        health = assess(obj)
        managers = sorted({e.get("manager", "") for e in meta["managedFields"]})
        out.append({"kind": obj.get("kind", ""), "namespace": meta.get("namespace", ""),
                    "name": meta.get("name", ""), "managers": managers,
                    "health": health.status, "message": health.message})
    return out
