"""Live state in seconds, not at the next poll: the store's watch tells which objects git
manages changed (`kubectl scale`, `kubectl set image`, `kubectl delete svc`), each is
compared with what git declares at once and marked OutOfSync (or Synced again), and with
self-heal on a correcting sync pass follows after a short delay, growing when something
keeps fighting git (Argo CD's self-heal back-off: the delay, times 3 per repeat within five
minutes, at most five minutes). With self-heal off the drift record is logged at once
(action `reported`); with it on, the correcting pass logs it (`corrected`).

Writes of the sync itself are not looked at (they are what git declares), and neither is a
change that only touched status (nothing git declares moved).
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

import structlog

from gitops.model import ObjectKey, key_of
from gitops.runnable import Loop
from gitops.sync.engine import SyncEngine
from gitops.sync.inventory import OUT_OF_SYNC, SYNCED

log = structlog.get_logger(component="drift")

BACKOFF_FACTOR = 3.0
BACKOFF_CAP = 300.0       # seconds: the longest wait before a correction
BACKOFF_RESET = 300.0     # seconds of quiet after which a key starts at the delay again


@dataclass
class _Fight:
    count: int
    last: float


def heal_delay(base: float, repeats: int) -> float:
    """The wait before the n-th correction in a row of one object (pure)."""
    return min(BACKOFF_CAP, base * BACKOFF_FACTOR ** max(0, repeats - 1))


class LiveDrift:
    def __init__(self, engine: SyncEngine, heal: Callable[[], None],
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.name = "live-drift"
        self.engine = engine
        self.heal = heal              # asks the sync loop for a self-heal pass
        self.clock = clock
        self.loop = Loop(self.name, self.check, resync=3600, debounce=0.05)
        self._lock = threading.Lock()
        self._pending: set[ObjectKey] = set()
        self._due: dict[ObjectKey, float] = {}
        self._fights: dict[ObjectKey, _Fight] = {}
        self._seen: dict[ObjectKey, dict] = {}     # the last version told, per managed key

    # -- runnable -----------------------------------------------------------------------
    async def start(self) -> None:
        await self.loop.start()

    async def stop(self) -> None:
        await self.loop.stop()

    def healthy(self) -> bool:
        return self.loop.healthy()

    # -- the store's watch: called on the writer's thread after each commit -------------
    def on_change(self, event: str, obj: dict) -> None:
        if obj.get("kind") == "Event":
            return
        key = key_of(obj)
        if key not in self.engine.planner.wanted:
            return
        with self._lock:
            seen = self._seen.pop(key, None) or self.engine.planner.last_live(key)
            if event != "DELETED":
                self._seen[key] = obj
        if self.engine.is_own_write():
            return
        if event != "DELETED" and seen is not None and _same_but_status(seen, obj):
            return
        with self._lock:
            self._pending.add(key)
        self.loop.poke()

    # -- passes -------------------------------------------------------------------------
    def check(self) -> float | None:
        """Compare the objects that changed; start the corrections that are due. Returns
        the seconds until the next one is."""
        with self._lock:
            keys, self._pending = self._pending, set()
        if keys:
            self._compare(keys)
        now = self.clock()
        with self._lock:
            due = [k for k, at in self._due.items() if at <= now]
            for key in due:
                del self._due[key]
            later = min(self._due.values(), default=None)
        if due:
            log.info("self_heal_started", objects=[str(k) for k in sorted(due)])
            self.heal()
        return None if later is None else max(0.0, later - now)

    def _compare(self, keys: set[ObjectKey]) -> None:
        engine = self.engine
        inventory = engine.inventory.read()
        changes = {c.key: c for c in engine.planner.check(keys, inventory)}
        reconcile_id = uuid.uuid4().hex[:12]
        for key in sorted(keys):
            change = changes.get(key)
            if change is None or key not in inventory:
                continue
            if not change.drift:
                engine.inventory.mark(key, SYNCED)
                with self._lock:
                    self._due.pop(key, None)
                continue
            engine.inventory.mark(key, OUT_OF_SYNC)
            if not engine.policy.self_heal:
                engine.report_drift(change, reconcile_id, "watch", "reported")
                continue
            self._schedule(key)

    def _schedule(self, key: ObjectKey) -> None:
        now = self.clock()
        with self._lock:
            if key in self._due:
                return
            fight = self._fights.get(key)
            if fight is None or now - fight.last > BACKOFF_RESET:
                fight = _Fight(0, now)
            fight.count += 1
            fight.last = now
            self._fights[key] = fight
            delay = heal_delay(self.engine.policy.self_heal_delay, fight.count)
            self._due[key] = now + delay
            if len(self._fights) > 10_000:
                self._fights = {k: f for k, f in self._fights.items()
                                if now - f.last <= BACKOFF_RESET}
        if fight.count > 1:
            log.warning("self_heal_backoff", object=str(key), repeats=fight.count,
                        delay_s=round(delay, 1))
        else:
            log.info("self_heal_scheduled", object=str(key), delay_s=round(delay, 1))


def _same_but_status(old: dict, new: dict) -> bool:
    """Only status (and the bookkeeping a write moves) changed."""
    skip = ("status", "metadata")
    if any(old.get(k) != new.get(k) for k in old.keys() | new.keys() if k not in skip):
        return False
    volatile = ("resourceVersion", "managedFields", "generation")
    a, b = old.get("metadata") or {}, new.get("metadata") or {}
    return all(a.get(k) == b.get(k) for k in a.keys() | b.keys() if k not in volatile)
