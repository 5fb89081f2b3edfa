"""Which revision a rollback pins (pure): the one asked for, else the newest revision that
synced successfully before the one applied now."""

from __future__ import annotations

from gitops.errors import GitopsError
from gitops.sync.status import Pin

HISTORY_DEPTH = 200      # sync history entries a rollback looks back through


def rollback_target(to: str, head: str, current: str, history: list[dict],
                    has_history: bool = True) -> Pin:
    """to: a revision asked for ("" for the previous one); head: the branch tip now (a
    new commit past it releases the pin); current: the revision applied now; history:
    sync records, newest first."""
    if not has_history:
        raise GitopsError("a local directory has no history: rollback needs a git source")
    if to:
        return Pin(to, head)
    for entry in history:
        rev = entry.get("revision", "")
        if entry.get("result") == "synced" and rev and rev != current:
            return Pin(rev, head)
    raise GitopsError("no earlier successfully applied revision in the history")
