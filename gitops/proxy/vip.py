"""Putting Service ClusterIPs (chosen by gitops.model.addresses) on the loopback interface
so the proxy can listen on them (the only `ip` calls).

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
from collections.abc import Callable

import structlog

from gitops.errors import PermanentError
from gitops.model.addresses import SERVICE_CIDR

log = structlog.get_logger(component="vip")

VIP_LABEL = "lo:gvip"        # `ip addr` label on every address we add: ours to remove
_CAP_NET_ADMIN = 12


# --------------------------------------------------------------------------- loopback VIPs


class VipUnavailable(PermanentError):
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


__all__ = ["VIP_LABEL", "LoopbackVips", "VipUnavailable", "can_manage_addresses"]
