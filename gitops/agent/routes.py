"""This node's side of the pod network between hosts, on the kernel: routes to the other
nodes' pod CIDRs via their addresses (one segment) or through the vxlan device
(gitops.agent.podnet decides which; no iptables, no NAT). Level-triggered: each pass
reads what the kernel has and makes it what the Nodes say. Routes this agent adds carry
their own protocol number, and only permanent entries on its own device are touched, so
stale ones (a node gone, its CIDR moved, its MAC changed) are removed without touching
anyone else's. One bad entry never stops the others."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import structlog

from gitops.agent import podnet
from gitops.agent.podnet import DEVICE, PORT, Backend, Entries
from gitops.errors import GitopsError
from gitops.model import ObjectKey
from gitops.store.base import Conflict

log = structlog.get_logger(component="routes")

PROTO = "213"       # ours (rtnetlink protocol numbers 5..252 are free for use)


def _run(*argv: str) -> str:
    done = subprocess.run(list(argv), capture_output=True, text=True, timeout=10)
    if done.returncode != 0:
        raise OSError(f"{' '.join(argv)}: {done.stderr.strip()}")
    return done.stdout


def _json(*argv: str) -> list[dict]:
    return json.loads(_run(*argv) or "[]")


def vni_from_env() -> int:
    """GITOPS_VXLAN_VNI: the tunnel's VNI, the same on every node (default 4242)."""
    raw = os.environ.get("GITOPS_VXLAN_VNI", "")
    try:
        vni = int(raw) if raw else podnet.DEFAULT_VNI
    except ValueError:
        vni = -1
    if not 1 <= vni < 2 ** 24:
        raise GitopsError(f"GITOPS_VXLAN_VNI must be a number from 1 to 16777215, not {raw!r}")
    return vni


class PodNetwork:
    """One pass (`sync`) makes the kernel's entries what the Nodes say, creates or removes
    the tunnel device, and publishes its MAC on this node's own Node."""

    def __init__(self, store, node_name: str, address: str, backend: Backend,
                 vni: int = podnet.DEFAULT_VNI) -> None:
        self.store = store
        self.node_name = node_name
        self.address = address
        self.backend = Backend(backend)
        self.vni = vni
        self._waiting: set[str] = set()

    def sync(self) -> None:
        nodes = self.store.list("Node")
        own = next((n for n in nodes if n["metadata"]["name"] == self.node_name), None)
        links = podnet.parse_links(_json("ip", "-4", "-j", "addr", "show"))
        cidr = ((own or {}).get("spec") or {}).get("podCIDR", "")
        mac = ""
        if self.backend is Backend.HOST_GW or not podnet.tunnel_usable(self.address):
            remove_device()
        elif cidr:
            mac = self._ensure_device(cidr, podnet.tunnel_mtu(links, self.address))
        elif (dev := read_device()) is not None:
            mac = dev.mac       # our Node is not in view now: keep the device as it is
        if own is not None:
            self._publish(own, mac)
        peers, skipped = podnet.peers(nodes, self.node_name)
        want, waiting = podnet.plan(peers, self.backend, podnet.connected_subnets(links),
                                    self.vni, bool(mac))
        if set(skipped + waiting) - self._waiting:      # once, not on every pass
            log.warning("pod_network_peers_unreachable", count=len(skipped + waiting),
                        reasons=(skipped + waiting)[:5])
        self._waiting = set(skipped + waiting)
        apply(podnet.changes(want, current(bool(mac))))

    # -- the device -------------------------------------------------------------------
    def _ensure_device(self, cidr: str, mtu: int) -> str:
        """The device as wanted (recreated when its VNI, address or port differ); its MAC,
        or "" when it could not be made."""
        try:
            dev = read_device()
            if dev is not None and (dev.vni, dev.local, dev.port) != (
                    self.vni, self.address, PORT):
                log.info("pod_network_device_replaced", device=DEVICE, vni=dev.vni,
                         local=dev.local, port=dev.port)
                remove_device()
                dev = None
            if dev is None:
                _run("ip", "link", "add", DEVICE, "type", "vxlan", "id", str(self.vni),
                     "local", self.address, "dstport", str(PORT), "nolearning")
                log.info("pod_network_device_created", device=DEVICE, vni=self.vni,
                         local=self.address, mtu=mtu)
                dev = read_device()
                assert dev is not None
            if dev.mtu != mtu:
                _run("ip", "link", "set", DEVICE, "mtu", str(mtu))
            _run("ip", "addr", "replace", f"{podnet.gateway(cidr)}/32", "dev", DEVICE)
            if not dev.up:
                _run("ip", "link", "set", DEVICE, "up")
            return dev.mac
        except OSError as exc:
            log.warning("pod_network_device_failed", device=DEVICE, error=str(exc))
            return ""

    def _publish(self, own: dict, mac: str) -> None:
        """The device's MAC on this node's own Node (NodeRestriction lets it write that)."""
        annotations = own["metadata"].get("annotations") or {}
        want = podnet.encode_backend_data(mac, self.vni) if mac else None
        if annotations.get(podnet.BACKEND_DATA) == want:
            return
        fresh = self.store.get(ObjectKey("Node", "", self.node_name))
        if fresh is None:
            return
        notes = dict(fresh["metadata"].get("annotations") or {})
        if want is None:
            notes.pop(podnet.BACKEND_DATA, None)
        else:
            notes[podnet.BACKEND_DATA] = want
        fresh["metadata"]["annotations"] = notes
        try:
            self.store.update(fresh)
            log.info("pod_network_device_published", node=self.node_name, mac=mac or None)
        except Conflict:
            pass        # the Node changed meanwhile: the next pass (a Node event) retries


def pod_mtu(backend: Backend, address: str) -> int:
    """The pods' MTU on a node that may tunnel: the tunnel's, so no packet of theirs is
    too big for it (as flannel's CNI sets it); 0 (Docker's default) otherwise."""
    if Backend(backend) is Backend.HOST_GW or not podnet.tunnel_usable(address):
        return 0
    try:
        return podnet.tunnel_mtu(podnet.parse_links(_json("ip", "-4", "-j", "addr", "show")),
                                 address)
    except (OSError, ValueError) as exc:
        log.warning("pod_network_mtu_unknown", error=str(exc))
        return 0


def read_device() -> podnet.Device | None:
    try:
        data = _json("ip", "-d", "-j", "link", "show", DEVICE)
    except OSError:
        return None         # no such device
    return podnet.parse_device(data)


def remove_device() -> bool:
    """Remove the tunnel device (its routes, neighbours and entries go with it)."""
    if read_device() is None:
        return False
    try:
        _run("ip", "link", "del", DEVICE)
        log.info("pod_network_device_removed", device=DEVICE)
        return True
    except OSError as exc:
        log.warning("pod_network_device_failed", device=DEVICE, error=str(exc))
        return False


def current(device: bool) -> Entries:
    have = Entries(podnet.parse_routes(_json("ip", "-4", "-j", "route", "show", "proto",
                                             PROTO)))
    if device:
        have.neighbours = podnet.parse_neighbours(
            _json("ip", "-4", "-j", "neigh", "show", "dev", DEVICE))
        have.fdb = podnet.parse_fdb(_json("bridge", "-j", "fdb", "show", "dev", DEVICE))
    return have


def apply(changes: podnet.Changes) -> None:
    """Removals first (a moved CIDR frees its neighbour), then forwarding entries,
    neighbours and routes, so a route never points at an unresolved next hop."""
    rm, add = changes.remove, changes.set
    for cidr in rm.routes:
        _try("node_route_removed", ["ip", "route", "del", cidr, "proto", PROTO], pod_cidr=cidr)
    for ip in rm.neighbours:
        _try("node_neighbour_removed", ["ip", "neigh", "del", ip, "dev", DEVICE], address=ip)
    for mac, dst in rm.fdb.items():
        _try("node_fdb_removed", ["bridge", "fdb", "del", mac, "dev", DEVICE, "dst", dst,
                                  "self"], mac=mac, dst=dst)
    for mac, dst in add.fdb.items():
        _try("node_fdb_set", ["bridge", "fdb", "replace", mac, "dev", DEVICE, "dst", dst,
                              "self", "permanent"], mac=mac, dst=dst)
    for ip, mac in add.neighbours.items():
        _try("node_neighbour_set", ["ip", "neigh", "replace", ip, "lladdr", mac, "dev",
                                    DEVICE, "nud", "permanent"], address=ip, mac=mac)
    for cidr, route in add.routes.items():
        via = ["via", route.via, *(["dev", route.dev, "onlink"] if route.dev else [])]
        _try("node_route_set", ["ip", "route", "replace", cidr, *via, "proto", PROTO],
             pod_cidr=cidr, via=route.via, dev=route.dev or None)


def _try(event: str, argv: list[str], **fields) -> None:
    try:
        _run(*argv)
        log.info(event, **fields)
    except OSError as exc:
        log.warning("node_network_entry_failed", action=event, error=str(exc), **fields)


def remove_all() -> None:
    """What `gitops down` leaves of the pod network between hosts: nothing."""
    remove_device()
    try:
        for cidr in current(False).routes:
            _try("node_route_removed", ["ip", "route", "del", cidr, "proto", PROTO],
                 pod_cidr=cidr)
    except OSError as exc:
        log.warning("node_route_failed", error=str(exc))


def enable_forwarding() -> None:
    """The host forwards between its pod bridge and the segment (a router's job)."""
    path = Path("/proc/sys/net/ipv4/ip_forward")
    try:
        if path.read_text().strip() != "1":
            path.write_text("1\n")
    except OSError as exc:
        log.warning("ip_forward_not_enabled", error=str(exc))
