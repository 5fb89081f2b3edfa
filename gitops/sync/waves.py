"""Sync waves: explicit ordering by annotation, kind order within a wave (pure)."""

from __future__ import annotations

from collections import defaultdict

from gitops.sync.diff import Change, apply_rank

# Ours first; Argo CD's is honoured too so repos can move over unchanged.
WAVE_ANNOTATIONS = ("gitops.io/sync-wave", "argocd.argoproj.io/sync-wave")


def wave_of(change: Change) -> int:
    obj = change.desired or change.live or {}
    annotations = obj.get("metadata", {}).get("annotations") or {}
    for name in WAVE_ANNOTATIONS:
        if name in annotations:
            try:
                return int(str(annotations[name]).strip())
            except ValueError:
                return 0
    return 0


def waves(changes: list[Change]) -> list[tuple[int, list[Change]]]:
    """Changes that apply (not prunes), grouped by wave, lowest first."""
    grouped: dict[int, list[Change]] = defaultdict(list)
    for change in changes:
        if change.action in ("create", "update", "unchanged"):
            grouped[wave_of(change)].append(change)
    return [(w, sorted(grouped[w], key=lambda c: apply_rank(c.key))) for w in sorted(grouped)]
