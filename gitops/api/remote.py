"""The control plane as a node sees it: the Store protocol over the Kubernetes API.

A node agent (`gitops agent --server`) runs the same NodeAgent, Service proxy and DNS as
the all-in-one agent, on a RemoteStore instead of the server's registry, the way a kubelet
and kube-proxy run on informers. Kinds the node's loops read on every pass (pods, nodes,
Services, Endpoints, namespaces) are kept in a cache fed by list + watch; ConfigMaps and
Secrets, which a node may only read by name (NodeRestriction), are fetched by name and kept
a few seconds (the kubelet's TTL cache strategy). Writes go to the API at once and their
answer updates the cache, so a pass reads its own writes.
"""

from __future__ import annotations

import http.client
import json
import ssl
import threading
import time
import urllib.parse
from collections.abc import Iterator
from contextlib import nullcontext
from typing import Any

import structlog

from gitops.api.kube.registry import Resource, for_kind
from gitops.errors import GitopsError, TransientError
from gitops.model import ObjectKey, key_of
from gitops.store.base import Conflict, NotFound, Watcher

log = structlog.get_logger(component="remote-store")

WATCHED = ("Node", "Pod", "Service", "Endpoints", "Namespace")
FETCH_TTL = 5.0         # seconds a ConfigMap or Secret read by name is reused

class Forbidden(GitopsError):
    pass

class ApiClient:
    """Bearer-authenticated JSON over HTTPS to one of the servers: a working one is kept;
    one that does not answer, or answers 502-504 (it cannot reach its store), is left for
    the next (servers on one store share the CA and the node's credential)."""

    def __init__(self, servers: list[str], token: str, tls: ssl.SSLContext,
                 timeout: float = 15.0) -> None:
        self.servers = [s.rstrip("/") for s in servers]
        self.token = token
        self.tls = tls
        self.timeout = timeout
        self._current = 0
        self._turn = threading.Lock()
        self._local = threading.local()       # one kept-alive connection per thread

    @property
    def server(self) -> str:
        return self.servers[self._current % len(self.servers)]

    def fail_over(self, failed: str) -> None:
        """`failed` did not serve: the next server, unless another thread moved on
        already (several informers see one server die at once)."""
        with self._turn:
            if self.server == failed and len(self.servers) > 1:
                self._current += 1
                log.warning("api_server_failover", failed=failed, next=self.server)

    def connection(self, timeout: float | None = None) -> http.client.HTTPSConnection:
        url = urllib.parse.urlsplit(self.server)
        return http.client.HTTPSConnection(url.hostname or "", url.port or 443,
                                           timeout=timeout or self.timeout, context=self.tls)

    def headers(self, token: str | None = None) -> dict[str, str]:
        return {"Authorization": f"Bearer {token or self.token}",
                "Accept": "application/json", "Content-Type": "application/json"}

    def request(self, method: str, path: str, body: dict | None = None,
                token: str | None = None) -> dict:
        """One request on this thread's kept-alive connection (a TLS handshake per write
        would cost more than the write); a broken connection is made again once, then
        the next server is tried. `token`: another credential than the client's (the
        simulated nodes of one process each write with their own)."""
        data = json.dumps(body).encode() if body is not None else None
        attempts = 2 * len(self.servers)
        for attempt in range(attempts):
            conn, server = self._kept(), self.server
            try:
                conn.request(method, path, body=data, headers=self.headers(token))
                resp = conn.getresponse()
                payload = resp.read()
                status = resp.status
            except (OSError, http.client.HTTPException) as exc:
                conn.close()
                self._local.conn = None
                if attempt == attempts - 1:
                    raise TransientError(f"API server {server} unreachable: {exc}",
                                         retry_after=1.0) from exc
                if attempt % 2:         # reconnected once already: the next server
                    self.fail_over(server)
                continue
            if status in FAILOVER_STATUS and len(self.servers) > 1 and attempt < attempts - 1:
                self.fail_over(server)
                continue
            return _answer(status, payload, method, path)
        raise TransientError("no API server answers", retry_after=1.0)

    def _kept(self) -> http.client.HTTPSConnection:
        conn = getattr(self._local, "conn", None)
        if conn is None or getattr(self._local, "server", "") != self.server:
            conn = self.connection()
            self._local.conn, self._local.server = conn, self.server
        return conn


FAILOVER_STATUS = (502, 503, 504)


class Gone(GitopsError):
    """The watch's resourceVersion was compacted away (410): list again."""


def _answer(status: int, payload: bytes, method: str, path: str) -> dict:
    try:
        doc = json.loads(payload) if payload else {}
    except ValueError:
        doc = {"message": payload[:200].decode(errors="replace")}
    if status < 300:
        return doc
    message = doc.get("message", "") if isinstance(doc, dict) else ""
    what = f"{method} {path}: {message or status}"
    if status == 404:
        raise NotFound(what)
    if status == 409:
        raise Conflict(what)
    if status in (401, 403):
        raise Forbidden(what)
    if status >= 500 or status == 429:
        raise TransientError(what, retry_after=1.0)
    raise GitopsError(what)

def _resource(kind: str) -> Resource:
    found = for_kind(kind)
    if found is None:
        raise GitopsError(f"the API serves no kind {kind}")
    return found

class RemoteStore:
    """What NodeAgent, the Service proxy and DNS use of the Store protocol."""

    def __init__(self, client: ApiClient, stopping: threading.Event | None = None) -> None:
        self.client = client
        self._stop = stopping or threading.Event()
        self._lock = threading.Lock()
        self._cache: dict[str, dict[ObjectKey, dict]] = {k: {} for k in WATCHED}
        self._synced = {k: threading.Event() for k in WATCHED}
        self._fetched: dict[ObjectKey, tuple[float, dict | None]] = {}
        self._watchers: list[Watcher] = []
        self._state: dict[str, object] = {}
        self._threads: list[threading.Thread] = []

    # -- informers ----------------------------------------------------------------------
    def start(self) -> None:
        for kind in WATCHED:
            t = threading.Thread(target=self._informer, args=(kind,), daemon=True,
                                 name=f"watch-{kind}")
            t.start()
            self._threads.append(t)

    def wait_synced(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        return all(e.wait(max(0.0, deadline - time.monotonic()))
                   for e in self._synced.values())

    def _informer(self, kind: str) -> None:
        """List once, then watch from the last resourceVersion seen, on whichever server
        answers (a server's death or restart resumes the watch there or on another, as
        etcd's revisions are the cluster's); list again only after a 410 Gone."""
        delay = 0.5
        rv = ""
        while not self._stop.is_set():
            server = self.client.server
            try:
                if not rv:
                    rv = self._relist(kind)
                rv = self._watch(kind, rv)
                delay = 0.5
            except Gone:
                log.info("watch_expired_relisting", kind=kind)
                rv = ""
            except Exception as exc:    # noqa: BLE001 - the server may restart: go on
                if self._stop.is_set():
                    return
                if isinstance(exc, (OSError, http.client.HTTPException, TransientError)):
                    self.client.fail_over(server)
                log.warning("watch_failed", kind=kind, server=server, error=str(exc),
                            retry_in=delay)
                self._stop.wait(delay)
                delay = min(10.0, delay * 2)

    def _relist(self, kind: str) -> str:
        doc = self.client.request("GET", _resource(kind).path())
        items = {key_of(o): _with_kind(o, kind) for o in doc.get("items", [])}
        with self._lock:
            old, self._cache[kind] = self._cache[kind], items
        for key, obj in items.items():
            if old.get(key) != obj:
                self._tell("MODIFIED" if key in old else "ADDED", obj)
        for key, obj in old.items():
            if key not in items:
                self._tell("DELETED", obj)
        self._synced[kind].set()
        return doc.get("metadata", {}).get("resourceVersion", "")

    def _watch(self, kind: str, rv: str) -> str:
        """Events from rv on until the server ends the watch; the last resourceVersion
        seen (to resume from). Gone when rv is too old."""
        query = urllib.parse.urlencode({"watch": "1", "resourceVersion": rv,
                                        "allowWatchBookmarks": "true",
                                        "timeoutSeconds": "300"})
        conn = self.client.connection(timeout=330)
        try:
            conn.request("GET", f"{_resource(kind).path()}?{query}",
                         headers=self.client.headers())
            resp = conn.getresponse()
            if resp.status == 410:
                raise Gone(f"watch {kind} from {rv}")
            if resp.status != 200:
                _answer(resp.status, resp.read(), "WATCH", kind)
                raise TransientError(f"watch {kind}: HTTP {resp.status}")
            while not self._stop.is_set():
                line = resp.readline()
                if not line:
                    return rv           # the server ended the watch: resume from rv
                event = json.loads(line)
                kind_of_event, obj = event.get("type"), event.get("object") or {}
                if kind_of_event == "ERROR":
                    if obj.get("code") == 410:
                        raise Gone(obj.get("message", ""))
                    raise TransientError(f"watch {kind}: {obj.get('message', obj)}")
                rv = obj.get("metadata", {}).get("resourceVersion") or rv
                if kind_of_event in ("ADDED", "MODIFIED", "DELETED"):
                    self._apply_event(kind_of_event, _with_kind(obj, kind))
            return rv
        finally:
            conn.close()

    def _apply_event(self, event: str, obj: dict) -> None:
        key = key_of(obj)
        with self._lock:
            cache = self._cache[key.kind]
            have = cache.get(key)
            if event == "DELETED":
                cache.pop(key, None)
            elif have is not None and (_rv(have) > _rv(obj) or
                                       _rv(have) == _rv(obj) > 0):
                # Our own write's answer was newer, or this is the version we have: the
                # watch echoing our write, or a write that changed nothing (the server
                # answers with the stored object). Telling would wake loops for nothing,
                # and a node's pass, which writes status, would wake itself forever.
                return
            else:
                cache[key] = obj
        self._tell(event, obj)

    def _tell(self, event: str, obj: dict) -> None:
        for fn in list(self._watchers):
            try:
                fn(event, obj)
            except Exception:   # noqa: BLE001 - one watcher never stops the informer
                log.exception("watcher_failed", kind=obj.get("kind"))

    # -- reads --------------------------------------------------------------------------
    def get(self, key: ObjectKey) -> dict | None:
        if key.kind in self._cache:
            with self._lock:
                obj = self._cache[key.kind].get(key)
            return _copy(obj) if obj is not None else None
        now = time.monotonic()
        hit = self._fetched.get(key)
        if hit is not None and now - hit[0] < FETCH_TTL:
            return _copy(hit[1]) if hit[1] is not None else None
        try:
            obj = _with_kind(self.client.request("GET", _path(key)), key.kind)
        except (NotFound, Forbidden):
            obj = None
        self._fetched[key] = (now, obj)
        return _copy(obj) if obj is not None else None

    def list(self, kind: str, namespace: str | None = None) -> list[dict]:
        if kind in self._cache:
            with self._lock:
                objs = list(self._cache[kind].values())
            return [_copy(o) for o in objs if namespace is None or
                    o.get("metadata", {}).get("namespace", "") == namespace]
        if kind in ("Secret", "ConfigMap", "PersistentVolumeClaim"):
            # Never listed (NodeRestriction): those this node read by name.
            return [_copy(obj) for key, (_, obj) in list(self._fetched.items())
                    if obj is not None and key.kind == kind and
                    (namespace is None or key.namespace == namespace)]
        doc = self.client.request("GET", _resource(kind).path(namespace))
        return [_with_kind(o, kind) for o in doc.get("items", [])]

    def all_objects(self) -> Iterator[dict]:
        for kind in WATCHED:
            yield from self.list(kind)

    # -- writes -------------------------------------------------------------------------
    def create(self, obj: dict) -> dict:
        res = _resource(obj["kind"])
        ns = obj.get("metadata", {}).get("namespace") or ("default" if res.namespaced else None)
        return self._stored(self.client.request("POST", res.path(ns), obj), obj["kind"])

    def update(self, obj: dict) -> dict:
        return self._stored(self.client.request("PUT", _path(key_of(obj)), obj), obj["kind"])

    def update_status(self, key: ObjectKey, status: dict) -> dict:
        current = self.get(key)
        if current is None:
            current = _with_kind(self.client.request("GET", _path(key)), key.kind)
        elif current.get("status") == status:
            return current      # as the registry: an unchanged status is no write
        body = {**current, "status": status}
        body["metadata"] = {k: v for k, v in current["metadata"].items()
                            if k != "resourceVersion"}     # status is ours alone to write
        return self._stored(self.client.request("PUT", _path(key) + "/status", body), key.kind)

    def delete(self, key: ObjectKey) -> dict | None:
        """Gone now (a pod whose containers this node stopped: the kubelet's final
        delete, grace period 0)."""
        try:
            self.client.request("DELETE", _path(key) + "?gracePeriodSeconds=0")
        except NotFound:
            return None
        return None

    def _stored(self, obj: dict, kind: str) -> dict:
        obj = _with_kind(obj, kind)
        if kind in self._cache:
            self._apply_event("MODIFIED", obj)
        return _copy(obj)

    # -- the rest of the protocol: what a node keeps for itself -------------------------
    def transaction(self):
        return nullcontext()

    def unobserved(self):
        return nullcontext()

    def watch(self, fn: Watcher) -> None:
        self._watchers.append(fn)

    def get_state(self, name: str, default: object = None) -> object:
        return self._state.get(name, default)

    def set_state(self, name: str, value: object) -> None:
        self._state[name] = value

    def close(self) -> None:
        self._stop.set()

def _path(key: ObjectKey) -> str:
    return _resource(key.kind).path(key.namespace or None, key.name)

def _rv(obj: dict) -> int:
    try:
        return int(obj.get("metadata", {}).get("resourceVersion") or 0)
    except ValueError:
        return 0

def _with_kind(obj: dict, kind: str) -> dict:
    """List items come without kind and apiVersion; loops read both."""
    if obj.get("kind") != kind:
        obj = {**obj, "kind": kind, "apiVersion": _resource(kind).api_version}
    return obj

def _copy(obj: Any) -> Any:
    return json.loads(json.dumps(obj))
