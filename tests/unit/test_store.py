"""The store as writers see it (the registry) over each backend: same rules, same answers."""

import pytest

from gitops.model import ObjectKey
from gitops.store import Conflict, InventoryEntry, MemoryStore, NotFound, Registry, SqliteStore
from gitops.testing import namespace

BACKENDS = {"sqlite": lambda path, **kw: SqliteStore(path / "state.db", **kw),
            "memory": lambda path, **kw: MemoryStore(**kw)}


@pytest.fixture(params=sorted(BACKENDS))
def backend(request, tmp_path):
    return lambda **kw: BACKENDS[request.param](tmp_path, **kw)


@pytest.fixture
def store(backend):
    s = Registry(backend())
    yield s
    s.close()


def cm(name="c", data=None, ns=None):
    meta = {"name": name, **({"namespace": ns} if ns else {})}
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta, "data": data or {"a": "1"}}


def test_create_assigns_identity_and_defaults_namespace(store):
    obj = store.create(cm())
    meta = obj["metadata"]
    assert meta["namespace"] == "default"
    assert meta["uid"] and meta["creationTimestamp"] and meta["generation"] == 1
    assert store.get(ObjectKey("ConfigMap", "default", "c")) == obj
    with pytest.raises(Conflict):
        store.create(cm())


def test_update_bumps_generation_only_on_spec_change(store):
    first = store.create(cm())
    second = store.update(cm(data={"a": "2"}))
    assert second["metadata"]["generation"] == 2
    assert int(second["metadata"]["resourceVersion"]) > int(first["metadata"]["resourceVersion"])
    labelled = cm(data={"a": "2"})
    labelled["metadata"]["labels"] = {"x": "y"}
    third = store.update(labelled)
    assert third["metadata"]["generation"] == 2
    assert third["metadata"]["uid"] == first["metadata"]["uid"]


def test_update_is_optimistic(store):
    first = store.create(cm())
    store.update(cm(data={"a": "2"}))
    stale = cm(data={"a": "3"})
    stale["metadata"]["resourceVersion"] = first["metadata"]["resourceVersion"]
    with pytest.raises(Conflict):
        store.update(stale)
    with pytest.raises(NotFound):
        store.update(cm(name="missing"))


def test_noop_update_keeps_resource_version_and_does_not_notify(store):
    events = []
    store.watch(lambda ev, obj: events.append(ev))
    first = store.create(cm())
    again = store.update(cm())
    assert again["metadata"]["resourceVersion"] == first["metadata"]["resourceVersion"]
    assert events == ["ADDED"]


def test_status_update_keeps_spec_and_generation(store):
    store.create(cm())
    key = ObjectKey("ConfigMap", "default", "c")
    obj = store.update_status(key, {"phase": "x"})
    assert obj["status"] == {"phase": "x"} and obj["metadata"]["generation"] == 1
    # a spec update without status keeps the status
    assert store.update(cm(data={"b": "1"}))["status"] == {"phase": "x"}


def test_transaction_rolls_back_everything_and_notifies_nobody(store):
    events = []
    store.watch(lambda ev, obj: events.append(ev))
    with pytest.raises(RuntimeError):
        with store.transaction():
            store.create(cm("a"))
            store.create(cm("b"))
            raise RuntimeError("boom")
    assert store.list("ConfigMap") == []
    assert events == []


def test_inventory_state_history_survive_reopen(tmp_path):     # SQLite's own
    path = tmp_path / "state.db"
    s = SqliteStore(path)
    key = ObjectKey("ConfigMap", "default", "c")
    s.set_inventory([InventoryEntry(key, "v1", "cm.yaml", 3)])
    s.set_state("applied_revision", "abc")
    s.record_sync({"result": "synced"})
    s.close()
    s = SqliteStore(path)
    assert s.inventory()[key].line == 3
    assert s.get_state("applied_revision") == "abc"
    assert s.history()[0]["result"] == "synced"
    s.close()


def test_delete_returns_old_and_lists_by_namespace(store):
    for ns in ("x", "y"):
        store.create(namespace(ns))
    store.create(cm("a", ns="x"))
    store.create(cm("b", ns="y"))
    assert [o["metadata"]["name"] for o in store.list("ConfigMap", "x")] == ["a"]
    assert store.delete(ObjectKey("ConfigMap", "x", "a"))["metadata"]["name"] == "a"
    assert store.delete(ObjectKey("ConfigMap", "x", "a")) is None
    assert len(store.list("ConfigMap")) == 1


def test_sync_history_keeps_only_the_newest_entries(backend):
    s = backend(history_limit=3)
    for i in range(10):
        s.record_sync({"n": i})
    assert [e["n"] for e in s.history(100)] == [9, 8, 7]
    s.close()
