"""The API server's admission rules, pure, for every writer of the store and for git.

The store's registry (gitops.store.registry) runs them on every create and update, in
Kubernetes' order: defaulting (`defaults.fill`), mutating admission (`prepare.prepare`:
stringData merged, allocations and generated fields kept, status on create), the
registry's own store-aware steps (the namespace must exist, ClusterIP and node ports
allocated), then validating admission (`validate_update`: immutable fields). Custom
resources are defaulted, pruned and validated from their CRD's schema (`custom`). Git's sync
asks the registry the same before it applies a revision, so a revision the API server
would refuse is refused whole, with file:line (gitops.sync.admission).
"""

from __future__ import annotations

from gitops.admission import custom, defaults, immutable, prepare
from gitops.admission.errors import (
    Invalid,
    NamespaceNotFound,
    NamespaceTerminating,
    Refused,
)


def validate_update(obj: dict, old: dict | None) -> None:
    """Validating admission: an update may not change what its kind keeps fixed."""
    if old is None:
        return
    found = immutable.violations(obj, old)
    if found:
        raise Invalid(obj.get("kind", ""), (obj.get("metadata") or {}).get("name", ""), found)


DEFAULTS = (defaults.fill, custom.fill)
MUTATING = (prepare.prepare, custom.mutate)
VALIDATING = (validate_update, custom.validate)

__all__ = ["DEFAULTS", "MUTATING", "VALIDATING", "Invalid", "NamespaceNotFound",
           "NamespaceTerminating", "Refused", "validate_update"]
