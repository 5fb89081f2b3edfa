"""Balancer: round-robin over a once-shuffled list, with fall-through candidates."""

from __future__ import annotations

import random
from collections import Counter

import pytest

from gitops.proxy.balancer import Balancer
from gitops.testing import FakeClock

A, B, C, D = ("10.0.0.1", 80), ("10.0.0.2", 80), ("10.0.0.3", 80), ("10.0.0.4", 8080)


def _firsts(bal: Balancer, n: int) -> Counter:
    return Counter(bal.candidates()[0] for _ in range(n))


@pytest.mark.parametrize("endpoints, calls", [
    ([A], 5),
    ([A, B], 10),
    ([A, B, C], 30),
    ([A, B, C, D], 400),
])
def test_rotation_is_fair(endpoints, calls):
    bal = Balancer(endpoints, rng=random.Random(1))
    counts = _firsts(bal, calls)
    assert set(counts) == set(endpoints)
    assert max(counts.values()) - min(counts.values()) == 0  # calls is a multiple of len


@pytest.mark.parametrize("endpoints", [[A], [A, B], [A, B, C, D], [D, C, B, A, A, B]])
def test_candidates_list_every_endpoint_once_round_robin_start(endpoints):
    bal = Balancer(endpoints, rng=random.Random(2))
    unique = set(endpoints)
    order = list(bal.endpoints)
    for i in range(2 * len(unique)):
        cands = bal.candidates()
        assert sorted(cands) == sorted(unique)
        start = order.index(cands[0])
        assert start == i % len(order)
        assert cands == order[start:] + order[:start]  # fall-through keeps the ring order


@pytest.mark.parametrize("calls", [0, 1, 3])
def test_empty_set(calls):
    bal = Balancer()
    for _ in range(calls):
        assert bal.candidates() == []
    assert bal.endpoints == ()
    bal.update([A])
    assert bal.candidates() == [A]
    bal.update([])
    assert bal.candidates() == [] and bal.endpoints == ()


@pytest.mark.parametrize("before, after, calls", [
    ([A, B], [A, B, C], 30),      # grow
    ([A, B, C, D], [B, D], 20),   # shrink
    ([A, B], [C, D], 10),         # replace entirely
    ([A], [B, C, D], 9),
    ([], [A, B, C], 9),
])
def test_update_keeps_rotating_fairly(before, after, calls):
    bal = Balancer(before, rng=random.Random(3))
    for _ in range(5):
        bal.candidates()
    bal.update(after)
    assert set(bal.endpoints) == set(after)
    counts = _firsts(bal, calls)
    assert set(counts) == set(after)
    assert max(counts.values()) == min(counts.values())


@pytest.mark.parametrize("same", [[A, B, C], [C, B, A], [B, A, C, A]])
def test_update_with_same_set_keeps_order_and_cursor(same):
    bal = Balancer([A, B, C], rng=random.Random(4))
    order = bal.endpoints
    first = bal.candidates()[0]
    bal.update(same)
    assert bal.endpoints == order
    assert bal.candidates()[0] == order[(order.index(first) + 1) % 3]


def test_order_depends_on_set_and_rng_not_input_order():
    one = Balancer([A, B, C, D], rng=random.Random(7))
    two = Balancer([D, C, B, A], rng=random.Random(7))
    assert one.endpoints == two.endpoints


def test_shuffled_across_instances():
    firsts = {Balancer([A, B, C, D], rng=random.Random(seed)).candidates()[0] for seed in range(50)}
    assert len(firsts) > 1  # not everyone starts with the same endpoint


def test_client_ip_is_accepted():
    bal = Balancer([A, B], rng=random.Random(5))
    assert sorted(bal.candidates(client_ip="127.0.0.1")) == sorted([A, B])


# ---------------------------------------------------------------- sessionAffinity: ClientIP

def _sticky(endpoints, timeout: float = 10.0, seed: int = 8):
    clock = FakeClock(1000.0)
    return Balancer(endpoints, rng=random.Random(seed), affinity_timeout=timeout, clock=clock), clock


def test_affinity_pins_client_to_one_endpoint():
    bal, clock = _sticky([A, B, C])
    first = bal.candidates("10.1.0.1")[0]
    for _ in range(20):
        clock.now += 1.0  # well inside the timeout, and each use renews it
        cands = bal.candidates("10.1.0.1")
        assert cands[0] == first
        assert sorted(cands) == sorted([A, B, C])  # fall-through still lists everyone
    assert bal.pinned == 1


def test_affinity_distinct_clients_still_rotate():
    bal, _ = _sticky([A, B, C])
    firsts = [bal.candidates(f"10.1.0.{i}")[0] for i in range(6)]
    assert Counter(firsts) == {A: 2, B: 2, C: 2}
    # and each keeps its own pick
    assert [bal.candidates(f"10.1.0.{i}")[0] for i in range(6)] == firsts


def test_sticky_pick_does_not_advance_rotation():
    bal, _ = _sticky([A, B, C])
    order = bal.endpoints
    assert bal.candidates("10.1.0.1")[0] == order[0]
    for _ in range(5):
        bal.candidates("10.1.0.1")
    assert bal.candidates("10.1.0.2")[0] == order[1]
    assert bal.candidates()[0] == order[2]  # no client IP: plain round-robin


@pytest.mark.parametrize("idle, sticky", [(9.99, True), (10.0, False), (50.0, False)])
def test_affinity_expires_after_timeout_since_last_use(idle, sticky):
    bal, clock = _sticky([A, B], timeout=10.0)
    first = bal.candidates("10.1.0.1")[0]
    clock.now += idle
    again = bal.candidates("10.1.0.1")[0]
    assert (again == first) is sticky
    if not sticky:  # re-pinned to the new pick
        clock.now += 1.0
        assert bal.candidates("10.1.0.1")[0] == again


def test_affinity_timeout_counts_from_last_use_not_first():
    bal, clock = _sticky([A, B], timeout=10.0)
    first = bal.candidates("c")[0]
    for _ in range(5):
        clock.now += 8.0  # 40 s in total, never 10 s idle
        assert bal.candidates("c")[0] == first


def test_endpoint_removal_breaks_stickiness():
    bal, clock = _sticky([A, B, C])
    first = bal.candidates("c")[0]
    rest = [e for e in (A, B, C) if e != first]
    bal.update(rest)
    moved = bal.candidates("c")[0]
    assert moved in rest
    assert bal.candidates("c")[0] == moved  # pinned to the new one
    bal.update([A, B, C])  # the old endpoint comes back: the client stays where it is
    assert bal.candidates("c")[0] == moved


def test_unrelated_update_keeps_pins():
    bal, _ = _sticky([A, B])
    first = bal.candidates("c")[0]
    bal.update([A, B, C])
    assert all(bal.candidates("c")[0] == first for _ in range(5))


def test_stick_follows_the_endpoint_that_answered():
    bal, _ = _sticky([A, B, C])
    cands = bal.candidates("c")
    bal.stick("c", cands[1])  # the first candidate's dial failed
    assert bal.candidates("c")[0] == cands[1]
    bal.stick("c", D)  # not in the set: ignored
    assert bal.candidates("c")[0] == cands[1]


def test_stick_without_affinity_is_a_no_op():
    bal = Balancer([A, B], rng=random.Random(1))
    bal.stick("c", B)
    assert bal.pinned == 0


def test_no_affinity_ignores_client_ip():
    bal = Balancer([A, B], rng=random.Random(1))
    assert Counter(bal.candidates("c")[0] for _ in range(10)) == {A: 5, B: 5}
    assert bal.pinned == 0


def test_turning_affinity_off_forgets_pins_and_on_again_starts_fresh():
    bal, _ = _sticky([A, B])
    bal.candidates("c")
    bal.affinity_timeout = None
    assert bal.pinned == 0
    assert Counter(bal.candidates("c")[0] for _ in range(4)) == {A: 2, B: 2}
    bal.affinity_timeout = 5.0
    first = bal.candidates("c")[0]
    assert all(bal.candidates("c")[0] == first for _ in range(3))


def test_shorter_timeout_applies_to_existing_pins():
    bal, clock = _sticky([A, B], timeout=100.0)
    first = bal.candidates("c")[0]
    clock.now += 20.0
    bal.affinity_timeout = 10.0
    assert bal.candidates("c")[0] != first


@pytest.mark.parametrize("bad", [0, -1.0])
def test_affinity_timeout_must_be_positive(bad):
    with pytest.raises(ValueError):
        Balancer([A], affinity_timeout=bad)


def test_expired_pins_are_swept():
    bal, clock = _sticky([A, B], timeout=10.0)
    for i in range(100):
        bal.candidates(f"10.2.0.{i}")
    assert bal.pinned == 100
    clock.now += 11.0
    bal.candidates("10.3.0.1")
    assert bal.pinned == 1


def test_affinity_with_empty_set():
    bal, _ = _sticky([])
    assert bal.candidates("c") == []
    bal.update([A])
    assert bal.candidates("c") == [A]
