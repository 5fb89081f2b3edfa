"""Object identity and metadata helpers over Kubernetes-shaped dicts."""

from __future__ import annotations

import hashlib
import json
from typing import NamedTuple

from gitops.model import custom
from gitops.model.kinds import KINDS


class ObjectKey(NamedTuple):
    kind: str
    namespace: str   # "" for cluster-scoped kinds
    name: str

    def __str__(self) -> str:
        return f"{self.kind}/{self.namespace}/{self.name}" if self.namespace \
            else f"{self.kind}/{self.name}"


def key_of(obj: dict) -> ObjectKey:
    kind = obj.get("kind", "")
    meta = obj.get("metadata") or {}
    info = KINDS.get(kind) or custom.lookup(kind)
    namespaced = info.namespaced if info else True
    ns = (meta.get("namespace") or "default") if namespaced else ""
    return ObjectKey(kind, ns, meta.get("name", ""))


def owner_uids(obj: dict) -> list[str]:
    return [ref["uid"] for ref in obj.get("metadata", {}).get("ownerReferences", []) or []
            if ref.get("uid")]


def controller_of(obj: dict) -> dict | None:
    for ref in obj.get("metadata", {}).get("ownerReferences", []) or []:
        if ref.get("controller"):
            return ref
    return None


def owner_ref(owner: dict) -> dict:
    return {"apiVersion": owner["apiVersion"], "kind": owner["kind"],
            "name": owner["metadata"]["name"], "uid": owner["metadata"]["uid"],
            "controller": True, "blockOwnerDeletion": True}


def stable_hash(value: object, length: int = 10) -> str:
    """A short deterministic hash of JSON-able data (pod-template-hash, config hash)."""
    raw = json.dumps(value, sort_keys=True, separators=(",", ":")).encode()
    return hashlib.sha256(raw).hexdigest()[:length]


def is_deleting(obj: dict) -> bool:
    return bool(obj.get("metadata", {}).get("deletionTimestamp"))
