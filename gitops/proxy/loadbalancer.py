"""A Service's status on one host (pure).

A LoadBalancer Service: the node is its load balancer, so once every node port of the
Service listens, `status.loadBalancer.ingress` is the node's address, as k3s' service load
balancer publishes it; until then (or once it is another type) the status has no ingress.

Any Service whose listener cannot be bound (another process holds its node port, say)
gets the condition `ProxyListening` False, reason `BindFailed`, naming the address and
the error; the condition goes once every listener of the Service binds again."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

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


LISTENING = "ProxyListening"


def service_statuses(services: Iterable[dict], listening: set[ListenAddr], node_address: str,
                     failures: Mapping[ObjectKey, str], now: str) -> dict[ObjectKey, dict]:
    """Service key -> the status it should have (load balancer and listening condition),
    for the Services whose status differs. now: RFC 3339, a new condition's time."""
    services = list(services)
    out = load_balancer_statuses(services, listening, node_address)
    for svc in services:
        key = key_of(svc)
        status = out.get(key, svc.get("status") or {})
        wanted = _with_listening(status, failures.get(key), now)
        if wanted != (svc.get("status") or {}):
            out[key] = wanted
        else:
            out.pop(key, None)
    return out


def bind_failure(old: dict | None, new: dict) -> str | None:
    """The message of a listening failure new has and old had not (worth a Warning)."""
    cond = _condition(new)
    if cond is None or cond.get("status") != "False":
        return None
    before = _condition(old or {})
    return None if before is not None and before.get("message") == cond.get("message") \
        else cond.get("message")


def _condition(status: dict) -> dict | None:
    return next((c for c in status.get("conditions") or [] if c.get("type") == LISTENING), None)


def _with_listening(status: dict, failure: str | None, now: str) -> dict:
    others = [c for c in status.get("conditions") or [] if c.get("type") != LISTENING]
    current = _condition(status)
    if failure is None:
        rest = {k: v for k, v in status.items() if k != "conditions"}
        return {**rest, "conditions": others} if others else rest
    since = current.get("lastTransitionTime") if current and current.get("status") == "False" \
        else now
    cond = {"type": LISTENING, "status": "False", "reason": "BindFailed", "message": failure,
            "lastTransitionTime": since or now}
    return {**status, "conditions": [*others, cond]}
