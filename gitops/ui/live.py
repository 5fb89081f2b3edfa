"""Live updates: the store's watch, and the sync's own state (last sync, pin, suspended,
kept in the store's state table, which the watch does not carry), coalesced into one
"change" signal every open page hears through server-sent events."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable

from gitops.store.base import Store

COALESCE = 0.25          # seconds: a burst of writes (a rollout) is one refresh per page
STATE_POLL = 0.5         # seconds between looks at the sync's state


class Changes:
    def __init__(self, store: Store, state: Callable[[], object]) -> None:
        self.store = store
        self.state = state              # the sync's state; a change of it is a change
        self.generation = 0             # bumped per change; each page compares its own
        self.listeners = 0              # open pages: with none, nothing is watched
        self._cond: asyncio.Condition | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task | None = None
        self._closed = False

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._cond = asyncio.Condition()
        self.store.watch(self._on_store_change)         # called from writers' threads
        self._task = asyncio.create_task(self._watch_state())

    async def stop(self) -> None:
        self._closed = True
        if self._task is not None:
            self._task.cancel()
        await self._notify()

    def _on_store_change(self, _event: str, obj: dict) -> None:
        if self._loop is None or self._closed or obj.get("kind") == "Lease":
            return
        # Counted even with no page open: a page compares the count it was rendered at.
        self.generation += 1
        if not self.listeners:
            return
        try:
            self._loop.call_soon_threadsafe(lambda: asyncio.ensure_future(self._wake()))
        except RuntimeError:            # the loop closed: the agent is stopping
            pass

    async def _notify(self) -> None:
        self.generation += 1
        await self._wake()

    async def _wake(self) -> None:
        if self._cond is None:
            return
        async with self._cond:
            self._cond.notify_all()

    async def _watch_state(self) -> None:
        last = None
        while not self._closed:
            if not self.listeners:
                last = None
                await asyncio.sleep(STATE_POLL)
                continue
            try:
                now = json.dumps(await asyncio.to_thread(self.state), sort_keys=True,
                                 default=str)
            except Exception:           # a store hiccup: look again next time
                now = last
            if last is not None and now != last:
                await self._notify()
            last = now
            await asyncio.sleep(STATE_POLL)

    async def wait(self, seen: int, timeout: float) -> int:
        """The generation once it moved past `seen` (or as it is after `timeout`)."""
        assert self._cond is not None
        async with self._cond:
            if self.generation == seen and not self._closed:
                try:
                    await asyncio.wait_for(self._cond.wait_for(
                        lambda: self.generation != seen or self._closed), timeout)
                except asyncio.TimeoutError:
                    pass
            return self.generation

    @property
    def closed(self) -> bool:
        return self._closed
