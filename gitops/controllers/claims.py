"""Adoption and release, as Kubernetes' ControllerRefManager does it (pure).

A controller adopts objects in its namespace that match its selector and have no
controller (orphans, e.g. left by an `orphan` deletion of their previous owner), and
releases the ones it controls that no longer match (their labels were changed). Nothing
is adopted by an owner that is being deleted, nor is anything being deleted adopted.
"""

from __future__ import annotations

import copy

from gitops.model.actions import Action, Update
from gitops.model.meta import controller_of, is_deleting, owner_ref
from gitops.model.selectors import matches


def claim(owner: dict, selector: dict | None, candidates: list[dict]
          ) -> tuple[list[dict], list[Action]]:
    """(objects the owner controls after this pass, the Updates adopting or releasing)."""
    uid = owner["metadata"].get("uid")
    ns = owner["metadata"].get("namespace") or "default"
    owned: list[dict] = []
    actions: list[Action] = []
    # An empty selector would select everything: Kubernetes refuses to adopt with it.
    usable = bool(selector) and bool((selector or {}).get("matchLabels")
                                     or (selector or {}).get("matchExpressions"))
    for obj in candidates:
        if (obj["metadata"].get("namespace") or "default") != ns:
            continue
        ref = controller_of(obj)
        labels = obj["metadata"].get("labels")
        if ref is not None:
            if ref.get("uid") != uid:
                continue
            if usable and not matches(selector, labels) and not is_deleting(owner):
                actions.append(Update(_release(obj, uid)))
                continue
            owned.append(obj)
        elif usable and matches(selector, labels) and not is_deleting(owner) \
                and not is_deleting(obj):
            adopted = copy.deepcopy(obj)
            adopted["metadata"]["ownerReferences"] = [
                *(adopted["metadata"].get("ownerReferences") or []), owner_ref(owner)]
            actions.append(Update(adopted))
            owned.append(adopted)
    return owned, actions


def _release(obj: dict, uid: str) -> dict:
    out = copy.deepcopy(obj)
    refs = [r for r in out["metadata"].get("ownerReferences") or [] if r.get("uid") != uid]
    if refs:
        out["metadata"]["ownerReferences"] = refs
    else:
        out["metadata"].pop("ownerReferences", None)
    return out
