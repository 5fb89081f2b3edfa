"""Git's sync as a field manager: the contract the composition root fills in.

With a FieldOwner, every object the sync writes records `metadata.managedFields` with
manager `gitops` (operation Apply) over exactly what git declares, taken from whoever held
those fields (git wins, as `kubectl apply --server-side --force-conflicts`). So a later
`kubectl apply --server-side` of a field git owns gets the API server's conflict, and
`managedFields` tell who owns what. ServerSideApply=true objects are also merged by it
(keyed lists merged item by item, fields git stopped declaring removed when nobody else
owns them). The implementation lives with the API's schemas (gitops.api.kube.managed); the
sync only sees this protocol.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

MANAGER = "gitops"


class FieldOwner(Protocol):
    def apply(self, live: dict | None, declared: dict) -> tuple[dict, list[dict]]:
        """(declared server-side applied over live, forced; the managedFields after)."""


RecordFields = Callable[[dict | None, dict], list[dict]]


def recorder(owner: FieldOwner | None, declared: dict) -> RecordFields | None:
    """The registry's record_fields hook for a write of `declared` by git."""
    if owner is None:
        return None
    return lambda stored, _new: owner.apply(stored, declared)[1]
