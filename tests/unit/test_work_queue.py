"""The keyed work queue's semantics, table-driven on a fake clock.

Each case is a list of steps: ("add", k), ("add_at", k, when), ("add_after", k, delay),
("fail", k) (add_rate_limited), ("forget", k), ("get", expected key or None),
("done", k), ("tick", seconds), ("ready", n), ("due", clock time or None), ("len", n).
"""

from __future__ import annotations

import pytest

from gitops.controllers.queue import Backoff, WorkQueue


class Clock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


CASES = {
    "a key queued twice is queued once": [
        ("add", "a"), ("add", "a"), ("ready", 1), ("get", "a"), ("get", None)],
    "first in, first out": [
        ("add", "b"), ("add", "a"), ("add", "c"), ("get", "b"), ("get", "a"), ("get", "c")],
    "a key being processed is not handed out again": [
        ("add", "a"), ("get", "a"), ("add", "a"), ("get", None), ("ready", 0)],
    "added while processing: queued again once done": [
        ("add", "a"), ("get", "a"), ("add", "a"), ("add", "a"), ("done", "a"),
        ("ready", 1), ("get", "a"), ("done", "a"), ("get", None)],
    "done without a new add: gone": [
        ("add", "a"), ("get", "a"), ("done", "a"), ("ready", 0), ("len", 0)],
    "a delayed key waits for its time": [
        ("add_after", "a", 10), ("ready", 0), ("due", 1010.0), ("tick", 9.5), ("get", None),
        ("tick", 0.5), ("get", "a"), ("due", None)],
    "the earliest time asked for wins": [
        ("add_at", "a", 1020.0), ("add_at", "a", 1010.0), ("add_at", "a", 1030.0),
        ("due", 1010.0), ("tick", 10), ("get", "a"), ("done", "a"), ("tick", 30),
        ("get", None)],
    "a time already past queues at once": [
        ("add_at", "a", 999.0), ("ready", 1), ("get", "a")],
    "processing a key satisfies its delayed add": [
        ("add_after", "a", 10), ("add", "a"), ("get", "a"), ("done", "a"), ("due", None),
        ("tick", 20), ("get", None)],
    "a requeue asked while processing waits for its time": [
        ("add", "a"), ("get", "a"), ("add_after", "a", 5), ("done", "a"), ("get", None),
        ("tick", 5), ("get", "a")],
    "a delayed key that comes due while processing is queued after done": [
        ("add_after", "a", 5), ("add", "b"), ("tick", 1), ("add", "a"), ("get", "b"),
        ("get", "a"), ("add_after", "a", 1), ("tick", 2), ("get", None), ("done", "a"),
        ("get", "a")],
    "keys delayed apart come due in time order": [
        ("add_after", "late", 20), ("add_after", "early", 10), ("due", 1010.0),
        ("tick", 25), ("get", "early"), ("get", "late")],
    "failures back off exponentially": [
        ("fail", "a"), ("due", 1000.5), ("tick", 0.5), ("get", "a"), ("done", "a"),
        ("fail", "a"), ("due", 1001.5), ("tick", 1), ("get", "a"), ("done", "a"),
        ("fail", "a"), ("due", 1003.5)],
    "forget starts the back-off afresh": [
        ("fail", "a"), ("tick", 1), ("get", "a"), ("done", "a"), ("fail", "a"),
        ("tick", 1), ("get", "a"), ("forget", "a"), ("done", "a"), ("fail", "a"),
        ("due", 1002.5)],
    "back-off is per key": [
        ("fail", "a"), ("tick", 0.5), ("get", "a"), ("done", "a"), ("fail", "a"),
        ("fail", "b"), ("due", 1001.0), ("tick", 0.5), ("get", "b"), ("get", None),
        ("tick", 0.5), ("get", "a")],
    "waiting keys count in len, processing ones do not": [
        ("add", "a"), ("add_after", "b", 5), ("len", 2), ("get", "a"), ("len", 1)],
}


@pytest.mark.parametrize("steps", CASES.values(), ids=CASES.keys())
def test_queue_semantics(steps):
    clock = Clock()
    queue = WorkQueue("t", clock)
    for step in steps:
        op, *args = step
        if op == "add":
            queue.add(args[0])
        elif op == "add_at":
            queue.add_at(args[0], args[1])
        elif op == "add_after":
            queue.add_after(args[0], args[1])
        elif op == "fail":
            queue.add_rate_limited(args[0])
        elif op == "forget":
            queue.forget(args[0])
        elif op == "done":
            queue.done(args[0])
        elif op == "tick":
            clock.now += args[0]
        elif op == "get":
            assert queue.get() == args[0], step
        elif op == "ready":
            assert queue.ready() == args[0], step
        elif op == "due":
            assert queue.next_due() == args[0], step
        elif op == "len":
            assert len(queue) == args[0], step
        else:
            raise AssertionError(f"unknown step {step}")


def test_back_off_is_capped():
    backoff = Backoff(base=1, cap=60)
    assert [backoff.next_delay("k") for _ in range(8)] == [1, 2, 4, 8, 16, 32, 60, 60]
    assert backoff.failures("k") == 8
    backoff.forget("k")
    assert backoff.next_delay("k") == 1


def test_the_loop_is_told_when_a_key_may_be_ready():
    told = []
    clock = Clock()
    queue = WorkQueue("t", clock, on_add=lambda: told.append(1))
    queue.add("a")
    queue.add("a")                      # already queued: nothing new
    assert len(told) == 1
    queue.add_after("b", 5)             # an earlier wake-up may be needed
    assert len(told) == 2
    key = queue.get()
    queue.add(key)                      # dirty: told once it is queued again
    assert len(told) == 2
    queue.done(key)
    assert len(told) == 3


def test_stale_delays_do_not_pile_up():
    """A key asked again and again to come back (a deadline on every pass) keeps one entry."""
    clock = Clock()
    queue = WorkQueue("t", clock)
    for i in range(1000):
        queue.add("a")
        assert queue.get() == "a"
        queue.done("a")
        queue.add_at("a", 2000.0 + i)
    assert queue.next_due() == 2999.0 and len(queue._heap) < 200
