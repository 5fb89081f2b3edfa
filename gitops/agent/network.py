"""Choosing the pod network's subnet: explicit, stable per data dir, never overlapping."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

POD_POOL = "10.213.0.0/16"
SERVICE_POOL = "10.96.0.0/12"    # each agent takes a /20 of it for its ClusterIPs


def pick_subnet(instance: str, used: Iterable[str], pool: str = POD_POOL,
                prefix: int = 24) -> str:
    nets = list(ipaddress.ip_network(pool).subnets(new_prefix=prefix))
    taken = [ipaddress.ip_network(u, strict=False) for u in used]
    start = int(instance, 16) % len(nets)
    for i in range(len(nets)):
        candidate = nets[(start + i) % len(nets)]
        if not any(candidate.overlaps(t) for t in taken):
            return str(candidate)
    raise RuntimeError(f"no free /{prefix} left in {pool}")
