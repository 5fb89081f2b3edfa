"""Running hooks: create them in their waves, wait until they succeed or fail, clean up by
their delete policy. The side-effect half of gitops.sync.hooks.

A hook object is created fresh for every run: one of the same name from an earlier run is
deleted first (BeforeHookCreation, the default), a generateName hook gets a new name. It
carries `gitops.io/hook-run: "<phase> <revision>"`, is never put in the inventory (prune
and diff never see it), and is deleted after it succeeded (HookSucceeded) or failed
(HookFailed) when its policy says so. A failed Job ends its wait at once (backoffLimit
reached): nothing waits for the whole timeout on a hook that already failed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from gitops.errors import GitopsError
from gitops.model import ObjectKey, key_of
from gitops.store.registry import Registry
from gitops.sync.defaults import json_copy
from gitops.sync.fields import FieldOwner, recorder
from gitops.sync.gate import FAILED, RUNNING, SUCCEEDED, hook_state
from gitops.sync.hooks import (
    HOOK_FAILED,
    HOOK_SUCCEEDED,
    RUN_ANNOTATION,
    Hook,
    generated_name,
    waves_of,
)

POLL = 0.25          # seconds between looks at a running hook


@dataclass
class HookResult:
    phase: str
    kind: str
    namespace: str
    name: str
    status: str            # Running | Succeeded | Failed
    message: str = ""
    deleted: bool = False  # by its delete policy

    def as_dict(self) -> dict:
        return {"phase": self.phase, "kind": self.kind, "namespace": self.namespace,
                "name": self.name, "status": self.status, "message": self.message,
                "deleted": self.deleted}

    def __str__(self) -> str:
        ns = f"{self.namespace}/" if self.namespace else ""
        return f"{self.phase} hook {self.kind}/{ns}{self.name}"


@dataclass
class Started:
    hook: Hook
    key: ObjectKey
    result: HookResult


class HookRunner:
    def __init__(self, store: Registry, revision: str, *, timeout: float,
                 clock: Callable[[], float], sleep: Callable[[float], None], log,
                 owner: FieldOwner | None = None) -> None:
        self.store = store
        self.revision = revision
        self.timeout = timeout
        self.clock = clock
        self.sleep = sleep
        self.log = log
        self.owner = owner
        self.results: list[HookResult] = []

    def run(self, phase: str, hooks: list[Hook]) -> str:
        """Every hook of the phase, wave by wave; a failure message, or ""."""
        for wave, group in waves_of(hooks):
            started, failure = self.start(phase, group)
            failure = failure or self.wait(started)
            if failure:
                return failure
            self.log.info("hook_wave_succeeded", phase=phase, wave=wave, hooks=len(group))
        return ""

    def start(self, phase: str, hooks: list[Hook]) -> tuple[list[Started], str]:
        started: list[Started] = []
        for hook in hooks:
            try:
                started.append(self._create(phase, hook))
            except GitopsError as exc:
                result = HookResult(phase, hook.kind, hook.namespace, hook.name, FAILED,
                                    f"could not be created: {exc}")
                self.results.append(result)
                self.log.error("hook_failed", hook=str(result), message=result.message)
                return started, f"{result} failed: {result.message}"
        return started, ""

    def _create(self, phase: str, hook: Hook) -> Started:
        body = json_copy(hook.desired.view)
        meta = body["metadata"]
        prefix = meta.pop("generateName", None)
        if not meta.get("name"):
            meta["name"] = generated_name(str(prefix))
        meta["annotations"] = {**(meta.get("annotations") or {}),
                               RUN_ANNOTATION: f"{phase} {self.revision}"}
        key = key_of(body)
        self._remove_previous(key)
        self.store.create(body, record_fields=recorder(self.owner, body))
        result = HookResult(phase, key.kind, key.namespace, key.name, RUNNING)
        self.results.append(result)
        self.log.info("hook_created", hook=str(result), revision=self.revision)
        return Started(hook, key, result)

    def _remove_previous(self, key: ObjectKey) -> None:
        """An object of the same name goes first (an earlier run's Job is immutable); a pod
        its node still stops is waited for, within the timeout."""
        if self.store.get(key) is None:
            return
        self.store.request_delete(key)
        deadline = self.clock() + self.timeout
        while self.store.get(key) is not None:
            if self.clock() >= deadline:
                raise GitopsError(f"{key} from an earlier run is still being deleted")
            self.sleep(POLL)
        self.log.info("hook_replaced", object=str(key))

    def wait(self, started: list[Started]) -> str:
        """Until every started hook succeeded, one failed, or the timeout passed."""
        deadline = self.clock() + self.timeout
        pending = list(started)
        while True:
            pending = [s for s in pending if not self._finished(s)]
            failed = next((s for s in started if s.result.status == FAILED), None)
            if failed is not None:
                return f"{failed.result} failed: {failed.result.message}"
            if not pending:
                return ""
            if self.clock() >= deadline:
                s = pending[0]
                s.result.status, s.result.message = FAILED, (
                    f"not finished after {self.timeout:.0f}s: {s.result.message}")
                self.log.error("hook_failed", hook=str(s.result), message=s.result.message)
                return f"{s.result} failed: {s.result.message}"
            self.sleep(POLL)

    def _finished(self, s: Started) -> bool:
        state, message = hook_state(self.store.get(s.key))
        s.result.message = message
        if state == RUNNING:
            return False
        s.result.status = state
        policy = HOOK_SUCCEEDED if state == SUCCEEDED else HOOK_FAILED
        if policy in s.hook.delete_policies:
            self.store.request_delete(s.key)
            s.result.deleted = True
        level = "info" if state == SUCCEEDED else "error"
        getattr(self.log, level)("hook_" + state.lower(), hook=str(s.result), message=message,
                                 deleted=s.result.deleted)
        return True
