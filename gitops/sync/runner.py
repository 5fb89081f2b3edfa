"""The sync loop as a runnable, and the verbs behind `gitops sync|rollback|unpin|suspend|
resume`.

A pass runs on a poll, a webhook, a directory change, a user's request or a self-heal of
live drift, and each remembers why (its trigger, in the logs and drift records); pokes
during a pass coalesce into the next one. A self-heal pass alone re-syncs the revision
fetched last (no git round trip); coalesced with any other reason, it fetches.
"""

from __future__ import annotations

import threading

import structlog

from gitops.errors import GitopsError
from gitops.runnable import Loop
from gitops.source.base import DirSource
from gitops.sync.engine import SyncEngine
from gitops.sync.rollback import HISTORY_DEPTH, rollback_target
from gitops.sync.status import Pin

log = structlog.get_logger(component="sync")

RESYNC = 3600.0          # seconds: a pass at least this often without any poke
MARGIN = 120.0           # seconds a requested sync may take beyond its wave timeout
HEAL = "heal"            # a self-heal pass (logged with trigger "watch")
# When reasons coalesce, the pass is named after the first of these it has.
_PRECEDENCE = ("manual", "webhook", "watch", "startup", "interval")


class SyncRunner:
    def __init__(self, engine: SyncEngine, resync: float = RESYNC) -> None:
        self.name = "sync"
        self.engine = engine
        self.status = engine.status
        self.loop = Loop(self.name, self._pass, resync=resync)
        self._reasons: set[str] = {"startup"}
        self._reasons_lock = threading.Lock()
        self.last_result: dict = {}

    # -- runnable -----------------------------------------------------------------------
    async def start(self) -> None:
        await self.loop.start()

    async def stop(self) -> None:
        await self.loop.stop()

    def healthy(self) -> bool:
        return self.loop.healthy()

    # -- passes -------------------------------------------------------------------------
    def _pass(self) -> None:
        with self._reasons_lock:
            reasons, self._reasons = self._reasons or {"interval"}, set()
        if reasons == {HEAL}:
            res = self.engine.sync_once("watch", fetch=False)
        else:
            trigger = next((r for r in _PRECEDENCE if r in reasons), "interval")
            res = self.engine.sync_once(trigger)
        self.last_result = {"result": res.result, "revision": res.revision,
                            "message": res.message, "errors": [str(e) for e in res.errors]}

    def trigger(self, reason: str) -> None:
        """Thread-safe: a sync soon, remembering why (interval, webhook, watch, manual,
        heal)."""
        with self._reasons_lock:
            self._reasons.add(reason)
        self.loop.poke()

    def heal(self) -> None:
        """A self-heal pass soon (the live drift watch asks)."""
        self.trigger(HEAL)

    async def sync_now(self, trigger: str = "manual") -> dict:
        """A sync that begins after this call, and its result."""
        with self._reasons_lock:
            self._reasons.add(trigger)
        timeout = self.engine.policy.wave_timeout + MARGIN
        if not await self.loop.poke_and_wait(timeout=timeout):
            raise GitopsError("the sync did not finish in time; see `gitops status`")
        return self.last_result

    # -- verbs --------------------------------------------------------------------------
    async def control(self, verb: str, params: dict) -> dict:
        if verb == "suspend":
            self.status.set_suspended(True)
            log.info("sync_suspended_by_user")
            return {"suspended": True}
        if verb == "resume":
            self.status.set_suspended(False)
            log.info("sync_resumed_by_user")
            return await self.sync_now()
        if verb == "unpin":
            self.status.set_pin(None)
            return await self.sync_now()
        if verb == "rollback":
            return await self.rollback(params.get("to", ""))
        return await self.sync_now()

    async def rollback(self, to: str) -> dict:
        """Pin, sync, and keep the pin only if the pinned revision applied: a sha that does
        not exist or does not apply leaves the previous pin (and what runs) as it was."""
        before = self.status.pin()
        self.status.set_pin(rollback_target(
            to, self.status.fetched_revision(), self.status.applied_revision(),
            self.engine.store.history(HISTORY_DEPTH),
            has_history=not isinstance(self.engine.source, DirSource)))
        res = await self.sync_now()
        if res.get("result") not in ("synced", "unchanged"):
            self.status.set_pin(before)
            raise GitopsError(f"rollback to {to or 'the previous revision'} failed, pin "
                              f"unchanged: {res.get('message') or res.get('result')}")
        if (pin := self.status.pin()) is not None:     # None: a new commit released it
            self.status.set_pin(Pin(res.get("revision") or pin.sha, pin.head))   # full sha
        return res
