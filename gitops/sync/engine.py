"""One reconcile of git against the store: fetch, render, validate, plan, apply, report.

A revision is applied whole or not at all: any load or validation error, or any change
the API server's admission would refuse (an immutable field changed, an object in a
namespace nothing makes), refuses the revision, logs every error with file:line, and
leaves the last good revision in place.
Objects apply wave by wave (sync-wave annotation, then kind order); a later wave waits
until the earlier one is healthy. Drift (the live object moved while git did not) is
logged field by field and corrected unless self-heal is off.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

import structlog

from gitops.admission.errors import Refused
from gitops.errors import GitopsError, ManifestError
from gitops.health import HEALTHY, assess
from gitops.manifests import paths
from gitops.manifests import policy as node_policy
from gitops.manifests.render import render_path
from gitops.manifests.validate import validate
from gitops.model.secrets import mask_secret
from gitops.source import Revision, Source
from gitops.source.base import oversized, redact_url
from gitops.store.base import InventoryEntry, Store
from gitops.sync import admission
from gitops.sync.apply import apply_changes, prune
from gitops.sync.diff import Change, Desired, Plan, compute_plan
from gitops.sync.drift import DriftRecorder, field_records
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


@dataclass
class SyncPolicy:
    self_heal: bool = True
    prune: bool = True
    allow_empty_prune: bool = False
    wave_timeout: float = 300.0
    allow_host_access: bool = False
    helm_values: tuple[str, ...] = ()   # values files of a Helm chart, relative to it
    allow_remote_bases: bool = False    # kustomize may fetch remote resources
    create_namespace: bool = False      # make namespaces objects name that nothing declares


def render(revision: Revision, allow_host_access: bool = False,
           helm_values: tuple[str, ...] = (), allow_remote_bases: bool = False
           ) -> tuple[list[Desired], list[ManifestError]]:
    """Load and validate every manifest of a revision (pure apart from reading files and
    running renderers in their sandbox). Nothing outside the checkout is read."""
    base = revision.manifest_dir
    if not base.exists():
        return [], [ManifestError(f"path {revision.path!r} does not exist in the source",
                                  file=revision.path)]
    if problem := oversized(revision.root):
        return [], [ManifestError(problem, file=".")]
    loaded = render_path(base, helm_values, repo_root=revision.root,
                         allow_remote_bases=allow_remote_bases)
    errors = [*loaded.errors, *validate(loaded.objects),
              *node_policy.check(loaded.objects, allow_host_access)]
    return [Desired(_without_server_fields(o.body), o.file, o.line, o.field_lines)
            for o in loaded.objects], errors


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


def plan_against(store: Store, desired: list[Desired], memo: dict | None = None,
                 inventory: dict | None = None) -> Plan:
    inventory = store.inventory() if inventory is None else inventory
    keys = {d.key for d in desired} | set(inventory)
    live = {k: obj for k in keys if (obj := store.get(k)) is not None}
    if memo is not None and len(memo) > 2 * len(keys) + 100:
        memo.clear()             # keys git dropped long ago: start over
    last = {k: store.applied(k) for k in inventory} if hasattr(store, "applied") else None
    return compute_plan(desired, live, {k: e.applied_hash for k, e in inventory.items()},
                        last, memo)


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
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.store = store
        self.source = source
        self.policy = policy or SyncPolicy()
        self.drift = drift or DriftRecorder()
        self.sleep = sleep
        self.clock = clock
        self.status = SyncStatusBook(store)
        # The last revision that rendered cleanly: a revision is immutable (a commit, or a
        # directory's content hash), so a re-sync of it skips load and validation, as Argo
        # CD's repo server caches manifests per commit. Failed renders are never kept (a
        # tool that timed out is tried again).
        self._rendered: tuple[tuple, list[Desired]] | None = None
        self._diff_memo: dict = {}      # compute_plan's: unchanged pairs are not re-diffed

    @property
    def source_info(self) -> dict:
        return {"repo": redact_url(self.source.url), "ref": self.source.ref,
                "path": self.source.path}

    def sync_once(self, trigger: str = "interval") -> SyncResult:
        reconcile_id = uuid.uuid4().hex[:12]
        blog = log.bind(reconcile_id=reconcile_id, trigger=trigger)
        if self.status.suspended():
            blog.info("sync_suspended")
            return SyncResult("suspended", self.status.applied_revision(),
                              message="syncing is suspended (gitops resume)")
        timings: dict[str, float] = {}
        t0 = time.perf_counter()
        try:
            revision = self._fetch(blog)
        except GitopsError as exc:
            blog.error("source_fetch_failed", repo=redact_url(self.source.url), error=str(exc))
            return self._finish(SyncResult("failed", message=str(exc)), blog)
        timings["fetch"] = time.perf_counter() - t0
        blog = blog.bind(revision=revision.sha)

        t1 = time.perf_counter()
        desired, errors = self._render(revision)
        timings["render"] = time.perf_counter() - t1
        if errors:
            for err in errors:
                blog.error("manifest_invalid", **err.as_dict())
            return self._finish(SyncResult(
                "failed", revision.sha, errors=errors, timings=timings,
                message=f"revision refused: {len(errors)} invalid manifest(s); "
                        "the last good revision keeps running"), blog)

        t2 = time.perf_counter()
        inventory = self.store.inventory()
        plan = plan_against(self.store, desired, self._diff_memo, inventory)
        timings["diff"] = time.perf_counter() - t2
        if not desired and inventory and not self.policy.allow_empty_prune:
            return self._finish(SyncResult(
                "refused", revision.sha, plan=plan, timings=timings,
                message="revision renders zero objects while objects are deployed; refusing "
                        "to prune everything (--allow-empty-prune allows it)"), blog)

        verdict = admission.judge(self.store, plan, {d.key: d for d in desired},
                                  self.policy.create_namespace,
                                  frozenset(c.key for c in plan.changes if self._held(c)))
        if verdict.errors:
            for err in verdict.errors:
                blog.error("manifest_refused", **err.as_dict())
            return self._finish(SyncResult(
                "failed", revision.sha, plan=plan, errors=verdict.errors, timings=timings,
                message=f"revision refused: {len(verdict.errors)} change(s) the API server "
                        "would refuse; the last good revision keeps running"), blog)
        for ns in verdict.namespaces:       # CreateNamespace: made, never pruned
            self.store.create({"apiVersion": "v1", "kind": "Namespace",
                               "metadata": {"name": ns}})
            blog.info("namespace_created", namespace=ns)

        t3 = time.perf_counter()
        failure = self._apply(plan, blog, inventory)
        timings["apply"] = time.perf_counter() - t3
        self._report_drift(plan, revision, reconcile_id, trigger)
        for change in plan.changes:
            if change.action in ("create", "update", "prune") and not self._held(change):
                blog.info("object_" + {"create": "created", "update": "configured",
                                       "prune": "pruned"}[change.action],
                          object=str(change.key), file=change.file, line=change.line,
                          fields=[f.path for f in change.fields])
        if failure:
            return self._finish(SyncResult("failed", revision.sha, plan=plan, timings=timings,
                                           message=failure), blog)
        self.status.record_applied(revision.sha)
        result = "synced" if plan.has_changes else "unchanged"
        return self._finish(SyncResult(result, revision.sha, plan=plan, timings=timings), blog)

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
        return revision

    def _render(self, revision: Revision) -> tuple[list[Desired], list[ManifestError]]:
        key = (revision.sha, revision.path, self.policy.allow_host_access,
               self.policy.helm_values, self.policy.allow_remote_bases)
        if self._rendered is not None and self._rendered[0] == key:
            return self._rendered[1], []
        desired, errors = render(revision, self.policy.allow_host_access,
                                 self.policy.helm_values, self.policy.allow_remote_bases)
        self._rendered = None if errors else (key, desired)
        return desired, errors

    def _held(self, change: Change) -> bool:
        """A drifted object left alone because self-heal is off."""
        return bool(change.drift) and not self.policy.self_heal

    def _apply(self, plan: Plan, blog, old: dict) -> str:
        """Apply wave by wave; returns a failure message, or "" when every wave applied.
        old: the inventory the plan was made against."""
        done: dict = {}
        grouped = waves(plan.changes)
        failure = ""
        for index, (wave, changes) in enumerate(grouped):
            try:
                apply_changes(self.store, [c for c in changes if not self._held(c)])
            except Refused as exc:      # judged fine, then something moved: a wave whole
                failure = f"wave {wave}: refused: {exc}"
                break
            for c in changes:
                held = self._held(c)
                applied_hash = old[c.key].applied_hash if held and c.key in old \
                    else c.desired_hash
                done[c.key] = InventoryEntry(c.key, c.desired["apiVersion"], c.file, c.line,
                                             applied_hash, "OutOfSync" if held else "Synced")
            if index + 1 < len(grouped):
                failure = self._gate(wave, changes, blog)
                if failure:
                    break
        if not failure and self.policy.prune:
            prune(self.store, plan.changes)
        pruned = {c.key for c in plan.changes if c.action == "prune"} if not failure and \
            self.policy.prune else set()
        keep = {k: e for k, e in old.items() if k not in done and k not in pruned}
        new = {**keep, **done}
        if new != old:               # a no-op sync writes nothing
            self.store.set_inventory(list(new.values()))
        return failure

    def _gate(self, wave: int, changes: list[Change], blog) -> str:
        """Health gate between waves: wait until this wave's objects are Healthy."""
        deadline = self.clock() + self.policy.wave_timeout
        while True:
            pending = [(c.key, h) for c in changes
                       if (h := assess(self.store.get(c.key))).status != HEALTHY]
            if not pending:
                blog.info("sync_wave_healthy", wave=wave, objects=len(changes))
                return ""
            if self.clock() >= deadline:
                key, health = pending[0]
                return (f"wave {wave}: {len(pending)} object(s) not healthy after "
                        f"{self.policy.wave_timeout:.0f}s, e.g. {key}: {health.status} "
                        f"{health.message}").strip()
            self.sleep(0.5)

    def _report_drift(self, plan: Plan, revision: Revision, reconcile_id: str,
                      trigger: str) -> None:
        source = {**self.source_info, "revision": revision.sha,
                  "applied_revision": self.status.applied_revision() or None}
        policy = {"self_heal": self.policy.self_heal, "prune": self.policy.prune}
        for change in plan.drifted:
            live = mask_secret(self.store.get(change.key)) or {}
            meta = live.get("metadata", {})
            health = assess(self.store.get(change.key))
            self.drift.record(
                reconcile_id=reconcile_id, trigger=trigger, source=source,
                obj={"apiVersion": change.desired["apiVersion"], "kind": change.key.kind,
                     "namespace": change.key.namespace, "name": change.key.name,
                     "uid": meta.get("uid", ""), "file": change.file, "line": change.line},
                drift_type=change.drift, origin="desired", fields=field_records(change.fields),
                actor=drift_actor(live, [f.path for f in change.fields]),
                health={"status": health.status, "message": health.message},
                policy=policy, action="reported" if self._held(change) else "corrected")

    def _finish(self, res: SyncResult, blog) -> SyncResult:
        plan = res.plan
        counts = {a: plan.count(a) for a in ("create", "update", "unchanged", "prune")} \
            if plan else {}
        summary = {"result": res.result, "revision": res.revision, "message": res.message,
                   "created": counts.get("create", 0), "configured": counts.get("update", 0),
                   "unchanged": counts.get("unchanged", 0), "pruned": counts.get("prune", 0),
                   "drifted": len(plan.drifted) if plan else 0, "failed": len(res.errors),
                   "timings_ms": {k: round(v * 1000, 1) for k, v in res.timings.items()}}
        level = "info" if res.result in ("synced", "unchanged") else "error"
        getattr(blog, level)("sync_completed", **summary)
        entry = {**summary, "at": time.time(), "errors": [str(e) for e in res.errors[:50]]}
        self.status.record_result(entry)
        if res.result not in ("unchanged", "suspended"):
            self.store.record_sync(entry)
        return res
