"""Service allocations the API server would make: node ports for NodePort Services."""

from __future__ import annotations

import copy

from gitops.model.actions import Action, Update
from gitops.model.addresses import allocate
from gitops.model.meta import stable_hash

NODE_PORT_RANGE = (30000, 32767)


def reconcile(services: list[dict], service_cidr: str) -> list[Action]:
    used = {p["nodePort"] for s in services for p in s.get("spec", {}).get("ports", []) or []
            if p.get("nodePort")}
    cluster_ips = allocate(services, service_cidr)
    actions: list[Action] = []
    for svc in services:
        updated = copy.deepcopy(svc)
        spec = updated.setdefault("spec", {})
        ip = cluster_ips.get((svc["metadata"]["namespace"], svc["metadata"]["name"]))
        if ip and spec.get("clusterIP") != ip:
            spec["clusterIP"], spec["clusterIPs"] = ip, [ip]
        if spec.get("type") in ("NodePort", "LoadBalancer"):
            for port in spec.get("ports", []) or []:
                if not port.get("nodePort"):
                    port["nodePort"] = pick_node_port(svc, port, used)
                    used.add(port["nodePort"])
        if updated != svc:
            updated["metadata"].pop("resourceVersion", None)
            actions.append(Update(updated))
    return actions


def pick_node_port(svc: dict, port: dict, used: set[int]) -> int:
    """Deterministic first choice (stable across restarts), probing past collisions."""
    lo, hi = NODE_PORT_RANGE
    span = hi - lo + 1
    seed = int(stable_hash([svc["metadata"]["namespace"], svc["metadata"]["name"],
                            port.get("port"), port.get("protocol", "TCP")], 8), 16)
    for i in range(span):
        candidate = lo + (seed + i) % span
        if candidate not in used:
            return candidate
    raise RuntimeError("node port range exhausted")

