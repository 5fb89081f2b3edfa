"""The pod network between hosts, decided (pure): from the Node objects and this host's
links, what routes, neighbours and forwarding entries this node wants, and what differs
from what the kernel has.

Backends, as flannel's: host-gw routes a peer's pod CIDR via the peer's address (both on
one segment); vxlan sends it through one tunnel device (`gitops.vx`): a route via the
peer's CIDR.0 onlink, a permanent neighbour CIDR.0 -> the peer's device MAC, and a
forwarding entry MAC -> the peer's address. auto (flannel's vxlan with DirectRouting)
picks host-gw for a peer whose address is on a subnet directly connected to this host,
the tunnel otherwise. Each node publishes its device's MAC on its own Node.
"""

from __future__ import annotations

import ipaddress
import json
from dataclasses import dataclass, field
from enum import Enum

DEVICE = "gitops.vx"
PORT = 8472                 # the Linux/flannel vxlan port (not IANA's 4789)
DEFAULT_VNI = 4242
OVERHEAD = 50               # outer Ethernet + IP + UDP + VXLAN headers
BACKEND_DATA = "gitops.io/backend-data"     # on a Node: {"VNI": n, "VtepMAC": "..."}


class Backend(str, Enum):
    AUTO = "auto"
    HOST_GW = "host-gw"
    VXLAN = "vxlan"


@dataclass(frozen=True)
class Peer:
    node: str
    cidr: str
    address: str
    mac: str = ""           # its tunnel device's, "" when it published none
    vni: int = 0


@dataclass(frozen=True)
class Route:
    via: str
    dev: str = ""           # the tunnel device (onlink); "" for a route via the segment


@dataclass
class Entries:
    """Routes (pod CIDR -> Route), neighbours on the device (CIDR.0 -> MAC) and its
    forwarding entries (MAC -> the peer's address): wanted, or as the kernel has them."""
    routes: dict[str, Route] = field(default_factory=dict)
    neighbours: dict[str, str] = field(default_factory=dict)
    fdb: dict[str, str] = field(default_factory=dict)


@dataclass
class Changes:
    set: Entries = field(default_factory=Entries)
    remove: Entries = field(default_factory=Entries)

    def __bool__(self) -> bool:
        return any((self.set.routes, self.set.neighbours, self.set.fdb, self.remove.routes,
                    self.remove.neighbours, self.remove.fdb))


def gateway(cidr: str) -> str:
    """A pod CIDR's tunnel next hop: its network address, the address its node's device
    has (as flannel's)."""
    return str(ipaddress.IPv4Network(cidr).network_address)


def backend_data(node: dict) -> tuple[str, int]:
    """(MAC, VNI) a Node published for its tunnel device; ("", 0) when none or malformed."""
    raw = ((node.get("metadata") or {}).get("annotations") or {}).get(BACKEND_DATA, "")
    try:
        data = json.loads(raw) if raw else {}
        return str(data.get("VtepMAC", "")).lower(), int(data.get("VNI", 0))
    except (ValueError, TypeError, AttributeError):
        return "", 0


def encode_backend_data(mac: str, vni: int) -> str:
    return json.dumps({"VNI": vni, "VtepMAC": mac}, sort_keys=True)


def internal_ip(node: dict) -> str:
    return next((a.get("address", "") for a in (node.get("status") or {}).get("addresses")
                 or [] if a.get("type") == "InternalIP"), "")


def peers(nodes: list[dict], own: str) -> tuple[list[Peer], list[str]]:
    """The other nodes with a pod CIDR and an address, and why any others were skipped."""
    out, skipped = [], []
    for node in nodes:
        name = (node.get("metadata") or {}).get("name", "")
        cidr = (node.get("spec") or {}).get("podCIDR") or ""
        ip = internal_ip(node)
        if name == own or not cidr or not ip:
            continue
        try:
            cidr = str(ipaddress.IPv4Network(cidr))
            ipaddress.IPv4Address(ip)
        except ValueError:
            skipped.append(f"node {name}: pod CIDR {cidr!r} or address {ip!r} is not IPv4")
            continue
        mac, vni = backend_data(node)
        out.append(Peer(name, cidr, ip, mac, vni))
    return out, skipped


def direct(address: str, connected: list[ipaddress.IPv4Network]) -> bool:
    """Whether a peer's address is on a subnet directly connected to this host."""
    ip = ipaddress.IPv4Address(address)
    return any(ip in net for net in connected)


def tunnel_usable(own_address: str) -> bool:
    """A tunnel needs an address other hosts reach this one at (not loopback)."""
    try:
        ip = ipaddress.IPv4Address(own_address)
    except ValueError:
        return False
    return not (ip.is_loopback or ip.is_unspecified)


def plan(peers_: list[Peer], backend: Backend, connected: list[ipaddress.IPv4Network],
         vni: int, tunnel: bool) -> tuple[Entries, list[str]]:
    """What this node wants for its peers, and why some peer gets nothing yet. `tunnel`:
    this node has its device (a peer through it needs it)."""
    want, waiting = Entries(), []
    for peer in peers_:
        if backend is Backend.HOST_GW or (backend is Backend.AUTO and
                                          direct(peer.address, connected)):
            want.routes[peer.cidr] = Route(peer.address)
            continue
        if not tunnel:
            waiting.append(f"node {peer.node}: this node has no tunnel device")
        elif not peer.mac:
            waiting.append(f"node {peer.node}: has published no tunnel device yet")
        elif peer.vni != vni:
            waiting.append(f"node {peer.node}: its tunnel has VNI {peer.vni}, ours {vni}")
        else:
            gw = gateway(peer.cidr)
            want.routes[peer.cidr] = Route(gw, DEVICE)
            want.neighbours[gw] = peer.mac
            want.fdb[peer.mac] = peer.address
    return want, waiting


def changes(want: Entries, have: Entries) -> Changes:
    """What to set (missing or different) and what to remove (ours, no longer wanted)."""
    out = Changes()
    for name in ("routes", "neighbours", "fdb"):
        w, h = getattr(want, name), getattr(have, name)
        getattr(out.set, name).update({k: v for k, v in w.items() if h.get(k) != v})
        getattr(out.remove, name).update({k: v for k, v in h.items() if k not in w})
    return out


# -- what the kernel says (`ip -j` / `bridge -j`), parsed -----------------------------
@dataclass(frozen=True)
class Link:
    name: str
    mtu: int
    addresses: tuple[str, ...]          # "a.b.c.d/len"


def parse_links(data: list[dict]) -> list[Link]:
    """`ip -4 -j addr show`."""
    return [Link(item.get("ifname", ""), int(item.get("mtu") or 0),
                 tuple(f"{a['local']}/{a.get('prefixlen', 32)}"
                       for a in item.get("addr_info") or [] if a.get("local")))
            for item in data]


def connected_subnets(links: list[Link]) -> list[ipaddress.IPv4Network]:
    """The subnets of this host's addresses, but the tunnel device's own."""
    return [ipaddress.IPv4Interface(a).network for link in links if link.name != DEVICE
            for a in link.addresses if not ipaddress.IPv4Interface(a).ip.is_loopback]


def tunnel_mtu(links: list[Link], own_address: str) -> int:
    """The MTU of the link holding this node's address, less the tunnel's headers."""
    for link in links:
        if any(a.split("/")[0] == own_address for a in link.addresses) and link.mtu:
            return link.mtu - OVERHEAD
    return 1500 - OVERHEAD


def parse_routes(data: list[dict]) -> dict[str, Route]:
    """`ip -4 -j route show proto 213`: our routes."""
    out = {}
    for r in data:
        dst = r.get("dst", "")
        if "/" not in dst:
            dst += "/32"
        dev = r.get("dev", "") if r.get("dev") == DEVICE else ""
        out[dst] = Route(r.get("gateway", ""), dev)
    return out


def parse_neighbours(data: list[dict]) -> dict[str, str]:
    """`ip -4 -j neigh show dev gitops.vx`: the permanent entries (ours)."""
    return {n["dst"]: n.get("lladdr", "").lower() for n in data
            if "PERMANENT" in (n.get("state") or []) and n.get("dst")}


def parse_fdb(data: list[dict]) -> dict[str, str]:
    """`bridge -j fdb show dev gitops.vx`: the entries with a remote address."""
    return {f["mac"].lower(): f["dst"] for f in data
            if f.get("dst") and f.get("mac") and f["mac"] != "00:00:00:00:00:00"}


@dataclass(frozen=True)
class Device:
    vni: int
    local: str
    port: int
    mtu: int
    mac: str
    up: bool


def parse_device(data: list[dict]) -> Device | None:
    """`ip -d -j link show gitops.vx`; None when it is not a vxlan device."""
    if not data:
        return None
    item = data[0]
    info = item.get("linkinfo") or {}
    if info.get("info_kind") != "vxlan":
        return None
    d = info.get("info_data") or {}
    return Device(int(d.get("id", 0)), d.get("local", ""), int(d.get("port", 0)),
                  int(item.get("mtu") or 0), item.get("address", "").lower(),
                  "UP" in (item.get("flags") or []))
