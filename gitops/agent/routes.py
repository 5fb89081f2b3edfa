"""Routes to the other nodes' pod CIDRs, via each node's address (no tunnel, no NAT): the
pod network of a cluster whose hosts share a segment. Routes this agent adds carry their
own protocol number, so stale ones (a node gone, its CIDR moved) are found and removed
without touching anyone else's."""

from __future__ import annotations

import ipaddress
import json
import subprocess
from pathlib import Path

import structlog

log = structlog.get_logger(component="routes")

PROTO = "213"       # ours (rtnetlink protocol numbers 5..252 are free for use)


def desired(nodes: list[dict], own: str) -> dict[str, str]:
    """pod CIDR -> the address of the node that has it (pure)."""
    out = {}
    for node in nodes:
        name = node["metadata"]["name"]
        cidr = (node.get("spec") or {}).get("podCIDR")
        ip = next((a.get("address") for a in (node.get("status") or {}).get("addresses") or []
                   if a.get("type") == "InternalIP"), "")
        if name == own or not cidr or not ip:
            continue
        try:
            ipaddress.IPv4Network(cidr)
            ipaddress.IPv4Address(ip)
        except ValueError:
            log.warning("node_route_skipped", node=name, pod_cidr=cidr, address=ip)
            continue
        out[cidr] = ip
    return out


def _ip(*args: str) -> str:
    done = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=10)
    if done.returncode != 0:
        raise OSError(f"ip {' '.join(args)}: {done.stderr.strip()}")
    return done.stdout


def current() -> dict[str, str]:
    routes = json.loads(_ip("-4", "-j", "route", "show", "proto", PROTO) or "[]")
    return {r["dst"]: r.get("gateway", "") for r in routes}


def apply(want: dict[str, str]) -> None:
    """Make our routes exactly `want`; one bad route never stops the others."""
    have = current()
    for cidr, via in want.items():
        if have.get(cidr) != via:
            try:
                _ip("route", "replace", cidr, "via", via, "proto", PROTO)
                log.info("node_route_set", pod_cidr=cidr, via=via)
            except OSError as exc:
                log.warning("node_route_failed", pod_cidr=cidr, via=via, error=str(exc))
    for cidr in set(have) - set(want):
        try:
            _ip("route", "del", cidr, "proto", PROTO)
            log.info("node_route_removed", pod_cidr=cidr)
        except OSError as exc:
            log.warning("node_route_failed", pod_cidr=cidr, error=str(exc))


def enable_forwarding() -> None:
    """The host forwards between its pod bridge and the segment (a router's job)."""
    path = Path("/proc/sys/net/ipv4/ip_forward")
    try:
        if path.read_text().strip() != "1":
            path.write_text("1\n")
    except OSError as exc:
        log.warning("ip_forward_not_enabled", error=str(exc))
