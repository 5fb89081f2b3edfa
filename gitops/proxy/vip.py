"""Service ClusterIPs: which address each Service gets (pure), and putting those addresses
on the loopback interface so the proxy can listen on them (the only `ip` calls).

Without root (or CAP_NET_ADMIN, or the `ip` tool) addresses cannot be added to `lo`:
LoopbackVips.available() is False and sync() raises VipUnavailable. The caller then
listens on 127.x addresses instead, which Linux routes to `lo` without any setup;
fallback_address() maps a ClusterIP to a stable one. Those are reachable from the host
only, not from containers (a container's 127.x is its own loopback).
"""

from __future__ import annotations

import ipaddress
import os
import re
import shutil
import subprocess
from collections.abc import Callable, Iterable

import structlog

from gitops.model.meta import stable_hash

log = structlog.get_logger(component="vip")

SERVICE_CIDR = "10.96.0.0/16"
FALLBACK_POOL = "127.96.0.0/16"
VIP_LABEL = "lo:gvip"        # `ip addr` label on every address we add: ours to remove
_CAP_NET_ADMIN = 12

ServiceKey = tuple[str, str]  # (namespace, name)


# --------------------------------------------------------------------------- allocation


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


# --------------------------------------------------------------------------- loopback VIPs


class VipUnavailable(RuntimeError):
    """Addresses cannot be added to the loopback interface here (no root, no `ip`)."""


_INET = re.compile(r"\binet6?\s+(\S+?)/(\d+)")


class LoopbackVips:
    """Level-triggered set of /32 ClusterIPs on `lo`, each added with an `ip addr` label
    (default lo:gvip) so they can be told apart from everything else on `lo`, across
    restarts too. Only addresses inside `cidr` that carry our label are ever removed.

    Two agents on one host need different CIDRs (and, to be safe, different labels: a label
    is at most 15 characters and must start with "lo:").
    """

    def __init__(self, run: Callable[..., subprocess.CompletedProcess] = subprocess.run,
                 cidr: str = SERVICE_CIDR, device: str = "lo", label: str = VIP_LABEL,
                 can_manage: Callable[[], bool] | None = None) -> None:
        if not label.startswith(device + ":") or len(label) > 15:
            raise ValueError(f"label {label!r} must start with {device!r}: and be <= 15 chars")
        self._run = run
        self._can_manage = can_manage or can_manage_addresses
        self._net = ipaddress.ip_network(cidr, strict=False)
        self._device, self._label = device, label

    def available(self) -> bool:
        """Whether addresses can be added here (by default: can_manage_addresses())."""
        return self._can_manage()

    def present(self) -> dict[str, str]:
        """Addresses on the device, /32 ones only, mapped to their label."""
        result = self._ip("-o", "-4", "addr", "show", "dev", self._device)
        if result.returncode != 0:
            raise VipUnavailable(f"ip addr show failed: {_err(result)}")
        found: dict[str, str] = {}
        for line in (result.stdout or "").splitlines():
            m = _INET.search(line)
            if not m or m.group(2) != "32":
                continue
            after = line[m.end():].split("\\", 1)[0].split()
            labels = [t for t in after if t == self._device or t.startswith(self._device + ":")]
            found[m.group(1)] = labels[-1] if labels else ""
        return found

    def ours(self) -> set[str]:
        """Addresses this class added (label and CIDR match), found by listing, not memory."""
        return {ip for ip, label in self.present().items()
                if label == self._label and self._inside(ip)}

    def sync(self, wanted: set[str]) -> set[str]:
        """Make `lo` carry exactly the wanted addresses among ours. Returns the wanted
        addresses now present (the ones the proxy can bind); a wanted address that could
        not be added is logged and left out. Raises VipUnavailable without the rights."""
        if not self.available():
            raise VipUnavailable("adding addresses to lo needs root (or CAP_NET_ADMIN) and `ip`")
        good = set()
        for ip in wanted:
            if self._inside(ip):
                good.add(str(ipaddress.ip_address(ip)))
            else:
                log.warning("vip_outside_cidr", ip=ip, cidr=str(self._net))
        present = self.present()
        mine = {ip for ip, label in present.items() if label == self._label and self._inside(ip)}
        for ip in sorted(mine - good, key=ipaddress.ip_address):
            self._delete(ip)
        ready = set()
        for ip in sorted(good, key=ipaddress.ip_address):
            if ip in present:  # ours from before, or put there by someone else: usable either way
                ready.add(ip)
                continue
            result = self._ip("addr", "add", f"{ip}/32", "dev", self._device, "label", self._label)
            if result.returncode == 0:
                log.info("vip_added", ip=ip, device=self._device)
                ready.add(ip)
            else:
                log.warning("vip_add_failed", ip=ip, device=self._device, error=_err(result))
        return ready

    def remove_all(self) -> set[str]:
        """Remove every address we added (label and CIDR match). Returns those removed."""
        if not self.available():
            return set()
        removed = set()
        for ip in sorted(self.ours(), key=ipaddress.ip_address):
            if self._delete(ip):
                removed.add(ip)
        return removed

    def _delete(self, ip: str) -> bool:
        result = self._ip("addr", "del", f"{ip}/32", "dev", self._device)
        if result.returncode == 0:
            log.info("vip_removed", ip=ip, device=self._device)
            return True
        log.warning("vip_remove_failed", ip=ip, device=self._device, error=_err(result))
        return False

    def _inside(self, ip: str) -> bool:
        try:
            return ipaddress.ip_address(ip) in self._net
        except ValueError:
            return False

    def _ip(self, *args: str) -> subprocess.CompletedProcess:
        try:
            return self._run(["ip", *args], capture_output=True, text=True, check=False,
                             timeout=10)
        except (OSError, subprocess.SubprocessError) as e:
            raise VipUnavailable(f"cannot run ip: {e}") from e


def can_manage_addresses() -> bool:
    """Root (or CAP_NET_ADMIN) and the `ip` tool: what adding addresses to lo needs."""
    return shutil.which("ip") is not None and (os.geteuid() == 0 or _has_net_admin())


def _has_net_admin() -> bool:
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("CapEff:"):
                    return bool(int(line.split()[1], 16) >> _CAP_NET_ADMIN & 1)
    except (OSError, ValueError, IndexError):
        pass
    return False


def _err(result: subprocess.CompletedProcess) -> str:
    text = ((result.stderr or "") + (result.stdout or "")).strip()[:200]
    return text or f"exit {result.returncode}"


__all__ = ["FALLBACK_POOL", "SERVICE_CIDR", "VIP_LABEL", "LoopbackVips", "VipUnavailable",
           "allocate", "can_manage_addresses", "fallback_address"]
