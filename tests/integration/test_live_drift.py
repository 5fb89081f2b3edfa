"""Live state in seconds: the store's watch marks objects git manages OutOfSync as soon as
they move, self-heal follows after its delay (longer when something keeps fighting git),
and a no-op sync does work in proportion to what changed. Real SQLite; a fake clock."""

from __future__ import annotations

import pytest
from structlog.testing import capture_logs

from gitops.model import ObjectKey
from gitops.source.base import DirSource
from gitops.store import Registry, SqliteStore
from gitops.sync.engine import SyncEngine, SyncPolicy
from gitops.sync.live import LiveDrift, heal_delay
from gitops.testing import FakeClock

CM = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\ndata:\n  value: \"{value}\"\n"
KEY = ObjectKey("ConfigMap", "default", "a")


@pytest.fixture
def env(tmp_path):
    repo = tmp_path / "repo"
    repo.mkdir()
    for name in ("a", "b"):
        (repo / f"{name}.yaml").write_text(CM.format(name=name, value="1"))
    store = Registry(SqliteStore(tmp_path / "state.db"))
    yield repo, store
    store.close()


def live_for(store, repo, policy=None):
    """As the agent wires them: the watch first, then the first sync."""
    engine = SyncEngine(store, DirSource(str(repo)), policy or SyncPolicy())
    clock = FakeClock()
    healed: list[float] = []
    live = LiveDrift(engine, heal=lambda: healed.append(clock()), clock=clock)
    store.watch(live.on_change)
    assert engine.sync_once().result == "synced"
    return engine, live, clock, healed


def edit(store, value: str, key: ObjectKey = KEY) -> None:
    obj = store.get(key)
    obj["data"]["value"] = value
    store.update(obj)


def status_of(store, key: ObjectKey = KEY) -> str:
    return store.inventory()[key].sync_status


def test_a_change_is_out_of_sync_at_once_and_healed_after_the_delay(env):
    repo, store = env
    engine, live, clock, healed = live_for(store, repo)
    edit(store, "edited")
    assert live.check() == pytest.approx(2.0)         # seconds until the correction
    assert status_of(store) == "OutOfSync" and healed == []
    clock.advance(2.0)
    assert live.check() is None and len(healed) == 1
    with capture_logs() as logs:
        res = engine.sync_once("watch", fetch=False)      # the self-heal pass
    assert store.get(KEY)["data"]["value"] == "1" and status_of(store) == "Synced"
    [record] = [e for e in logs if e["event"] == "drift.detected"]
    assert (record["trigger"], record["action"]) == ("watch", "corrected")
    assert res.timings.get("fetch", 0) < 0.05             # no git round trip
    # the heal's own write is what git declares: nothing new to look at
    assert live.check() is None and live._pending == set()


def test_something_that_keeps_fighting_backs_off(env):
    repo, store = env
    engine, live, clock, healed = live_for(store, repo)
    delays = []
    for i in range(3):
        edit(store, f"fight-{i}")
        with capture_logs() as logs:
            delays.append(live.check())
        clock.advance(delays[-1])
        live.check()
        engine.sync_once("watch", fetch=False)
    assert delays == [pytest.approx(2.0), pytest.approx(6.0), pytest.approx(18.0)]
    assert any(e["event"] == "self_heal_backoff" and e["repeats"] == 3 for e in logs)
    assert heal_delay(2.0, 10) == 300.0                   # capped at five minutes
    clock.advance(301)                                    # quiet long enough: reset
    edit(store, "later")
    assert live.check() == pytest.approx(2.0)


def test_a_deleted_object_and_a_reverted_edit_are_seen_at_once(env):
    repo, store = env
    engine, live, clock, healed = live_for(store, repo)
    store.delete(ObjectKey("ConfigMap", "default", "b"))
    live.check()
    assert status_of(store, ObjectKey("ConfigMap", "default", "b")) == "OutOfSync"
    edit(store, "edited")
    live.check()
    edit(store, "1")                                      # put back by hand
    live.check()
    assert status_of(store) == "Synced"


def test_status_only_changes_and_the_syncs_own_writes_are_not_looked_at(env):
    repo, store = env
    engine, live, clock, healed = live_for(store, repo)
    store.update_status(KEY, {"note": "a controller wrote status"})
    assert live._pending == set()
    (repo / "a.yaml").write_text(CM.format(name="a", value="2"))
    engine.sync_once()                                    # git's own write
    assert live._pending == set()


def test_without_self_heal_the_record_is_logged_at_once_and_nothing_is_corrected(env):
    repo, store = env
    engine, live, clock, healed = live_for(store, repo, SyncPolicy(self_heal=False))
    edit(store, "edited")
    with capture_logs() as logs:
        assert live.check() is None
    [record] = [e for e in logs if e["event"] == "drift.detected"]
    assert (record["trigger"], record["action"]) == ("watch", "reported")
    assert record["drift"]["fields"][0]["live"] == "edited"
    assert status_of(store) == "OutOfSync" and healed == []


def test_a_noop_sync_reads_only_what_changed(env):
    repo, store = env
    for i in range(50):
        (repo / f"cm-{i}.yaml").write_text(CM.format(name=f"cm-{i}", value="1"))
    engine = SyncEngine(store, DirSource(str(repo)))
    engine.sync_once()
    engine.sync_once()            # looks once at what the first sync wrote
    reads: list[ObjectKey] = []
    get = store.get
    store.get = lambda key: reads.append(key) or get(key)
    assert engine.sync_once().result == "unchanged"
    assert reads == []            # nothing changed: nothing read, nothing compared
    obj = get(ObjectKey("ConfigMap", "default", "cm-7"))
    obj["data"]["value"] = "edited"
    store.update(obj)
    res = engine.sync_once()
    assert [c.key.name for c in res.plan.changes if c.action == "update"] == ["cm-7"]
    assert get(ObjectKey("ConfigMap", "default", "cm-7"))["data"]["value"] == "1"


def test_an_object_git_stops_declaring_is_planned_as_a_prune_at_once(env):
    repo, store = env
    engine = SyncEngine(store, DirSource(str(repo)))
    engine.sync_once()
    engine.sync_once()            # every pair compared: nothing dirty from here on
    (repo / "b.yaml").unlink()
    res = engine.sync_once()
    assert [(c.action, c.key.name) for c in res.plan.changes] == [("unchanged", "a"),
                                                                   ("prune", "b")]
    assert store.get(ObjectKey("ConfigMap", "default", "b")) is None
