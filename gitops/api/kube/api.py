"""The Kubernetes API face of the store: routes, content negotiation, verb dispatch.

Every /api and /apis request lands in one dispatcher that parses the path into a target
(resource, namespace, name, subresource) and calls the verb's module; every failure
leaves as a Kubernetes `Status`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import structlog
from aiohttp import web

from gitops.admission.errors import Refused
from gitops.api.kube import (
    access,
    deletes,
    discovery,
    openapi,
    reviews,
    subresources,
    watch,
    writes,
)
from gitops.api.kube import status as st
from gitops.api.kube.noderestriction import NODE
from gitops.api.kube.reads import list_objects, read
from gitops.api.kube.request import WARNINGS, Target, bool_param, parse_path, wanted_shape
from gitops.api.kube.respond import json_response
from gitops.errors import GitopsError, TransientError
from gitops.model import ObjectKey
from gitops.model.version import kube_version
from gitops.store.base import Conflict, Store
from gitops.store.registry import SYSTEM_NAMESPACES, Registry

log = structlog.get_logger(component="kube-api")

@dataclass
class KubeBackends:
    """What the API needs beyond the store; each is optional (tests, a store-only agent)."""
    logs: Callable[..., Awaitable[Any]] | None = None      # LogRequest -> str | stream
    exec: Any = None                                      # backends.RuntimeStreams
    dial: Callable[[str, int], Awaitable[Any]] | None = None   # pod IP, port -> streams
    # A cluster server: logs/exec/attach/port-forward of a pod on another node go to that
    # node's endpoint (request, target -> response, or None for a pod of this host).
    node_proxy: Callable[..., Awaitable[Any]] | None = None
    token_key: bytes = b""      # signs TokenRequests (serviceaccounts/token); "": none


def ensure_system_namespaces(store: Store) -> None:
    """The namespaces a Kubernetes server always has: kubectl's contexts point at
    "default"; kube-system, kube-public and kube-node-lease are where tools look."""
    for name in SYSTEM_NAMESPACES:
        key = ObjectKey("Namespace", "", name)
        if store.get(key) is None:
            try:
                store.create({"apiVersion": "v1", "kind": "Namespace",
                              "metadata": {"name": name}})
                store.update_status(key, {"phase": "Active"})
            except Conflict:
                pass


class KubeApi:
    def __init__(self, store: Registry, backends: KubeBackends | None = None,
                 allow_host_access: bool = False) -> None:
        self.store = store
        self.backends = backends or KubeBackends()
        self.allow_host_access = allow_host_access
        self.broadcaster = watch.Broadcaster()

    def add_routes(self, app: web.Application) -> None:
        app.router.add_get("/version", self._version)
        app.router.add_get("/openapi/v3", self._openapi_index)
        app.router.add_get("/openapi/v3/{tail:.*}", self._openapi_doc)
        app.router.add_route("*", "/api", self._dispatch)
        app.router.add_route("*", "/api/{tail:.*}", self._dispatch)
        app.router.add_route("*", "/apis", self._dispatch)
        app.router.add_route("*", "/apis/{tail:.*}", self._dispatch)
        if self.store is not None:
            app.on_startup.append(self._start)
            app.on_shutdown.append(self._stop)

    async def _start(self, _app: web.Application) -> None:
        self.broadcaster.attach(self.store, asyncio.get_running_loop())
        ensure_system_namespaces(self.store)

    async def _stop(self, _app: web.Application) -> None:
        self.broadcaster.close()          # open watches end instead of holding shutdown

    # -- discovery and schemas ------------------------------------------------------------
    async def _version(self, _request: web.Request) -> web.Response:
        return json_response(kube_version())

    async def _openapi_index(self, _request: web.Request) -> web.Response:
        return json_response(openapi.index())

    async def _openapi_doc(self, request: web.Request) -> web.Response:
        tail = request.match_info["tail"]
        api_version = tail.removeprefix("api/") if tail.startswith("api/") else \
            tail.removeprefix("apis/")
        body = openapi.document(api_version)
        if body is None:
            return st.ApiError(404, "NotFound", f"no OpenAPI document for {tail}").response()
        return web.Response(body=body, content_type="application/json",
                            headers={"Cache-Control": "public, immutable"})

    def _discovery(self, request: web.Request) -> web.Response | None:
        parts = [p for p in request.path.split("/") if p]
        aggregated = discovery.wants_aggregated(request.headers.get("Accept", ""))
        if parts in (["api"], ["apis"]) and aggregated:
            return json_response(discovery.aggregated(core=parts == ["api"]),
                                 content_type=discovery.AGGREGATED)
        if parts == ["api"]:
            return json_response(discovery.core_versions(request.host))
        if parts == ["apis"]:
            return json_response(discovery.group_list())
        if parts == ["api", "v1"] or (parts[:1] == ["apis"] and len(parts) == 3):
            listed = discovery.resource_list("/".join(parts[1:]))
            if listed is None:
                raise st.ApiError(404, "NotFound", "the server could not find the requested "
                                  "resource")
            return json_response(listed)
        if parts[:1] == ["apis"] and len(parts) == 2:
            group = discovery.api_group(parts[1])
            if group is None:
                raise st.ApiError(404, "NotFound", "the server could not find the requested "
                                  "resource")
            return json_response(group)
        return None

    # -- resources ---------------------------------------------------------------------
    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        try:
            if request.method == "GET":
                found = self._discovery(request)
                if found is not None:
                    return found
            target = parse_path(request.path)
            if target is None:
                raise st.ApiError(404, "NotFound", "the server could not find the requested "
                                  "resource")
            access.check(self.store, request, target)
            try:
                return await self._verb(request, target)
            except Refused as exc:
                raise st.refused(exc, target.resource.kind, target.resource.group)
        except st.ApiError as exc:
            return exc.response()
        except TransientError as exc:    # e.g. the store has no quorum: retry later
            return st.ApiError(503, "ServiceUnavailable", str(exc)).response()
        except GitopsError as exc:
            return st.bad_request(str(exc)).response()
        except Exception as exc:       # one bad request never takes the server down
            log.exception("api_request_failed", method=request.method, path=request.path)
            return st.ApiError(500, "InternalError", f"internal error: {exc}").response()

    async def _verb(self, request: web.Request, target: Target) -> web.StreamResponse:
        resp = await self._call(request, target)
        for warning in request.get(WARNINGS, []):
            resp.headers.add("Warning", f'299 - "{warning}"')
        return resp

    async def _call(self, request: web.Request, target: Target) -> web.StreamResponse:
        method, q = request.method, request.query
        shape = wanted_shape(request.headers.get("Accept", ""))
        if target.resource.virtual:
            if method != "POST" or target.name:
                raise st.method_not_allowed()
            return json_response(reviews.answer(target.resource, await reviews.body(request),
                                                access.user_of(request), self.store), 201)
        if target.sub:
            return await subresources.handle(self, request, target)
        if method == "GET":
            if bool_param(q, "watch"):
                return await watch.serve(self, request, target, shape)
            # On a worker thread, as lists and writes: a store call waits for any other
            # thread's transaction, and the event loop also carries the service proxy.
            if target.name:
                reveal = target.resource.kind == "Secret" and bool(request.get(NODE))
                return await asyncio.to_thread(lambda: json_response(
                    read(self.store, target, shape, q, reveal)))
            return await asyncio.to_thread(lambda: json_response(
                list_objects(self.store, target, shape, q)))
        verb = {("POST", False): writes.create, ("PUT", True): writes.replace,
                ("PATCH", True): writes.patch, ("DELETE", True): deletes.delete,
                ("DELETE", False): deletes.delete_collection}.get((method, bool(target.name)))
        if verb is None:
            raise st.method_not_allowed()
        result = await writes.in_thread(verb, self, request, target)
        obj, code = result if isinstance(result, tuple) else (result, 200)
        return json_response(obj, code)
