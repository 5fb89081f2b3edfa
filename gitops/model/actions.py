"""What reconcilers decide (pure): each action may carry the Event that describes it, which
the executor records once the action succeeded."""

from __future__ import annotations

from dataclasses import dataclass

from gitops.model import ObjectKey
from gitops.model.events import EventSpec


@dataclass(frozen=True)
class Create:
    obj: dict
    event: EventSpec | None = None


@dataclass(frozen=True)
class Update:
    obj: dict
    event: EventSpec | None = None


@dataclass(frozen=True)
class SetStatus:
    key: ObjectKey
    status: dict
    event: EventSpec | None = None


@dataclass(frozen=True)
class Delete:
    key: ObjectKey
    event: EventSpec | None = None
    propagation: str = ""           # "" : the object's annotation, else Background


@dataclass(frozen=True)
class Emit:
    """An event on its own, for something seen rather than done."""
    event: EventSpec


Action = Create | Update | SetStatus | Delete | Emit
