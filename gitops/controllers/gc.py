"""Garbage collector: objects whose owners are gone are deleted (background cascading)."""

from __future__ import annotations

from collections.abc import Iterable

from gitops.controllers.base import Action, Delete
from gitops.model import key_of, owner_uids
from gitops.model.meta import is_deleting


def reconcile(objects: Iterable[dict]) -> list[Action]:
    objects = list(objects)
    live_uids = {o["metadata"]["uid"] for o in objects}
    actions: list[Action] = []
    for obj in objects:
        owners = owner_uids(obj)
        # Kubernetes deletes a dependent once *all* its owners are gone.
        if owners and not any(uid in live_uids for uid in owners) and not is_deleting(obj):
            actions.append(Delete(key_of(obj)))
    return actions
