"""Servers on one store share the cluster's secrets, nodes' credentials and endpoint
tokens through it; a sync request made on a server that does not lead reaches the leader
through it (gitops.cluster.shared, gitops.sync.requests), on the memory store."""

from __future__ import annotations

import asyncio

import pytest

from gitops.api.join import NodeCredentials
from gitops.api.nodeproxy import NodeEndpoints
from gitops.cluster.shared import FILES, ServerRegistry, StateMap, share_secrets
from gitops.errors import GitopsError
from gitops.model import ObjectKey
from gitops.sync.requests import KEY, SyncRequests
from gitops.testing import memory_store, namespace


def test_the_first_server_publishes_its_secrets_and_the_next_adopts_them(tmp_path):
    store = memory_store()
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    (b / "ca.crt").write_text("b's own CA, from before it joined")
    (b / "server.crt").write_text("signed by b's own CA")
    assert share_secrets(store, a) == "published"
    assert share_secrets(store, b) == "adopted"
    for name in FILES:
        assert (a / name).read_bytes() == (b / name).read_bytes()
        assert (b / name).stat().st_mode & 0o077 == 0         # owner only
    assert not (b / "server.crt").exists()                  # remade on the shared CA
    assert share_secrets(store, a) == "adopted"             # a restart changes nothing


def test_a_node_credential_issued_by_one_server_is_known_to_the_other(tmp_path, monkeypatch):
    monkeypatch.setattr("gitops.cluster.shared.RELOAD_EVERY", 0.0)
    store = memory_store()
    one = NodeCredentials(tmp_path / "a.json", StateMap(store, "node-credentials.json"))
    other = NodeCredentials(tmp_path / "b.json", StateMap(store, "node-credentials.json"))
    credential = one.issue("h3")
    assert other.node_of(credential) == "h3"
    assert other.node_of("node-not-a-credential") is None
    again = other.issue("h3")                               # joined again through b
    assert one.node_of(again) == "h3" and one.node_of(credential) is None
    assert not (tmp_path / "a.json").exists()               # nothing in the data dir

    ends_a = NodeEndpoints(tmp_path / "e.json", StateMap(store, "node-endpoints.json"))
    ends_b = NodeEndpoints(tmp_path / "f.json", StateMap(store, "node-endpoints.json"))
    ends_a.set("h3", "tok")
    assert ends_b.token("h3") == "tok"


def test_every_server_finds_the_others_in_its_peers_file(tmp_path):
    import json
    store = memory_store()
    a = ServerRegistry(store, "a", tmp_path / "a-peers.json")
    b = ServerRegistry(store, "b", tmp_path / "b-peers.json")
    a.register({"url": "http://127.0.0.1:1", "kube_url": "https://127.0.0.1:2"})
    b.register({"url": "http://127.0.0.1:3", "kube_url": "https://127.0.0.1:4"})
    a.refresh()
    assert json.loads((tmp_path / "a-peers.json").read_text())["peers"] == [
        "http://127.0.0.1:3"]
    assert json.loads((tmp_path / "b-peers.json").read_text())["servers"] == [
        {"url": "http://127.0.0.1:1", "kube_url": "https://127.0.0.1:2"}]
    a.unregister()                                  # a clean stop
    b.refresh()
    assert json.loads((tmp_path / "b-peers.json").read_text())["peers"] == []


def test_the_kubeconfig_has_a_context_per_server_and_works_with_its_own_down(tmp_path):
    import json

    import yaml

    from gitops.api.kube.kubeconfig import kubeconfig
    from gitops.paths import DataDir
    dd = DataDir.at(tmp_path)
    (tmp_path / "token").write_text("t" * 40)
    (tmp_path / "ca.crt").write_text("CA")
    (tmp_path / "peers.json").write_text(json.dumps({"peers": ["http://127.0.0.1:3"], "servers": [
        {"url": "http://127.0.0.1:3", "kube_url": "https://127.0.0.1:4",
         "server": "https://10.77.0.2:6443"}]}))
    config = yaml.safe_load(kubeconfig(dd))       # its own agent is not running
    assert [c["cluster"]["server"] for c in config["clusters"]] == ["https://10.77.0.2:6443"]
    assert config["current-context"] == config["contexts"][0]["name"]
    assert config["users"][0]["user"]["token"] == "t" * 40


def _store():
    store = memory_store()
    store.create(namespace("kube-system"))
    return store


def test_a_followers_sync_is_run_by_the_leader_once_and_answered():
    store = _store()
    ran: list[tuple[str, dict]] = []

    async def leader_act(verb: str, params: dict) -> dict:
        ran.append((verb, params))
        return {"result": "synced", "revision": "abc"}
    leader = SyncRequests(store, leader_act, lambda reason: ran.append(("trigger", {})))
    follower = SyncRequests(store, leader_act, lambda reason: None)

    async def scenario() -> dict:
        asking = asyncio.create_task(follower.control("sync", {"app": "web"}, timeout=10))
        while store.get(KEY) is None:
            await asyncio.sleep(0.01)
        await leader.serve()
        await leader.serve()                # served once: nothing left to run
        return await asking
    assert asyncio.run(scenario()) == {"result": "synced", "revision": "abc"}
    assert ran == [("sync", {"app": "web"})]
    assert store.get(KEY)["data"] == {}     # request and answer both gone


def test_a_leaders_error_reaches_the_follower_and_a_webhook_is_a_trigger():
    store = _store()
    triggered: list[str] = []

    async def refuse(verb: str, params: dict) -> dict:
        raise GitopsError("rollback to zzz failed, pin unchanged")
    leader = SyncRequests(store, refuse, triggered.append)
    follower = SyncRequests(store, refuse, lambda reason: None)
    follower.trigger("webhook")

    async def scenario() -> None:
        asking = asyncio.create_task(follower.control("rollback", {"to": "zzz"}, 10))
        while "request." not in str((store.get(KEY) or {}).get("data")) or \
                len(store.get(KEY)["data"]) < 2:
            await asyncio.sleep(0.01)
        await leader.serve()
        await asking
    with pytest.raises(GitopsError, match="rollback to zzz failed"):
        asyncio.run(scenario())
    assert triggered == ["webhook"]


def test_nobody_leading_the_follower_gives_up_with_a_clear_error():
    store = _store()

    async def never(verb: str, params: dict) -> dict:
        raise AssertionError("no leader")
    follower = SyncRequests(store, never, lambda reason: None)
    with pytest.raises(GitopsError, match="leader did not answer"):
        asyncio.run(follower.control("sync", {}, timeout=0.3))
    assert store.get(ObjectKey("ConfigMap", "kube-system", KEY.name))["data"]  # it stays
