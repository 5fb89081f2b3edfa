"""aiohttp app: bearer-token auth, Kubernetes-style object reads, status, sync, shutdown."""

from __future__ import annotations

import asyncio
import hmac
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from gitops.errors import GitopsError
from gitops.health import assess_in
from gitops.model import KINDS, ObjectKey
from gitops.store.base import Store
from gitops.sync.diff import mask_secret


@dataclass
class ApiContext:
    store: Store
    token: str
    status: Callable[[], dict]
    control: Callable[[str, dict], Awaitable[dict]]       # verb, query -> result
    shutdown: Callable[[], None]
    logs: Callable[[LogRequest], Awaitable[str | AsyncIterator[bytes]]]


@dataclass(frozen=True)
class LogRequest:
    namespace: str
    pod: str
    container: str = ""
    tail: int = 100
    previous: bool = False
    follow: bool = False


CONTROL_VERBS = ("sync", "rollback", "unpin", "suspend", "resume")
CTX = web.AppKey("ctx", ApiContext)


def _status_error(code: int, reason: str, message: str) -> web.Response:
    return web.json_response({"kind": "Status", "apiVersion": "v1", "status": "Failure",
                              "reason": reason, "message": message, "code": code}, status=code)


@web.middleware
async def _auth(request: web.Request, handler: Any) -> web.StreamResponse:
    if request.path in ("/healthz", "/metrics") or request.path.startswith("/hooks/"):
        return await handler(request)     # webhooks authenticate by their signature
    token: str = request.app[CTX].token
    given = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
    if not hmac.compare_digest(given.encode(), token.encode()):
        return _status_error(401, "Unauthorized", "a valid bearer token is required")
    return await handler(request)


def _kind_for_plural(plural: str) -> str | None:
    return next((k.kind for k in KINDS.values() if k.plural == plural), None)


async def _healthz(_: web.Request) -> web.Response:
    return web.Response(text="ok")


async def _list_or_get(request: web.Request) -> web.Response:
    ctx: ApiContext = request.app[CTX]
    plural = request.match_info["plural"]
    kind = _kind_for_plural(plural)
    if kind is None:
        return _status_error(404, "NotFound", f"the server could not find resource {plural!r}")
    info = KINDS[kind]
    ns = request.match_info.get("namespace")
    name = request.match_info.get("name")
    if name:
        obj = ctx.store.get(ObjectKey(kind, ns or "" if info.namespaced else "", name))
        if obj is None:
            return _status_error(404, "NotFound", f'{plural} "{name}" not found')
        return web.json_response(mask_secret(obj))
    items = ctx.store.list(kind, ns if info.namespaced else None)
    return web.json_response({"kind": f"{kind}List", "apiVersion": info.api_version,
                              "metadata": {}, "items": [mask_secret(o) for o in items]})


async def _pod_log(request: web.Request) -> web.StreamResponse:
    ctx: ApiContext = request.app[CTX]
    q = request.query
    try:
        out = await ctx.logs(LogRequest(
            request.match_info["namespace"], request.match_info["name"],
            q.get("container", ""), int(q.get("tailLines", "100")),
            q.get("previous") in ("true", "1"), q.get("follow") in ("true", "1")))
    except GitopsError as exc:
        return _status_error(400, "BadRequest", str(exc))
    if isinstance(out, str):
        return web.Response(text=out)
    resp = web.StreamResponse(headers={"Content-Type": "text/plain; charset=utf-8"})
    await resp.prepare(request)
    async for chunk in out:
        await resp.write(chunk)
    await resp.write_eof()
    return resp


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
    return web.json_response({"items": request.app[CTX].store.history(limit)})


async def _shutdown(request: web.Request) -> web.Response:
    asyncio.get_running_loop().call_later(0.1, request.app[CTX].shutdown)
    return web.json_response({"stopping": True})


def make_app(ctx: ApiContext) -> web.Application:
    app = web.Application(middlewares=[_auth])
    app[CTX] = ctx
    app.router.add_get("/healthz", _healthz)
    for prefix in ("/api/v1", "/apis/{group}/{version}"):
        app.router.add_get(prefix + "/{plural}", _list_or_get)
        app.router.add_get(prefix + "/{plural}/{name}", _list_or_get)
        app.router.add_get(prefix + "/namespaces/{namespace}/{plural}", _list_or_get)
        app.router.add_get(prefix + "/namespaces/{namespace}/{plural}/{name}", _list_or_get)
    app.router.add_get("/api/v1/namespaces/{namespace}/pods/{name}/log", _pod_log)
    app.router.add_get("/gitops/v1/status", _status)
    app.router.add_get("/gitops/v1/history", _history)
    app.router.add_post("/gitops/v1/shutdown", _shutdown)   # before {verb}: routes match in order
    app.router.add_post("/gitops/v1/{verb}", _control)
    return app


def object_health(store: Store) -> list[dict]:
    """Every object git declared, with its health: what `status` and `up --wait` show."""
    out = []
    for key, entry in sorted(store.inventory().items()):
        health = assess_in(store, store.get(key))     # workloads judged with their pods
        out.append({"kind": key.kind, "namespace": key.namespace, "name": key.name,
                    "file": entry.file, "line": entry.line, "sync": entry.sync_status,
                    "health": health.status, "message": health.message})
    return out
