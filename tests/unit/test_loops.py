"""The runnables: the polling schedule, the level-triggered loop, workers, hooks, groups."""

from __future__ import annotations

import asyncio
import threading

from gitops.runnable import Group, Hooks, Loop, Polling, Runnable, Worker, jitter_for


def test_jitter_is_a_tenth_of_the_interval_and_at_least_a_second():
    assert [jitter_for(i) for i in (1, 5, 60, 600)] == [1, 1, 6, 60]


def test_polling_pokes_on_the_interval_with_jitter():
    async def main() -> tuple[int, object, bool, bool]:
        pokes = []
        polling = Polling("poll", 1.0, lambda: pokes.append(1))
        await polling.start()
        job = polling.scheduler.get_job("poll")
        running = polling.healthy()
        try:
            for _ in range(100):            # bounded: at most 10 s
                if len(pokes) >= 2:
                    break
                await asyncio.sleep(0.1)
        finally:
            await polling.stop()
        return len(pokes), job, running, polling.healthy()
    count, job, running, after = asyncio.run(main())
    assert count >= 2
    assert job.trigger.jitter == 1 and job.trigger.interval.total_seconds() == 1.0
    assert job.coalesce and job.max_instances == 1
    assert running and not after


def test_level_loop_runs_at_start_on_poke_and_survives_a_failing_pass():
    async def main() -> tuple[int, bool]:
        calls = []

        def work() -> None:
            calls.append(1)
            if len(calls) == 2:
                raise RuntimeError("one bad pass")
        loop = Loop("t", work, resync=3600, debounce=0)
        await loop.start()
        finished = await loop.poke_and_wait(5)          # pass 1 is the start-up one
        failed = await loop.poke_and_wait(5)            # pass 2 raises
        again = await loop.poke_and_wait(5)             # the loop goes on
        await asyncio.wait_for(loop.stop(), 5)
        return len(calls), finished and failed and again and not loop.healthy()
    count, ok = asyncio.run(main())
    assert ok and count >= 3


def test_a_pass_says_when_it_wants_the_next_one():
    """A pass returning seconds (a requeue_after) is run again then without a poke."""
    async def main() -> int:
        calls = []

        def work() -> float:
            calls.append(1)
            return 0.05
        loop = Loop("t", work, resync=3600, debounce=0)
        await loop.start()
        for _ in range(100):
            if len(calls) >= 3:
                break
            await asyncio.sleep(0.05)
        await loop.stop()
        return len(calls)
    assert asyncio.run(main()) >= 3


def test_a_coroutine_pass_runs_on_the_event_loop_and_a_failed_one_is_retried():
    async def main() -> list[str]:
        seen: list[str] = []

        async def work() -> None:
            seen.append("ok" if seen else "fail")
            if len(seen) == 1:
                raise RuntimeError("first pass fails")
        loop = Loop("t", work, resync=3600, debounce=0, retry_failed=True)
        await loop.start()
        for _ in range(60):                  # the retry comes after a one-second pause
            if len(seen) >= 2:
                break
            await asyncio.sleep(0.05)
        await loop.stop()
        return seen
    assert asyncio.run(main())[:2] == ["fail", "ok"]


def test_a_worker_runs_until_asked_to_stop():
    async def main() -> tuple[bool, bool, bool]:
        started = threading.Event()

        def target(stopping) -> None:
            started.set()
            while not stopping():
                started.wait(0.01)
        worker = Worker("w", target)
        await worker.start()
        await asyncio.to_thread(started.wait, 5)
        alive = worker.healthy()
        await worker.stop()
        return started.is_set(), alive, worker.healthy()
    assert asyncio.run(main()) == (True, True, False)


def test_a_group_starts_in_order_stops_in_reverse_and_unwinds_a_failed_start():
    order: list[str] = []

    def member(name: str, fail: bool = False) -> Hooks:
        def start() -> None:
            if fail:
                raise OSError(f"{name} cannot start")
            order.append(f"start {name}")
        return Hooks(name, start=start, stop=lambda: order.append(f"stop {name}"))

    async def main() -> tuple[bool, list[str], str]:
        group = Group("g", [member("a"), Group("inner", [member("b"), member("c")],
                                               together=True)])
        await group.start()
        healthy = group.healthy()
        await group.stop()
        failing = Group("f", [member("x"), member("y", fail=True), member("z")])
        try:
            await failing.start()
            error = ""
        except OSError as exc:
            error = str(exc)
        return healthy, list(order), error
    healthy, seen, error = asyncio.run(main())
    assert healthy and error == "y cannot start"
    assert seen[:6] == ["start a", "start b", "start c", "stop c", "stop b", "stop a"]
    assert seen[6:] == ["start x", "stop x"]


def test_every_runnable_keeps_the_contract():
    for runnable in (Loop("l", lambda: None, 1), Polling("p", 1, lambda: None),
                     Worker("w", lambda stopping: None), Hooks("h", lambda: None),
                     Group("g", [])):
        assert isinstance(runnable, Runnable)
        assert runnable.name


def test_a_requested_sync_gets_the_result_of_its_own_pass(monkeypatch):
    """`gitops sync` prints the pass that carried its request, even when another pass (a
    directory watch) finishes before the request looks."""
    import time as _time

    from gitops.sync.engine import SyncResult
    from gitops.sync.runner import SyncRunner

    class Engine:
        status = None
        policy = type("P", (), {"wave_timeout": 5.0})()

        def __init__(self) -> None:
            self.runner: SyncRunner | None = None

        def sync_once(self, trigger: str = "interval", fetch: bool = True) -> SyncResult:
            if trigger == "manual":
                assert self.runner is not None
                self.runner.trigger("watch")         # a later pass is already asked for
                return SyncResult("failed", "r1", message="mine")
            _time.sleep(0.001)
            return SyncResult("unchanged", "r1", message="a later one")

    async def scenario() -> dict:
        engine = Engine()
        runner = SyncRunner(engine)     # type: ignore[arg-type]
        engine.runner = runner
        await runner.start()
        await asyncio.sleep(0.1)        # the start-up pass is over
        original = asyncio.sleep

        async def slow_poll(delay: float) -> None:    # the request looks late
            await original(0.3 if delay == 0.05 else delay)
        monkeypatch.setattr(asyncio, "sleep", slow_poll)
        try:
            return await runner.sync_now()
        finally:
            monkeypatch.undo()
            await runner.stop()

    assert asyncio.run(scenario())["message"] == "mine"
