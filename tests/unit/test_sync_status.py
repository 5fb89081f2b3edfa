"""The sync status as one typed object: fields, conditions and their transition times,
the state names it keeps (older data dirs carry over), the rollback target choice."""

from __future__ import annotations

import pytest

from gitops.errors import GitopsError
from gitops.testing import memory_store
from gitops.sync.rollback import rollback_target
from gitops.sync.status import (
    Condition,
    Pin,
    SyncStatusBook,
    health_condition,
    merge_conditions,
    synced_condition,
)

NOW = 1_800_000_000.0


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def store():
    s = memory_store()
    yield s
    s.close()


def conditions(status) -> dict[str, tuple[str, str]]:
    return {c.type: (c.status, c.reason) for c in status.conditions}


def test_a_fresh_store_has_nothing_synced_yet(store):
    status = SyncStatusBook(store).read()
    assert status.as_dict() | {"conditions": None} == {
        "applied_revision": None, "fetched_revision": None, "pin": None, "suspended": False,
        "last_sync": None, "conditions": None, "hooks": None}
    assert conditions(status) == {"Synced": ("Unknown", "NotSyncedYet"),
                                  "Suspended": ("False", "Active"),
                                  "Pinned": ("False", "FollowingBranch")}


def test_fields_are_kept_under_the_names_earlier_versions_used(store):
    book = SyncStatusBook(store)
    book.record_fetch("head1")
    book.record_applied("rev1")
    book.set_pin(Pin("rev0", "head1"))
    book.set_suspended(True)
    book.record_result({"result": "synced", "revision": "rev1"})
    assert [store.get_state(n) for n in ("fetched_revision", "applied_revision", "pin",
                                         "suspended", "last_sync")] == [
        "head1", "rev1", {"sha": "rev0", "head": "head1"}, True,
        {"result": "synced", "revision": "rev1"}]
    store.set_state("pin", {"sha": "old"})             # as an older version wrote it
    assert book.pin() == Pin("old", "")


@pytest.mark.parametrize("last, expected", [
    (None, ("Unknown", "NotSyncedYet")),
    ({"result": "synced", "revision": "a"}, ("True", "RevisionApplied")),
    ({"result": "unchanged", "revision": "a"}, ("True", "RevisionApplied")),
    ({"result": "failed", "message": "revision refused"}, ("False", "SyncFailed")),
    ({"result": "refused", "message": "zero objects"}, ("False", "SyncRefused")),
])
def test_synced_follows_the_last_result(last, expected):
    cond = synced_condition(last)
    assert (cond.status, cond.reason) == expected
    if last and last.get("message"):
        assert cond.message == last["message"]


def test_a_condition_keeps_its_transition_time_while_its_status_holds(store):
    clock = Clock()
    book = SyncStatusBook(store, clock)
    book.record_result({"result": "synced", "revision": "a"})
    clock.now += 60
    book.record_result({"result": "unchanged", "revision": "a"})
    synced = book.read().condition("Synced")
    assert synced.last_transition_time == "2027-01-15T08:00:00Z"
    clock.now += 60
    book.record_result({"result": "failed", "message": "boom"})
    synced = book.read().condition("Synced")
    assert (synced.status, synced.last_transition_time) == ("False", "2027-01-15T08:02:00Z")


def test_conditions_agree_with_fields_written_behind_the_book(store):
    SyncStatusBook(store).set_suspended(False)
    store.set_state("suspended", True)          # an older agent, or a test, wrote it
    assert conditions(SyncStatusBook(store).read())["Suspended"] == ("True", "SuspendedByUser")


def test_merge_orders_and_stamps():
    before = (Condition("Pinned", "False", "FollowingBranch", "", "t0"),)
    merged = merge_conditions(before, [Condition("Synced", "True", "RevisionApplied"),
                                       Condition("Pinned", "False", "FollowingBranch")], NOW)
    assert [(c.type, c.last_transition_time) for c in merged] == [
        ("Synced", "2027-01-15T08:00:00Z"), ("Pinned", "t0")]


@pytest.mark.parametrize("objects, expected", [
    ([], ("True", "AllHealthy")),
    ([{"kind": "Deployment", "name": "web", "health": "Healthy"}], ("True", "AllHealthy")),
    ([{"kind": "Deployment", "name": "web", "health": "Progressing", "message": "1/2"},
      {"kind": "Service", "name": "web", "health": "Healthy"}], ("False", "Progressing")),
])
def test_health_condition(objects, expected):
    cond = health_condition(objects)
    assert (cond.status, cond.reason) == expected


HISTORY = [{"result": "synced", "revision": "c"}, {"result": "failed", "revision": "b"},
           {"result": "synced", "revision": "b0"}, {"result": "synced", "revision": "a"}]


@pytest.mark.parametrize("to, current, history, expected", [
    ("abc", "c", HISTORY, Pin("abc", "head")),          # asked for: as asked
    ("", "c", HISTORY, Pin("b0", "head")),              # the newest good one before
    ("", "x", HISTORY, Pin("c", "head")),
    ("", "c", [{"result": "synced", "revision": "c"}], None),
    ("", "c", [], None),
])
def test_rollback_target(to, current, history, expected):
    if expected is None:
        with pytest.raises(GitopsError, match="no earlier successfully applied revision"):
            rollback_target(to, "head", current, history)
    else:
        assert rollback_target(to, "head", current, history) == expected


def test_a_directory_has_no_history_to_roll_back_to():
    with pytest.raises(GitopsError, match="rollback needs a git source"):
        rollback_target("abc", "head", "c", HISTORY, has_history=False)
