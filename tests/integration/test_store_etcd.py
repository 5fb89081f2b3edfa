"""The store on a real etcd: the whole store contract (tests/unit/test_store.py, the change
log's) as SQLite and memory keep it, then what only several servers on one etcd show:
writes of one server reach another's watchers, optimistic concurrency across servers,
watches resumed from etcd's history, 410 Gone after compaction, Events on TTL leases."""

from __future__ import annotations

import threading
import uuid

import pytest

from gitops.model import ObjectKey
from gitops.store import Conflict, Registry
from gitops.store.changes import Gone
from gitops.store.etcd import EtcdStore, parse_url
from gitops.store.informer import Informer
from tests.etcd_support import start_cluster
from tests.unit import test_store as contract
from tests.unit.test_store import *  # noqa: F403 - the contract, collected here on etcd
from tests.unit.test_store_changes import check_change_log


@pytest.fixture(scope="module")
def etcd(tmp_path_factory):
    cluster = start_cluster(tmp_path_factory.mktemp("etcd"))
    yield cluster
    cluster.stop()


def _store(etcd, prefix: str, **kw) -> EtcdStore:
    return EtcdStore(etcd.url, prefix=prefix, **kw)


@pytest.fixture
def backend(etcd):
    """Overrides the contract's backend: each test gets its own key prefix on one etcd."""
    prefix = f"/t-{uuid.uuid4().hex[:8]}/"
    return lambda **kw: _store(etcd, prefix, **kw)


def test_the_contract_suite_runs_here_on_etcd(backend):
    store = backend()
    assert isinstance(store, EtcdStore)
    store.close()
    assert "test_update_is_optimistic" in globals() and contract.BACKENDS


def test_change_log_on_etcd(backend):
    store = Registry(backend())
    check_change_log(store)
    store.close()


def test_datastore_urls_name_every_member():
    assert parse_url("etcd://10.0.0.1:2379,10.0.0.2") == ["10.0.0.1:2379", "10.0.0.2:2379"]
    with pytest.raises(ValueError, match="etcd://"):
        parse_url("http://10.0.0.1:2379")


def cm(name: str, data: dict | None = None) -> dict:
    return {"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": name, "namespace": "default"}, "data": data or {"a": "1"}}


@pytest.fixture
def two_servers(etcd):
    prefix = f"/t-{uuid.uuid4().hex[:8]}/"
    a, b = Registry(_store(etcd, prefix)), Registry(_store(etcd, prefix))
    yield a, b
    a.close()
    b.close()


def test_a_write_on_one_server_reaches_the_others_watchers_and_log(two_servers):
    a, b = two_servers
    seen = threading.Event()
    b.watch(lambda ev, obj: ev == "ADDED" and obj["metadata"]["name"] == "x" and seen.set())
    start = b.resource_version()
    made = a.create(cm("x"))
    assert seen.wait(10)
    [change] = [c for c in b.changes.since(start) if c.kind == "ConfigMap"]
    assert change.obj["metadata"]["resourceVersion"] == made["metadata"]["resourceVersion"]
    assert b.get(ObjectKey("ConfigMap", "default", "x"))["metadata"]["uid"] == \
        made["metadata"]["uid"]
    assert b.get_by_uid(made["metadata"]["uid"])["metadata"]["name"] == "x"


def test_two_servers_updating_from_one_read_one_wins_one_conflicts(two_servers):
    a, b = two_servers
    a.create(cm("x"))
    key = ObjectKey("ConfigMap", "default", "x")
    from_a, from_b = a.get(key), b.get(key)
    from_a["data"] = {"a": "from a"}
    a.update(from_a)
    from_b["data"] = {"a": "from b"}
    with pytest.raises(Conflict):
        b.update(from_b)
    assert b.get(key)["data"] == {"a": "from a"}


def test_a_transaction_conflicts_when_another_server_wrote_what_it_read(two_servers):
    a, b = two_servers
    a.create(cm("x"))
    key = ObjectKey("ConfigMap", "default", "x")
    with pytest.raises(Conflict):
        with a.transaction():
            a.backend.get(key)
            b.update(cm("x", {"a": "b was first"}))
            a.backend.create(cm("y"))
    assert a.get(ObjectKey("ConfigMap", "default", "y")) is None      # nothing half done


def test_a_batch_of_writes_reads_its_objects_in_one_request(two_servers):
    """execute_batched prefetches: 50 updates cost one read request and one Txn, and
    optimistic concurrency still holds for what was prefetched."""
    from gitops.model.actions import Update
    from gitops.store.registry import execute_batched
    a, b = two_servers
    with a.transaction():
        for i in range(50):
            a.create(cm(f"c{i}"))
    calls = []
    call = a.backend.client.call
    a.backend.client.call = lambda path, body, **kw: calls.append(path) or call(path, body, **kw)
    execute_batched(a, [Update(cm(f"c{i}", {"a": "new"})) for i in range(50)], "test")
    assert calls == ["/v3/kv/txn", "/v3/kv/txn"]          # the reads, then the writes
    assert [a.get(ObjectKey("ConfigMap", "default", f"c{i}"))["data"] for i in (0, 49)] == \
        [{"a": "new"}] * 2
    keys = [ObjectKey("ConfigMap", "default", f"c{i}") for i in range(3)]
    with pytest.raises(Conflict):
        with a.transaction():
            a.prefetch(keys)
            b.update(cm("c1", {"a": "b was first"}))       # after the prefetch
            a.update(cm("c0", {"a": "from a"}))
    assert a.get(keys[0])["data"] == {"a": "new"}          # nothing half done
    with a.transaction():                                  # absent keys read as absent
        a.prefetch([ObjectKey("ConfigMap", "default", "nope")])
        assert a.backend.get(ObjectKey("ConfigMap", "default", "nope")) is None


def test_a_watch_resumes_from_etcds_history_and_is_gone_after_compaction(etcd):
    prefix = f"/t-{uuid.uuid4().hex[:8]}/"
    first = Registry(_store(etcd, prefix))
    before = first.resource_version()
    first.create(cm("early"))
    first.close()
    late = Registry(_store(etcd, prefix))          # a server started after the write
    assert late.changes.floor > before
    [change] = late.changes.since(before)          # served from etcd's history
    assert (change.type, change.obj["metadata"]["name"]) == ("ADDED", "early")
    informer = Informer(late)
    late.create(cm("later"))
    late.backend.compact()                         # history before "later" is dropped
    with pytest.raises(Gone):
        late.changes.since(before)                 # the API answers 410: clients relist
    informer._rv = before                          # an informer that fell behind...
    late.create(cm("after"))                       # ...relists on its next change
    assert informer.get(ObjectKey("ConfigMap", "default", "after")) is not None
    assert informer.get(ObjectKey("ConfigMap", "default", "early")) is not None
    late.close()


def test_events_live_on_a_ttl_lease(etcd):
    store = _store(etcd, f"/t-{uuid.uuid4().hex[:8]}/", event_ttl=1)
    gone = threading.Event()
    store.watch(lambda ev, obj: ev == "DELETED" and obj["kind"] == "Event" and gone.set())
    Registry(store).create({"apiVersion": "v1", "kind": "Event",
                            "metadata": {"name": "e", "namespace": "default"},
                            "reason": "Test", "message": "expires"})
    assert gone.wait(15)
    assert store.get(ObjectKey("Event", "default", "e")) is None
    store.close()


def test_a_lease_renewal_does_not_wait_for_a_lagging_watch(etcd, monkeypatch):
    """A write waits until this server's watchers have seen it (read your writes through
    the informer), but a Lease renewal must not: nothing reads it back through the watch,
    and a watch lagging past the renew deadline would cost the leader its Leases."""
    import structlog

    from gitops.store import etcd as etcd_store
    from gitops.store.election import LeaderElector, LeaseTimings
    monkeypatch.setattr(etcd_store, "DISPATCH_WAIT", 1.0)
    store = Registry(_store(etcd, f"/t-{uuid.uuid4().hex[:8]}/"))
    try:
        elector = LeaderElector(store, "gitops-scheduler", "a", LeaseTimings(15.0, 10.0, 2.0))
        assert elector.try_acquire_or_renew()
        backend = store.backend
        backend._stop.set()                 # the watch stalls: nothing is seen any more
        if backend._stream is not None:
            etcd_store._cut(backend._stream)
        backend._watch_thread.join(10)
        assert not backend._watch_thread.is_alive()
        with structlog.testing.capture_logs() as logs:
            assert elector.try_acquire_or_renew()
            assert elector.try_acquire_or_renew()
        assert [e for e in logs if e["event"] == "etcd_watch_lagging"] == []
        lease = store.get(ObjectKey("Lease", "kube-system", "gitops-scheduler"))
        assert lease["spec"]["holderIdentity"] == "a"
        with structlog.testing.capture_logs() as logs:     # any other write still waits
            store.create(cm("waits"))
        assert [(e["event"], e["in_watcher"]) for e in logs] == [("etcd_watch_lagging", "")]
    finally:
        store.close()
