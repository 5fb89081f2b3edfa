"""One contract for every long-running part, as controller-runtime's Runnable: `start`,
`stop`, `healthy`. The composition root (daemon.py) builds them for its role and starts
and stops them all the same way, through a Group.

The kinds of runnable:
- Loop: level-triggered passes, woken by a poke or a timer (sync, controllers,
  scheduler, node agent, proxy). A pass reads current state, so coalesced pokes are
  harmless; it may return when it wants the next pass (a requeue_after).
- Polling: an apscheduler job poking something on an interval with jitter (git polls).
- Worker: a blocking function on its own thread until asked to stop (Docker events).
- Hooks: a part with start/stop of its own (the directory watch, DNS, the API server).
- Group: runnables started in order and stopped in reverse, so what others depend on
  starts first and goes last.
"""

from __future__ import annotations

import asyncio
import inspect
import threading
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Protocol, runtime_checkable

import structlog
from apscheduler.schedulers.asyncio import AsyncIOScheduler

log = structlog.get_logger(component="runnable")

SLOW_PASS = 5.0          # seconds: a pass longer than this is logged
FAILED_PASS_PAUSE = 1.0  # seconds: a failing pass is not retried in a tight loop


@runtime_checkable
class Runnable(Protocol):
    name: str

    async def start(self) -> None:
        """Begin the work and return once it runs (the work goes on in the background)."""

    async def stop(self) -> None:
        """Ask the work to end and wait (bounded) until it has; never raises."""

    def healthy(self) -> bool:
        """Started, not stopped, and its work still going."""


async def _maybe_await(value: object) -> None:
    if inspect.isawaitable(value):
        await value


# -- Loop -------------------------------------------------------------------------------
Pass = Callable[[], "float | None | Awaitable[float | None]"]


class Loop:
    """Passes of `fn`, one at a time: at start, on a poke, and at the latest every
    `resync` seconds, or sooner when a pass returns the seconds until it wants the next.
    A plain function runs on a worker thread, a coroutine function on the event loop.
    Pokes within `debounce` of each other make one pass."""

    def __init__(self, name: str, fn: Pass, resync: float, debounce: float = 0.02,
                 retry_failed: bool = False, stop_timeout: float = 15.0) -> None:
        self.name = name
        self._fn = fn
        self._async = inspect.iscoroutinefunction(fn)
        self._resync = resync
        self._debounce = debounce
        self._retry_failed = retry_failed      # a failed pass runs again after a pause
        self._stop_timeout = stop_timeout
        self._event: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task | None = None
        self._stopping = False
        self.started = 0     # passes begun
        self.runs = 0        # passes finished

    def poke(self) -> None:
        """Thread-safe: ask for a pass soon (before start: the first pass comes anyway)."""
        if self._loop is None or self._event is None:
            return
        try:
            self._loop.call_soon_threadsafe(self._event.set)
        except RuntimeError:          # the event loop is closed: shutting down
            pass

    async def poke_and_wait(self, timeout: float) -> bool:
        """Ask for a pass and wait until one that began after this call has finished."""
        target = self.started + 1
        self.poke()
        deadline = time.monotonic() + timeout
        while self.runs < target:
            if time.monotonic() >= deadline or (self._task is not None and self._task.done()):
                return False
            await asyncio.sleep(0.05)
        return True

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._event = asyncio.Event()
        self._event.set()                 # the first pass at once
        self._stopping = False
        self._task = asyncio.create_task(self._run(), name=f"loop-{self.name}")

    async def stop(self) -> None:
        self._stopping = True
        self.poke()
        if self._task is None:
            return
        done, _ = await asyncio.wait({self._task}, timeout=self._stop_timeout)
        if not done:
            log.warning("loop_stop_timed_out", loop=self.name, seconds=self._stop_timeout)

    def healthy(self) -> bool:
        return self._task is not None and not self._task.done() and not self._stopping

    async def _run(self) -> None:
        assert self._event is not None
        wait = self._resync
        while not self._stopping:
            try:
                await asyncio.wait_for(self._event.wait(), timeout=max(0.0, wait))
                await asyncio.sleep(self._debounce)
            except asyncio.TimeoutError:
                pass
            if self._stopping:
                break
            self._event.clear()
            wait = await self._pass()

    async def _pass(self) -> float:
        """One pass; returns how long to wait for the next one at most."""
        self.started += 1
        started = time.monotonic()
        wait = self._resync
        try:
            wanted = await (self._fn() if self._async else asyncio.to_thread(self._fn))
            if isinstance(wanted, (int, float)):
                wait = min(wait, float(wanted))
        except Exception:   # one bad pass must never stop the loop
            log.exception("loop_pass_failed", loop=self.name)
            await asyncio.sleep(FAILED_PASS_PAUSE)
            if self._retry_failed:
                wait = 0.0
        self.runs += 1
        elapsed = time.monotonic() - started
        if elapsed > SLOW_PASS:
            log.warning("loop_pass_slow", loop=self.name, seconds=round(elapsed, 2))
        return wait


# -- Polling ----------------------------------------------------------------------------
def jitter_for(interval: float) -> int:
    """Up to 10% of the interval (at least a second), so agents started together do not
    poll their git server in step."""
    return max(1, int(interval * 0.1))


class Polling:
    """apscheduler calls `poke` every `interval` seconds plus jitter, on the event loop;
    missed runs coalesce into one."""

    def __init__(self, name: str, interval: float, poke: Callable[[], None]) -> None:
        self.name = name
        self.interval = interval
        self._poke = poke
        self.scheduler: AsyncIOScheduler | None = None

    async def start(self) -> None:
        self.scheduler = AsyncIOScheduler()
        self.scheduler.add_job(self._poke, "interval", seconds=self.interval,
                               jitter=jitter_for(self.interval), id="poll", max_instances=1,
                               coalesce=True)
        self.scheduler.start()

    async def stop(self) -> None:
        scheduler, self.scheduler = self.scheduler, None
        if scheduler is not None and scheduler.running:
            scheduler.shutdown(wait=False)

    def healthy(self) -> bool:
        return self.scheduler is not None and self.scheduler.running


# -- Worker -----------------------------------------------------------------------------
class Worker:
    """`target(stopping)` on a daemon thread; it returns once `stopping()` is true."""

    def __init__(self, name: str, target: Callable[[Callable[[], bool]], None],
                 join_timeout: float = 2.0) -> None:
        self.name = name
        self._target = target
        self._join_timeout = join_timeout
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    async def start(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            self._target(self._stop.is_set)
        except Exception:   # noqa: BLE001 - logged; healthy() then says so
            log.exception("worker_failed", worker=self.name)

    async def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            await asyncio.to_thread(self._thread.join, self._join_timeout)

    def healthy(self) -> bool:
        return self._thread is not None and self._thread.is_alive() and not self._stop.is_set()


# -- Hooks ------------------------------------------------------------------------------
class Hooks:
    """A part that starts and stops itself; each hook may be plain or a coroutine."""

    def __init__(self, name: str, start: Callable[[], object],
                 stop: Callable[[], object] | None = None,
                 healthy: Callable[[], bool] | None = None) -> None:
        self.name = name
        self._start, self._stop, self._healthy = start, stop, healthy
        self._running = False

    async def start(self) -> None:
        await _maybe_await(self._start())
        self._running = True

    async def stop(self) -> None:
        was, self._running = self._running, False
        if was and self._stop is not None:
            await _maybe_await(self._stop())

    def healthy(self) -> bool:
        return self._running and (self._healthy is None or self._healthy())


# -- Group ------------------------------------------------------------------------------
class Group:
    """Members start in order and stop in reverse order (all at once when `together`:
    loops whose passes may each take a while). A member that fails to start stops the
    ones already started, and the error goes to the caller."""

    def __init__(self, name: str, members: Sequence[Runnable], together: bool = False) -> None:
        self.name = name
        self.members = list(members)
        self._together = together
        self._started: list[Runnable] = []

    async def start(self) -> None:
        for member in self.members:
            try:
                await member.start()
            except BaseException:
                await self.stop()
                raise
            self._started.append(member)
            log.debug("runnable_started", group=self.name, runnable=member.name)

    async def stop(self) -> None:
        started, self._started = self._started[::-1], []
        if self._together:
            await asyncio.gather(*(_stop(m, self.name) for m in started))
        else:
            for member in started:
                await _stop(member, self.name)

    def healthy(self) -> bool:
        return not self.unhealthy()

    def unhealthy(self) -> list[str]:
        """Names of the members (nested ones as group/member) not healthy."""
        out: list[str] = []
        for member in self.members:
            if isinstance(member, Group):
                out += [f"{member.name}/{n}" for n in member.unhealthy()]
            elif not member.healthy():
                out.append(member.name)
        return out


async def _stop(member: Runnable, group: str) -> None:
    try:
        await member.stop()
    except Exception:   # noqa: BLE001 - the others must still stop
        log.exception("runnable_stop_failed", group=group, runnable=member.name)


# -- Elected ----------------------------------------------------------------------------
class Elected:
    """`inner` runs only while this process leads (leader election, gitops.store.election):
    `acquire` is tried every `retry_period`; the first success starts inner, and renewals
    failing for `renew_deadline` stop it (before another candidate may take the lease
    over). A clean stop gives the lease up with `release`."""

    def __init__(self, name: str, inner: Runnable, acquire: Callable[[], bool],
                 release: Callable[[], None], retry_period: float, renew_deadline: float,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.name = name
        self.inner = inner
        self._acquire = acquire
        self._release = release
        self._retry = retry_period
        self._deadline = renew_deadline
        self._clock = clock
        self._task: asyncio.Task | None = None
        self._stopping = asyncio.Event()
        self.leading = False

    async def start(self) -> None:
        self._stopping = asyncio.Event()
        self._task = asyncio.create_task(self._run(), name=f"elected-{self.name}")

    async def _run(self) -> None:
        renewed = self._clock()
        while not self._stopping.is_set():
            try:
                held = await asyncio.to_thread(self._acquire)
            except Exception:   # noqa: BLE001 - a failed try is a try not won
                log.exception("leader_election_failed", lease=self.name)
                held = False
            now = self._clock()
            if held:
                renewed = now
                if not self.leading:
                    self.leading = True
                    log.info("leading_started", lease=self.name)
                    await self.inner.start()
            elif self.leading and now - renewed >= self._deadline:
                self.leading = False
                log.warning("leading_lost", lease=self.name, seconds=round(now - renewed, 1))
                await _stop(self.inner, self.name)
            try:
                await asyncio.wait_for(self._stopping.wait(), timeout=self._retry)
            except asyncio.TimeoutError:
                pass

    async def stop(self) -> None:
        self._stopping.set()
        if self._task is not None:
            await asyncio.wait({self._task}, timeout=self._retry + 5)
        if self.leading:
            self.leading = False
            await _stop(self.inner, self.name)
            await asyncio.to_thread(self._release)

    def healthy(self) -> bool:
        """The election goes on; while leading, inner works too."""
        running = self._task is not None and not self._task.done()
        return running and (not self.leading or self.inner.healthy())
