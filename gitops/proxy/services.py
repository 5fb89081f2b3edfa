"""Service networking for one agent: loopback VIPs, the TCP proxy and cluster DNS, kept in
step with the store's Services, Endpoints and Pods (one level-triggered apply)."""

from __future__ import annotations

import asyncio
import time

import structlog

from gitops.model import ObjectKey
from gitops.model.addresses import fallback_address
from gitops.proxy.dns import DnsServer, build_zone, host_upstreams
from gitops.proxy.listeners import Proxy
from gitops.proxy.routes import cluster_ip_routes, node_port_routes
from gitops.proxy.vip import LoopbackVips, VipUnavailable

log = structlog.get_logger(component="services")

# Seconds an unchanged set of ClusterIPs, all found on lo, is trusted without asking `ip`
# again. Applies come with every Pod change (DNS follows pods): in a busy cluster a fork
# of `ip` per apply on every node competes with the engine starting the pods.
VIP_RECHECK = 10.0


class ServiceNetwork:
    def __init__(self, instance: str, service_cidr: str, node_address: str,
                 proxy_workers: int | None = None) -> None:
        """proxy_workers: processes for the TCP data path (None: GITOPS_PROXY_WORKERS)."""
        self.service_cidr = service_cidr
        self.node_address = node_address
        self.proxy = Proxy(workers=proxy_workers)
        self.vips = LoopbackVips(cidr=service_cidr, label=f"lo:g{instance}")
        self.dns = DnsServer(host_upstreams())
        self.dns_addresses: list[tuple[str, int]] = []
        self._vip_mode = ""
        self._bind_errors: dict = {}
        # Service key -> why one of its listeners cannot bind (its status says so)
        self.listen_failures: dict[ObjectKey, str] = {}
        self._dns_ips: frozenset[str] = frozenset()
        self._vips_seen: tuple[frozenset[str], float] | None = None   # all present, when
        self.clock = time.monotonic

    async def start_dns(self, hosts: list[str], port: int = 53) -> None:
        """Listen where containers (their gateway) and the host (127.0.0.1) can ask."""
        for host in hosts:
            try:
                self.dns_addresses.append(await self.dns.start(host, port))
            except OSError as exc:   # port 53 needs root, or is taken by another resolver
                log.warning("dns_listen_failed", address=f"{host}:{port}", error=str(exc))
        if self.dns_addresses:
            log.info("dns_listening", addresses=[f"{h}:{p}" for h, p in self.dns_addresses])

    def answers_at(self, host: str) -> bool:
        return any(h == host for h, _ in self.dns_addresses)

    def routes_to(self, ip: str) -> bool:
        """Whether new traffic may still reach this pod IP: a proxy listener balances over
        it, or DNS hands it out (headless Services, StatefulSet pod names). Thread-safe."""
        return self.proxy.routes_to(ip) or ip in self._dns_ips

    async def apply(self, services: list[dict], endpoints: list[dict], pods: list[dict]) -> None:
        zone = build_zone(services, endpoints, pods)
        self.dns.set_zone(zone)
        self._dns_ips = frozenset(ip for ips in zone.a.values() for ip in ips)
        wanted = {ip for s in services if (ip := s.get("spec", {}).get("clusterIP"))
                  and ip != "None"}
        present = await asyncio.to_thread(self._sync_vips, wanted)
        routes, names = node_port_routes(services, endpoints, self.node_address)
        cluster, cluster_names = cluster_ip_routes(
            services, endpoints, lambda ip: ip if ip in present else self._fallback(ip))
        names = {**names, **cluster_names}
        errors = await self.proxy.apply({**routes, **cluster}, names)
        if errors != self._bind_errors:      # log changes only; the proxy logs attempts
            for addr, err in errors.items():
                log.error("service_listen_failed", address=f"{addr[0]}:{addr[1]}", error=err)
            self._bind_errors = errors
        self.listen_failures = listen_failures(errors, names)

    def listening(self) -> set:
        """Where the proxy listens now (ListenAddr keys)."""
        return self.proxy.listening()

    def _sync_vips(self, wanted: set[str]) -> set[str]:
        seen, now = self._vips_seen, self.clock()
        if seen is not None and seen[0] == wanted and now - seen[1] < VIP_RECHECK:
            return set(wanted)
        try:
            present = self.vips.sync(wanted)
            mode = "vip"
        except VipUnavailable as exc:
            present, mode = set(), f"fallback: {exc}"
        # Someone may still remove one behind our back: the recheck finds it (a resync).
        self._vips_seen = (frozenset(wanted), now) if present == wanted else None
        if mode != self._vip_mode:
            # Without root, ClusterIPs are served on 127.x stand-ins: host access only.
            log.info("cluster_ip_mode", mode=mode, cidr=self.service_cidr)
            self._vip_mode = mode
        return present

    def _fallback(self, ip: str) -> str | None:
        try:
            return fallback_address(ip, self.service_cidr)
        except ValueError:
            return None

    async def close(self, remove_vips: bool = False) -> None:
        await self.proxy.close()
        await self.dns.stop()
        if remove_vips:
            await asyncio.to_thread(self.vips.remove_all)


def listen_failures(errors: dict, names: dict) -> dict[ObjectKey, str]:
    """Per Service, what its failed listeners say: `cannot listen on 127.0.0.1:30080 for
    port web: [Errno 98] ... address already in use` (names: "ns/name:port" per address)."""
    out: dict[ObjectKey, list[str]] = {}
    for addr, err in sorted(errors.items(), key=lambda item: str(item[0])):
        name = names.get(addr)
        if not name:
            continue
        service, _, port = name.partition(":")
        ns, _, svc = service.partition("/")
        out.setdefault(ObjectKey("Service", ns, svc), []).append(
            f"cannot listen on {addr[0]}:{addr[1]} for port {port}: {err}")
    return {key: "; ".join(msgs) for key, msgs in out.items()}
