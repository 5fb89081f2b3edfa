"""The store's change log: every committed change in resourceVersion order (each backend)."""

import pytest

from gitops.model import ObjectKey
from gitops.store import MemoryStore, Registry
from gitops.store.sqlite import SqliteStore


def check_change_log(store: Registry) -> int:
    """The contract every backend keeps (etcd's too: tests/integration/test_store_etcd.py)."""
    start = store.resource_version()
    made = store.create({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a"}})
    made["data"] = {"changed": "by the caller"}        # the log keeps its own copy
    obj = store.get(ObjectKey("ConfigMap", "default", "a"))
    obj["data"] = {"k": "v"}
    store.update(obj)
    store.update_status(ObjectKey("ConfigMap", "default", "a"), {"seen": True})
    try:
        with store.transaction():
            store.create({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "b"}})
            raise RuntimeError("rolled back")
    except RuntimeError:
        pass
    store.delete(ObjectKey("ConfigMap", "default", "a"))
    changes = store.changes.since(start)
    assert [c.type for c in changes] == ["ADDED", "MODIFIED", "MODIFIED", "DELETED"]
    assert [c.rv for c in changes] == sorted(c.rv for c in changes)
    assert changes[-1].rv == store.resource_version()           # the deletion's own version
    assert changes[-1].obj["metadata"]["resourceVersion"] == str(changes[-1].rv)
    assert "data" not in changes[0].obj
    assert "data" not in changes[1].previous and changes[1].obj["data"] == {"k": "v"}
    assert changes[2].previous["data"] == {"k": "v"} and "status" not in changes[2].previous
    assert changes[0].previous is None and changes[-1].previous is None
    rv, listed = store.snapshot("ConfigMap")
    assert (rv, listed) == (store.resource_version(), [])
    return rv


@pytest.mark.parametrize("backend", ["sqlite", "memory"])
def test_store_logs_commits_in_order_with_deletions_at_their_own_version(tmp_path, backend):
    store = Registry(SqliteStore(tmp_path / "s.db") if backend == "sqlite" else MemoryStore())
    rv = check_change_log(store)
    store.close()
    if backend != "sqlite":
        return
    # a reopened store starts its log at the current version: older ones are gone
    again = SqliteStore(tmp_path / "s.db")
    assert again.changes.floor == rv and again.changes.since(rv) == []
    again.close()
