"""Drift records: one JSON log line per drifted object, in DESIGN.md's schema.

Identical records (same object, type, origin and fields) within a window are counted,
not repeated: the first is logged at once, repeats bump `occurrences`, and the next line
after the window carries the count."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

import structlog

from gitops.health import assess
from gitops.model import key_of
from gitops.model.times import rfc3339
from gitops.store.base import InventoryEntry, Store
from gitops.sync.diff import FieldDiff
from gitops.sync.status import SyncStatusBook

log = structlog.get_logger(component="drift")

EVENT = "drift.detected"        # the record's name is part of the contract (DESIGN.md)
RECENT = 500                    # records kept in memory for the UI's timeline


@dataclass
class _Seen:
    first_seen: float
    last_logged: float
    occurrences: int


def _value(v: object) -> object:
    """Keep records one line and readable: long values are summarised."""
    text = json.dumps(v, default=str)
    return v if len(text) <= 400 else text[:400] + "…"


def field_records(fields: tuple[FieldDiff, ...] | list[FieldDiff]) -> list[dict]:
    return [{"path": f.path, "desired": _value(f.desired), "live": _value(f.live),
             **({"line": f.line} if f.line else {})} for f in fields]


class DriftRecorder:
    def __init__(self, window: float = 300.0, clock: Callable[[], float] = time.time) -> None:
        self.window = window
        self.clock = clock
        self._seen: dict[str, _Seen] = {}
        self._lock = threading.Lock()
        # The latest records, newest last, for the UI's drift timeline (repeats within the
        # window update their record's count instead of adding one).
        self._recent: deque[dict] = deque(maxlen=RECENT)
        self._recent_by_identity: dict[str, dict] = {}

    def record(self, *, reconcile_id: str, trigger: str, source: dict, obj: dict,
               drift_type: str, origin: str, fields: list[dict], actor: str, health: dict,
               policy: dict, action: str) -> bool:
        """Log the record unless an identical one was logged within the window.
        Returns whether a line was written."""
        identity = json.dumps([obj.get("kind"), obj.get("namespace"), obj.get("name"),
                               drift_type, origin, fields, action], sort_keys=True, default=str)
        now = self.clock()
        with self._lock:
            seen = self._seen.get(identity)
            if seen is None:
                seen = self._seen[identity] = _Seen(now, 0.0, 0)
            seen.occurrences += 1
            if seen.last_logged and now - seen.last_logged < self.window:
                if (kept := self._recent_by_identity.get(identity)) is not None:
                    kept["drift"]["occurrences"] = seen.occurrences
                    kept["last_seen"] = rfc3339(now)
                return False
            seen.last_logged = now
            occurrences = seen.occurrences
            first_seen = seen.first_seen
            self._forget(now)
            drift = {"type": drift_type, "origin": origin, "fields": fields,
                     "first_seen": rfc3339(first_seen), "occurrences": occurrences,
                     "actor": actor}
            self._remember(identity, {"at": rfc3339(now), "last_seen": rfc3339(now),
                                      "trigger": trigger, "object": obj, "drift": {**drift},
                                      "health": health, "action": action})
        log.warning(EVENT, reconcile_id=reconcile_id, trigger=trigger, source=source,
                    object=obj, drift=drift, health=health, policy=policy, action=action)
        return True

    def _remember(self, identity: str, entry: dict) -> None:
        self._recent.append(entry)
        self._recent_by_identity[identity] = entry
        if len(self._recent_by_identity) > 2 * RECENT:      # keep only what is still kept
            kept = {id(e) for e in self._recent}
            self._recent_by_identity = {k: e for k, e in self._recent_by_identity.items()
                                        if id(e) in kept}

    def recent(self) -> list[dict]:
        """The latest records (as logged, with their count so far), newest first."""
        with self._lock:
            return json.loads(json.dumps(list(reversed(self._recent)), default=str))

    def _forget(self, now: float) -> None:
        if len(self._seen) > 10_000:
            self._seen = {k: v for k, v in self._seen.items()
                          if now - v.last_logged < self.window}


def declaring_object(store: Store, obj: dict | None
                     ) -> tuple[dict | None, InventoryEntry | None]:
    """Walk ownerReferences up to the object git declared (Pod -> ReplicaSet -> Deployment),
    returning it with its inventory entry, so runtime drift names a file and line."""
    inventory = store.inventory()
    seen = 0
    while obj is not None and seen < 10:
        entry = inventory.get(key_of(obj))
        if entry is not None:
            return obj, entry
        refs = obj.get("metadata", {}).get("ownerReferences") or []
        owner = next((r for r in refs if r.get("controller")), refs[0] if refs else None)
        obj = store.get_by_uid(owner["uid"]) if owner else None
        seen += 1
    return None, None


class RuntimeDriftReporter:
    """Drift the node found in the runtime (a container changed, killed or removed behind
    its back) as records in the same schema, named after the object git declared: the
    pod's owners are walked up to it, for its file and line."""

    def __init__(self, recorder: DriftRecorder, store: Store, source: Callable[[], dict],
                 policy: Callable[[], dict]) -> None:
        self.recorder = recorder
        self.store = store
        self.status = SyncStatusBook(store)
        self.source = source          # repo, ref, path
        self.policy = policy          # self_heal, prune

    def __call__(self, info: dict) -> bool:
        """info: what the node agent reports (pod, container, type, fields, actor, action)."""
        pod = info.get("pod")
        declared, entry = declaring_object(self.store, pod)
        subject = declared or pod or {}
        meta = subject.get("metadata", {})
        obj = {"apiVersion": subject.get("apiVersion", "v1"), "kind": subject.get("kind", "Pod"),
               "namespace": meta.get("namespace", ""), "name": meta.get("name", ""),
               "uid": meta.get("uid", ""), "file": entry.file if entry else "",
               "line": entry.line if entry else 0,
               "pod": (pod or {}).get("metadata", {}).get("name", ""),
               "container": info["container"]}
        health = assess(subject or None)
        return self.recorder.record(
            reconcile_id=uuid.uuid4().hex[:12], trigger="watch",
            source={**self.source(), "revision": self.status.fetched_revision() or None,
                    "applied_revision": self.status.applied_revision() or None},
            obj=obj, drift_type=info["type"], origin="runtime", fields=info["fields"],
            actor=info["actor"], health={"status": health.status, "message": health.message},
            policy=self.policy(), action=info["action"])
