"""Garbage collector: ownerReferences, as Kubernetes' garbage collector reads them (pure).

- A dependent whose owners are all gone is deleted (background cascading: owner first,
  dependents on a later pass). One whose owners are only partly gone loses the dangling
  references and stays.
- An owner being deleted with the `orphan` finalizer (propagation Orphan) first has its
  references removed from every dependent, which then live on as orphans (a controller
  whose selector matches adopts them); then the owner goes.
- An owner being deleted with `foregroundDeletion` (propagation Foreground) has its
  dependents deleted first (foreground again when they have dependents of their own);
  it goes once no dependent blocking its deletion (blockOwnerDeletion) is left.
"""

from __future__ import annotations

import copy
from collections import defaultdict
from collections.abc import Iterable

from gitops.model import key_of
from gitops.model.actions import Action, Delete, Update
from gitops.model.deletion import BACKGROUND, FOREGROUND, FOREGROUND_FINALIZER, ORPHAN_FINALIZER
from gitops.model.meta import is_deleting


def _refs(obj: dict) -> list[dict]:
    return list((obj.get("metadata") or {}).get("ownerReferences") or [])


def _finalizers(obj: dict) -> list[str]:
    return list((obj.get("metadata") or {}).get("finalizers") or [])


def _without_refs(obj: dict, uids: set[str]) -> dict:
    out = copy.deepcopy(obj)
    refs = [r for r in _refs(obj) if r.get("uid") not in uids]
    if refs:
        out["metadata"]["ownerReferences"] = refs
    else:
        out["metadata"].pop("ownerReferences", None)
    return out


def _without_finalizer(obj: dict, finalizer: str) -> dict:
    out = copy.deepcopy(obj)
    rest = [f for f in _finalizers(obj) if f != finalizer]
    if rest:
        out["metadata"]["finalizers"] = rest
    else:
        out["metadata"].pop("finalizers", None)
    return out


def reconcile(objects: Iterable[dict]) -> list[Action]:
    objects = list(objects)
    by_uid = {o["metadata"]["uid"]: o for o in objects if o["metadata"].get("uid")}
    dependents: dict[str, list[dict]] = defaultdict(list)
    for obj in objects:
        for ref in _refs(obj):
            if ref.get("uid"):
                dependents[ref["uid"]].append(obj)
    actions: list[Action] = []
    patched: set[str] = set()       # at most one write per dependent per pass

    # Owners on their way out with a finalizer the garbage collector owns.
    for owner in objects:
        if not is_deleting(owner):
            continue
        uid = owner["metadata"]["uid"]
        mine = dependents.get(uid, [])
        finalizers = _finalizers(owner)
        if ORPHAN_FINALIZER in finalizers:
            for dep in mine:
                if dep["metadata"]["uid"] not in patched:
                    patched.add(dep["metadata"]["uid"])
                    actions.append(Update(_without_refs(dep, {uid})))
            if not mine:
                actions.append(_finish(owner, ORPHAN_FINALIZER))
        elif FOREGROUND_FINALIZER in finalizers:
            for dep in mine:
                if not is_deleting(dep) and dep["metadata"]["uid"] not in patched:
                    patched.add(dep["metadata"]["uid"])
                    nested = FOREGROUND if dependents.get(dep["metadata"]["uid"]) else ""
                    actions.append(Delete(key_of(dep), propagation=nested))
            blocking = [d for d in mine if any(r.get("uid") == uid and r.get(
                "blockOwnerDeletion") for r in _refs(d))]
            if not blocking:
                actions.append(_finish(owner, FOREGROUND_FINALIZER))

    # Dependents whose owners are gone.
    for obj in objects:
        uid = obj["metadata"].get("uid", "")
        refs = [r for r in _refs(obj) if r.get("uid")]
        if not refs or uid in patched or is_deleting(obj):
            continue
        gone = {r["uid"] for r in refs if r["uid"] not in by_uid}
        if not gone:
            continue
        if len(gone) == len({r["uid"] for r in refs}):
            # every owner is gone; its own dependents follow in the background (an
            # object's propagation annotation is for deletions a user asks for)
            actions.append(Delete(key_of(obj), propagation=BACKGROUND))
        else:
            actions.append(Update(_without_refs(obj, gone)))
    return actions


def _finish(owner: dict, finalizer: str) -> Action:
    """The garbage collector's part is done: drop its finalizer, and the owner with it
    when no other finalizer holds it."""
    rest = [f for f in _finalizers(owner) if f != finalizer]
    if rest:
        return Update(_without_finalizer(owner, finalizer))
    return Delete(key_of(owner), propagation=BACKGROUND)
