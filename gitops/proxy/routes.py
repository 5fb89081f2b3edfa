"""Which listener forwards to which endpoints, from Services + Endpoints (pure).

A route is keyed by where the proxy listens: (host, port) for TCP, as it always was, and
(host, port, "UDP") for UDP; its value is a Route: the endpoints plus the Service's
sessionAffinity setting, which the listener's Balancer applies.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

ListenAddr = tuple[str, int] | tuple[str, int, str]  # (host, port) is TCP; else (host, port, proto)
Endpoint = tuple[str, int]

PROTOCOLS = ("TCP", "UDP")             # SCTP Services get no listener
DEFAULT_AFFINITY_TIMEOUT = 10800       # sessionAffinityConfig.clientIP.timeoutSeconds default
MAX_AFFINITY_TIMEOUT = 86400           # the API's upper bound


@dataclass(frozen=True)
class Route:
    """What one listener serves. affinity_timeout: None for round-robin per connection (or
    per UDP flow); seconds for sessionAffinity=ClientIP (idle time after which a client
    IP's pin to an endpoint lapses)."""

    endpoints: tuple[Endpoint, ...] = ()
    affinity_timeout: float | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "endpoints", tuple(self.endpoints))


def listen_addr(host: str, port: int, protocol: str = "TCP") -> ListenAddr:
    """The canonical key: TCP stays a plain (host, port) so TCP-only callers are unchanged."""
    protocol = protocol.upper()
    return (host, port) if protocol == "TCP" else (host, port, protocol)


def protocol_of(addr: Sequence) -> str:
    return str(addr[2]).upper() if len(addr) > 2 else "TCP"


def affinity_timeout(spec: dict) -> float | None:
    """sessionAffinity: ClientIP -> its timeout in seconds (default 10800); otherwise None."""
    if spec.get("sessionAffinity") != "ClientIP":
        return None
    cfg = ((spec.get("sessionAffinityConfig") or {}).get("clientIP") or {})
    value = cfg.get("timeoutSeconds")
    if isinstance(value, bool) or not isinstance(value, int) \
            or not 0 < value <= MAX_AFFINITY_TIMEOUT:
        return float(DEFAULT_AFFINITY_TIMEOUT)
    return float(value)


def service_endpoints(svc: dict, endpoints: dict | None, port: dict) -> list[Endpoint]:
    """Ready addresses for one Service port; Endpoints ports match by the port's name
    (and protocol, so a TCP and a UDP port of one name never borrow each other's target)."""
    if endpoints is None:
        return []
    name = port.get("name", "")
    protocol = port.get("protocol", "TCP")
    out: list[Endpoint] = []
    for subset in endpoints.get("subsets", []) or []:
        target = next((p["port"] for p in subset.get("ports", []) or []
                       if p.get("name", "") == name and p.get("protocol", "TCP") == protocol),
                      None)
        if target is None:
            continue
        out.extend((a["ip"], target) for a in subset.get("addresses", []) or [])
    return sorted(out)


def _routes(services: Iterable[dict], endpoints: Iterable[dict],
            listen: Callable[[dict, dict], tuple[str, int] | None]
            ) -> tuple[dict[ListenAddr, Route], dict[ListenAddr, str]]:
    eps = {(e["metadata"]["namespace"], e["metadata"]["name"]): e for e in endpoints}
    routes: dict[ListenAddr, Route] = {}
    names: dict[ListenAddr, str] = {}
    for svc in services:
        meta, spec = svc["metadata"], svc.get("spec", {})
        affinity = affinity_timeout(spec)
        for port in spec.get("ports", []) or []:
            protocol = port.get("protocol", "TCP")
            if protocol not in PROTOCOLS or (where := listen(spec, port)) is None:
                continue
            addr = listen_addr(*where, protocol)
            routes[addr] = Route(
                service_endpoints(svc, eps.get((meta["namespace"], meta["name"])), port),
                affinity)
            names[addr] = f"{meta['namespace']}/{meta['name']}:{port.get('name') or port['port']}" \
                + ("" if protocol == "TCP" else f"/{protocol}")
    return routes, names


def node_port_routes(services: Iterable[dict], endpoints: Iterable[dict],
                     node_address: str) -> tuple[dict[ListenAddr, Route], dict[ListenAddr, str]]:
    """A listener per nodePort (TCP and UDP) of NodePort/LoadBalancer Services."""
    def listen(spec: dict, port: dict) -> tuple[str, int] | None:
        if spec.get("type") not in ("NodePort", "LoadBalancer") or not port.get("nodePort"):
            return None
        return node_address, port["nodePort"]
    return _routes(services, endpoints, listen)


def cluster_ip_routes(services: Iterable[dict], endpoints: Iterable[dict],
                      bind_address: Callable[[str], str | None]
                      ) -> tuple[dict[ListenAddr, Route], dict[ListenAddr, str]]:
    """A listener per ClusterIP and port (TCP and UDP). bind_address maps a ClusterIP to
    where the proxy can listen for it (the VIP itself, or a 127.x stand-in without root)."""
    def listen(spec: dict, port: dict) -> tuple[str, int] | None:
        ip = spec.get("clusterIP")
        if not ip or ip == "None" or (host := bind_address(ip)) is None:
            return None
        return host, port["port"]
    return _routes(services, endpoints, listen)
