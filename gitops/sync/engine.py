"""One reconcile of git against the store: fetch, render, validate, plan, apply, report.

A revision is applied whole or not at all: any load or validation error refuses the
revision, logs every error with file:line, and leaves the last good revision in place.
Phases as in Argo CD: PreSync hooks first (a failure refuses the revision and runs the
SyncFail hooks); then objects wave by wave (sync-wave annotation, then kind order), Sync
hooks in their waves, a later wave waiting until the earlier one is healthy (a Job that
failed ends its wave at once); prunes (PruneLast ones after everything is healthy); then
PostSync hooks once everything is healthy. Hooks run once per revision, never on a no-op
sync. Drift (the live object moved while git did not) is logged field by field and
corrected unless self-heal is off.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field, replace

import structlog

from gitops.errors import GitopsError, ManifestError
from gitops.health import assess
from gitops.manifests import paths
from gitops.manifests import policy as node_policy
from gitops.manifests.age_keys import KeySource
from gitops.manifests.loader import load_mapping
from gitops.manifests.render import render_path
from gitops.manifests.sops import Decryption
from gitops.manifests.validate import validate
from gitops.model import ObjectKey
from gitops.model.secrets import mask_secret
from gitops.source import Revision, Source
from gitops.source.base import oversized, redact_url
from gitops.store.base import InventoryEntry, Store
from gitops.sync import hooks as hook_rules
from gitops.sync import rules as sync_rules
from gitops.sync.apply import Writer
from gitops.sync.diff import Change, Desired, Plan, compute_plan
from gitops.sync.drift import DriftRecorder, field_records
from gitops.sync.fields import FieldOwner
from gitops.sync.gate import failed_for_good, settled
from gitops.sync.hooks import POST_SYNC, PRE_SYNC, SYNC, SYNC_FAIL, Hook
from gitops.sync.ignore import IgnoreRule, load_rules
from gitops.sync.inventory import (
    EXTRANEOUS_IGNORED,
    OUT_OF_SYNC,
    PRUNE_SKIPPED,
    SYNCED,
    InventoryBook,
)
from gitops.sync.options import DEFAULT, SyncOptions, options_of
from gitops.sync.phases import HookRunner
from gitops.sync.planner import Planner
from gitops.sync.status import SyncStatusBook
from gitops.sync.waves import waves

log = structlog.get_logger(component="sync")


@dataclass
class SyncResult:
    result: str              # synced | unchanged | failed | refused | suspended
    revision: str = ""
    plan: Plan | None = None
    errors: list[ManifestError] = field(default_factory=list)
    message: str = ""
    timings: dict[str, float] = field(default_factory=dict)
    hooks: list[dict] = field(default_factory=list)


@dataclass
class SyncPolicy:
    """An app's sync policy: the agent's flags today, an Application's syncPolicy too."""
    self_heal: bool = True
    prune: bool = True
    allow_empty_prune: bool = False
    wave_timeout: float = 300.0
    allow_host_access: bool = False
    helm_values: tuple[str, ...] = ()   # values files of a Helm chart, relative to it
    allow_remote_bases: bool = False    # kustomize may fetch remote resources
    decryption: KeySource | None = None  # age keys of SOPS-encrypted files
    self_heal_delay: float = 2.0        # seconds from a live change to its correction
    options: SyncOptions = DEFAULT      # the app's sync options (objects override them)
    ignore_differences: tuple[IgnoreRule, ...] = ()    # from flags or an Application
    ignore_file: str = ""               # a file of ignoreDifferences in the repo


@dataclass(frozen=True)
class Rendered:
    """A revision rendered, validated and split into synced objects and hooks."""
    desired: list[Desired]
    split: hook_rules.Split
    rules: tuple[IgnoreRule, ...]


def render(revision: Revision, allow_host_access: bool = False,
           helm_values: tuple[str, ...] = (), allow_remote_bases: bool = False,
           decryption: Decryption | None = None
           ) -> tuple[list[Desired], list[ManifestError]]:
    """Load and validate every manifest of a revision (pure apart from reading files and
    running renderers in their sandbox). Nothing outside the checkout is read. SOPS files
    are decrypted with `decryption` (which collects what it could not read and warnings)."""
    base = revision.manifest_dir
    if not base.exists():
        return [], [ManifestError(f"path {revision.path!r} does not exist in the source",
                                  file=revision.path)]
    if problem := oversized(revision.root):
        return [], [ManifestError(problem, file=".")]
    loaded = render_path(base, helm_values, repo_root=revision.root,
                         allow_remote_bases=allow_remote_bases, decryption=decryption)
    errors = [*loaded.errors,
              *validate(loaded.objects, schema=sync_rules.schema_checked),
              *sync_rules.check(loaded.objects),
              *node_policy.check(loaded.objects, allow_host_access)]
    return [Desired(_without_server_fields(o.body), o.file, o.line, o.field_lines)
            for o in loaded.objects], errors


def read_ignore_file(revision: Revision, name: str
                     ) -> tuple[list[IgnoreRule], list[ManifestError]]:
    """ignoreDifferences from a file of the revision, relative to its manifest path; it
    must lie inside the checkout."""
    path = (revision.manifest_dir / name).resolve()
    shown = _shown_path(name, revision)
    if not path.is_relative_to(revision.root.resolve()):
        return [], [ManifestError("the ignore-differences file lies outside the repository",
                                  shown)]
    try:
        text = path.read_text("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        return [], [ManifestError(f"cannot read the ignore-differences file: "
                                  f"{getattr(exc, 'strerror', None) or exc}", shown)]
    data, lines, errors = load_mapping(text, shown)
    if errors:
        return [], errors
    return load_rules(data, shown, lines)


def _shown_path(name: str, revision: Revision) -> str:
    return f"{revision.path.rstrip('/')}/{name}" if revision.path else name


# Metadata only the API server sets: a manifest's copy (`kubectl get -o yaml` output, or a
# uid aimed at another pod's containers and files) is ignored, as the API server ignores it.
SERVER_OWNED_METADATA = ("uid", "resourceVersion", "generation", "creationTimestamp",
                         "deletionTimestamp", "deletionGracePeriodSeconds", "managedFields",
                         "selfLink")


def _without_server_fields(body: dict) -> dict:
    meta = body.get("metadata")
    if not isinstance(meta, dict) or not any(k in meta for k in SERVER_OWNED_METADATA):
        return body
    return {**body, "metadata": {k: v for k, v in meta.items()
                                 if k not in SERVER_OWNED_METADATA}}


def plan_against(store: Store, desired: list[Desired], rules: tuple[IgnoreRule, ...] = (),
                 inventory: dict[ObjectKey, InventoryEntry] | None = None) -> Plan:
    """A plan read from the store in one go (`gitops diff`; the agent's planner is
    incremental). Hooks are not planned: they are not part of the inventory. `inventory`:
    what may be pruned, when not the whole store's (files left encrypted are not judged)."""
    desired = hook_rules.split(desired).objects
    inventory = store.inventory() if inventory is None else inventory
    keys = {d.key for d in desired} | set(inventory)
    live = {k: obj for k in keys if (obj := store.get(k)) is not None}
    last = {k: store.applied(k) for k in inventory} if hasattr(store, "applied") else None
    return compute_plan(desired, live, {k: e.applied_hash for k, e in inventory.items()},
                        last, rules=rules)


def drift_actor(live: dict, field_paths: list[str]) -> str:
    """Who changed the drifted fields through the Kubernetes API: the field manager that
    owns them (metadata.managedFields), else the newest one, else "unknown"."""
    entries = live.get("metadata", {}).get("managedFields") or []
    for path in field_paths:
        for entry in sorted(entries, key=lambda e: e.get("time") or "", reverse=True):
            if _owns(entry.get("fieldsV1") or {}, live, paths.split(path)):
                return entry.get("manager") or "unknown"
    newest = max(entries, key=lambda e: e.get("time") or "", default=None)
    return (newest.get("manager") or "unknown") if newest else "unknown"


def _owns(tree: dict, value: object, parts: list) -> bool:
    """Whether a FieldsV1 tree covers the field at parts (list items matched by key)."""
    for i, part in enumerate(parts):
        if isinstance(part, int):
            item = value[part] if isinstance(value, list) and part < len(value) else None
            key = next((k for k in tree if k.startswith("k:") and isinstance(item, dict)
                        and all(item.get(f) == v for f, v in json.loads(k[2:]).items())), None)
            if key is None:
                return False
            tree, value = tree[key], item
        else:
            node = tree.get(f"f:{part}")
            if node is None:
                return False
            if not node:                     # a leaf: it owns everything below
                return True
            tree, value = node, value.get(part) if isinstance(value, dict) else None
    return True


class SyncEngine:
    def __init__(self, store: Store, source: Source, policy: SyncPolicy | None = None,
                 drift: DriftRecorder | None = None,
                 sleep: Callable[[float], None] = time.sleep,
                 clock: Callable[[], float] = time.monotonic,
                 owner: FieldOwner | None = None) -> None:
        self.store = store
        self.source = source
        self.policy = policy or SyncPolicy()
        self.drift = drift or DriftRecorder()
        self.sleep = sleep
        self.clock = clock
        self.owner = owner              # git's field manager (managedFields), if any
        self.status = SyncStatusBook(store)
        self.inventory = InventoryBook(store)
        # re-diffs only what changed since the last plan
        self.planner = Planner(store, self.policy.options)
        # The last revision that rendered cleanly: a revision is immutable (a commit, or a
        # directory's content hash), so a re-sync of it skips load and validation, as Argo
        # CD's repo server caches manifests per commit. Failed renders are never kept (a
        # tool that timed out is tried again).
        self._rendered: tuple[tuple, Rendered] | None = None
        self._revision: Revision | None = None     # the last one fetched
        self._lock = threading.Lock()              # one pass at a time
        self._writer: int | None = None            # the thread of the pass running

    @property
    def source_info(self) -> dict:
        return {"repo": redact_url(self.source.url), "ref": self.source.ref,
                "path": self.source.path}

    def sync_once(self, trigger: str = "interval", fetch: bool = True) -> SyncResult:
        """One pass. fetch=False re-syncs the revision fetched last (a self-heal pass:
        no git round trip), fetching only if there is none yet."""
        with self._lock:
            self._writer = threading.get_ident()
            try:
                return self._sync(trigger, fetch)
            finally:
                self._writer = None

    def is_own_write(self) -> bool:
        """Whether the caller runs on the sync pass's thread (a watch callback telling of a
        write the sync made: what git declares)."""
        return self._writer == threading.get_ident()

    def _sync(self, trigger: str, fetch: bool) -> SyncResult:
        reconcile_id = uuid.uuid4().hex[:12]
        blog = log.bind(reconcile_id=reconcile_id, trigger=trigger)
        if self.status.suspended():
            blog.info("sync_suspended")
            return SyncResult("suspended", self.status.applied_revision(),
                              message="syncing is suspended (gitops resume)")
        timings: dict[str, float] = {}
        t0 = time.perf_counter()
        try:
            revision = self._fetch(blog) if fetch or self._revision is None \
                else self._revision
        except GitopsError as exc:
            blog.error("source_fetch_failed", repo=redact_url(self.source.url), error=str(exc))
            return self._finish(SyncResult("failed", message=str(exc)), blog)
        timings["fetch"] = time.perf_counter() - t0
        blog = blog.bind(revision=revision.sha)

        t1 = time.perf_counter()
        rendered, errors = self._render(revision)
        timings["render"] = time.perf_counter() - t1
        if errors or rendered is None:
            for err in errors:
                blog.error("manifest_invalid", **err.as_dict())
            return self._finish(SyncResult(
                "failed", revision.sha, errors=errors, timings=timings,
                message=f"revision refused: {len(errors)} invalid manifest(s); "
                        "the last good revision keeps running"), blog)
        split = rendered.split

        t2 = time.perf_counter()
        inventory = self.inventory.read()
        plan = self.planner.plan(split.objects, inventory, rendered.rules)
        timings["diff"] = time.perf_counter() - t2
        if not split.objects and inventory and not self.policy.allow_empty_prune:
            return self._finish(SyncResult(
                "refused", revision.sha, plan=plan, timings=timings,
                message="revision renders zero objects while objects are deployed; refusing "
                        "to prune everything (--allow-empty-prune allows it)"), blog)

        t3 = time.perf_counter()
        hooks_due, refusal = self._hooks_due(split, revision.sha, trigger)
        if refusal:
            return self._finish(SyncResult("failed", revision.sha, plan=plan,
                                           timings=timings, message=refusal), blog)
        runner = HookRunner(self.store, revision.sha, timeout=self.policy.wave_timeout,
                            clock=self.clock, sleep=self.sleep, log=blog, owner=self.owner)
        failure, phase = "", ""
        if hooks_due and split.phase(PRE_SYNC):
            failure = runner.run(PRE_SYNC, split.phase(PRE_SYNC))
            phase = PRE_SYNC if failure else ""
        if not failure:
            failure = self._apply(plan, blog, inventory, rendered,
                                  split.phase(SYNC) if hooks_due else [], runner)
            phase = SYNC if failure else ""
        if not failure and hooks_due and split.phase(POST_SYNC):
            failure = self._wait_settled(split.objects, "before PostSync hooks") or \
                runner.run(POST_SYNC, split.phase(POST_SYNC))
            phase = POST_SYNC if failure else ""
        if failure and hooks_due and split.phase(SYNC_FAIL):
            runner.run(SYNC_FAIL, split.phase(SYNC_FAIL))
        if hooks_due:
            self.status.record_hooks({"revision": revision.sha,
                                      "result": "failed" if failure else "succeeded",
                                      "phase": phase,
                                      "hooks": [r.as_dict() for r in runner.results]})
        timings["apply"] = time.perf_counter() - t3
        self._report_drift(plan, revision, reconcile_id, trigger)
        for change in plan.changes:
            if change.action in ("create", "update", "prune") and not self._held(change):
                blog.info("object_" + {"create": "created", "update": "configured",
                                       "prune": "pruned"}[change.action],
                          object=str(change.key), file=change.file, line=change.line,
                          fields=[f.path for f in change.fields])
        hooks = [r.as_dict() for r in runner.results]
        if failure:
            if phase == PRE_SYNC:
                failure = f"revision refused: {failure}; the last good revision keeps running"
            elif phase == POST_SYNC:
                self.status.record_applied(revision.sha)    # its objects are applied
            return self._finish(SyncResult("failed", revision.sha, plan=plan, timings=timings,
                                           message=failure, hooks=hooks), blog)
        self.status.record_applied(revision.sha)
        result = "synced" if plan.has_changes or runner.results else "unchanged"
        return self._finish(SyncResult(result, revision.sha, plan=plan, timings=timings,
                                       hooks=hooks), blog)

    # -- steps ------------------------------------------------------------------------
    def _fetch(self, blog) -> Revision:
        pin = self.status.pin()
        revision = self.source.fetch(pin.sha if pin else None)
        if pin and revision.head != pin.head:
            # A new commit supersedes a rollback: auto-sync resumes from the tip.
            blog.info("pin_released", pinned=pin.sha, new_head=revision.head)
            self.status.set_pin(None)
            revision = self.source.fetch(None)
        self.status.record_fetch(revision.head)
        self._revision = revision
        return revision

    def _render(self, revision: Revision) -> tuple[Rendered | None, list[ManifestError]]:
        key = (revision.sha, revision.path, self.policy.allow_host_access,
               self.policy.helm_values, self.policy.allow_remote_bases,
               self.policy.ignore_file, self.policy.ignore_differences)
        if self._rendered is not None and self._rendered[0] == key:
            return self._rendered[1], []
        decryption = Decryption(self.policy.decryption)
        desired, errors = render(revision, self.policy.allow_host_access,
                                 self.policy.helm_values, self.policy.allow_remote_bases,
                                 decryption)
        for warning in decryption.warnings:     # once per revision: renders are cached
            log.warning("manifest_warning", revision=revision.sha, **warning.as_dict())
        rules: list[IgnoreRule] = list(self.policy.ignore_differences)
        if self.policy.ignore_file and not errors:
            found, more = read_ignore_file(revision, self.policy.ignore_file)
            rules += found
            errors = [*errors, *more]
        if errors:
            self._rendered = None
            return None, errors
        split = hook_rules.split(desired)
        for d, why in split.skipped:
            log.info("object_not_synced", object=f"{d.body.get('kind')}/"
                     f"{(d.body.get('metadata') or {}).get('name')}", file=d.file,
                     line=d.line, reason=why)
        rendered = Rendered(desired, split, tuple(rules))
        self._rendered = (key, rendered)
        return rendered, []

    def _hooks_due(self, split: hook_rules.Split, sha: str, trigger: str) -> tuple[bool, str]:
        """(run the hooks?, why the revision is refused without trying). Hooks run once per
        revision. A revision whose PreSync hook failed is not retried on every poll (that
        would rerun a failing migration each minute): a new commit or `gitops sync` does."""
        if not split.hooks:
            return False, ""
        last = self.status.hooks() or {}
        if last.get("revision") != sha:
            return True, ""
        if last.get("result") == "failed" and trigger == "manual":
            return True, ""
        if last.get("result") == "failed" and last.get("phase") == PRE_SYNC:
            return False, ("revision refused: its PreSync hooks failed "
                           "(`gitops sync` runs them again); the last good revision keeps "
                           "running")
        return False, ""

    def _held(self, change: Change) -> bool:
        """A drifted object left alone because self-heal is off."""
        return bool(change.drift) and not self.policy.self_heal

    def _prunable(self, change: Change) -> bool:
        own = options_of(change.live).prune
        return own if own is not None else self.policy.prune

    def _apply(self, plan: Plan, blog, old: dict[ObjectKey, InventoryEntry],
               rendered: Rendered, sync_hooks: list[Hook], runner: HookRunner) -> str:
        """Apply wave by wave, Sync hooks in their waves; returns a failure message, or ""
        when every wave applied. old: the inventory the plan was made against."""
        writer = Writer(self.store, self.owner, rendered.rules, self.policy.options)
        grouped = dict(waves(plan.changes))
        hook_waves = dict(hook_rules.waves_of(sync_hooks))
        order = sorted({*grouped, *hook_waves})
        todo = [w for w in order if hook_waves.get(w) or any(
            c.action in ("create", "update") and not self._held(c) for c in grouped.get(w, ()))]
        upserts: list[InventoryEntry] = []
        failure = ""
        if todo:
            self._create_namespaces(plan, blog)
        for wave in order:
            changes = grouped.get(wave, [])
            writes = [c for c in changes if c.action in ("create", "update")
                      and not self._held(c)]
            record = [c.key for c in changes if c.action == "unchanged"
                      and (c.key not in old or old[c.key].applied_hash != c.desired_hash)]
            if writes or record:
                writer.apply(writes, record)
            started, failure = runner.start(SYNC, hook_waves.get(wave, []))
            for c in changes:
                entry = self._entry(c, old.get(c.key))
                if entry is not None:
                    upserts.append(entry)
            if failure:
                break
            if any(w > wave for w in todo) or started:
                failure = self._gate(wave, changes, blog) or runner.wait(started)
                if failure:
                    break
        removals: list[ObjectKey] = []
        if not failure:
            failure = self._prune(plan, writer, removals, blog)
        for c in plan.changes:
            if c.action in ("prune", "skip") and c.key not in removals:
                status = EXTRANEOUS_IGNORED if options_of(c.live).ignore_extraneous \
                    else PRUNE_SKIPPED
                if c.key in old and old[c.key].sync_status != status:
                    upserts.append(replace(old[c.key], sync_status=status))
        if upserts or removals:        # a no-op sync writes nothing
            self.inventory.change(upserts, removals)
        return failure

    def _entry(self, c: Change, old: InventoryEntry | None) -> InventoryEntry | None:
        """The inventory entry after this change, or None when it stays as it is."""
        held = self._held(c)
        applied_hash = old.applied_hash if held and old is not None else c.desired_hash
        status = OUT_OF_SYNC if held else SYNCED
        if old is not None and (old.applied_hash, old.file, old.line, old.sync_status) == \
                (applied_hash, c.file, c.line, status):
            return None
        assert c.desired is not None
        return InventoryEntry(c.key, c.desired["apiVersion"], c.file, c.line, applied_hash,
                              status)

    def _prune(self, plan: Plan, writer: Writer, removals: list[ObjectKey], blog) -> str:
        """Prune what may be pruned; PruneLast ones once everything else is healthy."""
        prunes = [c for c in plan.changes if c.action == "prune" and self._prunable(c)]
        last = [c for c in prunes if options_of(c.live, self.policy.options).prune_last]
        first = [c for c in prunes if c not in last]
        if first:
            writer.prune(first)
            removals += [c.key for c in first]
        if last:
            failure = self._wait_settled([c for c in plan.changes if c.desired is not None],
                                         "before PruneLast prunes")
            if failure:
                return failure
            writer.prune(last)
            removals += [c.key for c in last]
        return ""

    def _create_namespaces(self, plan: Plan, blog) -> None:
        """CreateNamespace=true: the namespaces objects go to, made when missing (not part
        of the inventory: never pruned, as Argo CD leaves the namespaces it creates)."""
        declared = {c.key.name for c in plan.changes if c.key.kind == "Namespace"}
        wanted = {c.key.namespace for c in plan.changes if c.desired is not None
                  and c.action == "create" and c.key.namespace
                  and options_of(c.desired, self.policy.options).create_namespace}
        for name in sorted(wanted - declared):
            if self.store.get(ObjectKey("Namespace", "", name)) is None:
                self.store.create({"apiVersion": "v1", "kind": "Namespace",
                                   "metadata": {"name": name}})
                blog.info("namespace_created", namespace=name)

    def _gate(self, wave: int, changes: list[Change], blog) -> str:
        """Health gate between waves: wait until this wave's objects are Healthy (or
        Unknown: nothing here would change them); a Job that failed ends it at once."""
        deadline = self.clock() + self.policy.wave_timeout
        while True:
            pending = []
            for c in changes:
                obj = self.store.get(c.key)
                if why := failed_for_good(obj):
                    return f"wave {wave}: {c.key} failed: {why}"
                if not settled(obj):
                    pending.append((c.key, assess(obj)))
            if not pending:
                blog.info("sync_wave_healthy", wave=wave, objects=len(changes))
                return ""
            if self.clock() >= deadline:
                key, health = pending[0]
                return (f"wave {wave}: {len(pending)} object(s) not healthy after "
                        f"{self.policy.wave_timeout:.0f}s, e.g. {key}: {health.status} "
                        f"{health.message}").strip()
            self.sleep(0.5)

    def _wait_settled(self, objects: list, what: str) -> str:
        """Every object of the revision healthy (PostSync hooks, PruneLast)."""
        keys = [o.key for o in objects]
        deadline = self.clock() + self.policy.wave_timeout
        while True:
            pending = [k for k in keys if not settled(self.store.get(k))]
            failed = next(((k, why) for k in pending
                           if (why := failed_for_good(self.store.get(k)))), None)
            if failed is not None:
                return f"{failed[0]} failed {what}: {failed[1]}"
            if not pending:
                return ""
            if self.clock() >= deadline:
                health = assess(self.store.get(pending[0]))
                return (f"{len(pending)} object(s) not healthy {what} after "
                        f"{self.policy.wave_timeout:.0f}s, e.g. {pending[0]}: "
                        f"{health.status} {health.message}").strip()
            self.sleep(0.5)

    def _report_drift(self, plan: Plan, revision: Revision, reconcile_id: str,
                      trigger: str) -> None:
        for change in plan.drifted:
            self.report_drift(change, reconcile_id, trigger,
                              "reported" if self._held(change) else "corrected",
                              revision.sha)

    def report_drift(self, change: Change, reconcile_id: str, trigger: str, action: str,
                     revision: str | None = None) -> None:
        """One drift record (DESIGN.md's schema) for a change that is drift."""
        source = {**self.source_info,
                  "revision": revision or self.status.fetched_revision() or None,
                  "applied_revision": self.status.applied_revision() or None}
        policy = {"self_heal": self.policy.self_heal, "prune": self.policy.prune}
        stored = self.store.get(change.key)
        # the object as it drifted (the plan's copy): its managedFields name the actor
        live = mask_secret(change.live or stored) or {}
        meta = live.get("metadata", {})
        health = assess(stored)
        self.drift.record(
            reconcile_id=reconcile_id, trigger=trigger, source=source,
            obj={"apiVersion": (change.desired or {}).get("apiVersion", ""),
                 "kind": change.key.kind, "namespace": change.key.namespace,
                 "name": change.key.name, "uid": meta.get("uid", ""), "file": change.file,
                 "line": change.line},
            drift_type=change.drift, origin="desired", fields=field_records(change.fields),
            actor=drift_actor(live, [f.path for f in change.fields]),
            health={"status": health.status, "message": health.message},
            policy=policy, action=action)

    def _finish(self, res: SyncResult, blog) -> SyncResult:
        plan = res.plan
        counts = {a: plan.count(a) for a in ("create", "update", "unchanged", "prune")} \
            if plan else {}
        summary = {"result": res.result, "revision": res.revision, "message": res.message,
                   "created": counts.get("create", 0), "configured": counts.get("update", 0),
                   "unchanged": counts.get("unchanged", 0), "pruned": counts.get("prune", 0),
                   "drifted": len(plan.drifted) if plan else 0, "failed": len(res.errors),
                   "timings_ms": {k: round(v * 1000, 1) for k, v in res.timings.items()}}
        if res.hooks:
            summary["hooks"] = len(res.hooks)
        level = "info" if res.result in ("synced", "unchanged") else "error"
        getattr(blog, level)("sync_completed", **summary)
        entry = {**summary, "at": time.time(), "errors": [str(e) for e in res.errors[:50]]}
        self.status.record_result(entry)
        if res.result not in ("unchanged", "suspended") and not self._repeats(entry):
            self.store.record_sync(entry)
        return res

    def _repeats(self, entry: dict) -> bool:
        """The same failure of the same revision as the last history entry: history keeps
        one line for a revision refused on every poll."""
        if entry["result"] in ("synced", "unchanged"):
            return False
        last = next(iter(self.store.history(1)), None)
        return last is not None and all(last.get(k) == entry[k]
                                        for k in ("revision", "result", "message"))
