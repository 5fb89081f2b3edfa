"""Services stored without the ClusterIP or node ports they need (by a version that
allocated later, out of the write path): written again as they are, so the store's
registry allocates them (it allocates every Service it stores, as the API server does)."""

from __future__ import annotations

from gitops.admission.prepare import needs_cluster_ip, needs_node_ports
from gitops.model.actions import Action, Update


def _unallocated(svc: dict) -> bool:
    spec = svc.get("spec") or {}
    return (needs_cluster_ip(spec) and not spec.get("clusterIP")) or (
        needs_node_ports(spec) and any(isinstance(p, dict) and not p.get("nodePort")
                                       for p in spec.get("ports") or []))


def reconcile(services: list[dict]) -> list[Action]:
    return [Update({**svc, "metadata": {k: v for k, v in svc["metadata"].items()
                                        if k != "resourceVersion"}})
            for svc in services if _unallocated(svc)]
