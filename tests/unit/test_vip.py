"""ClusterIP allocation and loopback VIPs with a fake `ip` (pure); the real `ip` as root is
tests/integration/test_vip.py."""

from __future__ import annotations

import ipaddress
import subprocess

import pytest

from gitops.model.addresses import allocate, fallback_address
from gitops.proxy.vip import LoopbackVips, VipUnavailable


def svc(name, ns="default", cluster_ip=None, created="", **spec):
    meta = {"name": name, "namespace": ns}
    if created:
        meta["creationTimestamp"] = created
    body = {**spec}
    if cluster_ip is not None:
        body["clusterIP"] = cluster_ip
    return {"kind": "Service", "metadata": meta, "spec": body}


# --------------------------------------------------------------------------- allocate


def test_allocation_is_deterministic_and_order_independent():
    services = [svc(f"s{i}", ns) for i in range(40) for ns in ("a", "b")]
    first = allocate(services)
    assert first == allocate(list(reversed(services)))
    assert len(first) == 80 and len(set(first.values())) == 80


def test_allocation_is_inside_cidr_and_skips_reserved_addresses():
    cidr = "10.96.0.0/28"  # 16 addresses: .0 network, .1 kubernetes, .15 broadcast -> 13 usable
    net = ipaddress.ip_network(cidr)
    services = [svc(f"s{i}") for i in range(13)]
    got = allocate(services, cidr)
    assert len(got) == 13
    ips = {ipaddress.ip_address(ip) for ip in got.values()}
    assert all(ip in net for ip in ips)
    assert ips == set(net.hosts()) - {net.network_address + 1}


def test_exhausted_cidr_leaves_the_rest_out():
    got = allocate([svc(f"s{i}") for i in range(20)], "10.96.0.0/28")
    assert len(got) == 13


def test_kubernetes_service_gets_the_first_host():
    got = allocate([svc("kubernetes"), svc("kubernetes", "other")], "10.96.0.0/16")
    assert got[("default", "kubernetes")] == "10.96.0.1"
    assert got[("other", "kubernetes")] != "10.96.0.1"


def test_keeps_existing_cluster_ip():
    got = allocate([svc("web", cluster_ip="10.96.7.7"), svc("db")])
    assert got[("default", "web")] == "10.96.7.7"


@pytest.mark.parametrize("bad", ["10.97.0.5", "10.96.0.0", "10.96.0.1", "10.96.255.255",
                                 "not-an-ip", "fd00::1"])
def test_existing_cluster_ip_outside_usable_range_is_replaced(bad):
    got = allocate([svc("web", cluster_ip=bad)])
    assert got[("default", "web")] == allocate([svc("web")])[("default", "web")]
    assert got[("default", "web")] != bad


def test_duplicate_existing_cluster_ip_goes_to_the_older_service():
    got = allocate([svc("young", cluster_ip="10.96.7.7", created="2024-05-01T00:00:00Z"),
                    svc("old", cluster_ip="10.96.7.7", created="2024-01-01T00:00:00Z")])
    assert got[("default", "old")] == "10.96.7.7"
    assert got[("default", "young")] != "10.96.7.7"


def test_headless_and_external_name_get_nothing():
    got = allocate([svc("h", cluster_ip="None"), svc("x", type="ExternalName", externalName="a.b"),
                    svc("web")])
    assert list(got) == [("default", "web")]


def test_collision_probes_past_taken_address():
    # In a tiny range, a second service whose hash lands on a kept address must move on.
    first = allocate([svc("a")], "10.96.0.0/29")[("default", "a")]
    others = [svc(f"b{i}") for i in range(30)]
    colliding = next(s for s in others
                     if allocate([s], "10.96.0.0/29")[("default", s["metadata"]["name"])] == first)
    got = allocate([svc("a", cluster_ip=first), colliding], "10.96.0.0/29")
    assert got[("default", "a")] == first
    assert got[("default", colliding["metadata"]["name"])] not in (first, None)


def test_written_back_ips_stay_put_when_services_are_added():
    before = allocate([svc(f"s{i}") for i in range(50)], "10.96.0.0/24")
    kept = [svc(name, ns, cluster_ip=ip) for (ns, name), ip in before.items()]
    after = allocate(kept + [svc(f"new{i}") for i in range(50)], "10.96.0.0/24")
    assert all(after[k] == v for k, v in before.items())
    assert len(set(after.values())) == 100


def test_fallback_address():
    assert fallback_address("10.96.3.4") == "127.96.3.4"
    assert fallback_address("10.96.0.10", "10.96.0.0/16", "127.200.0.0/16") == "127.200.0.10"
    with pytest.raises(ValueError):
        fallback_address("10.97.0.1")


# --------------------------------------------------------------------------- LoopbackVips


class FakeIp:
    """Records `ip` commands and keeps the addresses of `lo` like the kernel would."""

    def __init__(self, addrs: dict[str, str] | None = None) -> None:
        self.addrs = {"127.0.0.1/8": "lo", **(addrs or {})}   # "ip/plen" -> label
        self.calls: list[list[str]] = []
        self.fail_add: set[str] = set()

    def __call__(self, cmd, **kw):
        assert kw.get("check") is False and kw.get("capture_output")
        self.calls.append(list(cmd))
        assert cmd[0] == "ip"
        args = cmd[1:]
        if args == ["-o", "-4", "addr", "show", "dev", "lo"]:
            out = "".join(
                f"1: lo    inet {a} {'scope host' if a.startswith('127.') else 'scope global'}"
                f" {label}\\       valid_lft forever preferred_lft forever\n"
                for a, label in self.addrs.items())
            return subprocess.CompletedProcess(cmd, 0, out, "")
        if args[:2] == ["addr", "add"]:
            addr = args[2]
            assert args[3:5] == ["dev", "lo"] and args[5] == "label"
            if addr in self.addrs or addr.split("/")[0] in self.fail_add:
                return subprocess.CompletedProcess(cmd, 2, "", "RTNETLINK answers: File exists\n")
            self.addrs[addr] = args[6]
            return subprocess.CompletedProcess(cmd, 0, "", "")
        if args[:2] == ["addr", "del"]:
            addr = args[2]
            if addr not in self.addrs:
                return subprocess.CompletedProcess(cmd, 2, "", "RTNETLINK answers: Cannot assign\n")
            del self.addrs[addr]
            return subprocess.CompletedProcess(cmd, 0, "", "")
        raise AssertionError(f"unexpected command {cmd}")

    def changes(self):
        return [c[1:3] for c in self.calls if c[1] == "addr" and c[2] in ("add", "del")]


def vips(fake: FakeIp, **kw) -> LoopbackVips:
    return LoopbackVips(run=fake, can_manage=lambda: True, **kw)


def test_sync_adds_wanted_with_label():
    fake = FakeIp()
    assert vips(fake).sync({"10.96.0.10", "10.96.0.11"}) == {"10.96.0.10", "10.96.0.11"}
    assert ["ip", "addr", "add", "10.96.0.10/32", "dev", "lo", "label", "lo:gvip"] in fake.calls
    assert fake.addrs == {"127.0.0.1/8": "lo", "10.96.0.10/32": "lo:gvip",
                          "10.96.0.11/32": "lo:gvip"}


def test_sync_is_idempotent():
    fake = FakeIp()
    v = vips(fake)
    v.sync({"10.96.0.10"})
    fake.calls.clear()
    assert v.sync({"10.96.0.10"}) == {"10.96.0.10"}
    assert fake.changes() == []


def test_sync_removes_only_ours_that_are_no_longer_wanted():
    fake = FakeIp({"10.96.0.20/32": "lo:gvip",       # ours from an earlier run: adopted
                   "10.96.0.30/32": "lo",            # someone else's, inside the CIDR
                   "10.97.0.1/32": "lo:gvip",        # our label, outside our CIDR
                   "192.168.7.7/32": "lo:other"})
    v = vips(fake)
    assert v.ours() == {"10.96.0.20"}
    assert v.sync({"10.96.0.10"}) == {"10.96.0.10"}
    assert fake.changes() == [["addr", "del"], ["addr", "add"]]
    assert ["ip", "addr", "del", "10.96.0.20/32", "dev", "lo"] in fake.calls
    assert set(fake.addrs) == {"127.0.0.1/8", "10.96.0.10/32", "10.96.0.30/32",
                               "10.97.0.1/32", "192.168.7.7/32"}


def test_sync_counts_an_address_someone_else_added_as_present_and_never_removes_it():
    fake = FakeIp({"10.96.0.30/32": "lo"})
    v = vips(fake)
    assert v.sync({"10.96.0.30"}) == {"10.96.0.30"}
    assert v.sync(set()) == set()
    assert fake.changes() == []
    assert "10.96.0.30/32" in fake.addrs


def test_sync_refuses_addresses_outside_cidr():
    fake = FakeIp()
    assert vips(fake).sync({"10.97.0.1", "8.8.8.8", "junk", "10.96.0.10"}) == {"10.96.0.10"}
    assert fake.changes() == [["addr", "add"]]


def test_sync_leaves_out_an_address_that_failed():
    fake = FakeIp()
    fake.fail_add.add("10.96.0.11")
    assert vips(fake).sync({"10.96.0.10", "10.96.0.11"}) == {"10.96.0.10"}


def test_remove_all():
    fake = FakeIp({"10.96.0.30/32": "lo", "10.96.0.40/32": "lo:gvip"})
    v = vips(fake)
    v.sync({"10.96.0.10", "10.96.0.11", "10.96.0.40"})
    assert v.remove_all() == {"10.96.0.10", "10.96.0.11", "10.96.0.40"}
    assert set(fake.addrs) == {"127.0.0.1/8", "10.96.0.30/32"}


def test_custom_cidr_and_label():
    fake = FakeIp({"10.96.0.10/32": "lo:gvip"})
    v = vips(fake, cidr="10.255.250.0/24", label="lo:gvtest")
    assert v.sync({"10.255.250.5"}) == {"10.255.250.5"}
    assert fake.addrs["10.255.250.5/32"] == "lo:gvtest"
    assert v.remove_all() == {"10.255.250.5"}
    assert "10.96.0.10/32" in fake.addrs  # another label: not ours


@pytest.mark.parametrize("label", ["gvip", "eth0:gvip", "lo:a-very-long-label"])
def test_bad_label_rejected(label):
    with pytest.raises(ValueError):
        LoopbackVips(run=FakeIp(), label=label)


def test_without_rights_sync_raises_and_nothing_runs():
    fake = FakeIp()
    v = LoopbackVips(run=fake, can_manage=lambda: False)
    assert not v.available()
    with pytest.raises(VipUnavailable):
        v.sync({"10.96.0.10"})
    assert v.remove_all() == set()
    assert fake.calls == []


def test_missing_ip_tool_raises_unavailable():
    def run(cmd, **kw):
        raise FileNotFoundError(2, "No such file or directory", "ip")
    with pytest.raises(VipUnavailable):
        LoopbackVips(run=run, can_manage=lambda: True).sync({"10.96.0.10"})
