"""The server's way to a pod on another node: pods/log, exec, attach and port-forward are
passed to that node's own endpoint (the kubelet's port, status.daemonEndpoints), as the
API server proxies to the kubelet. The node endpoint serves HTTPS with a certificate the
server's CA signed for the node's address at join, and takes only the bearer token the
server gave that node then (DATA_DIR/node-endpoints.json); the server verifies both.
"""

from __future__ import annotations

import asyncio
import json
import ssl
import threading
from pathlib import Path

import aiohttp
import structlog
from aiohttp import web

from gitops.api.kube import status as st
from gitops.api.kube.request import Target
from gitops.errors import GitopsError
from gitops.model import ObjectKey
from gitops.private_files import write_atomic

log = structlog.get_logger(component="node-proxy")

STREAMED = ("log", "exec", "attach", "portforward")
KUBELET_PORT = 10250


class NodeEndpoints:
    """Node name -> the token the server presents to that node's endpoint (0600 file, or
    the store when servers share one: `shared`, gitops.cluster.shared.StateMap)."""

    def __init__(self, path: Path, shared=None) -> None:
        self.path = path
        self._shared = shared
        self._lock = threading.Lock()
        if shared is not None:
            self._tokens: dict[str, str] = shared.load()
            return
        try:
            self._tokens = json.loads(path.read_text())
        except FileNotFoundError:
            self._tokens = {}
        except ValueError as exc:
            raise GitopsError(f"{path} is not valid JSON ({exc}); remove it and let nodes "
                              "join again") from exc

    def set(self, node: str, token: str) -> None:
        with self._lock:
            if self._shared is not None:
                self._tokens = self._shared.put(node, token)
                return
            self._tokens[node] = token
            write_atomic(self.path, json.dumps(self._tokens, sort_keys=True))

    def token(self, node: str) -> str:
        with self._lock:
            found = self._tokens.get(node, "")
            if not found and self._shared is not None:
                fresh = self._shared.reload()       # joined through another server
                if fresh is not None:
                    self._tokens = fresh
                    found = fresh.get(node, "")
            return found


def endpoint_of(node: dict) -> tuple[str, int]:
    status = node.get("status") or {}
    ip = next((a.get("address", "") for a in status.get("addresses") or []
               if a.get("type") == "InternalIP"), "")
    port = ((status.get("daemonEndpoints") or {}).get("kubeletEndpoint") or {}).get("Port", 0)
    return ip, int(port or 0)


class NodeProxy:
    def __init__(self, store, own_node: str, endpoints: NodeEndpoints, ca_file: Path) -> None:
        self.store = store
        self.own_node = own_node
        self.endpoints = endpoints
        self.tls = ssl.create_default_context(cafile=str(ca_file))

    async def __call__(self, request: web.Request, target: Target) -> web.StreamResponse | None:
        """The response from the pod's node, or None when the pod is this server's own."""
        key = ObjectKey("Pod", target.namespace or "default", target.name)
        pod = await asyncio.to_thread(self.store.get, key)
        if pod is None:
            return None
        node_name = (pod.get("spec") or {}).get("nodeName") or ""
        if not node_name or node_name == self.own_node:
            return None
        node = await asyncio.to_thread(self.store.get, ObjectKey("Node", "", node_name))
        ip, port = endpoint_of(node or {})
        token = self.endpoints.token(node_name)
        if not ip or not port or not token:
            raise st.ApiError(503, "ServiceUnavailable", f"node {node_name} has no endpoint "
                              f"this server can reach for pods/{target.sub}")
        url = f"https://{ip}:{port}{request.path_qs}"
        headers = {"Authorization": f"Bearer {token}"}
        if request.headers.get("Upgrade", "").lower() == "websocket":
            return await _proxy_websocket(request, url, headers, self.tls)
        return await _proxy_http(request, url, headers, self.tls)


async def _proxy_http(request: web.Request, url: str, headers: dict,
                      tls: ssl.SSLContext) -> web.StreamResponse:
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=10)
    try:
        async with aiohttp.ClientSession(timeout=timeout) as session:
            async with session.get(url, headers=headers, ssl=tls) as upstream:
                resp = web.StreamResponse(status=upstream.status, headers={
                    "Content-Type": upstream.headers.get("Content-Type", "text/plain")})
                resp.enable_chunked_encoding()
                await resp.prepare(request)
                async for chunk in upstream.content.iter_any():
                    await resp.write(chunk)
                await resp.write_eof()
                return resp
    except aiohttp.ClientError as exc:
        raise st.ApiError(502, "BadGateway", f"the pod's node did not answer: {exc}")


async def _proxy_websocket(request: web.Request, url: str, headers: dict,
                           tls: ssl.SSLContext) -> web.StreamResponse:
    wanted = [p.strip() for p in request.headers.get("Sec-WebSocket-Protocol", "").split(",")
              if p.strip()]
    session = aiohttp.ClientSession()
    try:
        upstream = await session.ws_connect(url, headers=headers, ssl=tls, protocols=wanted,
                                            max_msg_size=0, heartbeat=None)
    except aiohttp.ClientError as exc:
        await session.close()
        raise st.ApiError(502, "BadGateway", f"the pod's node did not answer: {exc}")
    ws = web.WebSocketResponse(protocols=[upstream.protocol] if upstream.protocol else [],
                               heartbeat=None, max_msg_size=0)
    await ws.prepare(request)

    async def pipe(src, dst) -> None:
        async for msg in src:
            if msg.type == aiohttp.WSMsgType.BINARY:
                await dst.send_bytes(msg.data)
            elif msg.type == aiohttp.WSMsgType.TEXT:
                await dst.send_str(msg.data)
            else:
                break
        await dst.close()

    try:
        await asyncio.gather(pipe(ws, upstream), pipe(upstream, ws), return_exceptions=True)
    finally:
        await upstream.close()
        await session.close()
    return ws
