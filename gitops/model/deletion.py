"""How deleting an object treats its dependents (pure): the propagation policies and the
finalizers the garbage collector owns, as Kubernetes names them.

The store's registry performs deletions (gitops.store.registry); the garbage collector
(gitops.controllers.gc) finishes the ones these finalizers hold.
"""

from __future__ import annotations

BACKGROUND, FOREGROUND, ORPHAN = "Background", "Foreground", "Orphan"
PROPAGATIONS = (BACKGROUND, FOREGROUND, ORPHAN)
FOREGROUND_FINALIZER, ORPHAN_FINALIZER = "foregroundDeletion", "orphan"
# Set on an object (in git, say) to choose how deleting it treats its dependents.
PROPAGATION_ANNOTATION = "gitops.io/delete-propagation"


def propagation_of(obj: dict, requested: str = "") -> str:
    """The policy asked for, else the object's annotation, else Background."""
    if requested:
        return requested
    value = ((obj.get("metadata") or {}).get("annotations") or {}).get(PROPAGATION_ANNOTATION,
                                                                        "")
    return {"orphan": ORPHAN, "foreground": FOREGROUND}.get(value.lower(), BACKGROUND)


def is_finalized(obj: dict) -> bool:
    """A deleting object whose last finalizer was just removed goes now (a Pod's node
    finishes its deletion instead)."""
    meta = obj.get("metadata", {})
    return bool(meta.get("deletionTimestamp")) and not meta.get("finalizers") and \
        obj.get("kind") != "Pod"
