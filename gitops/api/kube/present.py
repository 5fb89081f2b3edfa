"""How stored objects leave the API: Secret values masked, the few defaults kubectl relies on.

The store keeps objects with the API server's defaults (gitops.admission, on every
write). An object stored before that gets on the way out the few fields kubectl
dereferences (`kubectl describe deploy` prints `*spec.replicas`).
"""

from __future__ import annotations

import base64

import copy

from gitops.model.secrets import LAST_APPLIED, MASK, mask_secret
_REPLICAS = ("Deployment", "ReplicaSet", "StatefulSet")


def with_defaults(obj: dict) -> dict:
    kind = obj.get("kind")
    if kind not in _REPLICAS and kind not in ("Job", "DaemonSet"):
        return obj
    obj = copy.deepcopy(obj)
    spec = obj.setdefault("spec", {})
    if kind in _REPLICAS:
        spec.setdefault("replicas", 1)
    if kind == "Deployment":
        spec.setdefault("strategy", {"type": "RollingUpdate",
                                     "rollingUpdate": {"maxUnavailable": "25%",
                                                       "maxSurge": "25%"}})
        spec.setdefault("revisionHistoryLimit", 10)
        spec.setdefault("progressDeadlineSeconds", 600)
    if kind == "StatefulSet":           # `kubectl rollout status` insists on a type
        spec.setdefault("updateStrategy", {"type": "RollingUpdate",
                                           "rollingUpdate": {"partition": 0}})
        spec.setdefault("podManagementPolicy", "OrderedReady")
        spec.setdefault("revisionHistoryLimit", 10)
    if kind == "DaemonSet":
        spec.setdefault("updateStrategy", {"type": "RollingUpdate", "rollingUpdate": {
            "maxUnavailable": 1, "maxSurge": 0}})
        spec.setdefault("revisionHistoryLimit", 10)
    if kind == "Job":
        if "parallelism" not in spec:        # parallelism alone is a work queue
            spec.setdefault("completions", 1)
        spec.setdefault("parallelism", 1)
        spec.setdefault("backoffLimit", 6)
    return obj


def present(obj: dict) -> dict:
    """The API view of a stored object (never the stored dict itself)."""
    if obj.get("kind") == "Secret":     # values, and the annotations that copy them
        return mask_secret(obj)
    return with_defaults(obj)


def unmask_secret(new: dict, old: dict | None) -> dict:
    """A Secret written back as read (values and annotations masked, as present() shows
    them) keeps the stored values for what still reads masked."""
    if new.get("kind") != "Secret" or old is None:
        return new
    for section in ("data", "stringData"):
        values = new.get(section)
        if isinstance(values, dict):
            kept = old.get(section) or {}
            for key, value in list(values.items()):
                if value == MASK and key in kept:
                    values[key] = kept[key]
    annotations = new.get("metadata", {}).get("annotations")
    stored = (old.get("metadata") or {}).get("annotations") or {}
    if isinstance(annotations, dict) and stored:
        shown = mask_secret(old)["metadata"]["annotations"]
        for key, value in annotations.items():
            if key in stored and (value == shown.get(key) or key == LAST_APPLIED
                                  and isinstance(value, str) and MASK in value):
                annotations[key] = stored[key]
    return new


def typed_mask(obj: dict) -> dict:
    """A presented Secret whose masked values a typed client can decode (base64 of ***)."""
    if obj.get("kind") != "Secret" or not isinstance(obj.get("data"), dict):
        return obj
    masked = base64.b64encode(MASK.encode()).decode()
    return {**obj, "data": {k: masked if v == MASK else v for k, v in obj["data"].items()}}
