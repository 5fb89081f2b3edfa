"""A small etcd v3 client over etcd's own JSON gateway (HTTP/1.1, `/v3/...`).

Why the gateway and not gRPC: the gateway is part of every etcd server (3.4 on), speaks the
same v3 API (revisions, Txn with compares, watches from a revision, leases, compaction)
and needs nothing compiled; `requests` (already installed: docker's client uses it)
keeps connections alive per thread. The Python gRPC clients are either unmaintained
(python-etcd3, stuck on protobuf 3) or asyncio-only (aetcd), while every loop here is a
thread.

Several endpoints: a call goes to the one that last answered and moves on to the next when
it cannot connect or the member has no quorum; `Unavailable` when none can serve it.
"""

from __future__ import annotations

import base64
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import requests

from gitops.errors import GitopsError, TransientError
from gitops.model import jsoncodec


class Unavailable(TransientError):
    """No etcd member could serve the request (down, or without quorum)."""


class Compacted(GitopsError):
    """The revision asked for was compacted away."""

    def __init__(self, message: str, compact_revision: int = 0) -> None:
        super().__init__(message)
        self.compact_revision = compact_revision


class EtcdError(GitopsError):
    """etcd refused the request (not a matter of availability)."""


def b64(data: str | bytes) -> str:
    raw = data.encode() if isinstance(data, str) else data
    return base64.b64encode(raw).decode()


def unb64(text: str | None) -> bytes:
    return base64.b64decode(text) if text else b""


def prefix_end(prefix: str) -> str:
    """The range_end that covers every key starting with prefix (ASCII prefixes)."""
    return prefix[:-1] + chr(ord(prefix[-1]) + 1)


@dataclass(frozen=True)
class KeyValue:
    key: str
    value: bytes
    mod_revision: int
    create_revision: int
    lease: int = 0

    @staticmethod
    def of(raw: dict) -> KeyValue:
        return KeyValue(unb64(raw.get("key")).decode(), unb64(raw.get("value")),
                        int(raw.get("mod_revision", 0)), int(raw.get("create_revision", 0)),
                        int(raw.get("lease", 0)))


@dataclass(frozen=True)
class Event:
    type: str                 # PUT | DELETE
    kv: KeyValue
    prev: KeyValue | None


def _no(_resp: requests.Response) -> None:
    pass


# etcd's messages for "this member cannot serve now; another may"
_UNAVAILABLE = ("no leader", "timed out", "not capable", "leader changed",
                "too many requests", "unhealthy cluster", "stopped")


class EtcdClient:
    def __init__(self, endpoints: list[str], timeout: float = 5.0) -> None:
        if not endpoints:
            raise EtcdError("no etcd endpoint given")
        self.endpoints = [e if "://" in e else f"http://{e}" for e in endpoints]
        self.timeout = timeout
        self._current = 0
        self._local = threading.local()

    def _session(self) -> requests.Session:
        session = getattr(self._local, "session", None)
        if session is None:
            session = self._local.session = requests.Session()
            # Straight to the members: no proxy from the environment (looking it up again
            # on every request was a third of a small call's time).
            session.trust_env = False
        return session

    def call(self, path: str, body: dict, timeout: float | None = None,
             idempotent: bool = True) -> dict:
        """POST to the v3 API on the first member that can serve it. A write that timed
        out may have been applied: it is not sent again elsewhere (not `idempotent`)."""
        errors = []
        start = self._current
        for i in range(len(self.endpoints)):
            index = (start + i) % len(self.endpoints)
            url = self.endpoints[index] + path
            try:
                resp = self._session().post(url, json=body, timeout=timeout or self.timeout)
            except requests.RequestException as exc:
                if not idempotent and not isinstance(exc, requests.ConnectionError):
                    raise Unavailable(f"etcd {path} at {url}: {type(exc).__name__} (the "
                                      "write may or may not have been applied)") from exc
                errors.append(f"{url}: {type(exc).__name__}")
                continue
            answer = _decode(resp)
            if resp.status_code == 200:
                self._current = index
                return answer
            message = str(answer.get("error") or answer.get("message") or resp.text)
            if "compacted" in message:
                raise Compacted(message)
            if resp.status_code >= 500 and any(m in message for m in _UNAVAILABLE):
                if not idempotent and "timed out" in message:
                    raise Unavailable(f"etcd {path} at {url}: {message} (the write may or "
                                      "may not have been applied)")
                errors.append(f"{url}: {message}")
                continue
            raise EtcdError(f"etcd {path}: {message}")
        raise Unavailable(f"etcd unavailable: {'; '.join(errors)}", retry_after=1.0)

    # -- kv --------------------------------------------------------------------------
    def range(self, key: str, range_end: str = "", revision: int = 0,
              keys_only: bool = False, count_only: bool = False,
              limit: int = 0) -> tuple[int, list[KeyValue], int]:
        """(header revision, kvs, count). Falls back to a serializable read (this member's
        own copy) when no member has quorum: reads go on as etcd allows."""
        body: dict = {"key": b64(key)}
        if range_end:
            body["range_end"] = b64(range_end)
        if revision:
            body["revision"] = revision
        if keys_only:
            body["keys_only"] = True
        if count_only:
            body["count_only"] = True
        if limit:
            body["limit"] = limit
        try:
            answer = self.call("/v3/kv/range", body)
        except Unavailable:
            answer = self.call("/v3/kv/range", {**body, "serializable": True})
        return (int(answer["header"]["revision"]),
                [KeyValue.of(kv) for kv in answer.get("kvs", [])],
                int(answer.get("count", 0)))

    def prefix(self, prefix: str, revision: int = 0,
               page: int = 5000) -> tuple[int, list[KeyValue]]:
        """Every key under prefix at one revision, read a page at a time."""
        end = prefix_end(prefix)
        rev, kvs, _ = self.range(prefix, end, revision, limit=page)
        out = list(kvs)
        while len(kvs) == page:
            rev, kvs, _ = self.range(kvs[-1].key + "\0", end, rev, limit=page)
            out += kvs
        return rev, out

    def get(self, key: str, revision: int = 0) -> KeyValue | None:
        _, kvs, _ = self.range(key, revision=revision)
        return kvs[0] if kvs else None

    def revision(self) -> int:
        return self.range("\0")[0]

    def txn(self, compare: list[dict], success: list[dict]) -> tuple[bool, int]:
        """(succeeded, the revision after it)."""
        answer = self.call("/v3/kv/txn", {"compare": compare, "success": success},
                           idempotent=False)
        return bool(answer.get("succeeded")), int(answer["header"]["revision"])

    def ranges(self, spans: list[tuple[str, str]], revision: int) -> list[KeyValue]:
        """The keys of every [key, range_end) span, in order, read in one request at one
        revision."""
        if len(spans) == 1:
            return self.range(*spans[0], revision)[1]
        ops = [{"request_range": {"key": b64(key), "range_end": b64(end),
                                  **({"revision": revision} if revision else {})}}
               for key, end in spans]
        answer = self.call("/v3/kv/txn", {"compare": [], "success": ops})
        return [KeyValue.of(kv) for response in answer.get("responses") or []
                for kv in (response.get("response_range") or {}).get("kvs") or []]

    def read_many(self, keys: list[str], revision: int = 0) -> tuple[int, dict[str, KeyValue]]:
        """(revision, the keys that exist) read in one Txn of range requests, all at one
        revision (the newest if 0)."""
        ops = [{"request_range": {"key": b64(k), **({"revision": revision} if revision
                                                     else {})}} for k in keys]
        answer = self.call("/v3/kv/txn", {"compare": [], "success": ops})
        found = {}
        for response in answer.get("responses") or []:
            for kv in (response.get("response_range") or {}).get("kvs") or []:
                item = KeyValue.of(kv)
                found[item.key] = item
        return int(answer["header"]["revision"]), found

    def put(self, key: str, value: bytes, lease: int = 0) -> int:
        return self.txn([], [put_op(key, value, lease)])[1]

    def compact(self, revision: int) -> None:
        self.call("/v3/kv/compaction", {"revision": revision, "physical": True}, timeout=30)

    # -- leases ----------------------------------------------------------------------
    def grant(self, ttl: int) -> int:
        return int(self.call("/v3/lease/grant", {"TTL": ttl})["ID"])

    def keepalive(self, lease: int) -> int:
        """The lease's TTL after renewal (0: it had expired)."""
        answer = self.call("/v3/lease/keepalive", {"ID": lease})
        return int((answer.get("result") or answer).get("TTL", 0))

    # -- watch -----------------------------------------------------------------------
    def watch(self, prefix: str, start_revision: int, stop: threading.Event,
              idle_timeout: float = 30.0, opened: Callable[[requests.Response], None] = _no,
              ) -> Iterator[tuple[int, list[Event]]]:
        """(header revision, events) under prefix from start_revision on, until stop is set
        or the stream breaks (the caller resumes from the next revision); an empty batch
        first (the watch is in place) and on progress notifications. Compacted when
        start_revision is older than the oldest kept."""
        request = {"create_request": {"key": b64(prefix), "range_end": b64(prefix_end(prefix)),
                                      "start_revision": start_revision, "prev_kv": True,
                                      "progress_notify": True}}
        errors = []
        for i in range(len(self.endpoints)):
            index = (self._current + i) % len(self.endpoints)
            try:
                resp = requests.post(self.endpoints[index] + "/v3/watch", json=request,
                                     stream=True, timeout=(self.timeout, idle_timeout))
            except requests.RequestException as exc:
                errors.append(f"{self.endpoints[index]}: {type(exc).__name__}")
                continue
            opened(resp)         # so a closing store can cut the stream at once
            with resp:
                yield from _watch_stream(resp, stop)
            return
        raise Unavailable(f"etcd unavailable for watch: {'; '.join(errors)}", retry_after=1.0)


def _watch_stream(resp: requests.Response,
                  stop: threading.Event) -> Iterator[tuple[int, list[Event]]]:
    try:
        for line in resp.iter_lines():
            if stop.is_set():
                return
            if not line:
                continue
            answer = jsoncodec.loads(line)
            if "error" in answer:
                raise Unavailable(f"etcd watch: {answer['error']}", retry_after=1.0)
            result = answer.get("result") or {}
            if int(result.get("compact_revision", 0) or 0):
                rev = int(result["compact_revision"])
                raise Compacted(f"revision compacted (oldest kept {rev})", rev)
            if result.get("canceled"):
                raise Unavailable(f"etcd watch canceled: {result.get('cancel_reason', '')}")
            events = [Event(e.get("type", "PUT"), KeyValue.of(e["kv"]),
                            KeyValue.of(e["prev_kv"]) if e.get("prev_kv") else None)
                      for e in result.get("events", [])]
            yield int((result.get("header") or {}).get("revision", 0)), events
    except (requests.RequestException, ValueError) as exc:
        # ValueError: a line cut by a dying member; the caller resumes where it was
        raise Unavailable(f"etcd watch broken: {type(exc).__name__}", retry_after=0.2) from exc


def put_op(key: str, value: bytes, lease: int = 0) -> dict:
    body: dict = {"key": b64(key), "value": b64(value)}
    if lease:
        body["lease"] = lease
    return {"request_put": body}


def delete_op(key: str) -> dict:
    return {"request_delete_range": {"key": b64(key)}}


def mod_equals(key: str, revision: int) -> dict:
    """Compare: key's mod_revision is revision (0: the key does not exist)."""
    return {"key": b64(key), "target": "MOD", "result": "EQUAL", "mod_revision": revision}


def _decode(resp: requests.Response) -> dict:
    try:
        return jsoncodec.loads(resp.content)     # a page of values is a megabyte of JSON
    except ValueError:
        return {"error": resp.text[:200]}
