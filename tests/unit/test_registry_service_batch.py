"""Services written many to a transaction (a sync's wave, its admission pre-check): the
registry lists the Services the address allocators check once per transaction and keeps
that view current with its own writes, so N Services cost O(N) reads, and every address
is the one writing them one by one would give."""

from __future__ import annotations

import pytest

from gitops.model import ObjectKey
from gitops.testing import memory_store


def svc(name: str, **spec) -> dict:
    return {"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": name, "namespace": "default"},
            "spec": {"ports": [{"port": 80}], **spec}}


def counting(store) -> list[str]:
    calls: list[str] = []
    real = store.backend.list
    store.backend.list = lambda kind, namespace=None: calls.append(kind) or real(kind,
                                                                               namespace)
    return calls


def addresses(store) -> dict[str, tuple]:
    return {s["metadata"]["name"]: (s["spec"]["clusterIP"],
                                    tuple(p.get("nodePort") for p in s["spec"]["ports"]))
            for s in store.list("Service")}


def test_a_transaction_lists_the_services_once_and_allocates_as_one_by_one():
    one_by_one, batched = memory_store(), memory_store()
    names = [f"s{i}" for i in range(60)]
    for name in names:
        one_by_one.create(svc(name, type="NodePort" if name.endswith("3") else "ClusterIP"))
    calls = counting(batched)
    with batched.transaction():
        for name in names:
            batched.create(svc(name, type="NodePort" if name.endswith("3") else "ClusterIP"))
    assert calls.count("Service") == 1
    assert addresses(batched) == addresses(one_by_one)
    ips = [ip for ip, _ in addresses(batched).values()]
    assert len(set(ips)) == len(ips)


def test_the_view_follows_the_transactions_own_writes():
    store = memory_store()
    store.create(svc("keep"))
    with store.transaction():
        first = store.create(svc("first"))["spec"]["clusterIP"]
        store.delete(ObjectKey("Service", "default", "first"))
        store.create(svc("other", clusterIP=first))     # freed by the delete: taken again
        held = store.create(svc("holder"))["spec"]["clusterIP"]
        with pytest.raises(Exception, match="already allocated"):
            store.create(svc("clash", clusterIP=held))
    ips = [s["spec"]["clusterIP"] for s in store.list("Service")]
    assert len(set(ips)) == len(ips)


def test_outside_a_transaction_every_write_reads_the_store():
    store = memory_store()
    calls = counting(store)
    store.create(svc("a"))
    store.backend.create({**svc("b"), "spec": {"clusterIP": "10.96.0.77",
                                              "ports": [{"port": 80}]}})   # not through us
    with pytest.raises(Exception, match="already allocated"):
        store.create(svc("c", clusterIP="10.96.0.77"))
    assert calls.count("Service") == 2


def test_a_sync_of_many_services_lists_them_once_to_judge_and_once_to_apply(tmp_path):
    from gitops.source.base import DirSource
    from gitops.sync.engine import SyncEngine
    (tmp_path / "svcs.yaml").write_text("---\n".join(
        f"apiVersion: v1\nkind: Service\nmetadata: {{name: s{i}}}\n"
        f"spec: {{ports: [{{port: 80}}]}}\n" for i in range(40)))
    store = memory_store()
    calls = counting(store)
    assert SyncEngine(store, DirSource(str(tmp_path))).sync_once("manual").result == "synced"
    assert len(store.list("Service")) == 40
    assert calls.count("Service") <= 3          # the pre-check, the wave, the count above
