"""Watches: a chunked stream of ADDED/MODIFIED/DELETED events from a resourceVersion on.

Events come from the store's change log, so a watch resumed at resourceVersion R gets
exactly the changes after R; one older than the log's oldest entry gets an ERROR event
with a 410 Expired Status, after which kubectl (like any client-go reflector) relists.
Without a resourceVersion (or with "0") the watch first sends every selected object as
ADDED. Writers run on worker threads; they only wake the event loop.
"""

from __future__ import annotations

import asyncio
import json
from typing import TYPE_CHECKING

from aiohttp import web

from gitops.api.kube import status as st
from gitops.api.kube import tables
from gitops.api.kube.present import present
from gitops.api.kube.request import Target, bool_param, int_param, selection
from gitops.store.changes import Change, Gone

if TYPE_CHECKING:
    from gitops.api.kube.api import KubeApi

BOOKMARK_EVERY = 30.0           # seconds idle before a BOOKMARK (when the client allows them)
_POLL = 2.0                     # seconds between checks that the client is still there
INITIAL_EVENTS_END = "k8s.io/initial-events-end"


class Broadcaster:
    """Wakes every open watch when the store commits anything (thread-safe)."""

    def __init__(self) -> None:
        self._waiters: set[asyncio.Event] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self.closed = False

    def attach(self, store, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        store.watch(self._on_change)

    def _on_change(self, _event: str, _obj: dict) -> None:
        # A watch subscribes before it reads the log, so skipping when none is open
        # loses nothing.
        if self._waiters and self._loop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._wake)

    def _wake(self) -> None:
        for event in self._waiters:
            event.set()

    def subscribe(self) -> asyncio.Event:
        event = asyncio.Event()
        self._waiters.add(event)
        return event

    def unsubscribe(self, event: asyncio.Event) -> None:
        self._waiters.discard(event)

    def close(self) -> None:
        self.closed = True
        self._wake()


class _Stream:
    """Encodes events the way the client asked: objects, or one-row Tables."""

    def __init__(self, resp: web.StreamResponse, target: Target, shape: str, query) -> None:
        self.resp = resp
        self.kind = target.resource.kind
        self.shape = shape
        self.include = query.get("includeObject", "Metadata")
        self.headers_sent = False

    async def send(self, event_type: str, obj: dict) -> None:
        if event_type in ("ADDED", "MODIFIED", "DELETED"):
            obj = present(obj)
            if self.shape == "Table":
                obj = tables.table(self.kind, [obj], include=self.include,
                                   headers=not self.headers_sent,
                                   resource_version=obj["metadata"].get("resourceVersion", ""))
                self.headers_sent = True
            elif self.shape == "PartialObjectMetadata":
                obj = tables.partial(obj)
        line = json.dumps({"type": event_type, "object": obj}, separators=(",", ":")) + "\n"
        await self.resp.write(line.encode())


def _bookmark(target: Target, rv: int, initial_end: bool = False) -> dict:
    meta: dict = {"resourceVersion": str(rv)}
    if initial_end:
        meta["annotations"] = {INITIAL_EVENTS_END: "true"}
    return {"kind": target.resource.kind, "apiVersion": target.resource.api_version,
            "metadata": meta}


def _gone(rv: int) -> dict:
    return st.gone(f"too old resource version: {rv}").status()


async def serve(api: "KubeApi", request: web.Request, target: Target,
                shape: str) -> web.StreamResponse:
    q = request.query
    store = api.store
    kind = target.resource.kind
    chosen = selection(target, q)
    rv_param = q.get("resourceVersion", "")
    initial = bool_param(q, "sendInitialEvents") or rv_param in ("", "0")
    bookmarks = bool_param(q, "allowWatchBookmarks")
    timeout = int_param(q, "timeoutSeconds", 1800) or 1800
    if rv_param not in ("", "0"):
        try:
            start = int(rv_param)
        except ValueError:
            raise st.bad_request(f"invalid resource version {rv_param!r}")
    loop = asyncio.get_running_loop()
    wake = api.broadcaster.subscribe()
    resp = web.StreamResponse(headers={"Content-Type": "application/json",
                                       "Cache-Control": "no-cache, private"})
    resp.enable_chunked_encoding()
    await resp.prepare(request)
    out = _Stream(resp, target, shape, q)
    try:
        if initial:
            rv, current = await asyncio.to_thread(store.snapshot, kind, chosen.namespace)
            for obj in current:
                if chosen(obj) and _named(target, obj):
                    await out.send("ADDED", obj)
            if bool_param(q, "sendInitialEvents") and bookmarks:
                await out.send("BOOKMARK", _bookmark(target, rv, initial_end=True))
            last = rv
        else:
            last = start
        deadline = loop.time() + timeout
        idle_since = loop.time()
        while not api.broadcaster.closed:
            wake.clear()
            try:
                changes = store.changes.since(last)
            except Gone:
                await out.send("ERROR", _gone(last))
                break
            for change in changes:
                last = change.rv
                if change.kind != kind:
                    continue
                if (seen := _as_seen(change, chosen)) and _named(target, seen[1]):
                    await out.send(*seen)
                idle_since = loop.time()
            now = loop.time()
            if now >= deadline:
                break
            if bookmarks and now - idle_since >= BOOKMARK_EVERY:
                await out.send("BOOKMARK", _bookmark(target, last))
                idle_since = now
            transport = request.transport
            if transport is None or transport.is_closing():
                break
            try:
                await asyncio.wait_for(wake.wait(), timeout=min(_POLL, deadline - now))
            except asyncio.TimeoutError:
                pass
    except (ConnectionResetError, ConnectionError):
        pass                         # the client went away: nothing to finish
    finally:
        api.broadcaster.unsubscribe(wake)
    try:
        await resp.write_eof()
    except (ConnectionResetError, ConnectionError, RuntimeError):
        pass
    return resp


def _named(target: Target, obj: dict) -> bool:
    return not target.name or obj.get("metadata", {}).get("name") == target.name


def _as_seen(change: Change, chosen) -> tuple[str, dict] | None:
    """The event this watch sees, if any. Selectors apply to changes, judged on the object
    before and after, as Kubernetes' watch cache does: an object entering the selection is
    ADDED for this watch, one leaving it DELETED (with what it was, at the change's
    resourceVersion)."""
    obj = change.obj
    now = chosen(obj)
    if change.type != "MODIFIED":
        return (change.type, obj) if now else None
    previous = change.previous
    was = chosen(previous) if previous is not None else now
    if now:
        return ("MODIFIED" if was else "ADDED"), obj
    if not was:
        return None
    previous["metadata"]["resourceVersion"] = obj["metadata"]["resourceVersion"]
    return "DELETED", previous
