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
    def __init__(self, dd: DataDir) -> None:
        info = dd.read_agent()
        if info is None:
            raise AgentNotRunning(f"no agent is running for data dir {dd.root} "
                                  "(start one with `gitops up SOURCE` or `gitops run`)")
        if info.get("role") == "node":
            raise AgentNotRunning(f"{dd.root} is the data dir of node {info.get('node')} "
                                  f"(`gitops agent`), which has no API of its own: use "
                                  f"kubectl against its server {info.get('server')}")
        self.url = info["url"]
        self.info = info
        self._token = dd.token()
        # An agent bound beyond loopback serves HTTPS with its data dir's CA.
        self._tls = ssl.create_default_context(cafile=str(dd.root / "ca.crt")) \
            if self.url.startswith("https://") else None

    def request(self, method: str, path: str, timeout: float = 30) -> Any:
        req = urllib.request.Request(self.url + path, method=method,
                                     headers={"Authorization": f"Bearer {self._token}"})
        try:
            with urllib.request.urlopen(req, timeout=timeout, context=self._tls) as resp:
                body = resp.read()
                ctype = resp.headers.get("Content-Type", "")
        except urllib.error.HTTPError as exc:
            raise GitopsError(server_error(exc.code, _detail(exc))) from exc
        except (urllib.error.URLError, OSError) as exc:
            raise AgentNotRunning(f"agent at {self.url} does not answer: {exc}") from exc
        return json.loads(body) if "json" in ctype else body.decode(errors="replace")

    def stream(self, path: str) -> Iterator[bytes]:
        """Chunks of a streaming response (logs -f) until the server ends it."""
        req = urllib.request.Request(self.url + path,
                                     headers={"Authorization": f"Bearer {self._token}"})
        try:
            with urllib.request.urlopen(req, timeout=3600, context=self._tls) as resp:
                while chunk := resp.read1(65536):
                    yield chunk
        except urllib.error.HTTPError as exc:
            raise GitopsError(server_error(exc.code, _detail(exc))) from exc

    def get(self, path: str, timeout: float = 30) -> Any:
        return self.request("GET", path, timeout)

    def post(self, path: str, timeout: float = 130) -> Any:
        return self.request("POST", path, timeout)


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
