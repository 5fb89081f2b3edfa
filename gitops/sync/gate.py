"""When a wave (or a hook) is done, still going, or failed for good (pure)."""

from __future__ import annotations

from gitops.health import DEGRADED, HEALTHY, SETTLED, assess

RUNNING, SUCCEEDED, FAILED = "Running", "Succeeded", "Failed"


def _condition(obj: dict, ctype: str) -> dict | None:
    for cond in (obj.get("status") or {}).get("conditions") or []:
        if cond.get("type") == ctype and cond.get("status") == "True":
            return cond
    return None


def failed_for_good(obj: dict | None) -> str:
    """Why an object will never become healthy without a new revision ("" if it may):
    a Job past its backoffLimit or deadline, a Pod that failed and is never restarted."""
    if obj is None:
        return ""
    kind = obj.get("kind")
    if kind == "Job":
        failed = _condition(obj, "Failed")
        if failed is not None:
            return failed.get("message") or failed.get("reason") or "job failed"
    if kind == "Pod" and (obj.get("status") or {}).get("phase") == "Failed":
        return (obj.get("status") or {}).get("message") or "pod failed"
    return ""


def hook_state(obj: dict | None) -> tuple[str, str]:
    """(Running | Succeeded | Failed, message) of a hook object: a Job or Pod by how it
    ended, anything else by its health."""
    if obj is None:
        return RUNNING, "not created yet"
    why = failed_for_good(obj)
    if why:
        return FAILED, why
    kind = obj.get("kind")
    if kind == "Job":
        if _condition(obj, "Complete") is not None:
            return SUCCEEDED, "job completed"
        return RUNNING, assess(obj).message
    if kind == "Pod":
        if (obj.get("status") or {}).get("phase") == "Succeeded":
            return SUCCEEDED, "pod succeeded"
        return RUNNING, assess(obj).message
    health = assess(obj)
    if health.status in SETTLED:
        return SUCCEEDED, health.message
    if health.status == DEGRADED:
        return FAILED, health.message
    return RUNNING, health.message


def settled(obj: dict | None) -> bool:
    """Healthy, or Unknown: nothing on this host would change it, so nothing to wait for."""
    return obj is not None and assess(obj).status in SETTLED


def healthy(obj: dict | None) -> bool:
    return obj is not None and assess(obj).status == HEALTHY
