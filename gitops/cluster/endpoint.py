"""A node's own endpoint (the kubelet's port): pods/log, exec, attach and port-forward of
the pods on this node, for the server alone. HTTPS with the certificate the server's CA
signed for this node at join; the only bearer token taken is the one the server gave."""

from __future__ import annotations

import hmac
import ssl
from pathlib import Path

import structlog
from aiohttp import web

from gitops.api.kube import status as st
from gitops.api.kube import subresources
from gitops.api.kube.api import KubeApi, KubeBackends
from gitops.api.kube.request import parse_path
from gitops.api.nodeproxy import STREAMED
from gitops.private_files import write_atomic

log = structlog.get_logger(component="node-endpoint")


class NodeEndpoint:
    def __init__(self, root: Path, endpoint: dict, store, backends: KubeBackends) -> None:
        self.root = root
        self.token = endpoint.get("token", "")
        self.cert, self.key = root / "endpoint.crt", root / "endpoint.key"
        if endpoint.get("cert"):
            write_atomic(self.cert, endpoint["cert"])
            write_atomic(self.key, endpoint["key"])
        self.api = KubeApi(store, backends)
        self._runner: web.AppRunner | None = None

    async def start(self, host: str, port: int) -> None:
        if not self.token or not self.cert.exists():
            log.warning("node_endpoint_disabled", reason="the server gave no endpoint "
                        "credentials at join (an older server?)")
            return
        app = web.Application(middlewares=[self._auth])
        app.router.add_route("*", "/api/v1/namespaces/{ns}/pods/{name}/{sub}", self._pod)
        tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        tls.minimum_version = ssl.TLSVersion.TLSv1_2
        tls.load_cert_chain(str(self.cert), str(self.key))
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, host, port, ssl_context=tls).start()
        log.info("node_endpoint_listening", address=f"{host}:{port}")

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    @web.middleware
    async def _auth(self, request: web.Request, handler) -> web.StreamResponse:
        scheme, _, given = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(),
                                                                 self.token.encode()):
            return st.ApiError(401, "Unauthorized", "only the server may call a node's "
                               "endpoint").response()
        return await handler(request)

    async def _pod(self, request: web.Request) -> web.StreamResponse:
        try:
            target = parse_path(request.path)
            if target is None or target.sub not in STREAMED:
                raise st.ApiError(404, "NotFound", "a node's endpoint serves pods' log, exec, "
                                  "attach and portforward only")
            return await subresources.handle(self.api, request, target)
        except st.ApiError as exc:
            return exc.response()
