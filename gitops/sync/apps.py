"""Several apps per agent: the Applications git declares, each synced by its own engine.

The agent's own source is the root app (""); every revision it applies tells which
Applications it declares (application.py), and so does each app's (app-of-apps, to any
depth). Each app gets its own source (a clone per app, or the declaring app's repo when it
names none), sync policy, destination namespace, inventory and state (store/scoped.py), a
sync loop and a live-drift watch, started and stopped as git adds and removes the app.

An app removed from git stops syncing; what it deployed stays (orphaned), unless its
Application carried Argo CD's `resources-finalizer.argocd.argoproj.io` (or
`gitops.io/resources`): then it is deleted, as Argo CD's cascading delete does (except
objects marked `Delete=false` or Helm's `resource-policy: keep`). An app name
is one app: a second declaration of it by another app is refused (logged) and the first
keeps it, which also ends a cycle of apps declaring each other.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, replace
from pathlib import Path

import structlog

from gitops.errors import GitopsError
from gitops.model import ObjectKey
from gitops.source import Source, make_source
from gitops.source.base import redact_url
from gitops.store.base import Store
from gitops.store.scoped import AppScope
from gitops.sync.application import AppSpec
from gitops.sync.drift import DriftRecorder
from gitops.sync.engine import SyncEngine, SyncPolicy
from gitops.sync.fields import FieldOwner
from gitops.sync.live import LiveDrift
from gitops.sync.options import options_of
from gitops.sync.runner import SyncRunner
from gitops.sync.status import health_condition

log = structlog.get_logger(component="apps")


@dataclass
class App:
    spec: AppSpec
    parent: str                 # the app that declares it ("" the agent's own source)
    engine: SyncEngine
    runner: SyncRunner
    live: LiveDrift

    @property
    def source_info(self) -> dict:
        return self.engine.source_info


class Applications:
    def __init__(self, store: Store, data_dir: Path, base: SyncPolicy,
                 drift: DriftRecorder, owner: FieldOwner | None = None,
                 git_timeout: float = 60.0,
                 make: Callable[[str, Path, str, str, float], Source] = make_source) -> None:
        self.name = "applications"
        self.store = store
        self.data_dir = data_dir
        self.base = base
        self.drift = drift
        self.owner = owner
        self.git_timeout = git_timeout
        self.make = make
        self.apps: dict[str, App] = {}
        self._lock = threading.RLock()
        # Each app's drift watcher, replaced whole (under the lock) when apps change and read
        # without it: store watchers must never wait for a writer (on etcd they run on the
        # watch thread, which a write under our lock waits for).
        self._lives: tuple[LiveDrift, ...] = ()
        self._loop: asyncio.AbstractEventLoop | None = None
        store.watch(self._on_change)

    # -- runnable -----------------------------------------------------------------------
    async def start(self) -> None:
        with self._lock:    # apps added from now on are started as they are added
            self._loop = asyncio.get_running_loop()
            apps = list(self.apps.values())
        for app in apps:        # declared before the loop ran (tests, a sync at start)
            await _start(app)

    async def stop(self) -> None:
        with self._lock:
            apps, self.apps = list(self.apps.values()), {}
            self._lives = ()
            self._loop = None
        for app in apps:
            await _stop(app)

    def healthy(self) -> bool:
        with self._lock:
            return all(a.runner.healthy() for a in self.apps.values()) \
                if self._loop is not None else True

    # -- what git declares --------------------------------------------------------------
    def declared_by(self, parent: str, parent_source: Source) -> Callable[[list[AppSpec]],
                                                                             None]:
        """The callback an engine calls with the Applications of each revision it applied."""
        return lambda specs: self.update(parent, parent_source, specs)

    def update(self, parent: str, parent_source: Source, specs: list[AppSpec]) -> None:
        """Make the apps declared by `parent` the ones running (on the parent's sync thread)."""
        wanted = {s.name: s for s in specs}
        with self._lock:
            for name, spec in wanted.items():
                app = self.apps.get(name)
                if name == parent or (app is not None and app.parent != parent):
                    owner = app.parent if app is not None else parent
                    log.error("application_conflict", app=name, declared_by=parent or "root",
                              file=spec.file, line=spec.line, kept_by=owner or "root")
                    continue
                if app is not None and _same(app.spec, spec):
                    app.spec = spec         # moved in its file at most: where it is now
                    continue
                if app is not None:
                    self._remove(name, cascade=False, keep_children=True)
                self._add(spec, parent, parent_source)
            for name in [n for n, a in self.apps.items()
                         if a.parent == parent and n not in wanted]:
                self._remove(name, cascade=self.apps[name].spec.cascade)
            self.store.set_state("applications", sorted(self.apps))

    def _add(self, spec: AppSpec, parent: str, parent_source: Source) -> None:
        repo = spec.repo or parent_source.url
        ref = spec.ref or (parent_source.ref if not spec.repo else "")
        source = self.make(repo, self.data_dir / "apps" / spec.name, ref, spec.path,
                           self.git_timeout)
        policy = replace(self.base, self_heal=spec.self_heal, prune=spec.prune,
                         allow_empty_prune=spec.allow_empty, helm_values=(),
                         options=spec.options, ignore_differences=spec.ignore_differences,
                         ignore_file="", render=spec.render, automated=spec.automated)
        engine = SyncEngine(AppScope(self.store, spec.name), source, policy, self.drift,
                            owner=self.owner, app=spec.name, claims=self.claimed)
        engine.on_apps = self.declared_by(spec.name, source)
        runner = SyncRunner(engine)
        runner.name = f"sync-{spec.name}"
        app = App(spec, parent, engine, runner, LiveDrift(engine, runner.heal))
        self.apps[spec.name] = app
        self._lives = tuple(a.live for a in self.apps.values())
        log.info("application_added", app=spec.name, declared_by=parent or "root",
                 repo=redact_url(repo), path=spec.path, ref=ref,
                 namespace=spec.render.namespace, automated=spec.automated)
        self._submit(_start(app))

    def _remove(self, name: str, cascade: bool, keep_children: bool = False) -> None:
        app = self.apps.pop(name)
        self._lives = tuple(a.live for a in self.apps.values())
        if not keep_children:
            for child in [n for n, a in self.apps.items() if a.parent == name]:
                self._remove(child, cascade=cascade or self.apps[child].spec.cascade)
        self._submit(_stop(app))
        scope = app.engine.store
        assert isinstance(scope, AppScope)
        if keep_children:           # the same app with a new spec: its state carries over
            return
        deleted = 0
        if cascade:
            for key in scope.inventory():
                live = self.store.get(key)
                if live is None or not options_of(live).delete:   # Delete=false, keep
                    continue
                try:
                    if self.store.delete(key) is not None:
                        deleted += 1
                except GitopsError as exc:
                    log.error("application_delete_failed", app=name, object=str(key),
                              error=str(exc))
        scope.forget()
        log.info("application_removed", app=name, cascade=cascade, deleted=deleted)

    def _submit(self, coro) -> None:
        if self._loop is None:      # not started (yet): start() starts what is there
            coro.close()
            return
        future = asyncio.run_coroutine_threadsafe(coro, self._loop)
        future.add_done_callback(_log_failure)

    # -- the agent's verbs and views ----------------------------------------------------
    def get(self, name: str) -> App:
        with self._lock:
            app = self.apps.get(name)
        if app is None:
            known = ", ".join(sorted(self.apps)) or "none"
            raise GitopsError(f"no application {name!r} (known: {known})")
        return app

    def all(self) -> list[App]:
        with self._lock:
            return [self.apps[n] for n in sorted(self.apps)]

    def trigger_all(self, reason: str) -> None:
        for app in self.all():
            app.runner.trigger(reason)

    def claimed(self, app: str) -> dict[ObjectKey, str]:
        """The objects managed by every app but `app` ("" the agent's own source), with
        the app managing each."""
        others = [a for a in self.all() if a.spec.name != app]
        if not others and not app:      # no app at all: nothing to look at (the hot path)
            return {}
        taken = {k: "" for k in self.store.inventory()} if app else {}
        for other in others:
            taken.update({k: other.spec.name for k in other.engine.inventory.read()})
        return taken

    def managed_keys(self) -> set:
        return {k for app in self.all() for k in app.engine.inventory.read()}

    def _on_change(self, event: str, obj: dict) -> None:
        for live in self._lives:
            live.on_change(event, obj)


def _same(a: AppSpec, b: AppSpec) -> bool:
    """The same app, wherever in git it is declared."""
    where = {"file": "", "line": 0, "repo_line": 0}
    return replace(a, **where) == replace(b, **where)


async def _start(app: App) -> None:
    await app.runner.start()
    await app.live.start()


async def _stop(app: App) -> None:
    await app.live.stop()
    await app.runner.stop()


def _log_failure(future: Future) -> None:
    if not future.cancelled() and future.exception() is not None:
        log.error("application_loop_failed", error=str(future.exception()))


def app_status(app: App, objects: list[dict]) -> dict:
    """What `gitops status` shows of one app: its source, policy, sync and objects."""
    sync = app.engine.status.read().as_dict()
    spec = app.spec
    return {"name": spec.name, "parent": app.parent, "file": spec.file, "line": spec.line,
            "source": app.source_info, "namespace": spec.render.namespace,
            "policy": {"automated": spec.automated, "prune": spec.prune,
                       "self_heal": spec.self_heal},
            "applied_revision": sync["applied_revision"],
            "fetched_revision": sync["fetched_revision"], "pin": sync["pin"],
            "suspended": sync["suspended"], "last_sync": sync["last_sync"],
            "objects": objects, "hooks": sync["hooks"],
            "conditions": [*sync["conditions"], health_condition(objects).as_dict()]}
