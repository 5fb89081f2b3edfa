"""A bounded log of committed changes keyed by resourceVersion, so watches can resume.

Kubernetes clients watch "from resourceVersion R": every change after R, in order. The log
keeps the newest `capacity` changes, and no more than `max_bytes` of them (objects are kept
as JSON text, a third of what the dicts would take, and a copy no caller can change); a
watch from before the oldest one kept gets Gone and relists, as a Kubernetes client does
on `410 Expired`. A modification keeps the object as it was before too, as Kubernetes'
watch cache does: a watch with a selector needs both to tell an object entering or
leaving its selection from one changing inside it.
"""

from __future__ import annotations

import json
import threading
from collections import deque
from dataclasses import dataclass

from gitops.errors import GitopsError
from gitops.model import jsoncodec

MAX_BYTES = 64 * 1024 * 1024


class Gone(GitopsError):
    """The requested resourceVersion is older than the oldest change still kept."""


@dataclass(frozen=True)
class Change:
    rv: int
    type: str          # ADDED | MODIFIED | DELETED
    kind: str
    body: str          # the object as JSON
    before: str = ""   # MODIFIED: the object as it was, as JSON

    @property
    def obj(self) -> dict:
        """A fresh copy of the object (decoded on each call: callers may change it)."""
        return jsoncodec.loads(self.body)

    @property
    def previous(self) -> dict | None:
        return jsoncodec.loads(self.before) if self.before else None


class ChangeLog:
    def __init__(self, start_rv: int, capacity: int = 10_000,
                 max_bytes: int = MAX_BYTES) -> None:
        self._entries: deque[Change] = deque()
        self._capacity = capacity
        self._max_bytes = max_bytes
        self._bytes = 0
        self._floor = start_rv          # changes after this one are all kept
        self._lock = threading.Lock()

    def extend(self, events: list[tuple]) -> None:
        """events: (type, object) or (type, object, object before) in commit order."""
        self.extend_serialized([
            Change(int(obj["metadata"]["resourceVersion"]), type_, str(obj.get("kind", "")),
                   _json(obj), _json(rest[0]) if rest and rest[0] else "")
            for type_, obj, *rest in events])

    def extend_serialized(self, changes: list[Change]) -> None:
        """Changes whose objects a backend already wrote as JSON, in commit order."""
        with self._lock:
            for change in changes:
                self._entries.append(change)
                self._bytes += len(change.body) + len(change.before)
            while self._entries and (len(self._entries) > self._capacity
                                     or self._bytes > self._max_bytes):
                dropped = self._entries.popleft()
                self._bytes -= len(dropped.body) + len(dropped.before)
                self._floor = dropped.rv

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


def _json(obj: dict) -> str:
    return json.dumps(obj, separators=(",", ":"))
