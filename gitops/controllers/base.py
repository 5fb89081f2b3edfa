"""The one executor that applies controllers' actions (gitops.model.actions) to the store,
and deletion as the API server does it.

An action may carry the Event that describes it (`event=`); the executor records it only
once the action succeeded, as Kubernetes controllers emit SuccessfulCreate after the
create call returned.
"""

from __future__ import annotations

import structlog

from gitops.model import ObjectKey, key_of
from gitops.model.actions import Action, Create, Delete, Emit, SetStatus, Update
from gitops.model.meta import is_deleting
from gitops.model.times import now_iso
from gitops.store.base import Conflict, NotFound, Store
from gitops.store.events import EventRecorder

log = structlog.get_logger(component="controllers")

BACKGROUND, FOREGROUND, ORPHAN = "Background", "Foreground", "Orphan"
FOREGROUND_FINALIZER, ORPHAN_FINALIZER = "foregroundDeletion", "orphan"
# Set on an object (in git, say) to choose how deleting it treats its dependents.
PROPAGATION_ANNOTATION = "gitops.io/delete-propagation"




def propagation_of(obj: dict, requested: str = "") -> str:
    if requested:
        return requested
    value = ((obj.get("metadata") or {}).get("annotations") or {}).get(PROPAGATION_ANNOTATION,
                                                                        "")
    return {"orphan": ORPHAN, "foreground": FOREGROUND}.get(value.lower(), BACKGROUND)


def request_delete(store: Store, key: ObjectKey, propagation: str = "") -> None:
    """Delete as the API server does. Background: the object goes now, the garbage
    collector takes its dependents later. Orphan / Foreground: the object is only marked
    (deletionTimestamp and the `orphan` / `foregroundDeletion` finalizer); the garbage
    collector frees or deletes the dependents first, then removes it. A bound pod is only
    marked; its node finishes the job."""
    obj = store.get(key)
    if obj is None:
        return
    policy = propagation_of(obj, propagation)
    meta = obj["metadata"]
    if policy in (ORPHAN, FOREGROUND) and key.kind != "Pod":
        finalizer = ORPHAN_FINALIZER if policy == ORPHAN else FOREGROUND_FINALIZER
        if finalizer not in (meta.get("finalizers") or []):
            meta["finalizers"] = [*(meta.get("finalizers") or []), finalizer]
            meta.setdefault("deletionTimestamp", now_iso())
            store.update(obj)
        return
    if key.kind == "Pod" and obj.get("spec", {}).get("nodeName"):
        if not is_deleting(obj):
            meta["deletionTimestamp"] = now_iso()
            store.update(obj)
        return
    store.delete(key)


def execute(store: Store, actions: list[Action], controller: str,
            recorder: EventRecorder | None = None) -> None:
    """Apply actions one by one; a conflict just means the next pass will redo the work."""
    for action in actions:
        try:
            match action:
                case Create(obj):
                    store.create(obj)
                    log.info("object_created", controller=controller, object=str(key_of(obj)))
                case Update(obj):
                    store.update(obj)
                case SetStatus(key, status):
                    store.update_status(key, status)
                case Delete(key, _, propagation):
                    request_delete(store, key, propagation)
                    log.info("object_deleted", controller=controller, object=str(key))
                case Emit():
                    pass
        except (Conflict, NotFound) as exc:
            log.debug("action_conflict", controller=controller, error=str(exc))
            continue
        if action.event is not None and recorder is not None:
            recorder.record(action.event)
