"""`gitops port-forward`: a local port forwarded to a pod, or to the ready pods behind a
Service, by the same Proxy that serves ClusterIPs, running in the CLI's process.

Pod IPs sit on the agent's pod network on this host, so the CLI dials them directly; the
agent only answers which pods and ports (through its API). Targets are re-read every
few seconds, so a Service's forward follows rollouts and restarts. Unlike kubectl (which
pins one pod for the whole session), a Service forward balances new connections over the
Service's ready endpoints and falls through a failed dial, like the ClusterIP does.

The parsing and target resolution are pure; run() is the edge.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Callable
from dataclasses import dataclass

import structlog

from gitops.errors import GitopsError
from gitops.model.meta import is_deleting
from gitops.model.pods import resolve_target_port
from gitops.proxy.listeners import Proxy
from gitops.proxy.routes import Endpoint, service_endpoints

log = structlog.get_logger(component="port-forward")

REFRESH = 2.0   # seconds between re-reads of the target's pods
_KINDS = {"pod": "pod", "pods": "pod", "po": "pod",
          "svc": "service", "service": "service", "services": "service"}


@dataclass(frozen=True)
class PortSpec:
    local: int          # 0: any free port
    remote: int | str   # a number, or a port name (container port / Service port)


@dataclass(frozen=True)
class Target:
    kind: str           # "pod" | "service"
    name: str


def parse_target(text: str) -> Target:
    """pod/NAME, svc/NAME (and kubectl's aliases); a bare NAME is a pod."""
    kind, sep, name = text.partition("/")
    if not sep:
        kind, name = "pod", text
    if kind.lower() not in _KINDS or not name:
        raise GitopsError(f"cannot forward to {text!r}: expected pod/NAME or svc/NAME")
    return Target(_KINDS[kind.lower()], name)


def parse_port(text: str) -> PortSpec:
    """LOCAL:REMOTE, PORT (the same on both sides), or :REMOTE (a free local port)."""
    local, sep, remote = text.partition(":")
    if not sep:
        local = remote = text
    remote_port: int | str = int(remote) if remote.isdigit() else remote
    if not remote or (local and not local.isdigit()) or \
            (isinstance(remote_port, int) and not 0 < remote_port < 65536) or \
            (local and not 0 <= int(local) < 65536):
        raise GitopsError(f"invalid port mapping {text!r}: expected LOCAL:REMOTE, PORT or :REMOTE")
    return PortSpec(int(local) if local else 0, remote_port)


def pod_targets(pod: dict, remote: int | str) -> list[Endpoint]:
    """podIP:REMOTE, REMOTE being a number or the name of one of its container ports."""
    ip = (pod.get("status") or {}).get("podIP")
    if not ip or is_deleting(pod):
        return []
    port = resolve_target_port({"targetPort": remote}, pod)
    return [(ip, port)] if port else []


def service_port(svc: dict, remote: int | str) -> dict:
    """The Service port REMOTE names (by number or name), as kubectl resolves it."""
    for port in (svc.get("spec") or {}).get("ports") or []:
        if remote in (port.get("port"), port.get("name")):
            return port
    name = svc["metadata"]["name"]
    raise GitopsError(f'service "{name}" has no port {remote}')


def service_targets(svc: dict, endpoints: dict | None, remote: int | str) -> list[Endpoint]:
    """The ready endpoints of the Service port REMOTE (per-pod target ports resolved by the
    Endpoints controller)."""
    return service_endpoints(svc, endpoints, service_port(svc, remote))


class Forwarder:
    """Listens on address:local for each port spec; fetch() -> the current endpoints per
    spec (blocking; it runs in a thread)."""

    def __init__(self, address: str, specs: list[PortSpec],
                 fetch: Callable[[], list[list[Endpoint]]], refresh: float = REFRESH) -> None:
        self.address, self.specs, self.fetch, self.refresh = address, specs, fetch, refresh
        self.proxy = Proxy(refuse_without_endpoints=False)   # the announced port stays ours
        self.bound: list[int] = []

    async def start(self) -> list[int]:
        """Bind every local port (a free one for local 0); raise if any fails."""
        targets = await asyncio.to_thread(self.fetch)
        ports = [spec.local or _free_port(self.address) for spec in self.specs]
        errors = await self.proxy.apply({(self.address, p): eps
                                         for p, eps in zip(ports, targets)})
        if errors:
            await self.proxy.close()
            addr, err = next(iter(errors.items()))
            raise GitopsError(f"unable to listen on {addr[0]}:{addr[1]}: {err}")
        self.bound = ports
        return ports

    async def follow(self, stop: asyncio.Event) -> None:
        """Re-read the targets until stop is set; an unreachable agent keeps the old ones."""
        while not stop.is_set():
            try:
                await asyncio.wait_for(stop.wait(), self.refresh)
                break
            except TimeoutError:
                pass
            try:
                targets = await asyncio.to_thread(self.fetch)
            except GitopsError as exc:
                log.warning("port_forward_refresh_failed", error=str(exc))
                continue
            await self.proxy.apply({(self.address, p): eps
                                    for p, eps in zip(self.bound, targets)})

    async def close(self) -> None:
        await self.proxy.close()


def _free_port(address: str) -> int:
    import socket
    with socket.socket(socket.AF_INET6 if ":" in address else socket.AF_INET) as s:
        s.bind((address, 0))
        return s.getsockname()[1]


async def run(forwarder: Forwarder, announce: Callable[[int, PortSpec], None]) -> None:
    """Forward until SIGINT/SIGTERM."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await forwarder.start()
    for port, spec in zip(forwarder.bound, forwarder.specs):
        announce(port, spec)
    try:
        await forwarder.follow(stop)
    finally:
        await forwarder.close()
