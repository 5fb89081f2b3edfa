"""The pod network: its subnet (explicit, stable per data dir, never overlapping) and the
pods' addresses pinned in it."""

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


def dynamic_range(subnet: str) -> str:
    """The lower half of the pod network: what Docker may hand out by itself (to anything
    else joined to the network). Pod IPs are pinned from the upper half."""
    net = ipaddress.ip_network(subnet, strict=False)
    return str(next(net.subnets(prefixlen_diff=1))) if net.num_addresses >= 8 else str(net)


def choose_pod_ip(subnet: str, previous: str, taken: Iterable[str]) -> str:
    """A pod's address, pinned for its lifetime: the one it had (a container restarted or
    replaced keeps the pod's IP, as behind a Kubernetes sandbox), else the lowest free
    one of the upper half. "" when that half is full (Docker then picks one itself)."""
    net = ipaddress.ip_network(subnet, strict=False)
    if net.num_addresses < 8:
        return ""
    upper = list(net.subnets(prefixlen_diff=1))[-1]
    held = set(taken)
    if previous and previous not in held:
        try:
            if ipaddress.ip_address(previous) in upper and \
                    ipaddress.ip_address(previous) != net.broadcast_address:
                return previous
        except ValueError:
            pass
    for address in upper:
        if address == net.broadcast_address:
            break
        if str(address) not in held:
            return str(address)
    return ""
