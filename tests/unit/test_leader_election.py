"""Leader election with Leases (gitops.store.election) and the loops it gates
(gitops.runnable.Elected): one holder at a time, takeover only after the lease ran out as
the candidate observed it, a clean stop hands over at once."""

from __future__ import annotations

import asyncio

import pytest

from gitops.errors import GitopsError
from gitops.model import ObjectKey
from gitops.runnable import Elected
from gitops.store.election import LeaderElector, LeaseTimings
from gitops.testing import memory_store

TIMINGS = LeaseTimings(15.0, 10.0, 2.0)
KEY = ObjectKey("Lease", "kube-system", "gitops-scheduler")


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def candidates(store, clock, *names):
    return [LeaderElector(store, "gitops-scheduler", n, TIMINGS, clock=clock, monotonic=clock)
            for n in names]


def test_one_candidate_holds_the_lease_the_other_waits_for_it_to_run_out():
    store, clock = memory_store(), Clock()
    a, b = candidates(store, clock, "a", "b")
    assert a.try_acquire_or_renew() and not b.try_acquire_or_renew()
    lease = store.get(KEY)
    assert lease["apiVersion"] == "coordination.k8s.io/v1"
    assert lease["spec"]["holderIdentity"] == "a"
    assert lease["spec"]["leaseDurationSeconds"] == 15
    for _ in range(10):                 # a renews every retry period: b never takes over
        clock.now += 2
        assert a.try_acquire_or_renew() and not b.try_acquire_or_renew()
    clock.now += 14                      # a stopped renewing, not yet for a whole lease
    assert not b.try_acquire_or_renew()
    clock.now += 2
    assert b.try_acquire_or_renew()
    lease = store.get(KEY)
    assert lease["spec"]["holderIdentity"] == "b" and lease["spec"]["leaseTransitions"] == 1
    assert not a.try_acquire_or_renew()  # the old leader sees it lost


def test_a_late_candidate_waits_a_whole_lease_from_its_own_first_look():
    store, clock = memory_store(), Clock()
    a, = candidates(store, clock, "a")
    assert a.try_acquire_or_renew()
    clock.now += 100                     # the record looks old by its renewTime...
    late, = candidates(store, clock, "late")
    assert not late.try_acquire_or_renew()   # ...but clocks may differ: observe first
    clock.now += 15
    assert late.try_acquire_or_renew()


def test_of_two_candidates_racing_for_an_expired_lease_one_wins():
    store, clock = memory_store(), Clock()
    a, b, c = candidates(store, clock, "a", "b", "c")
    assert a.try_acquire_or_renew()
    assert not b.try_acquire_or_renew() and not c.try_acquire_or_renew()
    clock.now += 16
    stale = store.get(KEY)
    assert b.try_acquire_or_renew()
    store_get = store.get
    store.get = lambda key: stale            # c read the lease before b wrote it
    assert not c.try_acquire_or_renew()       # its write conflicts: not leading
    store.get = store_get
    assert store.get(KEY)["spec"]["holderIdentity"] == "b"


def test_release_hands_the_lease_over_at_once_and_a_restarted_holder_keeps_it():
    store, clock = memory_store(), Clock()
    a, b = candidates(store, clock, "a", "b")
    assert a.try_acquire_or_renew() and not b.try_acquire_or_renew()
    again, = candidates(store, clock, "a")   # the same server restarted: same identity
    assert again.try_acquire_or_renew()
    again.release()
    clock.now += 1
    assert b.try_acquire_or_renew()


def test_timings_must_be_ordered():
    with pytest.raises(GitopsError, match="lease duration > renew deadline"):
        LeaseTimings(5, 10, 2).check()


class Inner:
    name = "inner"

    def __init__(self) -> None:
        self.running = False
        self.starts = 0

    async def start(self) -> None:
        self.running, self.starts = True, self.starts + 1

    async def stop(self) -> None:
        self.running = False

    def healthy(self) -> bool:
        return self.running


def test_elected_runs_its_loops_only_while_leading_and_stops_them_past_the_deadline():
    answers = [False, True, True, False, False, False, True]
    ticks = iter(range(100))
    released = []
    inner = Inner()
    seen = []

    def acquire() -> bool:
        seen.append(inner.running)
        return answers.pop(0) if answers else True

    async def scenario() -> None:
        elected = Elected("gitops-scheduler", inner, acquire, lambda: released.append(1),
                          retry_period=0.001, renew_deadline=2.5,
                          clock=lambda: float(next(ticks)))
        await elected.start()
        while answers:
            await asyncio.sleep(0.001)
        await asyncio.sleep(0.01)
        assert elected.leading and inner.running and elected.healthy()
        await elected.stop()
        assert not inner.running and released == [1]

    asyncio.run(scenario())
    # not leading at first; leading after the first success; still leading after one
    # failed renewal (within the deadline); stopped once the deadline passed; again later
    assert seen[:7] == [False, False, True, True, True, True, False]
    assert inner.starts == 2
