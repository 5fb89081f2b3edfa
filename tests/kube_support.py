"""Helpers for tests of the Kubernetes API: the real kubectl, and the API served from a
store on a background thread (HTTP for the CLI routes, HTTPS for kubectl)."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import shutil
import ssl
import subprocess
import threading
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from aiohttp import web

KUBECTL = os.environ.get("GITOPS_KUBECTL", "/usr/bin/kubectl")
TOKEN = "test-token"


def kubectl_path() -> str:
    """The kubectl binary; a clear failure (never a skip) when it is missing."""
    found = KUBECTL if os.path.exists(KUBECTL) else shutil.which("kubectl")
    if not found:
        pytest.fail(f"kubectl is required for these tests and was not found at {KUBECTL} "
                    "or on PATH (set GITOPS_KUBECTL)")
    return found


def write_kubeconfig(path: Path, server: str, token: str, ca: bytes | None) -> Path:
    cluster = {"server": server}
    if ca is not None:
        cluster["certificate-authority-data"] = base64.b64encode(ca).decode()
    path.write_text(json.dumps({
        "apiVersion": "v1", "kind": "Config",
        "clusters": [{"name": "t", "cluster": cluster}],
        "users": [{"name": "t", "user": {"token": token}}],
        "contexts": [{"name": "t", "context": {"cluster": "t", "user": "t",
                                               "namespace": "default"}}],
        "current-context": "t"}))
    return path


def run_kubectl(kubeconfig: Path, *args: str, timeout: float = 60,
                input: str | None = None,
                env_extra: dict | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "KUBECONFIG": str(kubeconfig), "HOME": str(kubeconfig.parent),
           **(env_extra or {})}
    return subprocess.run([kubectl_path(), "--cache-dir", str(kubeconfig.parent / "kcache"),
                           *args], capture_output=True, text=True, timeout=timeout, env=env,
                          input=input)


class KubeServer:
    """make_app over a store, on 127.0.0.1 (both listeners), in a thread of its own, on
    the event loop the agent runs (uvloop when installed)."""

    def __init__(self, store, root: Path, logs=None, kube=None,
                 service_account_key: bytes = b"") -> None:
        self.store = store
        self.service_account_key = service_account_key
        self.root = root
        self.logs = logs
        self.kube = kube
        from gitops.proxy.loop import new_event_loop
        self._loop = new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._runner: web.AppRunner | None = None

    def __enter__(self) -> "KubeServer":
        from gitops.api.kube.listen import start_listeners
        from gitops.api.server import ApiContext, make_app

        async def logs(_req):
            return "no logs here\n"

        async def start() -> tuple[str, str]:
            ctx = ApiContext(self.store, TOKEN, lambda: {"objects": []}, None, lambda: None,
                             self.logs or logs, kube=self.kube,
                             service_account_key=self.service_account_key)
            self._runner = web.AppRunner(make_app(ctx), access_log=None)
            await self._runner.setup()
            return await start_listeners(self._runner, self.root, "127.0.0.1")

        self._thread.start()
        self.url, self.kube_url = asyncio.run_coroutine_threadsafe(start(), self._loop).result(30)
        self.kubeconfig = write_kubeconfig(self.root / "kubeconfig", self.kube_url, TOKEN,
                                           (self.root / "ca.crt").read_bytes())
        self.tls = ssl.create_default_context(cafile=str(self.root / "ca.crt"))
        return self

    def __exit__(self, *exc) -> None:
        async def stop() -> None:
            assert self._runner is not None
            await self._runner.cleanup()
        asyncio.run_coroutine_threadsafe(stop(), self._loop).result(30)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()

    def kubectl(self, *args: str, **kw) -> subprocess.CompletedProcess:
        return run_kubectl(self.kubeconfig, *args, **kw)

    def request(self, method: str, path: str, body: object = None, token: str | None = TOKEN,
                headers: dict | None = None, secure: bool = False,
                timeout: float = 30) -> tuple[int, dict, object]:
        """(status, headers, JSON body or text) of one request to the API."""
        data = None
        hdrs = dict(headers or {})
        if body is not None:
            data = body if isinstance(body, bytes) else json.dumps(body).encode()
            hdrs.setdefault("Content-Type", "application/json")
        if token:
            hdrs["Authorization"] = f"Bearer {token}"
        base = self.kube_url if secure else self.url
        req = urllib.request.Request(base + path, data=data, method=method, headers=hdrs)
        try:
            with urllib.request.urlopen(req, timeout=timeout,
                                        context=self.tls if secure else None) as resp:
                raw, status, rh = resp.read(), resp.status, dict(resp.headers)
        except urllib.error.HTTPError as exc:
            raw, status, rh = exc.read(), exc.code, dict(exc.headers)
        text = raw.decode(errors="replace")
        try:
            return status, rh, json.loads(text)
        except ValueError:
            return status, rh, text
