"""Actions controllers return, and the one executor that applies them to the store."""

from __future__ import annotations

from dataclasses import dataclass

import structlog

from gitops.model import ObjectKey, key_of
from gitops.model.meta import is_deleting
from gitops.store.base import Conflict, NotFound, Store
from gitops.store.sqlite import now_iso

log = structlog.get_logger(component="controllers")


@dataclass(frozen=True)
class Create:
    obj: dict


@dataclass(frozen=True)
class Update:
    obj: dict


@dataclass(frozen=True)
class SetStatus:
    key: ObjectKey
    status: dict


@dataclass(frozen=True)
class Delete:
    key: ObjectKey


Action = Create | Update | SetStatus | Delete


def request_delete(store: Store, key: ObjectKey) -> None:
    """Delete as Kubernetes does: a bound pod is only marked; its node finishes the job."""
    obj = store.get(key)
    if obj is None:
        return
    if key.kind == "Pod" and obj.get("spec", {}).get("nodeName"):
        if not is_deleting(obj):
            obj["metadata"]["deletionTimestamp"] = now_iso()
            store.update(obj)
        return
    store.delete(key)


def execute(store: Store, actions: list[Action], controller: str) -> None:
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
                case Delete(key):
                    request_delete(store, key)
                    log.info("object_deleted", controller=controller, object=str(key))
        except (Conflict, NotFound) as exc:
            log.debug("action_conflict", controller=controller, error=str(exc))
