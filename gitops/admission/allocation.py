"""A Service's ClusterIP and node ports, allocated when it is written (pure: the other
Services are given), as the API server's allocators do on create, so a Service is never
seen without its address. A declared address or port is checked instead: outside the
range or held by another Service, the write is refused with Kubernetes' words."""

from __future__ import annotations

import ipaddress

from gitops.admission.errors import Invalid
from gitops.admission.prepare import needs_cluster_ip, needs_node_ports
from gitops.model.addresses import pick_cluster_ip, pick_node_port, usable_range

Key = tuple[str, str]


def _ip_int(value: object) -> int | None:
    try:
        return int(ipaddress.ip_address(value)) if isinstance(value, str) else None
    except ValueError:
        return None


def _cluster_ip_problem(ip: str, key: Key, cidr: str, taken: set[str]) -> str | None:
    number = _ip_int(ip)
    net = ipaddress.ip_network(cidr, strict=False)
    first, last = usable_range(cidr)
    reserved = int(net.network_address) + 1 if key == ("default", "kubernetes") else None
    if number is None or ipaddress.ip_address(ip).version != net.version or \
            not (first <= number <= last or number == reserved):
        return (f"failed to allocate IP {ip}: the provided IP ({ip}) is not in the valid "
                f"range. The range of valid IPs is {cidr}")
    if ip in taken:
        return f"failed to allocate IP {ip}: provided IP is already allocated"
    return None


def allocate(svc: dict, old: dict | None, others: list[dict], cidr: str) -> None:
    """Fill svc's ClusterIP and node ports where it needs them and has none; check the
    ones it brings that the stored copy (old) did not have. Raises Invalid."""
    spec = svc.get("spec")
    if not isinstance(spec, dict):
        return
    meta = svc.get("metadata") or {}
    key = (meta.get("namespace") or "default", meta.get("name") or "")
    old_spec = (old or {}).get("spec") or {}
    causes: list[tuple[str, str]] = []
    if needs_cluster_ip(spec) or spec.get("clusterIP") == "None":
        spec.setdefault("ipFamilies", ["IPv4"])
        spec.setdefault("ipFamilyPolicy", "SingleStack")
    if needs_cluster_ip(spec):
        given = spec.get("clusterIP")
        taken = {ip for o in others for ip in [(o.get("spec") or {}).get("clusterIP")]
                 if isinstance(ip, str)}
        if not given:
            ip = pick_cluster_ip(*key, taken, cidr)
            if ip is None:
                causes.append(("spec.clusterIPs", "Internal error: failed to allocate a "
                               f"serviceIP: range is full ({cidr})"))
            else:
                spec["clusterIP"], spec["clusterIPs"] = ip, [ip]
        elif given != old_spec.get("clusterIP"):
            if problem := _cluster_ip_problem(given, key, cidr, taken):
                causes.append(("spec.clusterIPs", f"Invalid value: [\"{given}\"]: {problem}"))
            spec.setdefault("clusterIPs", [given])
    if needs_node_ports(spec):
        used = {p.get("nodePort") for o in others
                for p in (o.get("spec") or {}).get("ports") or [] if isinstance(p, dict)}
        before = {p.get("nodePort") for p in old_spec.get("ports") or []
                  if isinstance(p, dict)}
        ports = spec.get("ports")
        for i, port in enumerate(ports if isinstance(ports, list) else []):
            if not isinstance(port, dict):
                continue
            given = port.get("nodePort")
            if not given:
                chosen = pick_node_port(*key, port.get("port"), port.get("protocol", "TCP"),
                                        used)
                if chosen is None:
                    causes.append((f"spec.ports[{i}].nodePort", "Internal error: failed to "
                                   "allocate a nodePort: range is full"))
                    continue
                port["nodePort"] = chosen
            elif given in used and given not in before:
                causes.append((f"spec.ports[{i}].nodePort", f"Invalid value: {given}: "
                               "provided port is already allocated"))
            used.add(port["nodePort"])
    if causes:
        raise Invalid("Service", key[1], causes)
