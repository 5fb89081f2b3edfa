"""Store.page: one page of a chunked list, as the filtered full list would give it, and on
SQLite by seeking (a page decodes only its own rows, so N objects in pages cost O(N))."""

from __future__ import annotations

import uuid

import pytest

from gitops.store import sqlite as sqlite_store
from gitops.store.memory import MemoryStore
from gitops.store.sqlite import SqliteStore
from tests.etcd_support import start_cluster

# "a-b" sorts before "a/" as bytes but after "a" as a (namespace, name) pair: the order
# pages follow is the pair's.
NAMESPACES = ("a", "a-b", "b", "ns-1", "ns-10", "ns-2")


def cm(name: str, ns: str) -> dict:
    return {"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": name, "namespace": ns}, "data": {}}


@pytest.fixture(scope="module")
def etcd(tmp_path_factory):
    cluster = start_cluster(tmp_path_factory.mktemp("etcd"))
    yield cluster
    cluster.stop()


@pytest.fixture(params=["memory", "sqlite", "etcd"])
def store(request, tmp_path):
    if request.param == "etcd":
        from gitops.store.etcd import EtcdStore
        etcd = request.getfixturevalue("etcd")
        s = EtcdStore(etcd.url, prefix=f"/t-{uuid.uuid4().hex[:8]}/")
    else:
        s = MemoryStore() if request.param == "memory" else SqliteStore(tmp_path / "s.db")
    with s.transaction():
        for ns in NAMESPACES:
            for name in ("x", "x-1", "x1", "y"):
                s.create(cm(name, ns))
        s.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "other"}})
    yield s
    s.close()


def position(o: dict) -> tuple[str, str]:
    return o["metadata"]["namespace"], o["metadata"]["name"]


@pytest.mark.parametrize("namespace", [None, "a", "a-b", "missing"])
@pytest.mark.parametrize("limit", [None, 1, 3, 4, 7, 24, 100])
def test_pages_walk_the_full_list_in_order(store, namespace, limit):
    rv, everything = store.snapshot("ConfigMap", namespace)
    walked, after = [], None
    while True:
        page_rv, page, remaining = store.page("ConfigMap", namespace, after, limit)
        assert page_rv == rv
        if limit:
            assert len(page) <= limit
        walked += page
        assert remaining == len(everything) - len(walked)
        if not remaining:
            break
        after = position(page[-1])
    assert walked == everything
    assert [position(o) for o in walked] == sorted(position(o) for o in everything)


def test_a_page_after_the_last_object_is_empty(store):
    _, page, remaining = store.page("ConfigMap", None, ("ns-2", "y"), 5)
    assert (page, remaining) == ([], 0)
    _, cluster, _ = store.page("Namespace", None, None, 10)
    assert [o["metadata"]["name"] for o in cluster] == ["other"]


def test_sqlite_page_decodes_only_its_rows(tmp_path, monkeypatch):
    store = SqliteStore(tmp_path / "s.db")
    with store.transaction():
        for i in range(300):
            store.create(cm(f"c{i:03d}", f"n{i % 3}"))
    decoded, loads = [], sqlite_store.jsoncodec.loads

    def counting_loads(text, *args, **kw):
        decoded.append(1)
        return loads(text, *args, **kw)

    monkeypatch.setattr(sqlite_store.jsoncodec, "loads", counting_loads)
    _, page, remaining = store.page("ConfigMap", None, ("n1", "c150"), 10)
    monkeypatch.undo()
    assert [position(o) for o in page][:2] == [("n1", "c151"), ("n1", "c154")]
    assert remaining == 50 + 100 - 10            # the rest of n1, then all of n2
    assert len(decoded) <= 10 + 1           # its rows (and the rv), not the 300
    store.close()


def _calls(store) -> list[tuple[str, dict]]:
    calls, call = [], store.client.call
    store.client.call = lambda path, body, **kw: calls.append((path, body)) or \
        call(path, body, **kw)
    return calls


def test_etcd_page_is_one_read_of_its_values_from_the_watch_kept_index(etcd):
    from gitops.store.etcd import EtcdStore
    prefix = f"/t-{uuid.uuid4().hex[:8]}/"
    a, b = EtcdStore(etcd.url, prefix=prefix), EtcdStore(etcd.url, prefix=prefix)
    try:
        with a.transaction():
            for i in range(60):
                a.create(cm(f"c{i:02d}", ("a", "a-b", "b")[i % 3]))
        calls = _calls(a)
        rv, page, remaining = a.page("ConfigMap", None, ("a", "c57"), 10)
        assert [position(o) for o in page][:3] == [("a-b", "c01"), ("a-b", "c04"),
                                                   ("a-b", "c07")]
        assert remaining == 40 - 10
        assert len(calls) == 1                       # no listing of keys: one request
        assert not any(body.get("keys_only") for _, body in calls)
        # another server's writes reach this server's index through its watch
        b.delete(_key("a-b", "c01"))
        made = b.create(cm("c00x", "a-b"))
        done = int(made["metadata"]["resourceVersion"])
        _wait(lambda: a._index_rev >= done)
        rv, page, _ = a.page("ConfigMap", "a-b", None, 2)
        assert rv >= done
        assert [position(o) for o in page] == [("a-b", "c00x"), ("a-b", "c04")]
        # compaction: pages go on (the index is rebuilt, or chosen from the keys)
        a.compact()
        _, again, _ = a.page("ConfigMap", "a-b", None, 2)
        assert [position(o) for o in again] == [("a-b", "c00x"), ("a-b", "c04")]
    finally:
        a.close()
        b.close()


def _key(ns: str, name: str):
    from gitops.model import ObjectKey
    return ObjectKey("ConfigMap", ns, name)


def _wait(condition, timeout: float = 10.0) -> None:
    import time
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "not reached in time"
        time.sleep(0.01)
