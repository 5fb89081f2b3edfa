"""A LoadBalancer Service's status on one host (pure): the node is its load balancer, so
once every node port of the Service listens, `status.loadBalancer.ingress` is the node's
address, as k3s' service load balancer publishes it; until then (or once it is another
type) the status has no ingress."""

from __future__ import annotations

from collections.abc import Iterable

from gitops.model import ObjectKey, key_of
from gitops.proxy.routes import ListenAddr, listen_addr


def load_balancer_statuses(services: Iterable[dict], listening: set[ListenAddr],
                           node_address: str) -> dict[ObjectKey, dict]:
    """Service key -> the status it should have, for the Services whose status differs."""
    out: dict[ObjectKey, dict] = {}
    for svc in services:
        spec, status = svc.get("spec") or {}, svc.get("status") or {}
        ports = spec.get("ports") or []
        ready = spec.get("type") == "LoadBalancer" and bool(ports) and all(
            p.get("nodePort") and listen_addr(node_address, int(p["nodePort"]),
                                              str(p.get("protocol") or "TCP")) in listening
            for p in ports)
        wanted = {**status, "loadBalancer": {"ingress": [{"ip": node_address}]}} if ready \
            else {k: v for k, v in status.items() if k != "loadBalancer"}
        if not ready and "loadBalancer" in status and not status["loadBalancer"]:
            continue                   # an empty one, as the API leaves it: nothing to say
        if wanted != status:
            out[key_of(svc)] = wanted
    return out
