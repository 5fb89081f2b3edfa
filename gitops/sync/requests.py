"""`gitops sync` (and rollback, suspend..., and webhooks) on a server that does not lead
sync, when several servers share one store: the request is recorded in the store and the
sync leader acts on it, as Argo CD's CLI sets an Application's `operation` for the
application controller to run.

Why the store and not forwarding to the leader's address: the store is what every server
reaches by construction (servers need not reach each other: without --advertise-address
they listen on loopback alone), a request survives a leader change (the next leader finds
it), and a leader that cannot reach the store could not sync anyway. Exactly once: the
leader answers a request and removes it in one optimistic write; a leader dying before
that write leaves the request to its successor, whose sync of an already applied
revision changes nothing.

The requests are the ConfigMap kube-system/gitops-sync-requests (`kubectl get cm -n
kube-system gitops-sync-requests -o yaml` shows what waits): `request.ID` holds a request,
`result.ID` the leader's answer until the asking server reads it.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Awaitable, Callable

import structlog

from gitops.errors import GitopsError
from gitops.model import ObjectKey
from gitops.store.base import Conflict

log = structlog.get_logger(component="sync-requests")

KEY = ObjectKey("ConfigMap", "kube-system", "gitops-sync-requests")
TRIGGER = "trigger"         # a webhook's push: a pass soon, nobody waits for its result
STALE = 600.0               # seconds an answer nobody read is kept
POLL = 0.2                  # seconds between two looks at the answer


class SyncRequests:
    def __init__(self, store, act: Callable[[str, dict], Awaitable[dict]],
                 trigger: Callable[[str], None]) -> None:
        self.store = store
        self._act = act             # the leader's own verbs (Agent._control)
        self._trigger = trigger     # the leader's own trigger (a webhook)

    # -- a server that does not lead ----------------------------------------------------
    async def control(self, verb: str, params: dict, timeout: float) -> dict:
        """The leader's answer to `verb` (raises its error, or GitopsError on timeout)."""
        rid = await asyncio.to_thread(self._add, {"verb": verb, "params": params})
        log.info("sync_request_recorded", id=rid, verb=verb)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            answer = await asyncio.to_thread(self._take, rid)
            if answer is not None:
                if answer.get("error"):
                    raise GitopsError(answer["error"])
                return answer["result"]
            await asyncio.sleep(POLL)
        raise GitopsError("the sync leader did not answer in time (see `kubectl get leases "
                          "-n kube-system gitops-sync`); the request stays for it")

    def trigger(self, reason: str) -> None:
        """A push seen by this server: the leader syncs (nobody waits)."""
        self._add({"verb": TRIGGER, "params": {"reason": reason}})

    def _add(self, request: dict) -> str:
        rid = uuid.uuid4().hex[:12]
        body = json.dumps({**request, "at": time.time()})
        self._edit(lambda data: {**data, f"request.{rid}": body})
        return rid

    def _take(self, rid: str) -> dict | None:
        cm = self.store.get(KEY) or {}
        raw = (cm.get("data") or {}).get(f"result.{rid}")
        if raw is None:
            return None
        self._edit(lambda data: {k: v for k, v in data.items() if k != f"result.{rid}"})
        return json.loads(raw)

    # -- the leader ---------------------------------------------------------------------
    async def serve(self) -> None:
        """Act on every waiting request, oldest first; answer and remove each."""
        cm = await asyncio.to_thread(self.store.get, KEY)
        data = (cm or {}).get("data") or {}
        pending = sorted(((json.loads(v), k[len("request."):]) for k, v in data.items()
                          if k.startswith("request.")), key=lambda r: r[0].get("at", 0))
        for request, rid in pending:
            verb, params = request.get("verb", ""), request.get("params") or {}
            if verb == TRIGGER:
                self._trigger(params.get("reason", "webhook"))
                answer = None
            else:
                try:
                    answer = {"result": await self._act(verb, params)}
                except GitopsError as exc:
                    answer = {"error": str(exc)}
            log.info("sync_request_served", id=rid, verb=verb)
            await asyncio.to_thread(self._answer, rid, answer)
        if any(k.startswith("result.") for k in data):
            await asyncio.to_thread(self._edit, _drop_stale)

    def _answer(self, rid: str, answer: dict | None) -> None:
        def edit(data: dict) -> dict:
            out = {k: v for k, v in data.items() if k != f"request.{rid}"}
            if answer is not None:
                out[f"result.{rid}"] = json.dumps({**answer, "at": time.time()})
            return out
        self._edit(edit)

    def on_change(self, _event: str, old: dict | None, new: dict | None) -> bool:
        """True when a change is to the requests (the leader's loop should look)."""
        obj = new or old or {}
        meta = obj.get("metadata") or {}
        return (obj.get("kind"), meta.get("namespace"), meta.get("name")) == \
            (KEY.kind, KEY.namespace, KEY.name)

    # -- one read-modify-write, retried on a conflict with another server ---------------
    def _edit(self, change: Callable[[dict], dict]) -> None:
        for _ in range(20):
            cm = self.store.get(KEY)
            data = (cm or {}).get("data") or {}
            if cm is not None and change(data) == data:
                return          # nothing to write (no change, no wake-up for the leader)
            try:
                if cm is None:
                    self.store.create({"apiVersion": "v1", "kind": "ConfigMap",
                                       "metadata": {"name": KEY.name,
                                                    "namespace": KEY.namespace},
                                       "data": change({})})
                else:
                    self.store.update({**cm, "data": change(data)})
                return
            except Conflict:
                continue
        raise GitopsError("cannot record the sync request: the store kept changing")


def _drop_stale(data: dict) -> dict:
    now = time.time()
    return {k: v for k, v in data.items()
            if not k.startswith("result.") or now - json.loads(v).get("at", now) < STALE}
