"""Servers sharing one store (etcd) share the cluster's secrets through it, as k3s keeps
its bootstrap data in its datastore and kubeadm its control-plane certificates in the
`kubeadm-certs` Secret: the API's CA, the API token, the ServiceAccount signing key and the
join token (state `cluster-bootstrap`), and nodes' credentials and endpoint tokens. So a
node, kubectl or the gitops CLI trusts and is trusted by every server alike, and fails over
from one to another with the same credential.

The first server to start publishes its data dir's files; every later one adopts them
(written over its own, the server certificate remade on the shared CA). Reading the store
is as privileged as holding the CA key: protect etcd as Kubernetes asks (its peers and
clients on a private network, or TLS).
"""

from __future__ import annotations

import base64
import json
import time
from pathlib import Path

import structlog

from gitops.api import token as api_token
from gitops.api.join import load_or_create_token
from gitops.api.kube.tls import CA_CERT, CA_KEY, SERVER_CERT, SERVER_KEY, ensure_ca
from gitops.api.serviceaccounts import load_or_create_key
from gitops.private_files import write_atomic
from gitops.store.base import Conflict

log = structlog.get_logger(component="cluster-shared")

BOOTSTRAP = "cluster-bootstrap"
NODE_TOKEN = "node-token"
TOKEN, SA_KEY = "token", "sa.key"
FILES = (CA_CERT, CA_KEY, TOKEN, SA_KEY, NODE_TOKEN)
PEERS = "peers.json"     # in a server's data dir: the other servers' API URLs
RELOAD_EVERY = 0.2      # seconds: the least time between two reloads of a shared map


def share_secrets(store, root: Path) -> str:
    """Make the data dir's secrets the cluster's: "published" (first server) or
    "adopted"."""
    for _ in range(5):
        shared = store.get_state(BOOTSTRAP)
        if shared is None:
            files = _own_files(root)
            try:
                with store.transaction():
                    if store.get_state(BOOTSTRAP) is not None:
                        continue        # another server published meanwhile: adopt its
                    store.set_state(BOOTSTRAP, {n: _b64(d) for n, d in files.items()})
            except Conflict:
                continue
            log.info("cluster_secrets_published", files=sorted(files))
            return "published"
        _adopt(root, {n: base64.b64decode(v) for n, v in shared.items()})
        return "adopted"
    raise Conflict("the cluster's secrets kept changing in the store while being read")


def _own_files(root: Path) -> dict[str, bytes]:
    ensure_ca(root)
    api_token.load_or_create(root / TOKEN)
    load_or_create_key(root / SA_KEY)
    load_or_create_token(root / NODE_TOKEN, (root / CA_CERT).read_bytes())
    return {name: (root / name).read_bytes() for name in FILES}


def _adopt(root: Path, files: dict[str, bytes]) -> None:
    changed = []
    for name, data in files.items():
        path = root / name
        if not path.exists() or path.read_bytes() != data:
            write_atomic(path, data)
            changed.append(name)
    if CA_CERT in changed:          # signed by another CA: made again on the shared one
        (root / SERVER_CERT).unlink(missing_ok=True)
        (root / SERVER_KEY).unlink(missing_ok=True)
    log.info("cluster_secrets_adopted", changed=sorted(changed))


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


class StateMap:
    """A small name -> value map kept in one state entry of the shared store: nodes'
    credential digests, nodes' endpoint tokens. Writes are read-modify-write in one
    transaction (retried on a conflict with another server); reads are served from memory,
    reloaded on a miss (a node that joined through another server)."""

    def __init__(self, store, name: str) -> None:
        self.store = store
        self.name = name
        self._values: dict[str, str] = dict(store.get_state(name) or {})
        self._loaded = time.monotonic()

    def load(self) -> dict[str, str]:
        return dict(self._values)

    def reload(self, force: bool = False) -> dict[str, str] | None:
        """The map as stored now, or None when it was read less than RELOAD_EVERY ago
        (unless forced)."""
        if not force and time.monotonic() - self._loaded < RELOAD_EVERY:
            return None
        self._values, self._loaded = dict(self.store.get_state(self.name) or {}), \
            time.monotonic()
        return dict(self._values)

    def put(self, key: str, value: str) -> dict[str, str]:
        for _ in range(10):
            try:
                with self.store.transaction():
                    values = dict(self.store.get_state(self.name) or {})
                    values[key] = value
                    self.store.set_state(self.name, values)
            except Conflict:
                continue
            self._values, self._loaded = values, time.monotonic()
            return dict(values)
        raise Conflict(f"cannot record {key} in {self.name}: the store kept changing")

    def remove(self, key: str) -> None:
        for _ in range(10):
            try:
                with self.store.transaction():
                    values = dict(self.store.get_state(self.name) or {})
                    if values.pop(key, None) is None:
                        return
                    self.store.set_state(self.name, values)
            except Conflict:
                continue
            self._values, self._loaded = values, time.monotonic()
            return


class ServerRegistry:
    """Every server on the shared store, by data dir instance: its API URLs. Each server
    records its own at start and copies the others' into DATA_DIR/peers.json (refreshed by
    a loop), where the gitops CLI finds another server when its own does not answer."""

    def __init__(self, store, instance: str, peers_file: Path) -> None:
        self.map = StateMap(store, "api-servers")
        self.instance = instance
        self.peers_file = peers_file
        self._written: list[dict] | None = None

    def register(self, record: dict) -> None:
        self.map.put(self.instance, json.dumps(record, sort_keys=True))
        self.refresh()

    def unregister(self) -> None:
        """A clean stop: the others stop offering this server to their clients (one
        killed stays listed: it may come back, and a client skips it meanwhile)."""
        self.map.remove(self.instance)

    def refresh(self) -> None:
        records = self.map.reload(force=True) or {}
        others = sorted((json.loads(v) for k, v in records.items() if k != self.instance),
                        key=lambda r: r.get("url", ""))
        if others != self._written:
            # peers: the gitops API's URLs (the CLI); servers: every URL of each (kubeconfig)
            write_atomic(self.peers_file, json.dumps({
                "peers": [r["url"] for r in others if r.get("url")], "servers": others}))
            self._written = others
