"""`kubectl logs` / `gitops logs` for a pod: which container, which run, which window.

The engine keeps one container per run: the current run's logs begin where the previous
run finished (its lastState), and `--previous` reads the window of that earlier run. What
it needs from the node is passed in: the runtime (list_containers, logs, follow_logs) and
where a previous run's logs begin.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

from gitops.api.kube.request import LogRequest
from gitops.errors import GitopsError
from gitops.model import ObjectKey
from gitops.model.times import parse_ts
from gitops.store.base import Store

TICK = 1.0             # seconds: a quiet follow checks its client and the agent this often
FOLLOW_BUFFER = 256    # chunks read ahead of a slow client

# (pod uid, container name, the previous run's startedAt) -> where its logs begin
PreviousSince = Callable[[str, str, str], "float | None"]


def _epoch(stamp: str | None, pad: float = 0.0) -> float | None:
    ts = parse_ts(stamp)
    return None if ts is None else ts + pad


def container_named(pod: dict, requested: str) -> str:
    """The container a request names (the first one when it names none); raises when the
    pod has none by that name."""
    spec = pod["spec"]
    names = [c["name"] for c in [*(spec.get("initContainers") or []), *spec["containers"]]]
    name = requested or spec["containers"][0]["name"]
    if name not in names:
        raise GitopsError(f'container "{name}" is not valid for pod '
                          f'"{pod["metadata"]["name"]}"')
    return name


def last_termination(pod: dict, container: str) -> dict | None:
    """The container's previous run as its status records it (lastState.terminated)."""
    statuses = (pod.get("status") or {}).get("containerStatuses") or []
    return next((s.get("lastState", {}).get("terminated") for s in statuses
                 if s["name"] == container), None)


class PodLogs:
    def __init__(self, store: Store, runtime: Any, previous_since: PreviousSince,
                 stopping: Callable[[], bool] = lambda: False) -> None:
        self.store = store
        self.runtime = runtime
        self.previous_since = previous_since
        self.stopping = stopping          # ends follow streams at shutdown

    async def __call__(self, req: LogRequest) -> str | AsyncIterator[bytes]:
        obj = self.store.get(ObjectKey("Pod", req.namespace, req.pod))
        if obj is None:
            raise GitopsError(f'pod "{req.pod}" not found')
        name = container_named(obj, req.container)
        uid = obj["metadata"]["uid"]
        info = next((c for c in await asyncio.to_thread(self.runtime.list_containers)
                     if c.pod_uid == uid and c.container == name), None)
        if info is None:
            raise GitopsError(f'container "{name}" in pod "{req.pod}" has not started')
        last = last_termination(obj, name)
        if req.previous:
            if not last:
                raise GitopsError(f'previous terminated container "{name}" in pod '
                                  f'"{req.pod}" not found')
            since = self.previous_since(uid, name, last.get("startedAt") or "")
            return await asyncio.to_thread(self.runtime.logs, info.id, req.tail, since,
                                           _epoch(last.get("finishedAt"), 0.001))
        # The current run began when the previous one finished.
        since = _epoch(last.get("finishedAt")) if last else None
        if not req.follow:
            return await asyncio.to_thread(self.runtime.logs, info.id, req.tail, since)
        return self._follow(info.id, req.tail, since)

    async def _follow(self, container_id: str, tail: int,
                      since: float | None) -> AsyncIterator[bytes]:
        """Relay a blocking Docker log stream, read on a thread of its own (never the
        loop's default executor, which the agent's shutdown waits for: a quiet container
        would hold it forever). Every TICK without output an empty chunk goes out, so the
        consumer can see its client has gone; the agent stopping ends it too. Closing the
        stream (its socket) ends the reader thread."""
        stream = await asyncio.to_thread(self.runtime.follow_logs, container_id, tail, since)
        loop = asyncio.get_running_loop()
        chunks: asyncio.Queue[bytes | None] = asyncio.Queue()
        done = threading.Event()

        def pump() -> None:
            try:
                for chunk in stream:
                    while chunks.qsize() > FOLLOW_BUFFER and not done.is_set():
                        time.sleep(0.05)       # a slow client: hold the engine's stream
                    if done.is_set():
                        return
                    loop.call_soon_threadsafe(chunks.put_nowait, chunk)
            except Exception:   # noqa: BLE001 - the stream closed under us: the end
                pass
            finally:
                with contextlib.suppress(RuntimeError):     # the loop is gone already
                    loop.call_soon_threadsafe(chunks.put_nowait, None)

        threading.Thread(target=pump, name="log-follow", daemon=True).start()
        try:
            while not self.stopping():
                try:
                    chunk = await asyncio.wait_for(chunks.get(), TICK)
                except asyncio.TimeoutError:
                    yield b""
                    continue
                if chunk is None:
                    break
                yield chunk
        finally:
            done.set()
            with contextlib.suppress(Exception):
                stream.close()
