"""The polling schedule and the level-triggered loop runner."""

from __future__ import annotations

import asyncio

from gitops.loops import LevelLoop, jitter_for, start_polling


def test_jitter_is_a_tenth_of_the_interval_and_at_least_a_second():
    assert [jitter_for(i) for i in (1, 5, 60, 600)] == [1, 1, 6, 60]


def test_polling_pokes_on_the_interval_with_jitter():
    async def main() -> tuple[int, object]:
        pokes = []
        scheduler = start_polling(1.0, lambda: pokes.append(1))
        job = scheduler.get_job("poll")
        try:
            for _ in range(100):            # bounded: at most 10 s
                if len(pokes) >= 2:
                    break
                await asyncio.sleep(0.1)
        finally:
            scheduler.shutdown(wait=False)
        return len(pokes), job
    count, job = asyncio.run(main())
    assert count >= 2
    assert job.trigger.jitter == 1 and job.trigger.interval.total_seconds() == 1.0
    assert job.coalesce and job.max_instances == 1


def test_level_loop_runs_at_start_on_poke_and_survives_a_failing_pass():
    async def main() -> tuple[int, bool]:
        calls = []

        def work() -> None:
            calls.append(1)
            if len(calls) == 2:
                raise RuntimeError("one bad pass")
        loop = LevelLoop("t", work, resync=3600, debounce=0)
        stop = asyncio.Event()
        task = asyncio.create_task(loop.run(stop))
        finished = await loop.poke_and_wait(5)          # pass 1 is the start-up one
        failed = await loop.poke_and_wait(5)            # pass 2 raises
        again = await loop.poke_and_wait(5)             # the loop goes on
        stop.set()
        loop.poke()
        await asyncio.wait_for(task, 5)
        return len(calls), finished and failed and again
    count, ok = asyncio.run(main())
    assert ok and count >= 3
