"""Nodes joining the control plane, k3s-style.

The server keeps a join token in DATA_DIR/node-token (0600):
`K10<sha256 of the server CA, hex>::node:<secret>`. A joining agent first reads the CA
from /cacerts (unauthenticated, as k3s serves it) and refuses a server whose CA does not
hash to the token's; then, over TLS pinned to that CA, it presents the secret at
/gitops/v1/join and gets a credential of its own, bound to its node name. The server
keeps only credentials' SHA-256 (DATA_DIR/node-credentials.json); a node's credential
authorizes what NodeRestriction (gitops.api.kube.noderestriction) allows that node.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import json
import re
import secrets
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import structlog
from aiohttp import web

from gitops.errors import GitopsError
from gitops.private_files import write_atomic

log = structlog.get_logger(component="join")

TOKEN_PREFIX = "K10"
_TOKEN_RE = re.compile(r"^K10(?P<hash>[0-9a-f]{64})::(?P<user>[a-z0-9-]+):(?P<secret>\S{32,})$")
# A node name is a DNS subdomain (Kubernetes' rule for Node names).
_NODE_NAME = re.compile(r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$")


class JoinRefused(GitopsError):
    pass


@dataclass(frozen=True)
class JoinToken:
    ca_hash: str
    secret: str
    user: str = "node"

    def text(self) -> str:
        return f"{TOKEN_PREFIX}{self.ca_hash}::{self.user}:{self.secret}"


def ca_hash(ca_pem: bytes) -> str:
    return hashlib.sha256(ca_pem).hexdigest()


def parse_token(text: str, where: str = "the token") -> JoinToken:
    """A join token, or GitopsError naming what is wrong (never echoing the secret)."""
    m = _TOKEN_RE.match(text.strip())
    if m is None:
        raise GitopsError(f"{where} is not a join token: expected K10<64 hex digits of the "
                          "server CA's SHA-256>::node:<secret> (the server writes it to "
                          "DATA_DIR/node-token)")
    return JoinToken(m["hash"], m["secret"], m["user"])


def valid_node_name(name: str) -> bool:
    return bool(_NODE_NAME.match(name))


def load_or_create_token(path: Path, ca_pem: bytes) -> JoinToken:
    """The server's join token; made once, and remade when the CA it pins changed."""
    want = ca_hash(ca_pem)
    if path.exists():
        token = parse_token(path.read_text(), f"the join token file {path}")
        if token.ca_hash == want:
            path.chmod(0o600)
            return token
        token = JoinToken(want, token.secret, token.user)    # same secret, the new CA
    else:
        token = JoinToken(want, secrets.token_urlsafe(32))
    write_atomic(path, token.text() + "\n")
    return token


class NodeCredentials:
    """Node name -> SHA-256 of its credential, kept in an owner-only file, or in the store
    when servers share one (`shared`: a map with load/reload/put, gitops.cluster.shared)."""

    def __init__(self, path: Path, shared=None) -> None:
        self.path = path
        self._shared = shared
        self._lock = threading.Lock()
        if shared is not None:
            self._hashes: dict[str, str] = shared.load()
            return
        try:
            self._hashes = json.loads(path.read_text())
        except FileNotFoundError:
            self._hashes = {}
        except ValueError as exc:
            raise GitopsError(f"{path} is not valid JSON ({exc}); remove it and let nodes "
                              "join again") from exc

    def issue(self, node: str) -> str:
        """A new credential for `node` (a previous one stops working)."""
        credential = f"node-{secrets.token_urlsafe(32)}"
        with self._lock:
            if self._shared is not None:
                self._hashes = self._shared.put(node, _digest(credential))
                return credential
            self._hashes[node] = _digest(credential)
            write_atomic(self.path, json.dumps(self._hashes, sort_keys=True))
        return credential

    def node_of(self, credential: str) -> str | None:
        """The node a bearer credential belongs to, or None."""
        if not credential.startswith("node-"):
            return None
        digest = _digest(credential)
        with self._lock:
            found = _find(self._hashes, digest)
            if found is None and self._shared is not None:
                # A node that joined through another server: read the store again.
                fresh = self._shared.reload()
                if fresh is not None:
                    self._hashes = fresh
                    found = _find(fresh, digest)
        return found


def _find(hashes: dict[str, str], digest: str) -> str | None:
    for node, known in hashes.items():
        if hmac.compare_digest(known, digest):
            return node
    return None


def _digest(credential: str) -> str:
    return hashlib.sha256(credential.encode()).hexdigest()


@dataclass
class JoinService:
    """The server's side: /cacerts and /gitops/v1/join."""
    token: JoinToken
    credentials: NodeCredentials
    ca_pem: bytes
    cluster: dict       # what every node needs to know: service CIDR, cluster CIDR, DNS
    # node, address -> what that node's own endpoint needs (certificate, key, token)
    endpoint: Callable[[str, str], dict] | None = None

    def add_routes(self, app: web.Application) -> None:
        app.router.add_get("/cacerts", self._cacerts)
        app.router.add_post("/gitops/v1/join", self._join)

    async def _cacerts(self, _request: web.Request) -> web.Response:
        return web.Response(body=self.ca_pem, content_type="application/x-pem-file")

    async def _join(self, request: web.Request) -> web.Response:
        header = request.headers.get("Authorization", "")
        scheme, _, given = header.partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(
                given.strip().encode(), self.token.secret.encode()):
            log.warning("join_refused", peer=request.remote, reason="wrong join token")
            return _error(401, "Unauthorized", "the join token is not this server's")
        try:
            body = await request.json()
        except ValueError:
            return _error(400, "BadRequest", "the join request must be JSON")
        node = body.get("node", "") if isinstance(body, dict) else ""
        if not isinstance(node, str) or not valid_node_name(node):
            return _error(400, "BadRequest", f"node name {node!r} is not a valid DNS "
                          "subdomain (lowercase letters, digits, '-' and '.')")
        address = body.get("address", "")
        try:
            ipaddress.IPv4Address(address)
        except ValueError:
            return _error(400, "BadRequest", f"address {address!r} is not an IPv4 address")
        credential = self.credentials.issue(node)
        endpoint = self.endpoint(node, address) if self.endpoint else {}
        log.info("node_joined", node=node, address=address, peer=request.remote)
        return web.json_response({"node": node, "token": credential, "endpoint": endpoint,
                                  **self.cluster})


def _error(code: int, reason: str, message: str) -> web.Response:
    return web.json_response({"kind": "Status", "apiVersion": "v1", "metadata": {},
                              "status": "Failure", "reason": reason, "message": message,
                              "code": code}, status=code)
