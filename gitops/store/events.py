"""The edge that writes Events to the store (see gitops.model.events for what they are)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import replace

import structlog

from gitops.model import ObjectKey
from gitops.model.events import (
    MAX_EVENTS,
    TTL_SECONDS,
    EventSpec,
    aggregate_key,
    bumped,
    expired,
    new_event,
    secret_values,
)
from gitops.model.secrets import mask_text as mask
from gitops.store.base import Conflict, NotFound, Store

log = structlog.get_logger(component="events")


class EventRecorder:
    def __init__(self, store: Store, clock: Callable[[], float] = time.time, host: str = "",
                 coalesce: float = 10.0, ttl: float = TTL_SECONDS,
                 max_events: int = MAX_EVENTS, prune_every: float = 60.0) -> None:
        self.store = store
        self.clock = clock
        self.host = host
        self.coalesce = coalesce
        self.ttl = ttl
        self.max_events = max_events
        self.prune_every = prune_every
        self._lock = threading.Lock()
        self._names: dict[tuple, str] | None = None    # aggregate key -> Event name
        self._written: dict[tuple, float] = {}         # aggregate key -> last write
        self._pending: dict[tuple, int] = {}           # occurrences not written yet
        self._last_prune = 0.0
        self._seq = 0

    def record(self, spec: EventSpec) -> None:
        """Store one occurrence; never raises (an event is never worth a failed pass)."""
        try:
            with self._lock:
                self._record(spec)
        except Exception as exc:   # noqa: BLE001 - the store may be closing
            log.warning("event_not_recorded", reason=spec.reason, error=str(exc))

    def _record(self, spec: EventSpec) -> None:
        now = self.clock()
        self._record_one(spec, now)
        self._flush(now, due_only=True)       # counts other events held back long enough

    def _record_one(self, spec: EventSpec, now: float) -> None:
        secrets = secret_values(self.store.list("Secret", spec.namespace))
        spec = replace(spec, message=mask(spec.message, secrets))
        probe = new_event(spec, "", now, self.host)
        key = aggregate_key(probe)
        names = self._index()
        name = names.get(key)
        existing = self.store.get(ObjectKey("Event", spec.namespace, name)) if name else None
        if existing is not None:
            if now - self._written.get(key, 0.0) < self.coalesce:
                self._pending[key] = self._pending.get(key, 0) + 1
                return
            by = 1 + self._pending.pop(key, 0)
            try:
                self.store.update(bumped(existing, now, by))
                self._written[key] = now
                return
            except (Conflict, NotFound):
                pass                       # deleted (expired) meanwhile: start afresh
        self._pending.pop(key, None)
        for _ in range(5):
            self._seq += 1
            name = f"{spec.involved_object.get('name', 'event')}.{int(now * 1e9) + self._seq:x}"
            try:
                self.store.create(new_event(spec, name, now, self.host))
                break
            except Conflict:
                continue
        names[key] = name
        self._written[key] = now
        self._bound_caches(now)

    def _bound_caches(self, now: float) -> None:
        """A long-lived agent records events for ever-new pods: forget what no longer
        matters (the index is rebuilt from the store when it grows past its bound)."""
        if len(self._written) > 2 * self.max_events:
            self._written = {k: t for k, t in self._written.items()
                             if now - t < self.coalesce or k in self._pending}
        if self._names is not None and len(self._names) > 2 * self.max_events:
            self._names = None

    def _index(self) -> dict[tuple, str]:
        """Built from the store once, so counts continue across an agent restart."""
        if self._names is None:
            self._names = {aggregate_key(e): e["metadata"]["name"]
                           for e in self.store.list("Event")}
        return self._names

    def flush(self) -> None:
        """Write counts still held back by coalescing."""
        with self._lock:
            self._flush(self.clock(), due_only=False)

    def _flush(self, now: float, due_only: bool) -> None:
        if not self._pending:
            return
        names = self._index()
        for key, count in list(self._pending.items()):
            if due_only and now - self._written.get(key, 0.0) < self.coalesce:
                continue
            existing = self.store.get(ObjectKey("Event", key[3] or "default",
                                                names.get(key, "")))
            self._pending.pop(key)
            if existing is not None:
                try:
                    self.store.update(bumped(existing, now, count))
                    self._written[key] = now
                except (Conflict, NotFound):
                    pass

    def prune(self, force: bool = False) -> int:
        """Delete expired Events (at most once per prune_every seconds unless forced)."""
        now = self.clock()
        if not force and now - self._last_prune < self.prune_every:
            return 0
        self._last_prune = now
        self.flush()
        gone = expired(self.store.list("Event"), now, self.ttl, self.max_events)
        with self._lock:
            for key in gone:
                try:
                    self.store.delete(key)
                except NotFound:
                    pass
            if gone and self._names is not None:
                names = {k.name for k in gone}
                self._names = {k: v for k, v in self._names.items() if v not in names}
        return len(gone)
