"""A pod's quality-of-service class, as the API server sets status.qosClass (pure)."""

from __future__ import annotations

from decimal import Decimal

from gitops.model import quantity

_QOS_RESOURCES = ("cpu", "memory")


def _positive(values: object) -> dict[str, Decimal]:
    out: dict[str, Decimal] = {}
    for name, value in (values.items() if isinstance(values, dict) else ()):
        if name not in _QOS_RESOURCES:
            continue
        try:
            amount = quantity.parse(value)
        except ValueError:
            continue                    # validation refuses it; it counts for nothing here
        if amount > 0:
            out[name] = amount
    return out


def qos_class(spec: dict) -> str:
    """Guaranteed: every container limits CPU and memory and requests what it limits;
    BestEffort: nobody requests or limits either; Burstable otherwise (GetPodQOS)."""
    requests: dict[str, Decimal] = {}
    limits: dict[str, Decimal] = {}
    guaranteed = True
    containers = [*(spec.get("initContainers") or []), *(spec.get("containers") or [])]
    for c in containers:
        resources = c.get("resources") if isinstance(c, dict) else None
        resources = resources if isinstance(resources, dict) else {}
        for name, amount in _positive(resources.get("requests")).items():
            requests[name] = requests.get(name, Decimal(0)) + amount
        found = _positive(resources.get("limits"))
        for name, amount in found.items():
            limits[name] = limits.get(name, Decimal(0)) + amount
        if set(found) != set(_QOS_RESOURCES):
            guaranteed = False
    if not requests and not limits:
        return "BestEffort"
    if guaranteed and requests == limits:
        return "Guaranteed"
    return "Burstable"
