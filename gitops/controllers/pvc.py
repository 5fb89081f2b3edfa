"""PersistentVolumeClaims bind at once: the node agent provides each claim a named volume
on first use (there is no separate PersistentVolume object on a single host)."""

from __future__ import annotations

from gitops.model import key_of
from gitops.model.actions import Action, SetStatus


def reconcile(claims: list[dict]) -> list[Action]:
    actions: list[Action] = []
    for pvc in claims:
        spec = pvc.get("spec", {})
        status = {"phase": "Bound", "accessModes": spec.get("accessModes", ["ReadWriteOnce"]),
                  "capacity": {"storage": (spec.get("resources", {}).get("requests") or {})
                               .get("storage", "0")}}
        if pvc.get("status") != status:
            actions.append(SetStatus(key_of(pvc), status))
    return actions
