"""Addresses (pure): the pod network's subnet (explicit, stable per data dir, never
overlapping) and the pods' addresses pinned in it; Service ClusterIPs, and the 127.x
stand-ins used when VIPs cannot be added to `lo`."""

from __future__ import annotations

import functools
import ipaddress
import threading
from collections.abc import Iterable

from gitops.model.meta import stable_hash

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


class PinnedPodIps:
    """Who holds which pod address on a node, rebuilt each pass: a pod keeps its pinned
    address while it may run again, and no two pods are ever given the same one."""

    def __init__(self) -> None:
        self._owner: dict[str, str] = {}      # address -> uid of the pod holding it
        self._lock = threading.Lock()         # pods start side by side: one pin at a time

    def reset(self, held: Iterable[tuple[str, str]], keep: Iterable[str] = ()) -> None:
        """held: (address, pod uid) pairs, as the runtime shows them; the pins of the pods
        in keep (being started right now: their containers may not show yet) stay."""
        kept = set(keep)
        with self._lock:
            self._owner = {**{ip: uid for ip, uid in self._owner.items() if uid in kept},
                           **dict(held)}

    def pin(self, subnet: str, uid: str, previous: str) -> str:
        """The address for the pod uid (see choose_pod_ip), now held by it; "" if none."""
        with self._lock:
            ip = choose_pod_ip(subnet, previous,
                               [ip for ip, owner in self._owner.items() if owner != uid])
            if ip:
                self._owner[ip] = uid
            return ip


SERVICE_CIDR = "10.96.0.0/16"
FALLBACK_POOL = "127.96.0.0/16"

ServiceKey = tuple[str, str]  # (namespace, name)


def _usable(net: ipaddress.IPv4Network | ipaddress.IPv6Network) -> tuple[int, int]:
    """First and last allocatable address (as ints): past the network address and the
    first host (kept for default/kubernetes), before the broadcast address."""
    first, last = int(net.network_address) + 2, int(net.broadcast_address) - 1
    if last < first:
        raise ValueError(f"service CIDR {net} is too small")
    return first, last


def allocate(services: Iterable[dict], cidr: str = SERVICE_CIDR) -> dict[ServiceKey, str]:
    """A stable ClusterIP for each Service that needs one, keyed by (namespace, name).

    - spec.clusterIP already set, inside the CIDR and not claimed by an earlier Service
      (by creationTimestamp, then namespace/name): kept.
    - otherwise: a deterministic first choice from a hash of namespace/name, probing
      upward past addresses already taken.
    - headless (clusterIP "None") and ExternalName Services get none.
    - default/kubernetes gets the CIDR's first host address, as in Kubernetes; nothing
      else ever does. Network and broadcast addresses are never handed out.
    - Services that do not fit in an exhausted CIDR are left out of the result.

    The result depends only on the Services given, not on their order. Write it back to
    spec.clusterIP: then adding Services later never moves an existing one.
    """
    net = ipaddress.ip_network(cidr, strict=False)
    first, last = _usable(net)
    span = last - first + 1
    reserved = int(net.network_address) + 1
    wanted = []
    for svc in services:
        meta, spec = svc["metadata"], svc.get("spec") or {}
        if spec.get("clusterIP") == "None" or spec.get("type") == "ExternalName":
            continue
        key = (meta.get("namespace") or "default", meta["name"])
        wanted.append(((meta.get("creationTimestamp") or "", *key), key, spec.get("clusterIP")))
    wanted.sort()

    taken: set[int] = set()
    out: dict[ServiceKey, str] = {}
    pending: list[ServiceKey] = []
    for _, key, current in wanted:
        if key == ("default", "kubernetes"):
            out[key] = str(ipaddress.ip_address(reserved))
            taken.add(reserved)
            continue
        ip = _parse(current)
        if ip is not None and ip.version == net.version and first <= int(ip) <= last \
                and int(ip) not in taken:
            out[key] = str(ip)
            taken.add(int(ip))
        else:
            pending.append(key)

    for key in sorted(pending):
        start = int(stable_hash(list(key), 12), 16) % span
        for i in range(span):
            candidate = first + (start + i) % span
            if candidate not in taken:
                taken.add(candidate)
                out[key] = str(ipaddress.ip_address(candidate))
                break
    return out


def usable_range(cidr: str) -> tuple[int, int]:
    """First and last address (as ints) a Service may be given in cidr."""
    return _usable(ipaddress.ip_network(cidr, strict=False))


def pick_cluster_ip(namespace: str, name: str, taken: set[str], cidr: str) -> str | None:
    """One Service's ClusterIP, as `allocate` would choose it: the deterministic first
    choice, probing past addresses taken; None when the CIDR is full."""
    net = ipaddress.ip_network(cidr, strict=False)
    if (namespace, name) == ("default", "kubernetes"):
        return str(net.network_address + 1)
    first, last = _usable(net)
    span = last - first + 1
    used = {n for t in taken if (n := _as_int(t)) is not None}
    start = int(stable_hash([namespace, name], 12), 16) % span
    for i in range(span):
        candidate = first + (start + i) % span
        if candidate not in used:
            return str(ipaddress.ip_address(candidate))
    return None


NODE_PORT_RANGE = (30000, 32767)


def pick_node_port(namespace: str, name: str, port: object, protocol: str,
                   used: set[int]) -> int | None:
    """A node port: a deterministic first choice (stable across restarts), probing past
    ports used; None when the range is full."""
    lo, hi = NODE_PORT_RANGE
    span = hi - lo + 1
    seed = int(stable_hash([namespace, name, port, protocol], 8), 16)
    for i in range(span):
        candidate = lo + (seed + i) % span
        if candidate not in used:
            return candidate
    return None


@functools.lru_cache(maxsize=1 << 16)
def _as_int(value: str) -> int | None:
    """An address as a number (remembered: every Service written asks again for the
    addresses of all the others)."""
    ip = _parse(value)
    return None if ip is None else int(ip)


def _parse(value: object) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        return ipaddress.ip_address(value)
    except ValueError:
        return None


def fallback_address(cluster_ip: str, cidr: str = SERVICE_CIDR, pool: str = FALLBACK_POOL) -> str:
    """The 127.x address standing in for cluster_ip when VIPs cannot be added: the same
    offset into pool as the ClusterIP has into the service CIDR."""
    net, base = ipaddress.ip_network(cidr, strict=False), ipaddress.ip_network(pool, strict=False)
    offset = int(ipaddress.ip_address(cluster_ip)) - int(net.network_address)
    if not 0 <= offset < net.num_addresses or offset >= base.num_addresses:
        raise ValueError(f"{cluster_ip} is not in {cidr} or {pool} is smaller than {cidr}")
    return str(base.network_address + offset)
