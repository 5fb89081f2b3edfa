"""Balancer: round-robin over a once-shuffled list, with fall-through candidates."""

from __future__ import annotations

import random
from collections import Counter

import pytest

from gitops.proxy.balancer import Balancer

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
