"""The informer: a cache of the store that follows its commits in order, with indexes,
and tells handlers of each change with the object before and after."""

from __future__ import annotations

import pytest

from gitops.model import ObjectKey
from gitops.testing import memory_store, namespace
from gitops.store.changes import ChangeLog
from gitops.store.informer import Informer


@pytest.fixture
def store():
    s = memory_store()
    yield s
    s.close()


def obj(kind, name, ns="default", owner=None, labels=None, **extra):
    meta = {"name": name, "namespace": ns, "labels": labels or {}}
    if owner is not None:
        meta["ownerReferences"] = [{"apiVersion": "apps/v1", "kind": owner["kind"],
                                    "name": owner["metadata"]["name"],
                                    "uid": owner["metadata"]["uid"], "controller": True}]
    return {"apiVersion": "v1", "kind": kind, "metadata": meta, **extra}


def names(objs):
    return [o["metadata"]["name"] for o in objs]


def test_the_cache_follows_the_store_and_lists_in_its_order(store):
    store.create(obj("ConfigMap", "b"))
    cache = Informer(store)                       # objects before it: listed at start
    store.create(obj("ConfigMap", "a"))
    store.create(namespace("other"))
    store.create(obj("ConfigMap", "c", ns="other"))
    assert names(cache.list("ConfigMap")) == names(store.list("ConfigMap")) == ["a", "b", "c"]
    assert names(cache.list("ConfigMap", "other")) == ["c"]
    live = store.get(ObjectKey("ConfigMap", "default", "a"))
    live["data"] = {"k": "v"}
    store.update(live)
    assert cache.get(ObjectKey("ConfigMap", "default", "a"))["data"] == {"k": "v"}
    store.delete(ObjectKey("ConfigMap", "default", "b"))
    assert names(cache.list("ConfigMap")) == ["a", "c"]
    assert cache.resource_version == store.resource_version()


def test_events_are_not_cached(store):
    cache = Informer(store)
    store.create({"apiVersion": "v1", "kind": "Event", "metadata": {"name": "e"}})
    assert cache.list("Event") == []


def test_indexes_by_controller_orphans_uid_and_dependents(store):
    cache = Informer(store)
    rs = store.create(obj("ReplicaSet", "web"))
    mine = store.create(obj("Pod", "mine", owner=rs))
    store.create(obj("Pod", "loose"))
    uid = rs["metadata"]["uid"]
    assert names(cache.controlled_by("Pod", uid)) == ["mine"]
    assert names(cache.orphans("Pod", "default")) == ["loose"]
    assert cache.by_uid(mine["metadata"]["uid"])["metadata"]["name"] == "mine"
    assert cache.has_dependents(uid)
    released = store.get(ObjectKey("Pod", "default", "mine"))
    del released["metadata"]["ownerReferences"]
    store.update(released)                       # released: an orphan now
    assert cache.controlled_by("Pod", uid) == [] and not cache.has_dependents(uid)
    assert names(cache.orphans("Pod", "default")) == ["loose", "mine"]
    store.delete(ObjectKey("Pod", "default", "mine"))
    assert cache.by_uid(mine["metadata"]["uid"]) is None


def test_handlers_get_the_object_before_and_after(store):
    store.create(obj("ConfigMap", "old"))
    cache = Informer(store)
    seen = []
    cache.add_handler(lambda event, old, new: seen.append(
        (event, old and old.get("data"), new and new.get("data"))))
    assert seen == [("ADDED", None, None)]       # what is cached is told first
    cm = store.create(obj("ConfigMap", "new", data={"a": "1"}))
    cm["data"] = {"a": "2"}
    store.update(cm)
    store.delete(ObjectKey("ConfigMap", "default", "new"))
    assert seen[1:] == [("ADDED", None, {"a": "1"}), ("MODIFIED", {"a": "1"}, {"a": "2"}),
                        ("DELETED", {"a": "2"}, None)]


def test_a_failing_handler_does_not_stop_the_others(store):
    cache = Informer(store)
    seen = []

    def broken(event, old, new):
        raise RuntimeError("bug")
    cache.add_handler(broken)
    cache.add_handler(lambda event, old, new: seen.append(event))
    store.create(obj("ConfigMap", "a"))
    assert seen == ["ADDED"] and cache.get(ObjectKey("ConfigMap", "default", "a"))


def test_changes_apply_in_commit_order_whatever_order_callbacks_come_in(store):
    """Two writers' callbacks may run in either order: the cache reads the change log,
    so a late callback for an older write cannot bring back an older object."""
    cache = Informer(store)
    calls = []
    store.backend._watchers.remove(cache._on_commit)
    store.watch(lambda event, o: calls.append((event, o)))
    cm = store.create(obj("ConfigMap", "a", data={"v": "1"}))
    cm["data"] = {"v": "2"}
    store.update(cm)
    for event, o in reversed(calls):             # the newer write's callback first
        cache._on_commit(event, o)
    assert cache.get(ObjectKey("ConfigMap", "default", "a"))["data"] == {"v": "2"}


def test_a_cache_left_too_far_behind_relists_and_tells_what_changed(store):
    store.create(obj("ConfigMap", "gone"))
    store.create(obj("ConfigMap", "kept"))
    cache = Informer(store)
    seen = []
    cache.add_handler(lambda event, old, new: seen.append((event, (new or old)["metadata"]
                                                           ["name"])))
    seen.clear()
    store.changes = ChangeLog(store.resource_version(), capacity=2)   # a short memory
    with store.transaction():
        store.delete(ObjectKey("ConfigMap", "default", "gone"))
        for name in ("x", "y", "z"):
            store.create(obj("ConfigMap", name))
    assert names(cache.list("ConfigMap")) == ["kept", "x", "y", "z"]
    assert sorted(seen) == [("ADDED", "x"), ("ADDED", "y"), ("ADDED", "z"),
                            ("DELETED", "gone")]


def test_a_snapshot_is_every_kind_as_of_one_instant(store):
    cache = Informer(store)
    store.create(obj("Service", "s"))
    store.create(obj("ConfigMap", "c"))
    assert [(o["kind"], o["metadata"]["name"]) for o in cache.snapshot(["ConfigMap", "Service"])] \
        == [("ConfigMap", "c"), ("Service", "s")]
