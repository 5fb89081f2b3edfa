"""Joining a cluster server over real TLS sockets: the CA pinned by the token, a wrong
token refused with nothing changed, the node's own credential limited by NodeRestriction,
and the node's API-backed store (list + watch, writes)."""

from __future__ import annotations

import asyncio
import json
import threading
import time
import urllib.error
import urllib.request

import pytest
from aiohttp import web

from gitops.api.join import JoinToken, parse_token
from gitops.api.joinclient import JoinError, join
from gitops.api.remote import ApiClient, Forbidden, RemoteStore
from gitops.api.server import ApiContext, make_app
from gitops.cluster.server import ClusterServer
from gitops.controllers.nodelifecycle import Settings
from gitops.model import ObjectKey
from gitops.paths import DataDir
from gitops.store.sqlite import SqliteStore
from gitops.store.registry import Registry

ADMIN = "a" * 43


class Server:
    """A cluster server's API (no runtime) on 127.0.0.1, its event loop on a thread."""

    def __init__(self, root) -> None:
        root.mkdir(mode=0o700)
        self.dd = DataDir.at(root)
        self.store = Registry(SqliteStore(self.dd.root / "state.db"))
        self.cluster = ClusterServer(self.store, self.dd, "127.0.0.1", 0, "10.42.0.0/16",
                                     "10.96.0.0/20", Settings())
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.runner, self.url = self._call(self._start())

    def _call(self, coro):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(30)

    async def _start(self):
        async def nothing(*_a):
            return {}
        app = make_app(ApiContext(self.store, ADMIN, dict, nothing, lambda: None, nothing,
                                  nodes=self.cluster.credentials))
        self.cluster.add_routes(app)
        runner = web.AppRunner(app)
        await runner.setup()
        await self.cluster.start_listener(runner)
        return runner, self.cluster.url

    def token(self) -> JoinToken:
        return parse_token((self.dd.root / "node-token").read_text())

    def close(self) -> None:
        self._call(self.runner.cleanup())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.store.close()


@pytest.fixture
def server(tmp_path):
    s = Server(tmp_path / "server")
    yield s
    s.close()


def test_the_token_file_is_private_and_pins_this_servers_ca(server):
    path = server.dd.root / "node-token"
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    import hashlib
    ca = (server.dd.root / "ca.crt").read_bytes()
    assert server.token().ca_hash == hashlib.sha256(ca).hexdigest()


def test_a_wrong_secret_is_refused_and_nothing_changes(server):
    token = server.token()
    wrong = JoinToken(token.ca_hash, "x" * 43)
    with pytest.raises(JoinError, match="refused the join token"):
        join(server.url, wrong, "h2", "127.0.0.1")
    assert not (server.dd.root / "node-credentials.json").exists()
    assert server.store.list("Node") == []


def test_a_server_whose_ca_is_not_the_tokens_is_refused_before_the_secret_is_sent(server):
    token = server.token()
    with pytest.raises(JoinError, match="refusing to join"):
        join(server.url, JoinToken("0" * 64, token.secret), "h2", "127.0.0.1")
    assert not (server.dd.root / "node-credentials.json").exists()


def test_a_joined_node_works_through_the_api_within_node_restriction(server):
    identity = join(server.url, server.token(), "h2", "127.0.0.1")
    assert identity.cluster == {"serviceCIDR": "10.96.0.0/20", "clusterCIDR": "10.42.0.0/16"}
    assert "BEGIN CERTIFICATE" in identity.endpoint["cert"] and identity.endpoint["token"]
    assert server.cluster.endpoints.token("h2") == identity.endpoint["token"]
    creds = json.loads((server.dd.root / "node-credentials.json").read_text())
    assert list(creds) == ["h2"] and identity.credential not in creds["h2"]   # a hash only
    remote = RemoteStore(ApiClient([server.url], identity.credential, identity.tls()))
    remote.start()
    try:
        assert remote.wait_synced(20)
        # Its own Node: created, then the server's IPAM gives it a pod CIDR.
        remote.create({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "h2"},
                       "spec": {}})
        server.cluster._assign_cidrs()
        assert _eventually(lambda: (remote.get(ObjectKey("Node", "", "h2")) or {})
                           .get("spec", {}).get("podCIDR") == "10.42.0.0/24")
        remote.update_status(ObjectKey("Node", "", "h2"), {"phase": "Running"})
        # Another node's: Forbidden, and nothing is stored.
        with pytest.raises(Forbidden, match='not nodes "h3"'):
            remote.create({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "h3"}})
        assert server.store.get(ObjectKey("Node", "", "h3")) is None
        # Pods: a pod bound to it appears by watch; its status is the node's to write.
        server.store.create(_pod("p", "h2", secret="db"))
        server.store.create(_pod("q", "h3", secret="other"))
        server.store.create({"apiVersion": "v1", "kind": "Secret",
                             "metadata": {"name": "db", "namespace": "default"},
                             "data": {"k": "dg=="}})
        server.store.create({"apiVersion": "v1", "kind": "Secret",
                             "metadata": {"name": "other", "namespace": "default"},
                             "data": {"k": "dg=="}})
        assert _eventually(lambda: remote.get(ObjectKey("Pod", "default", "p")) is not None)
        remote.update_status(ObjectKey("Pod", "default", "p"), {"phase": "Running"})
        assert server.store.get(ObjectKey("Pod", "default", "p"))["status"] == {
            "phase": "Running"}
        with pytest.raises(Forbidden):
            remote.update_status(ObjectKey("Pod", "default", "q"), {"phase": "Failed"})
        # Secrets: those its pods use, by name only.
        assert remote.get(ObjectKey("Secret", "default", "db"))["data"] == {"k": "dg=="}
        assert remote.get(ObjectKey("Secret", "default", "other")) is None
        assert _status(server.url, "/api/v1/secrets", identity) == 403
        # Its Lease, in kube-node-lease.
        remote.create({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                       "metadata": {"name": "h2", "namespace": "kube-node-lease"},
                       "spec": {"holderIdentity": "h2"}})
        # The server's own verbs are not a node's.
        assert _status(server.url, "/gitops/v1/shutdown", identity, "POST") == 403
    finally:
        remote.close()


def test_joining_again_replaces_the_credential(server):
    first = join(server.url, server.token(), "h2", "127.0.0.1")
    second = join(server.url, server.token(), "h2", "127.0.0.1")
    assert _status(server.url, "/api/v1/nodes", first) == 401
    assert _status(server.url, "/api/v1/nodes", second) == 200


def _pod(name, node, secret):
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": "default"},
            "spec": {"nodeName": node, "containers": [
                {"name": "c", "image": "gitops/busybox:1",
                 "envFrom": [{"secretRef": {"name": secret}}]}]}}


def _status(url, path, identity, method="GET") -> int:
    req = urllib.request.Request(url + path, method=method,
                                 headers={"Authorization": f"Bearer {identity.credential}"})
    try:
        with urllib.request.urlopen(req, timeout=10, context=identity.tls()) as resp:
            return resp.status
    except urllib.error.HTTPError as exc:
        return exc.code


def _eventually(check, timeout=10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.05)
    return False
