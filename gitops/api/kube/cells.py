"""Cell formats the Table printers share: ages, label selectors (pure)."""

from __future__ import annotations

from gitops.model.times import human_duration
from gitops.model.times import parse_rfc3339 as _epoch


def since(stamp: str | None, now: float) -> str:
    at = _epoch(stamp)
    return "<unknown>" if at is None else human_duration(now - at)


def age(obj: dict, now: float) -> str:
    return since(obj.get("metadata", {}).get("creationTimestamp"), now)


def format_selector(selector: dict | None) -> str:
    if not selector:
        return "<none>"
    parts = [f"{k}={v}" for k, v in sorted((selector.get("matchLabels") or {}).items())]
    for e in selector.get("matchExpressions") or []:
        op, key, values = e.get("operator"), e.get("key"), ",".join(e.get("values") or [])
        parts.append({"In": f"{key} in ({values})", "NotIn": f"{key} notin ({values})",
                      "Exists": key, "DoesNotExist": f"!{key}"}.get(op, key))
    return ",".join(parts) or "<none>"


def map_selector(selector: dict | None) -> str:
    return ",".join(f"{k}={v}" for k, v in sorted((selector or {}).items())) or "<none>"
