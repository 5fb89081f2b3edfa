"""One reconcile of git against the store: fetch, render, validate, plan, apply, report.

A revision is applied whole or not at all: any load or validation error refuses the
revision, logs every error with file:line, and leaves the last good revision in place.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field

import structlog

from gitops.errors import GitopsError, ManifestError
from gitops.manifests.loader import load_path
from gitops.manifests.validate import validate

from gitops.source import Revision, Source
from gitops.store.base import Store
from gitops.sync.apply import apply_plan
from gitops.sync.diff import Desired, Plan, compute_plan

log = structlog.get_logger(component="sync")


@dataclass
class SyncResult:
    result: str                          # synced | unchanged | failed | refused
    revision: str = ""
    plan: Plan | None = None
    errors: list[ManifestError] = field(default_factory=list)
    message: str = ""
    timings: dict[str, float] = field(default_factory=dict)


def render(revision: Revision) -> tuple[list[Desired], list[ManifestError]]:
    """Load and validate every manifest of a revision (pure apart from reading files)."""
    base = revision.manifest_dir
    if not base.exists():
        return [], [ManifestError(f"path {revision.path!r} does not exist in the source",
                                  file=revision.path)]
    loaded = load_path(base)
    errors = list(loaded.errors) + validate(loaded.objects)
    return [Desired(o.body, o.file, o.line) for o in loaded.objects], errors


def plan_against(store: Store, desired: list[Desired]) -> Plan:
    inventory = store.inventory()
    keys = {d.key for d in desired} | set(inventory)
    live = {k: obj for k in keys if (obj := store.get(k)) is not None}
    return compute_plan(desired, live, inventory)


class SyncEngine:
    def __init__(self, store: Store, source: Source, allow_empty_prune: bool = False) -> None:
        self.store = store
        self.source = source
        self.allow_empty_prune = allow_empty_prune

    def sync_once(self, trigger: str = "interval") -> SyncResult:
        reconcile_id = uuid.uuid4().hex[:12]
        blog = log.bind(reconcile_id=reconcile_id, trigger=trigger)
        timings: dict[str, float] = {}
        t0 = time.perf_counter()
        try:
            revision = self.source.fetch()
        except GitopsError as exc:
            blog.error("source_fetch_failed", repo=self.source.url, error=str(exc))
            return self._finish(SyncResult("failed", message=str(exc)), blog)
        timings["fetch"] = time.perf_counter() - t0
        blog = blog.bind(revision=revision.sha)

        t1 = time.perf_counter()
        desired, errors = render(revision)
        timings["render"] = time.perf_counter() - t1
        if errors:
            for err in errors:
                blog.error("manifest_invalid", **err.as_dict())
            return self._finish(SyncResult(
                "failed", revision.sha, errors=errors, timings=timings,
                message=f"revision refused: {len(errors)} invalid manifest(s)"), blog)

        t2 = time.perf_counter()
        plan = plan_against(self.store, desired)
        timings["diff"] = time.perf_counter() - t2
        if not desired and self.store.inventory() and not self.allow_empty_prune:
            return self._finish(SyncResult(
                "refused", revision.sha, plan=plan, timings=timings,
                message="revision renders zero objects while objects are deployed; refusing "
                        "to prune everything (pass --allow-empty-prune to allow)"), blog)

        t3 = time.perf_counter()
        apply_plan(self.store, plan)
        timings["apply"] = time.perf_counter() - t3
        self.store.set_state("applied_revision", revision.sha)
        for change in plan.changes:
            if change.action in ("create", "update", "prune"):
                blog.info(f"object_{change.action}d" if change.action != "prune"
                          else "object_pruned", object=str(change.key), file=change.file,
                          line=change.line, fields=[f.path for f in change.fields])
        result = "synced" if plan.has_changes else "unchanged"
        return self._finish(SyncResult(result, revision.sha, plan=plan, timings=timings), blog)

    def _finish(self, res: SyncResult, blog) -> SyncResult:
        plan = res.plan
        counts = {a: plan.count(a) for a in ("create", "update", "unchanged", "prune")} \
            if plan else {}
        summary = {"result": res.result, "revision": res.revision, "message": res.message,
                   "created": counts.get("create", 0), "configured": counts.get("update", 0),
                   "unchanged": counts.get("unchanged", 0), "pruned": counts.get("prune", 0),
                   "failed": len(res.errors),
                   "timings_ms": {k: round(v * 1000, 1) for k, v in res.timings.items()}}
        level = "info" if res.result in ("synced", "unchanged") else "error"
        getattr(blog, level)("sync_completed", **summary)
        entry = {**summary, "at": time.time(),
                 "errors": [str(e) for e in res.errors[:50]]}
        self.store.set_state("last_sync", entry)
        if res.result != "unchanged":
            self.store.record_sync(entry)
        return res



