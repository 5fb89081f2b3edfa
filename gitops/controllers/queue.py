"""A keyed work queue, as client-go's workqueue: what a controller has left to reconcile.

- An item is an object key; a key queued twice is queued once (FIFO otherwise).
- A key is never handed to two workers at once: one added while it is being processed is
  marked dirty and queued again when `done` is called.
- `add_at` / `add_after` queue a key later (a requeue_after: a deadline, a schedule, a
  back-off); the earliest time asked for wins, and processing the key for any reason
  satisfies it (the reconcile says again when it wants the next pass).
- `add_rate_limited` queues a key after a per-key exponential back-off (failures), which
  `forget` resets once the key reconciles cleanly.

Thread-safe; time comes from an injected clock, so tests drive it by hand. `on_add` is
told (outside the lock) whenever a key may have become ready, so a loop can wake.
"""

from __future__ import annotations

import heapq
import threading
import time
from collections import deque
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)


class Backoff:
    """Per-key exponential delays: base, 2*base, 4*base... up to cap."""

    def __init__(self, base: float = 0.5, cap: float = 300.0) -> None:
        self.base = base
        self.cap = cap
        self._failures: dict[Hashable, int] = {}

    def next_delay(self, key: Hashable) -> float:
        n = self._failures.get(key, 0)
        self._failures[key] = n + 1
        return min(self.cap, self.base * (2 ** min(n, 62)))

    def failures(self, key: Hashable) -> int:
        return self._failures.get(key, 0)

    def forget(self, key: Hashable) -> None:
        self._failures.pop(key, None)


class WorkQueue(Generic[K]):
    def __init__(self, name: str = "", clock: Callable[[], float] = time.monotonic,
                 backoff: Backoff | None = None,
                 on_add: Callable[[], None] | None = None) -> None:
        self.name = name
        self.clock = clock
        self.backoff = backoff or Backoff()
        self.on_add = on_add
        self._lock = threading.Lock()
        self._ready: deque[K] = deque()
        self._queued: set[K] = set()          # in _ready
        self._processing: set[K] = set()
        self._dirty: set[K] = set()           # added while processing
        self._later: dict[K, float] = {}      # key -> when (the earliest asked)
        self._heap: list[tuple[float, int, K]] = []   # may hold stale entries
        self._seq = 0

    # -- adding ------------------------------------------------------------------------
    def add(self, key: K) -> None:
        with self._lock:
            added = self._add(key)
        if added and self.on_add is not None:
            self.on_add()

    def add_at(self, key: K, when: float) -> None:
        """Queue key at clock time `when` (now or earlier: at once)."""
        if when <= self.clock():
            self.add(key)
            return
        with self._lock:
            if key in self._later and self._later[key] <= when:
                return
            self._later[key] = when
            self._seq += 1
            heapq.heappush(self._heap, (when, self._seq, key))
            if len(self._heap) > 2 * len(self._later) + 64:     # mostly stale: rebuild
                self._heap = []
                for k, w in self._later.items():
                    self._seq += 1
                    self._heap.append((w, self._seq, k))
                heapq.heapify(self._heap)
        if self.on_add is not None:
            self.on_add()        # a loop waiting on the old earliest time waits less

    def add_after(self, key: K, delay: float) -> None:
        self.add_at(key, self.clock() + delay)

    def add_rate_limited(self, key: K) -> None:
        self.add_after(key, self.backoff.next_delay(key))

    def forget(self, key: K) -> None:
        """The key reconciled cleanly: its next failure starts the back-off afresh."""
        self.backoff.forget(key)

    def _add(self, key: K) -> bool:
        if key in self._processing:
            self._dirty.add(key)
            return False
        if key in self._queued:
            return False
        self._queued.add(key)
        self._ready.append(key)
        return True

    # -- taking ------------------------------------------------------------------------
    def get(self) -> K | None:
        """The next ready key (now marked processing), or None."""
        with self._lock:
            self._promote(self.clock())
            if not self._ready:
                return None
            key = self._ready.popleft()
            self._queued.discard(key)
            self._processing.add(key)
            self._later.pop(key, None)     # processing satisfies a delayed add
            return key

    def done(self, key: K) -> None:
        with self._lock:
            self._processing.discard(key)
            requeue = key in self._dirty
            if requeue:
                self._dirty.discard(key)
                self._add(key)
        if requeue and self.on_add is not None:
            self.on_add()

    def _promote(self, now: float) -> None:
        while self._heap and self._heap[0][0] <= now:
            when, _, key = heapq.heappop(self._heap)
            if self._later.get(key) == when:
                del self._later[key]
                self._add(key)

    # -- reading -----------------------------------------------------------------------
    def ready(self) -> int:
        """Keys that `get` would hand out now."""
        with self._lock:
            self._promote(self.clock())
            return len(self._ready)

    def next_due(self) -> float | None:
        """The clock time of the earliest delayed key, if any."""
        with self._lock:
            while self._heap and self._later.get(self._heap[0][2]) != self._heap[0][0]:
                heapq.heappop(self._heap)          # stale: satisfied or superseded
            return self._heap[0][0] if self._heap else None

    def waiting(self, key: K) -> float | None:
        """When key is due, if it waits for a time."""
        with self._lock:
            return self._later.get(key)

    def __len__(self) -> int:
        """Keys queued or waiting (not counting those being processed)."""
        with self._lock:
            return len(self._queued | set(self._later))

    def __contains__(self, key: object) -> bool:
        with self._lock:
            return key in self._queued or key in self._later or key in self._dirty
