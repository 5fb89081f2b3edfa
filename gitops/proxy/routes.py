"""Which listener forwards to which endpoints, from Services + Endpoints (pure)."""

from __future__ import annotations

from collections.abc import Callable, Iterable

ListenAddr = tuple[str, int]
Endpoint = tuple[str, int]


def service_endpoints(svc: dict, endpoints: dict | None, port: dict) -> list[Endpoint]:
    """Ready addresses for one Service port; Endpoints ports match by the port's name."""
    if endpoints is None:
        return []
    name = port.get("name", "")
    out: list[Endpoint] = []
    for subset in endpoints.get("subsets", []) or []:
        target = next((p["port"] for p in subset.get("ports", []) or []
                       if p.get("name", "") == name), None)
        if target is None:
            continue
        out.extend((a["ip"], target) for a in subset.get("addresses", []) or [])
    return sorted(out)


def node_port_routes(services: Iterable[dict], endpoints: Iterable[dict],
                     node_address: str) -> tuple[dict[ListenAddr, list[Endpoint]],
                                                 dict[ListenAddr, str]]:
    eps = {(e["metadata"]["namespace"], e["metadata"]["name"]): e for e in endpoints}
    routes: dict[ListenAddr, list[Endpoint]] = {}
    names: dict[ListenAddr, str] = {}
    for svc in services:
        meta, spec = svc["metadata"], svc.get("spec", {})
        if spec.get("type") not in ("NodePort", "LoadBalancer"):
            continue
        for port in spec.get("ports", []) or []:
            if not port.get("nodePort") or port.get("protocol", "TCP") != "TCP":
                continue
            addr = (node_address, port["nodePort"])
            routes[addr] = service_endpoints(svc, eps.get((meta["namespace"], meta["name"])),
                                             port)
            names[addr] = f"{meta['namespace']}/{meta['name']}:{port.get('name') or port['port']}"
    return routes, names


def cluster_ip_routes(services: Iterable[dict], endpoints: Iterable[dict],
                      bind_address: Callable[[str], str | None]
                      ) -> tuple[dict[ListenAddr, list[Endpoint]], dict[ListenAddr, str]]:
    """A listener per ClusterIP and TCP port. bind_address maps a ClusterIP to where the
    proxy can listen for it (the VIP itself, or a 127.x stand-in without root)."""
    eps = {(e["metadata"]["namespace"], e["metadata"]["name"]): e for e in endpoints}
    routes: dict[ListenAddr, list[Endpoint]] = {}
    names: dict[ListenAddr, str] = {}
    for svc in services:
        meta, spec = svc["metadata"], svc.get("spec", {})
        ip = spec.get("clusterIP")
        if not ip or ip == "None" or (host := bind_address(ip)) is None:
            continue
        for port in spec.get("ports", []) or []:
            if port.get("protocol", "TCP") != "TCP":
                continue
            addr = (host, port["port"])
            routes[addr] = service_endpoints(svc, eps.get((meta["namespace"], meta["name"])),
                                             port)
            names[addr] = f"{meta['namespace']}/{meta['name']}:{port.get('name') or port['port']}"
    return routes, names
