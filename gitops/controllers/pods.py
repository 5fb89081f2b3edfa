"""Small facts about pods that several controllers need."""

from __future__ import annotations


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
