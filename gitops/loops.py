"""Level-triggered loop runner: wake on a poke or a resync timer, run the whole reconcile.

A queue item is 'something changed'; the reconcile always reads current state, so missed
or coalesced pokes are harmless (DESIGN.md: level-triggered).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import structlog
from apscheduler.schedulers.asyncio import AsyncIOScheduler

log = structlog.get_logger(component="loop")


def jitter_for(interval: float) -> int:
    """Up to 10% of the interval (at least a second), so agents started together do not
    poll their git server in step."""
    return max(1, int(interval * 0.1))


def start_polling(interval: float, poke: Callable[[], None]) -> AsyncIOScheduler:
    """apscheduler job calling `poke` every `interval` seconds plus jitter, on the running
    event loop. Missed runs coalesce into one; shut it down with .shutdown(wait=False)."""
    scheduler = AsyncIOScheduler()
    scheduler.add_job(poke, "interval", seconds=interval, jitter=jitter_for(interval),
                      id="poll", max_instances=1, coalesce=True)
    scheduler.start()
    return scheduler


class LevelLoop:
    def __init__(self, name: str, fn: Callable[[], object], resync: float,
                 debounce: float = 0.02) -> None:
        self.name = name
        self._fn = fn
        self._resync = resync
        self._debounce = debounce
        self._event: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self.started = 0     # passes begun
        self.runs = 0        # passes finished

    def poke(self) -> None:
        """Thread-safe: ask for a reconcile soon."""
        if self._loop is not None and self._event is not None:
            self._loop.call_soon_threadsafe(self._event.set)

    async def poke_and_wait(self, timeout: float) -> bool:
        """Ask for a pass and wait until one that began after this call has finished."""
        target = self.started + 1
        self.poke()
        deadline = time.monotonic() + timeout
        while self.runs < target:
            if time.monotonic() >= deadline:
                return False
            await asyncio.sleep(0.05)
        return True

    async def run(self, stop: asyncio.Event) -> None:
        self._loop = asyncio.get_running_loop()
        self._event = asyncio.Event()
        self._event.set()
        while not stop.is_set():
            try:
                await asyncio.wait_for(self._event.wait(), timeout=self._resync)
                await asyncio.sleep(self._debounce)
            except asyncio.TimeoutError:
                pass
            if stop.is_set():
                break
            self._event.clear()
            self.started += 1
            started = time.monotonic()
            try:
                await asyncio.to_thread(self._fn)
            except Exception:   # one bad pass must never stop the loop
                log.exception("loop_pass_failed", loop=self.name)
                await asyncio.sleep(1.0)
            self.runs += 1
            elapsed = time.monotonic() - started
            if elapsed > 5:
                log.warning("loop_pass_slow", loop=self.name, seconds=round(elapsed, 2))
