"""Two API servers over one store, as several servers share etcd, over real TLS sockets:
the second adopts the first's secrets, a node joined through one is trusted by the
other, and the node's API-backed store moves to the other server when its server stops,
its watches resuming from the last resourceVersion (no relist) and its writes going on."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest
from aiohttp import web

from gitops.api.join import parse_token
from gitops.api.joinclient import join
from gitops.api.remote import ApiClient, RemoteStore
from gitops.api.server import ApiContext, make_app
from gitops.cluster.server import ClusterServer
from gitops.cluster.shared import share_secrets
from gitops.controllers.nodelifecycle import Settings
from gitops.model import ObjectKey
from gitops.paths import DataDir
from gitops.store.registry import Registry
from gitops.store.sqlite import SqliteStore


class Server:
    """One server's API (no runtime) on 127.0.0.1 over the shared store."""

    def __init__(self, root, store: Registry) -> None:
        root.mkdir(mode=0o700)
        self.dd = DataDir.at(root)
        self.store = store
        share_secrets(store, root)
        self.token = (root / "token").read_text().strip()
        self.cluster = ClusterServer(store, self.dd, "127.0.0.1", 0, "10.42.0.0/16",
                                     "10.96.0.0/20", Settings(), shared=True)
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.runner = self._call(self._start())
        self.url = self.cluster.url

    def _call(self, coro):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(30)

    async def _start(self):
        async def nothing(*_a):
            return {}
        app = make_app(ApiContext(self.store, self.token, dict, nothing, lambda: None,
                                  nothing, nodes=self.cluster.credentials))
        self.cluster.add_routes(app)
        runner = web.AppRunner(app)
        await runner.setup()
        await self.cluster.start_listener(runner)
        return runner

    def close(self) -> None:
        if self.runner is not None:
            self._call(self.runner.cleanup())
            self.runner = None
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(10)


@pytest.fixture
def two(tmp_path):
    store = Registry(SqliteStore(tmp_path / "state.db"))
    a = Server(tmp_path / "a", store)
    b = Server(tmp_path / "b", store)
    yield a, b
    a.close()
    b.close()
    store.close()


def _pod(name: str, node: str) -> dict:
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": "default"},
            "spec": {"nodeName": node, "containers": [{"name": "c", "image": "x"}]}}


def _eventually(check, timeout=15.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.05)
    return False


def test_a_node_fails_over_to_the_other_server_and_resumes_its_watches(two, monkeypatch):
    a, b = two
    for name in ("ca.crt", "ca.key", "token", "node-token", "sa.key"):
        assert (a.dd.root / name).read_bytes() == (b.dd.root / name).read_bytes()
    assert a.url != b.url
    assert b.cluster.server_urls() == [b.url, a.url]      # b's join command lists both

    identity = join(a.url, parse_token((b.dd.root / "node-token").read_text()), "h3",
                    "127.0.0.1")
    relists: list[str] = []
    real_relist = RemoteStore._relist

    def counted(self, kind):
        relists.append(kind)
        return real_relist(self, kind)
    monkeypatch.setattr(RemoteStore, "_relist", counted)
    client = ApiClient([a.url, b.url], identity.credential, identity.tls())
    remote = RemoteStore(client)
    remote.start()
    try:
        assert remote.wait_synced(20)
        remote.create({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "h3"},
                       "spec": {}})
        a.store.create(_pod("before", "h3"))
        assert _eventually(lambda: remote.get(ObjectKey("Pod", "default", "before")))
        assert client.server == a.url
        assert relists.count("Pod") == 1

        a.close()                               # its server goes away
        a.store.create(_pod("after", "h3"))     # a change while the node moves
        assert _eventually(lambda: remote.get(ObjectKey("Pod", "default", "after")), 30)
        assert client.server == b.url           # and stays there
        assert relists.count("Pod") == 1        # resumed from its resourceVersion
        # its writes go on, with the credential a joined it with
        remote.update_status(ObjectKey("Pod", "default", "after"), {"phase": "Running"})
        assert b.store.get(ObjectKey("Pod", "default", "after"))["status"] == {
            "phase": "Running"}
        remote.create({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                       "metadata": {"name": "h3", "namespace": "kube-node-lease"},
                       "spec": {"holderIdentity": "h3"}})
    finally:
        remote.close()
