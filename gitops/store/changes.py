"""A bounded log of committed changes keyed by resourceVersion, so watches can resume.

Kubernetes clients watch "from resourceVersion R": every change after R, in order. The log
keeps the newest `capacity` changes; a watch from before the oldest one kept gets Gone and
relists, as a Kubernetes client does on `410 Expired`.
"""

from __future__ import annotations

import copy
import threading
from collections import deque
from dataclasses import dataclass

from gitops.errors import GitopsError


class Gone(GitopsError):
    """The requested resourceVersion is older than the oldest change still kept."""


@dataclass(frozen=True)
class Change:
    rv: int
    type: str          # ADDED | MODIFIED | DELETED
    obj: dict


class ChangeLog:
    def __init__(self, start_rv: int, capacity: int = 10_000) -> None:
        self._entries: deque[Change] = deque()
        self._capacity = capacity
        self._floor = start_rv          # changes after this one are all kept
        self._lock = threading.Lock()

    def extend(self, events: list[tuple[str, dict]]) -> None:
        with self._lock:
            for kind, obj in events:
                rv = int(obj["metadata"]["resourceVersion"])
                # A copy: callers may go on mutating the dict the store handed back.
                self._entries.append(Change(rv, kind, copy.deepcopy(obj)))
            while len(self._entries) > self._capacity:
                self._floor = self._entries.popleft().rv

    def since(self, rv: int) -> list[Change]:
        """Every kept change after rv, oldest first; Gone when some were already dropped."""
        with self._lock:
            if rv < self._floor:
                raise Gone(f"too old resource version: {rv} ({self._floor})")
            out = []
            for change in reversed(self._entries):     # watchers are usually near the head
                if change.rv <= rv:
                    break
                out.append(change)
            return out[::-1]

    @property
    def floor(self) -> int:
        return self._floor
