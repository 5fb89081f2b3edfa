"""Small facts about pods that several controllers need."""

from __future__ import annotations

from datetime import datetime


def is_ready(pod: dict) -> bool:
    for cond in pod.get("status", {}).get("conditions", []) or []:
        if cond.get("type") == "Ready":
            return cond.get("status") == "True"
    return False


def is_active(pod: dict) -> bool:
    """Counts toward replicas: not being deleted and not finished."""
    if pod.get("metadata", {}).get("deletionTimestamp"):
        return False
    return pod.get("status", {}).get("phase") not in ("Succeeded", "Failed")


def is_available(pod: dict, min_ready_seconds: int, now: float) -> bool:
    """Ready for at least minReadySeconds (Kubernetes' definition of available)."""
    if not is_ready(pod):
        return False
    if not min_ready_seconds:
        return True
    for cond in pod.get("status", {}).get("conditions", []) or []:
        if cond.get("type") == "Ready" and cond.get("lastTransitionTime"):
            since = datetime.fromisoformat(cond["lastTransitionTime"].replace("Z", "+00:00"))
            return now - since.timestamp() >= min_ready_seconds
    return False
