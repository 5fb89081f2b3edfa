"""A node's Service apply runs on every Pod change (DNS follows pods); the ClusterIPs on lo
are asked of `ip` again only when the set changes, one is missing, or a recheck is due."""

from __future__ import annotations

from gitops.proxy.services import VIP_RECHECK, ServiceNetwork
from gitops.proxy.vip import VipUnavailable


class CountingVips:
    def __init__(self, fail: set[str] = frozenset()) -> None:
        self.calls = 0
        self.fail = set(fail)

    def sync(self, wanted: set[str]) -> set[str]:
        self.calls += 1
        return set(wanted) - self.fail


def network(vips) -> tuple[ServiceNetwork, list[float]]:
    net = ServiceNetwork("tst00001", "10.250.240.0/20", "127.0.0.1", proxy_workers=0)
    now = [100.0]
    net.vips, net.clock = vips, lambda: now[0]
    return net, now


def test_an_unchanged_set_is_not_asked_again_until_the_recheck():
    vips = CountingVips()
    net, now = network(vips)
    assert net._sync_vips({"10.250.240.10"}) == {"10.250.240.10"}
    now[0] += 1
    assert net._sync_vips({"10.250.240.10"}) == {"10.250.240.10"}
    assert vips.calls == 1
    assert net._sync_vips({"10.250.240.10", "10.250.240.11"}) == {"10.250.240.10",
                                                                  "10.250.240.11"}
    assert vips.calls == 2                      # a new ClusterIP: asked at once
    now[0] += VIP_RECHECK
    net._sync_vips({"10.250.240.10", "10.250.240.11"})
    assert vips.calls == 3                      # the recheck (one removed behind our back)


def test_a_missing_address_is_tried_on_every_apply():
    vips = CountingVips(fail={"10.250.240.11"})
    net, now = network(vips)
    for _ in range(3):
        assert net._sync_vips({"10.250.240.10", "10.250.240.11"}) == {"10.250.240.10"}
    assert vips.calls == 3


def test_without_the_rights_every_apply_falls_back():
    class NoRights:
        calls = 0

        def sync(self, wanted):
            self.calls += 1
            raise VipUnavailable("no root")
    vips = NoRights()
    net, _ = network(vips)
    assert net._sync_vips({"10.250.240.10"}) == set()
    assert net._sync_vips({"10.250.240.10"}) == set()
    assert vips.calls == 2
