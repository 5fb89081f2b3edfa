"""ControllerRevisions: the template history of a StatefulSet or DaemonSet (pure).

`kubectl rollout history sts/web` lists the ControllerRevisions its selector matches and
it controls; `kubectl rollout undo` strategic-merges the `data` of one of them (the pod
template, `$patch: replace`) back into the object. So, as Kubernetes' controllers keep it:

- the current template has a revision named `<owner>-<template hash>` carrying the
  highest number: a new template gets max + 1; a template that comes back (an undo, a
  revert in git) has its old revision renumbered to max + 1 rather than a new one made;
- beyond revisionHistoryLimit (default 10), the oldest revisions no pod uses are deleted.

The hash is that of the effective template (config hash included), as the pods' labels
carry it; `data` holds the object's own template, which is what an undo should restore.
Deliberate difference: no collisionCount. A StatefulSet and a DaemonSet of one name with
one template in one namespace would want the same revision name; the second keeps no
history (its revision's create conflicts) instead of rehashing.
"""

from __future__ import annotations

import copy

from gitops.model import key_of
from gitops.model.actions import Action, Create, Delete, Update
from gitops.model.meta import controller_of, owner_ref

HASH_LABEL = "controller-revision-hash"
DEFAULT_LIMIT = 10


def number(revision: dict) -> int:
    value = revision.get("revision")
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def owned(owner: dict, revisions: list[dict]) -> list[dict]:
    uid = owner["metadata"].get("uid")
    return [r for r in revisions if (controller_of(r) or {}).get("uid") == uid]


def new_revision(owner: dict, name: str, thash: str, revision: int) -> dict:
    template = copy.deepcopy((owner.get("spec") or {}).get("template") or {})
    labels = dict((template.get("metadata") or {}).get("labels") or {})
    return {"apiVersion": "apps/v1", "kind": "ControllerRevision",
            "metadata": {"name": name, "namespace": owner["metadata"].get("namespace")
                         or "default", "labels": {**labels, HASH_LABEL: thash},
                         "ownerReferences": [owner_ref(owner)]},
            "data": {"spec": {"template": {**template, "$patch": "replace"}}},
            "revision": revision}


def template_of(owner: dict, revisions: list[dict], name: str) -> dict | None:
    """The pod template the owner's revision `name` holds, if it has one."""
    found = next((r for r in owned(owner, revisions) if r["metadata"]["name"] == name), None)
    template = ((found or {}).get("data") or {}).get("spec", {}).get("template")
    if not isinstance(template, dict):
        return None
    return {k: copy.deepcopy(v) for k, v in template.items() if k != "$patch"}


def reconcile(owner: dict, revisions: list[dict], name: str, thash: str,
              in_use: set[str]) -> list[Action]:
    """revisions: ControllerRevisions in the owner's namespace (others are ignored);
    name / thash: the current template's revision name and hash; in_use: names of
    revisions pods still run (never deleted)."""
    mine = sorted(owned(owner, revisions), key=lambda r: (number(r), r["metadata"]["name"]))
    top = max((number(r) for r in mine), default=0)
    current = next((r for r in mine if r["metadata"]["name"] == name), None)
    actions: list[Action] = []
    if current is None:
        actions.append(Create(new_revision(owner, name, thash, top + 1)))
    elif number(current) < top:
        renumbered = copy.deepcopy(current)
        renumbered["revision"] = top + 1
        actions.append(Update(renumbered))
    limit = (owner.get("spec") or {}).get("revisionHistoryLimit")
    limit = DEFAULT_LIMIT if not isinstance(limit, int) or limit < 0 else limit
    idle = [r for r in mine if r["metadata"]["name"] not in in_use | {name}]
    actions += [Delete(key_of(r)) for r in idle[: max(0, len(idle) - limit)]]
    return actions
