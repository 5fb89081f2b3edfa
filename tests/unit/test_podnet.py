"""The pod network between hosts, decided: host-gw, vxlan and auto per peer, the entries
each peer gets, what is stale, and the kernel's JSON read back."""

from __future__ import annotations

import ipaddress

import pytest

from gitops.agent import podnet
from gitops.agent.podnet import DEVICE, Backend, Entries, Peer, Route
from gitops.agent.routes import vni_from_env
from gitops.errors import GitopsError

SEGMENT = [ipaddress.IPv4Network("10.77.0.0/24")]
MAC2, MAC3 = "aa:bb:cc:00:00:02", "aa:bb:cc:00:00:03"


def _node(name, cidr="", ip="", mac="", vni=4242):
    notes = {podnet.BACKEND_DATA: podnet.encode_backend_data(mac, vni)} if mac else {}
    return {"kind": "Node", "metadata": {"name": name, "annotations": notes},
            "spec": {"podCIDR": cidr} if cidr else {},
            "status": {"addresses": [{"type": "InternalIP", "address": ip}] if ip else []}}


NODES = [_node("h1", "10.42.0.0/24", "10.77.0.1", "aa:bb:cc:00:00:01"),
         _node("h2", "10.42.1.0/24", "10.77.0.2", MAC2),         # on our segment
         _node("h3", "10.42.2.0/24", "192.168.9.3", MAC3)]       # elsewhere


def _plan(backend, nodes=NODES, tunnel=True, vni=4242):
    peers, _ = podnet.peers(nodes, "h1")
    return podnet.plan(peers, backend, SEGMENT, vni, tunnel)


def test_peers_are_the_other_nodes_with_a_cidr_an_address_and_their_published_mac():
    nodes = [*NODES, _node("h4", ip="10.77.0.4"), _node("h5", "10.42.5.0/24"),
             _node("h6", "nonsense", "10.77.0.6")]
    peers, skipped = podnet.peers(nodes, "h1")
    assert peers == [Peer("h2", "10.42.1.0/24", "10.77.0.2", MAC2, 4242),
                     Peer("h3", "10.42.2.0/24", "192.168.9.3", MAC3, 4242)]
    assert len(skipped) == 1 and "h6" in skipped[0]


def test_auto_routes_directly_on_a_connected_subnet_and_tunnels_otherwise():
    want, waiting = _plan(Backend.AUTO)
    assert want.routes == {"10.42.1.0/24": Route("10.77.0.2"),
                           "10.42.2.0/24": Route("10.42.2.0", DEVICE)}
    assert want.neighbours == {"10.42.2.0": MAC3}
    assert want.fdb == {MAC3: "192.168.9.3"}
    assert waiting == []


def test_host_gw_routes_every_peer_via_its_address():
    want, _ = _plan(Backend.HOST_GW)
    assert want.routes == {"10.42.1.0/24": Route("10.77.0.2"),
                           "10.42.2.0/24": Route("192.168.9.3")}
    assert want.neighbours == {} and want.fdb == {}


def test_vxlan_tunnels_every_peer_with_a_route_a_neighbour_and_a_forwarding_entry():
    want, _ = _plan(Backend.VXLAN)
    assert want.routes == {"10.42.1.0/24": Route("10.42.1.0", DEVICE),
                           "10.42.2.0/24": Route("10.42.2.0", DEVICE)}
    assert want.neighbours == {"10.42.1.0": MAC2, "10.42.2.0": MAC3}
    assert want.fdb == {MAC2: "10.77.0.2", MAC3: "192.168.9.3"}


def test_a_peer_without_a_device_or_with_another_vni_waits_and_stops_no_other():
    nodes = [NODES[0], _node("h2", "10.42.1.0/24", "10.77.0.2"),          # no MAC yet
             _node("h3", "10.42.2.0/24", "10.77.0.3", MAC3, vni=7),
             _node("h4", "10.42.3.0/24", "10.77.0.4", "aa:bb:cc:00:00:04")]
    want, waiting = _plan(Backend.VXLAN, nodes)
    assert set(want.routes) == {"10.42.3.0/24"}
    assert [w.split(":")[0] for w in waiting] == ["node h2", "node h3"]
    # Without a device of our own nothing goes through the tunnel.
    want, waiting = _plan(Backend.VXLAN, tunnel=False)
    assert want == Entries() and len(waiting) == 2


def test_changes_set_what_differs_and_remove_what_is_stale():
    want, _ = _plan(Backend.VXLAN)
    have = Entries(
        routes={"10.42.1.0/24": Route("10.42.1.0", DEVICE),        # as wanted
                "10.42.2.0/24": Route("10.77.0.3"),                # was host-gw
                "10.42.9.0/24": Route("10.42.9.0", DEVICE)},       # node gone
        neighbours={"10.42.1.0": "aa:bb:cc:00:00:99",              # its MAC changed
                    "10.42.9.0": "aa:bb:cc:00:00:09"},
        fdb={"aa:bb:cc:00:00:99": "10.77.0.2", "aa:bb:cc:00:00:09": "10.77.0.9"})
    out = podnet.changes(want, have)
    assert out.set.routes == {"10.42.2.0/24": Route("10.42.2.0", DEVICE)}
    assert out.set.neighbours == {"10.42.1.0": MAC2, "10.42.2.0": MAC3}
    assert out.set.fdb == {MAC2: "10.77.0.2", MAC3: "192.168.9.3"}
    assert out.remove.routes == {"10.42.9.0/24": Route("10.42.9.0", DEVICE)}
    assert set(out.remove.neighbours) == {"10.42.9.0"}
    assert set(out.remove.fdb) == {"aa:bb:cc:00:00:99", "aa:bb:cc:00:00:09"}
    assert not podnet.changes(want, want)


def test_a_moved_cidr_replaces_the_route_and_its_next_hop():
    want, _ = _plan(Backend.VXLAN, [NODES[0], _node("h2", "10.42.7.0/24", "10.77.0.2", MAC2)])
    have, _ = _plan(Backend.VXLAN, [NODES[0], NODES[1]])
    out = podnet.changes(want, have)
    assert set(out.set.routes) == {"10.42.7.0/24"} and set(out.remove.routes) == {
        "10.42.1.0/24"}
    assert set(out.remove.neighbours) == {"10.42.1.0"} and out.remove.fdb == {}


def test_the_tunnel_needs_an_address_other_hosts_reach():
    assert podnet.tunnel_usable("10.77.0.1")
    assert not podnet.tunnel_usable("127.0.0.1") and not podnet.tunnel_usable("")


# -- the kernel's JSON ----------------------------------------------------------------
def test_links_give_the_connected_subnets_and_the_tunnel_mtu():
    links = podnet.parse_links([
        {"ifname": "lo", "mtu": 65536, "addr_info": [{"local": "127.0.0.1", "prefixlen": 8}]},
        {"ifname": "eth0", "mtu": 9000, "addr_info": [{"local": "10.77.0.1", "prefixlen": 24}]},
        {"ifname": DEVICE, "mtu": 8950, "addr_info": [{"local": "10.42.0.0", "prefixlen": 32}]},
    ])
    assert podnet.connected_subnets(links) == SEGMENT
    assert podnet.tunnel_mtu(links, "10.77.0.1") == 8950
    assert podnet.tunnel_mtu(links, "10.1.1.1") == 1450      # address not here: Ethernet's


def test_the_kernels_entries_are_read_back_as_ours():
    routes = podnet.parse_routes([
        {"dst": "10.42.1.0/24", "gateway": "10.77.0.2", "dev": "eth0", "protocol": "213"},
        {"dst": "10.42.2.0/24", "gateway": "10.42.2.0", "dev": DEVICE, "flags": ["onlink"]}])
    assert routes == {"10.42.1.0/24": Route("10.77.0.2"),
                      "10.42.2.0/24": Route("10.42.2.0", DEVICE)}
    neighbours = podnet.parse_neighbours([
        {"dst": "10.42.2.0", "lladdr": "AA:BB:CC:00:00:03", "state": ["PERMANENT"]},
        {"dst": "10.42.5.7", "lladdr": "aa:bb:cc:00:00:05", "state": ["REACHABLE"]}])
    assert neighbours == {"10.42.2.0": MAC3}
    fdb = podnet.parse_fdb([{"mac": MAC3, "dst": "192.168.9.3", "state": "permanent"},
                            {"mac": "00:00:00:00:00:00", "dst": "10.77.0.9"},
                            {"mac": "33:33:00:00:00:01", "state": "permanent"}])
    assert fdb == {MAC3: "192.168.9.3"}
    dev = podnet.parse_device([{"mtu": 1450, "address": "AA:BB:CC:00:00:01",
                                "flags": ["BROADCAST", "UP"],
                                "linkinfo": {"info_kind": "vxlan", "info_data": {
                                    "id": 4242, "local": "10.77.0.1", "port": 8472}}}])
    assert dev == podnet.Device(4242, "10.77.0.1", 8472, 1450, "aa:bb:cc:00:00:01", True)
    assert podnet.parse_device([{"linkinfo": {"info_kind": "bridge"}}]) is None


def test_malformed_backend_data_reads_as_none_published():
    node = {"metadata": {"annotations": {podnet.BACKEND_DATA: "{not json"}}}
    assert podnet.backend_data(node) == ("", 0)


def test_the_vni_comes_from_the_environment_and_bad_values_are_refused(monkeypatch):
    monkeypatch.delenv("GITOPS_VXLAN_VNI", raising=False)
    assert vni_from_env() == 4242
    monkeypatch.setenv("GITOPS_VXLAN_VNI", "7")
    assert vni_from_env() == 7
    for bad in ("0", "16777216", "seven"):
        monkeypatch.setenv("GITOPS_VXLAN_VNI", bad)
        with pytest.raises(GitopsError, match="GITOPS_VXLAN_VNI"):
            vni_from_env()


def test_the_cli_offers_every_backend():
    from gitops.cli.common import POD_NETWORK_BACKENDS
    assert POD_NETWORK_BACKENDS == tuple(b.value for b in Backend)
