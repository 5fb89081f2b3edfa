"""The store on etcd v3, for several servers sharing one cluster state (HA).

Like Kubernetes' apiserver: an object's resourceVersion is the etcd revision that last
wrote it (set on read, not stored), a list is consistent with the revision of the range
that read it, and a watch follows etcd's own watch from a revision, so writes made by
other servers reach this server's watchers and API watches too. A watch from a revision
older than this server's log is served from etcd's history; one older than etcd's last
compaction is Gone (410: clients relist).

Transactions: reads inside one are pinned to the revision of its first read (a snapshot)
and its writes are buffered, then committed as one etcd Txn whose compares check that every
key read and written still has the mod_revision it was read at (optimistic concurrency:
Conflict when another server got there first). Watchers are told by the watch, in revision
order, whoever wrote; a write returns once this server's watchers have seen it, as the
embedded backends do.

Events carry an etcd lease (TTL) as Kubernetes' do, so they expire on their own.

Keys, under a prefix (default /gitops/): o/KIND/NAMESPACE/NAME objects, u/UID an object's
key, a/... what git applied, i the inventory, s/NAME state, h/TIME history.
"""

from __future__ import annotations

import bisect
import itertools
import json
import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import requests
import structlog

from gitops.model import ObjectKey, jsoncodec, key_of
from gitops.store.backend import HISTORY_LIMIT, Backend, as_json
from gitops.store.base import Conflict, InventoryEntry, NotFound
from gitops.store.changes import Change, ChangeLog, Gone
from gitops.store.etcd_client import (
    Compacted,
    EtcdClient,
    KeyValue,
    Unavailable,
    delete_op,
    mod_equals,
    prefix_end,
    put_op,
)

log = structlog.get_logger(__name__)

EVENT_TTL = 3600            # seconds an Event lives, as Kubernetes' --event-ttl
DISPATCH_WAIT = 10.0        # seconds a write waits for this server's watchers to see it


def parse_url(url: str) -> list[str]:
    """etcd://h1:2379,h2:2379 -> ["h1:2379", "h2:2379"] (scheme http; :2379 by default)."""
    if not url.startswith("etcd://"):
        raise ValueError(f"not an etcd datastore URL (etcd://host:port,...): {url!r}")
    hosts = [h.strip() for h in url[len("etcd://"):].rstrip("/").split(",") if h.strip()]
    if not hosts:
        raise ValueError(f"no etcd endpoint in {url!r}")
    return [h if ":" in h else f"{h}:2379" for h in hosts]


@dataclass
class _Txn:
    owner: int
    read_rev: int = 0
    reads: dict[str, int] = field(default_factory=dict)        # key -> mod_revision seen
    values: dict[str, KeyValue | None] = field(default_factory=dict)   # as read at read_rev
    writes: dict[str, bytes | None] = field(default_factory=dict)
    leases: dict[str, int] = field(default_factory=dict)
    written: list[dict] = field(default_factory=list)        # objects to give their rv


class EtcdChangeLog(ChangeLog):
    """This server's log of changes; older ones come from etcd's history until compacted."""

    def __init__(self, start_rv: int, older) -> None:
        super().__init__(start_rv)
        self._older = older

    def since(self, rv: int) -> list[Change]:
        try:
            return super().since(rv)
        except Gone:
            floor = self.floor
            older = [c for c in self._older(rv, floor) if c.rv <= floor]
            return older + super().since(floor)


class EtcdStore(Backend):
    def __init__(self, endpoints: list[str] | str, prefix: str = "/gitops/",
                 history_limit: int = HISTORY_LIMIT, event_ttl: int = EVENT_TTL,
                 timeout: float = 5.0) -> None:
        if isinstance(endpoints, str):
            endpoints = parse_url(endpoints)
        self.client = EtcdClient(endpoints, timeout=timeout)
        self.url = "etcd://" + ",".join(endpoints)
        self.prefix = prefix if prefix.endswith("/") else prefix + "/"
        self.history_limit = history_limit
        self.event_ttl = event_ttl
        self._txn: _Txn | None = None
        self._event_lease = (0, 0.0)
        start = self.client.revision()
        super().__init__(start)
        self.changes = EtcdChangeLog(start, self._history)
        self._seen = start                      # newest revision told to watchers
        # Every object's (namespace, name) per kind, sorted, as of _index_rev: kept by the
        # watch thread, so a page of a chunked list is chosen here and read in one request.
        self._index_lock = threading.Lock()
        self._index: dict[str, list[tuple[str, str]]] = {}
        self._index_rev = 0
        self._rebuild_index(start)
        self._seen_cond = threading.Condition()
        self._unobserved = threading.local()    # .on: this thread's writes do not wait
        self._in_watcher = ""                   # the watcher the watch thread is in
        self._stop = threading.Event()
        self._stream: requests.Response | None = None
        self._watch_thread = threading.Thread(target=self._follow, name="etcd-watch",
                                              daemon=True)
        self._watch_thread.start()

    # -- keys ------------------------------------------------------------------------
    def _okey(self, key: ObjectKey) -> str:
        return f"{self.prefix}o/{key.kind}/{key.namespace}/{key.name}"

    def _akey(self, key: ObjectKey) -> str:
        return f"{self.prefix}a/{key.kind}/{key.namespace}/{key.name}"

    def _object_key(self, etcd_key: str) -> ObjectKey | None:
        head = self.prefix + "o/"
        if not etcd_key.startswith(head):
            return None
        kind, namespace, name = etcd_key[len(head):].split("/", 2)
        return ObjectKey(kind, namespace, name)

    # -- transactions ----------------------------------------------------------------
    def _mine(self) -> _Txn | None:
        txn = self._txn
        return txn if txn is not None and txn.owner == threading.get_ident() else None

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """Writes inside commit as one etcd Txn, or not at all (nested calls join)."""
        with self._lock:
            outer = self._txn is None
            if outer:
                self._txn = _Txn(threading.get_ident())
            try:
                yield
            except BaseException:
                if outer:
                    self._txn = None
                raise
            if not outer:
                return
            txn, self._txn = self._txn, None
            revision = self._commit_txn(txn)
        if revision:
            self._wait_seen(revision)

    def _commit_txn(self, txn: _Txn) -> int:
        if not txn.writes:
            return 0
        compare = [mod_equals(k, rev) for k, rev in txn.reads.items()]
        ops = [delete_op(k) if v is None else put_op(k, v, txn.leases.get(k, 0))
               for k, v in txn.writes.items()]
        ok, revision = self.client.txn(compare, ops)
        if not ok:
            raise Conflict("the store changed while this write was prepared (another "
                           "server wrote the same objects): retry")
        for obj in txn.written:
            obj["metadata"]["resourceVersion"] = str(revision)
        return revision

    @contextmanager
    def unobserved(self) -> Iterator[None]:
        outer = getattr(self._unobserved, "on", False)
        self._unobserved.on = True
        try:
            yield
        finally:
            self._unobserved.on = outer

    def _wait_seen(self, revision: int) -> None:
        """Return once this server's watchers have seen revision (not on the watch thread,
        where a watcher's own write would wait for itself; not inside unobserved())."""
        if threading.current_thread() is self._watch_thread or \
                getattr(self._unobserved, "on", False):
            return
        with self._seen_cond:
            if not self._seen_cond.wait_for(lambda: self._seen >= revision, DISPATCH_WAIT):
                # a watcher that waits for a lock this writer holds shows here
                log.warning("etcd_watch_lagging", revision=revision, seen=self._seen,
                            in_watcher=self._in_watcher)

    def _read(self, key: str) -> KeyValue | None:
        txn = self._mine()
        if txn is None:
            return self.client.get(key)
        if key in txn.writes:
            value = txn.writes[key]
            return None if value is None else KeyValue(key, value, 0, 0)
        if key in txn.values:
            return txn.values[key]
        rev, kvs, _ = self.client.range(key, revision=txn.read_rev)
        txn.read_rev = txn.read_rev or rev
        kv = kvs[0] if kvs else None
        self._seen_in(txn, key, kv)
        return kv

    @staticmethod
    def _seen_in(txn: _Txn, key: str, kv: KeyValue | None) -> None:
        txn.reads.setdefault(key, kv.mod_revision if kv else 0)
        txn.values[key] = kv

    def prefetch(self, keys: list[ObjectKey], batch: int = 100) -> None:
        """Inside a transaction: read these objects now, `batch` to a request, at the
        transaction's revision; its reads of them are then answered from memory (a
        batch of binds costs a few requests, not one per pod)."""
        txn = self._mine()
        if txn is None:
            return
        wanted = [k for k in dict.fromkeys(self._okey(key) for key in keys)
                  if k not in txn.values and k not in txn.writes]
        for start in range(0, len(wanted), batch):
            chunk = wanted[start:start + batch]
            rev, found = self.client.read_many(chunk, txn.read_rev)
            txn.read_rev = txn.read_rev or rev
            for key in chunk:
                self._seen_in(txn, key, found.get(key))

    def _read_prefix(self, prefix: str) -> tuple[int, list[KeyValue]]:
        txn = self._mine()
        if txn is None:
            return self.client.prefix(prefix)
        rev, kvs = self.client.prefix(prefix, txn.read_rev)
        txn.read_rev = txn.read_rev or rev
        if not any(k.startswith(prefix) for k in txn.writes):
            return rev, kvs
        merged = {kv.key: kv for kv in kvs}
        for k, v in txn.writes.items():
            if k.startswith(prefix):
                if v is None:
                    merged.pop(k, None)
                else:
                    merged[k] = KeyValue(k, v, 0, 0)
        return rev, [merged[k] for k in sorted(merged)]

    def _write(self, key: str, value: bytes | None, lease: int = 0) -> None:
        txn = self._mine()
        assert txn is not None, "writes happen inside a transaction"
        txn.writes[key] = value
        if lease:
            txn.leases[key] = lease

    def resource_version(self) -> int:
        txn = self._mine()
        if txn is None:
            return self.client.revision()
        if not txn.read_rev:
            txn.read_rev = self.client.revision()
        return txn.read_rev

    def _pending_rv(self) -> str:
        """The revision this transaction will most likely commit at (fixed at commit)."""
        return str(self.resource_version() + 1)

    # -- objects ---------------------------------------------------------------------
    @staticmethod
    def _decode(kv: KeyValue) -> dict:
        obj = jsoncodec.loads(kv.value)
        if kv.mod_revision:
            obj.setdefault("metadata", {})["resourceVersion"] = str(kv.mod_revision)
        return obj

    def get(self, key: ObjectKey) -> dict | None:
        kv = self._read(self._okey(key))
        return self._decode(kv) if kv else None

    def get_by_uid(self, uid: str) -> dict | None:
        kv = self._read(f"{self.prefix}u/{uid}")
        if kv is None:
            return None
        key = self._object_key(kv.value.decode())
        obj = self.get(key) if key else None
        return obj if obj and obj["metadata"].get("uid") == uid else None

    def list(self, kind: str, namespace: str | None = None) -> list[dict]:
        return self.snapshot(kind, namespace)[1]

    def snapshot(self, kind: str, namespace: str | None = None) -> tuple[int, list[dict]]:
        head = f"{self.prefix}o/{kind}/" + ("" if namespace is None else f"{namespace}/")
        rev, kvs = self._read_prefix(head)
        objects = [self._decode(kv) for kv in kvs]
        objects.sort(key=lambda o: (o["metadata"].get("namespace", ""),
                                    o["metadata"]["name"]))
        return rev, objects

    def page(self, kind: str, namespace: str | None, after: tuple[str, str] | None,
             limit: int | None) -> tuple[int, list[dict], int]:
        # Chosen from the sorted key index (as of the revision the watch has reached),
        # then only the page's values are read, at that revision, in one request.
        if self._mine() is not None or not limit:
            return super().page(kind, namespace, after, limit)
        with self._index_lock:
            rev, positions = self._index_rev, self._index.get(kind, [])
            low, high = 0, len(positions)
            if namespace is not None:
                low = bisect.bisect_left(positions, (namespace, ""))
                high = bisect.bisect_left(positions, (namespace + "\0", ""))
            if after is not None:
                low = max(low, bisect.bisect_right(positions, after, low, high))
            chosen = positions[low:min(high, low + limit)]
            remaining = max(0, high - low - limit)
        try:
            return rev, self._values(kind, chosen, rev), remaining
        except Compacted:        # the index's revision is gone: choose from the keys now
            return self._page_from_keys(kind, namespace, after, limit)

    def _values(self, kind: str, chosen: list[tuple[str, str]], rev: int) -> list[dict]:
        """The objects at these positions, in order, as of rev."""
        base = f"{self.prefix}o/{kind}/"
        spans = []
        for ns, group in itertools.groupby(chosen, key=lambda p: p[0]):
            names = [name for _, name in group]
            # one namespace's chosen names are contiguous in key order too
            spans.append((f"{base}{ns}/{names[0]}", f"{base}{ns}/{names[-1]}\0"))
        if not spans:
            return []
        kvs = self.client.ranges(spans, rev)
        objects = {_split(kv.key[len(base):]): self._decode(kv) for kv in kvs}
        return [objects[p] for p in chosen if p in objects]

    def _page_from_keys(self, kind: str, namespace: str | None,
                        after: tuple[str, str] | None,
                        limit: int) -> tuple[int, list[dict], int]:
        # Key order is not (namespace, name) order ("a-b/" sorts before "a/"), so the page
        # is chosen from the keys alone, then only its values are read, at one revision.
        base = f"{self.prefix}o/{kind}/"
        rev, keys = self._keys(base + ("" if namespace is None else f"{namespace}/"))
        positions = sorted(_split(k[len(base):]) for k in keys)
        if after is not None:
            positions = positions[bisect.bisect_right(positions, after):]
        chosen, remaining = positions[:limit], max(0, len(positions) - limit)
        return rev, self._values(kind, chosen, rev), remaining

    # -- the key index -----------------------------------------------------------------
    def _rebuild_index(self, rev: int) -> None:
        """Every object key as of rev (the watch goes on from rev + 1)."""
        head = self.prefix + "o/"
        _, keys = self._keys(head, revision=rev)
        index: dict[str, list[tuple[str, str]]] = {}
        for key in keys:
            kind, rest = key[len(head):].split("/", 1)
            index.setdefault(kind, []).append(_split(rest))
        for positions in index.values():
            positions.sort()
        with self._index_lock:
            self._index, self._index_rev = index, rev

    def _index_events(self, events, rev: int) -> None:
        head = self.prefix + "o/"
        with self._index_lock:
            for event in events:
                if not event.kv.key.startswith(head):
                    continue
                kind, rest = event.kv.key[len(head):].split("/", 1)
                positions = self._index.setdefault(kind, [])
                position = _split(rest)
                at = bisect.bisect_left(positions, position)
                present = at < len(positions) and positions[at] == position
                if event.type == "DELETE" and present:
                    del positions[at]
                elif event.type != "DELETE" and not present:
                    positions.insert(at, position)
            self._index_rev = max(self._index_rev, rev)

    def _keys(self, prefix: str, page: int = 10000, revision: int = 0) -> tuple[int, list[str]]:
        end = prefix_end(prefix)
        rev, kvs, _ = self.client.range(prefix, end, revision, keys_only=True, limit=page)
        keys = [kv.key for kv in kvs]
        while len(kvs) == page:
            _, kvs, _ = self.client.range(keys[-1] + "\0", end, rev, keys_only=True,
                                          limit=page)
            keys += [kv.key for kv in kvs]
        return rev, keys

    def all_objects(self) -> Iterator[dict]:
        _, kvs = self._read_prefix(self.prefix + "o/")
        objects = [self._decode(kv) for kv in kvs]
        objects.sort(key=lambda o: (o.get("kind", ""), o["metadata"].get("namespace", ""),
                                    o["metadata"]["name"]))
        return iter(objects)

    def create(self, obj: dict) -> dict:
        key = key_of(obj)
        with self.transaction():
            if self._read(self._okey(key)) is not None:
                raise Conflict(f"{key} already exists")
            self._put_object(key, obj)
        return obj

    def update(self, obj: dict) -> dict:
        key = key_of(obj)
        with self.transaction():
            stored = self._read(self._okey(key))
            if stored is None:
                raise NotFound(f"{key} not found")
            given = obj["metadata"].get("resourceVersion")
            rv = str(stored.mod_revision) if stored.mod_revision else None
            if given is not None and rv is not None and given != rv:
                raise Conflict(f"{key} was modified (resourceVersion {given} != {rv})")
            old_uid = json.loads(stored.value)["metadata"].get("uid", "")
            if old_uid and old_uid != obj["metadata"].get("uid", ""):
                self._write(f"{self.prefix}u/{old_uid}", None)
            self._put_object(key, obj)
        return obj

    def delete(self, key: ObjectKey) -> dict | None:
        with self.transaction():
            old = self.get(key)
            if old is None:
                return None
            self._write(self._okey(key), None)
            if old["metadata"].get("uid"):
                self._write(f"{self.prefix}u/{old['metadata']['uid']}", None)
        return old

    def _put_object(self, key: ObjectKey, obj: dict) -> None:
        meta = obj["metadata"]
        meta["resourceVersion"] = self._pending_rv()
        lease = self._lease_for_event() if key.kind == "Event" else 0
        self._write(self._okey(key), as_json(obj).encode(), lease)
        if meta.get("uid"):
            self._write(f"{self.prefix}u/{meta['uid']}", self._okey(key).encode(), lease)
        self._mine().written.append(obj)

    def _lease_for_event(self) -> int:
        """One lease per minute for every Event written in it (as the apiserver shares
        them), living event_ttl after that minute."""
        window = min(60, self.event_ttl)
        lease, granted = self._event_lease
        if not lease or time.monotonic() - granted > window:
            lease = self.client.grant(self.event_ttl + window)
            self._event_lease = (lease, time.monotonic())
        return lease

    # -- inventory, state, history ------------------------------------------------------
    def inventory(self) -> dict[ObjectKey, InventoryEntry]:
        kv = self._read(self.prefix + "i")
        rows = json.loads(kv.value) if kv else []
        return {ObjectKey(*r[:3]): InventoryEntry(ObjectKey(*r[:3]), *r[3:]) for r in rows}

    def set_inventory(self, entries: list[InventoryEntry]) -> None:
        rows = [[*e.key, e.api_version, e.file, e.line, e.applied_hash, e.sync_status]
                for e in entries]
        with self.transaction():
            self._read(self.prefix + "i")
            self._write(self.prefix + "i", as_json(rows).encode())

    def applied(self, key: ObjectKey) -> dict | None:
        kv = self._read(self._akey(key))
        return json.loads(kv.value) if kv else None

    def set_applied(self, bodies: dict[ObjectKey, dict | None]) -> None:
        with self.transaction():
            for key, body in bodies.items():
                self._write(self._akey(key), None if body is None else as_json(body).encode())

    def get_state(self, name: str, default: object = None) -> object:
        kv = self._read(f"{self.prefix}s/{name}")
        return json.loads(kv.value) if kv else default

    def set_state(self, name: str, value: object) -> None:
        with self.transaction():
            self._write(f"{self.prefix}s/{name}", json.dumps(value).encode())

    def record_sync(self, entry: dict) -> None:
        head = self.prefix + "h/"
        with self.transaction():
            self._write(f"{head}{time.time_ns():020d}{os.urandom(3).hex()}",
                        json.dumps(entry).encode())
            _, kvs = self._read_prefix(head)
            for kv in kvs[:max(0, len(kvs) - self.history_limit)]:
                self._write(kv.key, None)

    def history(self, limit: int = 20) -> list[dict]:
        _, kvs = self._read_prefix(self.prefix + "h/")
        return [json.loads(kv.value) for kv in reversed(kvs[-limit:])] if limit else []

    # -- backup and restore (gitops.store.backup) -----------------------------------------
    def dump(self) -> dict:
        """Everything stored, as of one etcd revision."""
        with self.transaction():
            rev = self.resource_version()
            _, applied = self._read_prefix(self.prefix + "a/")
            _, state = self._read_prefix(self.prefix + "s/")
            inventory = self._read(self.prefix + "i")
            return {
                "resourceVersion": rev,
                "objects": list(self.all_objects()),
                "inventory": json.loads(inventory.value) if inventory else [],
                "applied": [[*kv.key[len(self.prefix) + 2:].split("/", 2),
                             json.loads(kv.value)] for kv in applied],
                "state": {kv.key[len(self.prefix) + 2:]: json.loads(kv.value) for kv in state},
                "history": self.history(self.history_limit)[::-1],
            }

    def load(self, data: dict, batch: int = 100) -> None:
        """Replace everything under the prefix with a dump, in Txns of `batch` operations
        (etcd's default limit is 128 per Txn): restore with the servers stopped."""
        puts: dict[str, bytes] = {}
        for obj in data.get("objects", []):
            key = key_of(obj)
            puts[self._okey(key)] = as_json(obj).encode()
            if obj["metadata"].get("uid"):
                puts[f"{self.prefix}u/{obj['metadata']['uid']}"] = self._okey(key).encode()
        puts[self.prefix + "i"] = as_json(data.get("inventory", [])).encode()
        for kind, namespace, name, body in data.get("applied", []):
            puts[self._akey(ObjectKey(kind, namespace, name))] = as_json(body).encode()
        for name, value in data.get("state", {}).items():
            puts[f"{self.prefix}s/{name}"] = json.dumps(value).encode()
        for i, entry in enumerate(data.get("history", [])):
            puts[f"{self.prefix}h/{time.time_ns():020d}{i:06x}"] = json.dumps(entry).encode()
        _, old = self.client.prefix(self.prefix)
        # a key is written once per Txn: what the dump has is put, the rest deleted
        ops = [delete_op(kv.key) for kv in old if kv.key not in puts]
        ops += [put_op(k, v) for k, v in puts.items()]
        revision = 0
        for start in range(0, len(ops), batch):
            revision = self.client.txn([], ops[start:start + batch])[1]
        if revision:
            self._wait_seen(revision)

    # -- following etcd --------------------------------------------------------------
    def _follow(self) -> None:
        """Tell this server's log and watchers of every committed change, in revision
        order, whoever made it; resume after a broken stream, relist after compaction."""
        failures = 0
        while not self._stop.is_set():
            try:
                for _, events in self.client.watch(self.prefix, self._seen + 1, self._stop,
                                                   opened=self._opened):
                    failures = 0
                    self._dispatch(events)
            except Compacted as exc:
                try:
                    rev = self.client.revision()
                    self._rebuild_index(rev)        # the events missed are not coming
                except (Unavailable, Compacted):
                    self._stop.wait(0.5)
                    continue
                log.warning("etcd_watch_compacted", seen=self._seen,
                            compact_revision=exc.compact_revision, resumed_at=rev)
                # watchers (informers) find the log starts later: they relist
                self.changes = EtcdChangeLog(rev, self._history)
                self._advance(rev)
            except Unavailable as exc:
                if not self._stop.is_set():
                    if not failures:
                        log.info("etcd_watch_reconnect", error=str(exc), seen=self._seen)
                    failures += 1
                    self._stop.wait(min(2.0, 0.1 * failures))
            except Exception:   # noqa: BLE001 - the watch must outlive one bad event
                log.exception("etcd_watch_failed", seen=self._seen)
                self._stop.wait(1.0)

    def _opened(self, resp: requests.Response) -> None:
        self._stream = resp
        if self._stop.is_set():
            _cut(resp)

    def _dispatch(self, events) -> None:
        by_rev: dict[int, list[Change]] = {}
        raw: dict[int, list] = {}
        for event in events:
            change = self._change_of(event)
            by_rev.setdefault(event.kv.mod_revision, [])
            raw.setdefault(event.kv.mod_revision, []).append(event)
            if change is not None:
                by_rev[event.kv.mod_revision].append(change)
        for rev in sorted(by_rev):
            if rev <= self._seen:
                continue
            changes = by_rev[rev]
            self._index_events(raw[rev], rev)
            self.changes.extend_serialized(changes)
            for change in changes:
                obj = change.obj
                for fn in self._watchers:
                    self._in_watcher = getattr(fn, "__qualname__", repr(fn))
                    try:
                        fn(change.type, obj)
                    except Exception:   # noqa: BLE001 - one watcher must not stop the rest
                        log.exception("store_watcher_failed", kind=change.kind)
                self._in_watcher = ""
            self._advance(rev)

    def _advance(self, rev: int) -> None:
        with self._seen_cond:
            self._seen = max(self._seen, rev)
            self._seen_cond.notify_all()

    def _change_of(self, event) -> Change | None:
        if self._object_key(event.kv.key) is None:
            return None
        rev = event.kv.mod_revision
        if event.type == "DELETE":
            if event.prev is None:          # its last value was compacted away
                return None
            gone = jsoncodec.loads(event.prev.value)
            gone["metadata"]["resourceVersion"] = str(rev)
            return Change(rev, "DELETED", str(gone.get("kind", "")), _text(gone))
        obj = self._decode(event.kv)
        body = _text(obj)
        if event.kv.create_revision == rev:
            return Change(rev, "ADDED", str(obj.get("kind", "")), body)
        before = _text(self._decode(event.prev)) if event.prev else ""
        return Change(rev, "MODIFIED", str(obj.get("kind", "")), body, before)

    def _history(self, after: int, upto: int) -> list[Change]:
        """Changes in (after, upto] from etcd's own history; Gone once compacted."""
        out: list[Change] = []
        stop = threading.Event()
        try:
            for _, events in self.client.watch(self.prefix, after + 1, stop, idle_timeout=2):
                for event in events:
                    change = self._change_of(event)
                    if change is not None and change.rv <= upto:
                        out.append(change)
                if events and events[-1].kv.mod_revision >= upto:
                    break
        except Compacted as exc:
            raise Gone(f"too old resource version: {after} ({exc.compact_revision})") from exc
        except Unavailable:
            if not out:
                raise Gone(f"too old resource version: {after} (history unavailable)") \
                    from None
        return out

    def compact(self, revision: int | None = None) -> int:
        """Drop etcd's history before revision (now by default); returns it."""
        revision = revision or self.client.revision()
        self.client.compact(revision)
        return revision

    def close(self) -> None:
        self._stop.set()
        stream = self._stream
        if stream is not None:
            _cut(stream)
        self._watch_thread.join(timeout=5)


def _cut(stream: requests.Response) -> None:
    """Unblock the watch thread's read of this stream (closing it from another thread
    would wait for the read to end)."""
    sock = getattr(getattr(stream.raw, "connection", None), "sock", None)
    try:
        if sock is not None:
            sock.shutdown(2)        # SHUT_RDWR
    except OSError:
        pass


def _text(obj: dict) -> str:
    """An object as the change log keeps it (JSON text; every change of every server)."""
    return jsoncodec.dumps(obj).decode()


def _split(rest: str) -> tuple[str, str]:
    namespace, name = rest.split("/", 1)
    return namespace, name
