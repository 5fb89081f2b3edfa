"""Planning in proportion to what changed (Argo CD's cache of live state, on one host).

The planner follows the store's watch: a write to an object marks its key dirty. A plan
re-reads and re-diffs only dirty keys and keys whose desired state or inventory entry moved
since the last plan; every other key keeps the change computed before (a pair compared
once is not compared again while neither side moves). The first plan reads everything, so
does one after the ignore rules change. A no-op sync of 10,000 objects therefore reads
nothing from the store and diffs nothing.

`check(keys)` is the same for a few keys at once: the live drift watch asks it whether an
object it saw change is still what git declares.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping, Sequence

from gitops.model import ObjectKey, key_of
from gitops.store.base import InventoryEntry, Store
from gitops.sync.diff import Change, Desired, Plan, apply_rank, compute_plan
from gitops.sync.ignore import IgnoreRule
from gitops.sync.options import DEFAULT, SyncOptions


class _Applied(Mapping):
    """What git last applied, read from the store only for the keys that need it."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self._read: dict[ObjectKey, dict | None] = {}

    def __getitem__(self, key: ObjectKey) -> dict | None:
        if key not in self._read:
            self._read[key] = self._store.applied(key) if hasattr(self._store, "applied") \
                else None
        return self._read[key]

    def __iter__(self):
        return iter(self._read)

    def __len__(self) -> int:
        return len(self._read)

    def __bool__(self) -> bool:
        return True


class Planner:
    def __init__(self, store: Store, app: SyncOptions = DEFAULT) -> None:
        self.store = store
        self.app = app                  # the app's sync options
        self._lock = threading.RLock()
        self._dirty_lock = threading.Lock()
        # key -> the object as the watch last told it (None: deleted), so a plan need not
        # read it back from the store
        self._dirty: dict[ObjectKey, dict | None] = {}
        self._everything = True
        self._changes: dict[ObjectKey, Change] = {}
        self._applied_used: dict[ObjectKey, str] = {}
        self._desired: Sequence[Desired] | None = None
        self._wanted: dict[ObjectKey, Desired] = {}
        self._wanted_order: list[ObjectKey] = []
        self._gone_order: list[ObjectKey] = []
        self._rules: tuple[IgnoreRule, ...] = ()
        self._memo: dict = {}
        store.watch(self._on_change)

    # -- following the store ------------------------------------------------------------
    def _on_change(self, event: str, obj: dict) -> None:
        if obj.get("kind") == "Event":
            return
        key = key_of(obj)
        with self._dirty_lock:
            self._dirty[key] = None if event == "DELETED" else obj

    def _take_dirty(self, only: Iterable[ObjectKey] | None = None
                    ) -> tuple[dict[ObjectKey, dict | None], bool]:
        """The keys that changed and their objects as last told (or, for `only`, those
        keys read from the store)."""
        with self._dirty_lock:
            if only is None:
                dirty, self._dirty = self._dirty, {}
                everything, self._everything = self._everything, False
                return dirty, everything
            keys = set(only)
            for key in keys:
                self._dirty.pop(key, None)
        # read after the keys left the dirty set: a write from now on marks them again
        return {k: self.store.get(k) for k in keys}, False

    def forget(self) -> None:
        """Read and compare everything at the next plan."""
        with self._dirty_lock:
            self._everything = True

    def last_live(self, key: ObjectKey) -> dict | None:
        """The live object the last plan or check compared (read only)."""
        change = self._changes.get(key)
        return change.live if change is not None else None

    @property
    def wanted(self) -> dict[ObjectKey, Desired]:
        """The objects of the last plan's revision, by key (read only)."""
        return self._wanted

    # -- planning -------------------------------------------------------------------------
    def plan(self, desired: Sequence[Desired], inventory: Mapping[ObjectKey, InventoryEntry],
             rules: tuple[IgnoreRule, ...] = ()) -> Plan:
        with self._lock:
            dirty, everything = self._take_dirty()
            if rules != self._rules:
                self._rules, everything = rules, True
                self._memo.clear()
            new_desired = desired is not self._desired
            if new_desired:
                self._desired = desired
                self._wanted = {d.key: d for d in desired}
                self._wanted_order = sorted(self._wanted, key=apply_rank)
                if len(self._memo) > 2 * len(self._wanted) + 100:
                    self._memo.clear()      # keys git dropped long ago: start over
            wanted = self._wanted
            known: dict[ObjectKey, dict | None] = {}
            if everything:
                todo = set(wanted) | set(inventory)
            else:
                known = {k: o for k, o in dirty.items() if k in wanted or k in inventory}
                todo = {k for k in dirty if k in wanted or k in inventory}
                if new_desired:
                    todo |= {k for k, d in wanted.items()
                             if (c := self._changes.get(k)) is None or
                             c.desired_hash != d.hash or c.file != d.file or c.line != d.line}
                    # keys git no longer declares: now prune candidates, not objects
                    todo |= {k for k, c in self._changes.items()
                             if k not in wanted and c.desired is not None}
                todo |= {k for k, e in inventory.items()
                         if self._applied_used.get(k) != e.applied_hash}
                todo |= {k for k in self._applied_used if k not in inventory}
            self._recompute(todo, inventory, known)
            if new_desired or todo:     # a key entering or leaving the inventory is in todo
                self._gone_order = sorted((k for k in inventory if k not in wanted),
                                          key=apply_rank, reverse=True)
            changes = self._changes
            return Plan([changes[k] for k in (*self._wanted_order, *self._gone_order)
                         if k in changes])

    def check(self, keys: Iterable[ObjectKey],
              inventory: Mapping[ObjectKey, InventoryEntry]) -> list[Change]:
        """The changes a sync would make for these keys now (drift, or nothing)."""
        with self._lock:
            known, _ = self._take_dirty(only=[k for k in keys if k in inventory])
            self._recompute(set(known), inventory, known)
            return [self._changes[k] for k in known if k in self._changes]

    def _recompute(self, todo: set[ObjectKey], inventory: Mapping[ObjectKey, InventoryEntry],
                   known: Mapping[ObjectKey, dict | None]) -> None:
        if not todo:
            return
        live = {}
        for k in todo:
            obj = known[k] if k in known else self.store.get(k)
            if obj is not None:
                live[k] = obj
        wanted = self._wanted
        applied = {k: inventory[k].applied_hash for k in todo if k in inventory}
        sub = compute_plan([wanted[k] for k in todo if k in wanted], live, applied,
                           _Applied(self.store), self._memo, self._rules, self.app)
        for k in todo:
            self._changes.pop(k, None)
            if k in inventory:
                self._applied_used[k] = inventory[k].applied_hash
            else:
                self._applied_used.pop(k, None)
        for change in sub.changes:
            self._changes[change.key] = change
