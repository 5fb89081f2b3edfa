"""Timestamps as Kubernetes writes them (RFC 3339, whole seconds, UTC) and its short
human durations (pure)."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime


def rfc3339(ts: float) -> str:
    """Epoch seconds -> "2026-01-02T03:04:05Z"."""
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_rfc3339(value: object) -> float | None:
    """RFC 3339 (any fraction digits, Z or an offset) -> epoch seconds; None when it is
    missing or unusable, so a bad timestamp in a stored object never raises."""
    if not isinstance(value, str) or not value:
        return None
    try:
        stamp = datetime.fromisoformat(value)
    except ValueError:
        return None
    if stamp.tzinfo is None:
        stamp = stamp.replace(tzinfo=UTC)
    return stamp.timestamp()


def now_iso(clock: Callable[[], float] = time.time) -> str:
    """The current time as Kubernetes writes it."""
    return rfc3339(clock())


def parse_ts(value: object, default: float | None = None) -> float | None:
    """RFC 3339 -> epoch seconds; `default` when missing, unusable, or Docker's zero time
    (0001-01-01: "never")."""
    ts = parse_rfc3339(value)
    return ts if ts is not None and ts > 0 else default


def human_duration(seconds: float) -> str:
    """Kubernetes' short duration (duration.HumanDuration), as kubectl prints ages:
    45s, 5m30s, 3h12m, 2d5h, 1y30d."""
    s = int(seconds)
    if s < -1:
        return "<invalid>"
    if s < 0:
        return "0s"
    if s < 120:
        return f"{s}s"
    minutes = s // 60
    if minutes < 10:
        return f"{minutes}m{s % 60}s" if s % 60 else f"{minutes}m"
    if minutes < 180:
        return f"{minutes}m"
    hours = s // 3600
    if hours < 8:
        return f"{hours}h{minutes % 60}m" if minutes % 60 else f"{hours}h"
    if hours < 48:
        return f"{hours}h"
    if hours < 24 * 8:
        return f"{hours // 24}d{hours % 24}h" if hours % 24 else f"{hours // 24}d"
    if hours < 24 * 365 * 2:
        return f"{hours // 24}d"
    if hours < 24 * 365 * 8:
        years, days = hours // 24 // 365, (hours // 24) % 365
        return f"{years}y{days}d" if days else f"{years}y"
    return f"{hours // 24 // 365}y"
