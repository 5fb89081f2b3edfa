"""A node joining a server: verify the server's CA against the token's hash, then trade the
join secret for a credential of its own (kept in the node's data dir, 0600)."""

from __future__ import annotations

import hashlib
import http.client
import json
import ssl
import urllib.parse
from dataclasses import dataclass
from pathlib import Path

from gitops.api.join import JoinToken, ca_hash
from gitops.errors import GitopsError
from gitops.private_files import write_atomic

IDENTITY_FILE = "node-identity.json"
CA_FILE = "server-ca.crt"


class JoinError(GitopsError):
    pass


@dataclass(frozen=True)
class NodeIdentity:
    node: str
    credential: str
    ca_pem: bytes
    cluster: dict           # service CIDR, cluster CIDR, what the server told
    endpoint: dict          # the node's own endpoint: cert, key (PEM), token

    def tls(self) -> ssl.SSLContext:
        ctx = ssl.create_default_context(cadata=self.ca_pem.decode())
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        return ctx


def _split(server: str) -> tuple[str, int]:
    url = urllib.parse.urlsplit(server)
    if url.scheme != "https" or not url.hostname:
        raise JoinError(f"--server {server!r}: expected https://HOST[:PORT]")
    return url.hostname, url.port or 6443


def fetch_ca(server: str, timeout: float = 10.0) -> bytes:
    """The server's CA, read without verifying (it is verified by hash next)."""
    host, port = _split(server)
    unverified = ssl.create_default_context()
    unverified.check_hostname = False
    unverified.verify_mode = ssl.CERT_NONE
    conn = http.client.HTTPSConnection(host, port, timeout=timeout, context=unverified)
    try:
        conn.request("GET", "/cacerts")
        resp = conn.getresponse()
        body = resp.read()
    except (OSError, http.client.HTTPException) as exc:
        raise JoinError(f"cannot reach the server at {server}: {exc}") from exc
    finally:
        conn.close()
    if resp.status != 200 or b"BEGIN CERTIFICATE" not in body:
        raise JoinError(f"{server} does not serve a CA at /cacerts (HTTP {resp.status}): is "
                        "it a gitops server started with --advertise-address?")
    return body


def join(server: str, token: JoinToken, node: str, address: str,
         timeout: float = 15.0) -> NodeIdentity:
    ca_pem = fetch_ca(server, timeout)
    if ca_hash(ca_pem) != token.ca_hash:
        raise JoinError(f"the server at {server} presents a CA whose SHA-256 is "
                        f"{ca_hash(ca_pem)[:16]}..., not the token's {token.ca_hash[:16]}...: "
                        "refusing to join (a wrong token, or not the server you meant)")
    host, port = _split(server)
    tls = ssl.create_default_context(cadata=ca_pem.decode())
    conn = http.client.HTTPSConnection(host, port, timeout=timeout, context=tls)
    try:
        conn.request("POST", "/gitops/v1/join", body=json.dumps({"node": node, "address": address}),
                     headers={"Authorization": f"Bearer {token.secret}",
                              "Content-Type": "application/json"})
        resp = conn.getresponse()
        body = resp.read()
    except ssl.SSLError as exc:
        raise JoinError(f"TLS with {server} failed: {exc} (does its certificate name "
                        f"{host}? start the server with --advertise-address {host})") from exc
    except (OSError, http.client.HTTPException) as exc:
        raise JoinError(f"cannot reach the server at {server}: {exc}") from exc
    finally:
        conn.close()
    try:
        doc = json.loads(body)
    except ValueError:
        doc = {}
    if resp.status == 401:
        raise JoinError(f"the server at {server} refused the join token (its secret is not "
                        "the server's; copy DATA_DIR/node-token from the server again)")
    if resp.status != 200 or not doc.get("token"):
        raise JoinError(f"joining {server} failed (HTTP {resp.status}): "
                        f"{doc.get('message', body[:200])}")
    cluster = {k: v for k, v in doc.items() if k not in ("node", "token", "endpoint")}
    return NodeIdentity(node, doc["token"], ca_pem, cluster, doc.get("endpoint") or {})


def save(root: Path, identity: NodeIdentity, address: str) -> None:
    write_atomic(root / CA_FILE, identity.ca_pem)
    write_atomic(root / IDENTITY_FILE, json.dumps({
        "node": identity.node, "address": address, "credential": identity.credential,
        "ca_sha256": hashlib.sha256(identity.ca_pem).hexdigest(),
        "cluster": identity.cluster, "endpoint": identity.endpoint}))


def load(root: Path, token: JoinToken, node: str, address: str) -> NodeIdentity | None:
    """The identity this data dir joined with, if it is for this node and the token's
    server (a new token or node name joins afresh)."""
    try:
        doc = json.loads((root / IDENTITY_FILE).read_text())
        ca_pem = (root / CA_FILE).read_bytes()
    except (OSError, ValueError):
        return None
    if doc.get("node") != node or ca_hash(ca_pem) != token.ca_hash or \
            doc.get("address") != address:
        return None         # another server, name or address: join afresh
    return NodeIdentity(node, doc["credential"], ca_pem, doc.get("cluster") or {},
                        doc.get("endpoint") or {})
