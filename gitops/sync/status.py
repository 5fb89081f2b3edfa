"""The sync's state as one typed object with Kubernetes-style conditions.

SyncStatus says which revision was fetched and applied, whether a rollback pins one,
whether syncing is suspended, how the last sync went, and conditions over it (Synced,
Suspended, Pinned; Healthy is added by whoever knows the objects' health). SyncStatusBook
is the one place that reads and writes it. It is kept in the store's state table under the
names earlier versions used (applied_revision, fetched_revision, pin, suspended,
last_sync), so a data dir carries over and `gitops status -o json` keeps its keys.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from gitops.model.times import rfc3339
from gitops.store.base import Store

SYNCED, SUSPENDED, PINNED, HEALTHY = "Synced", "Suspended", "Pinned", "Healthy"
TRUE, FALSE, UNKNOWN = "True", "False", "Unknown"

# State names (the store's state table).
APPLIED, FETCHED, PIN, SUSPEND, LAST_SYNC, CONDITIONS, HOOKS = (
    "applied_revision", "fetched_revision", "pin", "suspended", "last_sync", "sync_conditions",
    "hooks")


@dataclass(frozen=True)
class Pin:
    """A rollback: sync `sha` instead of the branch tip until the tip moves past `head`."""
    sha: str
    head: str = ""

    @classmethod
    def from_dict(cls, raw: object) -> Pin | None:
        if not isinstance(raw, dict) or not raw.get("sha"):
            return None
        return cls(str(raw["sha"]), str(raw.get("head") or ""))

    def as_dict(self) -> dict:
        return {"sha": self.sha, "head": self.head}


@dataclass(frozen=True)
class Condition:
    type: str
    status: str                   # True | False | Unknown
    reason: str
    message: str = ""
    last_transition_time: str = ""

    @classmethod
    def from_dict(cls, raw: dict) -> Condition:
        return cls(raw.get("type", ""), raw.get("status", UNKNOWN), raw.get("reason", ""),
                   raw.get("message", ""), raw.get("lastTransitionTime", ""))

    def as_dict(self) -> dict:
        out = {"type": self.type, "status": self.status, "reason": self.reason,
               "message": self.message}
        if self.last_transition_time:
            out["lastTransitionTime"] = self.last_transition_time
        return out


@dataclass(frozen=True)
class SyncStatus:
    applied_revision: str | None = None
    fetched_revision: str | None = None
    pin: Pin | None = None
    suspended: bool = False
    last_sync: dict | None = None        # the summary of the last sync (as logged)
    conditions: tuple[Condition, ...] = field(default_factory=tuple)
    hooks: dict | None = None            # the last hook run: revision, result, hooks

    def condition(self, ctype: str) -> Condition | None:
        return next((c for c in self.conditions if c.type == ctype), None)

    def as_dict(self) -> dict:
        """The keys `gitops status -o json` has always printed, plus the conditions."""
        return {"applied_revision": self.applied_revision,
                "fetched_revision": self.fetched_revision,
                "pin": self.pin.as_dict() if self.pin else None,
                "suspended": self.suspended, "last_sync": self.last_sync,
                "conditions": [c.as_dict() for c in self.conditions], "hooks": self.hooks}


# -- conditions (pure) ------------------------------------------------------------------
def synced_condition(last_sync: dict | None) -> Condition:
    if not last_sync:
        return Condition(SYNCED, UNKNOWN, "NotSyncedYet")
    result, revision = last_sync.get("result", ""), last_sync.get("revision", "")
    if result in ("synced", "unchanged"):
        return Condition(SYNCED, TRUE, "RevisionApplied", f"revision {revision} applied")
    reason = {"failed": "SyncFailed", "refused": "SyncRefused"}.get(result, "SyncFailed")
    return Condition(SYNCED, FALSE, reason, last_sync.get("message") or result)


def suspended_condition(suspended: bool) -> Condition:
    return Condition(SUSPENDED, TRUE, "SuspendedByUser", "gitops resume to sync again") \
        if suspended else Condition(SUSPENDED, FALSE, "Active")


def pinned_condition(pin: Pin | None) -> Condition:
    return Condition(PINNED, TRUE, "RolledBack", f"pinned to {pin.sha} until a new commit "
                     "or gitops unpin") if pin else Condition(PINNED, FALSE, "FollowingBranch")


def health_condition(objects: list[dict]) -> Condition:
    """Over the objects git declared, as `gitops status` lists them (health per object);
    Unknown (no controller reports on it) is not unhealthy."""
    unhealthy = [o for o in objects if o.get("health") not in ("Healthy", "Unknown")]
    if not unhealthy:
        return Condition(HEALTHY, TRUE, "AllHealthy", f"{len(objects)} object(s) healthy")
    first = unhealthy[0]
    return Condition(HEALTHY, FALSE, first.get("health") or "Unknown",
                     f"{len(unhealthy)}/{len(objects)} object(s) not healthy, e.g. "
                     f"{first.get('kind')}/{first.get('name')}: {first.get('message') or ''}"
                     .rstrip(": "))


def merge_conditions(before: tuple[Condition, ...], updates: list[Condition],
                     now: float) -> tuple[Condition, ...]:
    """Conditions with `updates` in place; a condition keeps its lastTransitionTime while
    its status stays the same (Kubernetes' meta.SetStatusCondition)."""
    out = {c.type: c for c in before}
    for cond in updates:
        old = out.get(cond.type)
        stamp = old.last_transition_time if old is not None and old.status == cond.status \
            else rfc3339(now)
        out[cond.type] = replace(cond, last_transition_time=stamp)
    order = (SYNCED, SUSPENDED, PINNED)
    return tuple(sorted(out.values(), key=lambda c: (order.index(c.type)
                                                     if c.type in order else len(order),
                                                     c.type)))


# -- the one place that reads and writes it ---------------------------------------------
class SyncStatusBook:
    def __init__(self, store: Store, clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self.clock = clock

    def read(self) -> SyncStatus:
        get = self.store.get_state
        status = SyncStatus(applied_revision=get(APPLIED), fetched_revision=get(FETCHED),
                            pin=Pin.from_dict(get(PIN)), suspended=bool(get(SUSPEND)),
                            last_sync=get(LAST_SYNC), hooks=self.hooks())
        # Derived from the fields, so they always agree with them; the stored ones give
        # the transition times.
        return replace(status, conditions=merge_conditions(
            self._stored(), [synced_condition(status.last_sync),
                             suspended_condition(status.suspended),
                             pinned_condition(status.pin)], self.clock()))

    # single fields, for the sync's hot path
    def applied_revision(self) -> str:
        return str(self.store.get_state(APPLIED) or "")

    def fetched_revision(self) -> str:
        return str(self.store.get_state(FETCHED) or "")

    def suspended(self) -> bool:
        return bool(self.store.get_state(SUSPEND))

    def pin(self) -> Pin | None:
        return Pin.from_dict(self.store.get_state(PIN))

    def hooks(self) -> dict | None:
        value = self.store.get_state(HOOKS)
        return value if isinstance(value, dict) else None

    # writes
    def record_fetch(self, head: str) -> None:
        self.store.set_state(FETCHED, head)

    def record_applied(self, revision: str) -> None:
        self.store.set_state(APPLIED, revision)

    def record_result(self, summary: dict) -> None:
        """The last sync's summary; Synced follows its result."""
        self.store.set_state(LAST_SYNC, summary)
        self._set_conditions([synced_condition(summary)])

    def record_hooks(self, run: dict) -> None:
        """The last hook run: {revision, result, phase (of a failure), hooks: [...]}."""
        self.store.set_state(HOOKS, run)

    def set_pin(self, pin: Pin | None) -> None:
        self.store.set_state(PIN, pin.as_dict() if pin else None)
        self._set_conditions([pinned_condition(pin)])

    def set_suspended(self, suspended: bool) -> None:
        self.store.set_state(SUSPEND, suspended)
        self._set_conditions([suspended_condition(suspended)])

    def _stored(self) -> tuple[Condition, ...]:
        stored = self.store.get_state(CONDITIONS)
        return tuple(Condition.from_dict(c) for c in stored if isinstance(c, dict)) \
            if isinstance(stored, list) else ()

    def _set_conditions(self, updates: list[Condition]) -> None:
        before = self._stored()
        after = merge_conditions(before, updates, self.clock())
        if after != before:
            self.store.set_state(CONDITIONS, [c.as_dict() for c in after])
