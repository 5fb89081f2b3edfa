"""Talk to the agent that owns a data dir, through the address it recorded there."""

from __future__ import annotations

import json
import ssl
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

from gitops.errors import GitopsError
from gitops.paths import DataDir


class AgentNotRunning(GitopsError):
    pass


class Client:
    """The data dir's agent; when it is one of several servers on one store (etcd), the
    others too (DATA_DIR/peers.json): a server that does not answer, or answers 502-504
    (its store unreachable), is left for the next one, and a working one is kept."""

    def __init__(self, dd: DataDir) -> None:
        info = dd.read_agent()
        peers = _peers(dd)
        if info is None and not peers:
            raise AgentNotRunning(f"no agent is running for data dir {dd.root} "
                                  "(start one with `gitops up SOURCE` or `gitops run`)")
        if info is not None and info.get("role") == "node":
            raise AgentNotRunning(f"{dd.root} is the data dir of node {info.get('node')} "
                                  f"(`gitops agent`), which has no API of its own: use "
                                  f"kubectl against its server {info.get('server')}")
        # Its own server first (none when it died: the others alone).
        self.urls = [*([info["url"]] if info else []), *[p for p in peers
                                                          if not info or p != info["url"]]]
        self.url = self.urls[0]
        self.info = info or {}
        self._token = dd.token()
        # An agent bound beyond loopback serves HTTPS with its data dir's CA.
        self._tls = ssl.create_default_context(cafile=str(dd.root / "ca.crt")) \
            if any(u.startswith("https://") for u in self.urls) else None

    def _open(self, method: str, path: str, timeout: float):
        """The first server's response, trying the others in turn."""
        last: Exception | None = None
        for url in [self.url, *[u for u in self.urls if u != self.url]]:
            req = urllib.request.Request(url + path, method=method,
                                         headers={"Authorization": f"Bearer {self._token}"})
            try:
                resp = urllib.request.urlopen(req, timeout=timeout, context=self._tls)
            except urllib.error.HTTPError as exc:
                if exc.code in FAILOVER_CODES and len(self.urls) > 1:
                    last = GitopsError(server_error(exc.code, _detail(exc)))
                    continue
                raise GitopsError(server_error(exc.code, _detail(exc))) from exc
            except (urllib.error.URLError, OSError) as exc:
                last = AgentNotRunning(f"agent at {url} does not answer: {exc}")
                continue
            self.url = url
            return resp
        assert last is not None
        raise last

    def request(self, method: str, path: str, timeout: float = 30) -> Any:
        with self._open(method, path, timeout) as resp:
            body = resp.read()
            ctype = resp.headers.get("Content-Type", "")
        return json.loads(body) if "json" in ctype else body.decode(errors="replace")

    def stream(self, path: str) -> Iterator[bytes]:
        """Chunks of a streaming response (logs -f) until the server ends it."""
        with self._open("GET", path, 3600) as resp:
            while chunk := resp.read1(65536):
                yield chunk

    def get(self, path: str, timeout: float = 30) -> Any:
        return self.request("GET", path, timeout)

    def post(self, path: str, timeout: float = 130) -> Any:
        return self.request("POST", path, timeout)


FAILOVER_CODES = (502, 503, 504)     # a server that cannot serve now; another may


def _peers(dd: DataDir) -> list[str]:
    """The other servers' API URLs, as the data dir's server last saw them."""
    try:
        return list(json.loads((dd.root / "peers.json").read_text()).get("peers") or [])
    except (OSError, ValueError, AttributeError):
        return []


_REASONS = {400: "BadRequest", 401: "Unauthorized", 403: "Forbidden", 404: "NotFound",
            405: "MethodNotAllowed", 409: "Conflict", 410: "Gone", 415: "UnsupportedMediaType",
            422: "Invalid", 429: "TooManyRequests", 500: "InternalError",
            503: "ServiceUnavailable", 504: "Timeout"}


def server_error(code: int, message: str) -> str:
    """As kubectl words an API error: `Error from server (NotFound): pods "x" not found`."""
    return f"Error from server ({_REASONS.get(code, code)}): {message.strip()}"


def _detail(exc: urllib.error.HTTPError) -> str:
    """The message of a Kubernetes-style Status body, else the body itself."""
    body = exc.read().decode(errors="replace")
    try:
        return json.loads(body).get("message", body)
    except (ValueError, AttributeError):
        return body


def resource_path(api_version: str, plural: str, namespace: str | None, name: str = "") -> str:
    base = "/api/v1" if api_version == "v1" else f"/apis/{api_version}"
    path = f"{base}/namespaces/{namespace}/{plural}" if namespace else f"{base}/{plural}"
    return f"{path}/{name}" if name else path
