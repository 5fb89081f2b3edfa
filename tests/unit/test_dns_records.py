"""Cluster DNS records from Services, Endpoints and Pods (pure), search paths, resolv.conf."""

from __future__ import annotations

import pytest

from gitops.model.dns import RESOLV_OPTIONS, resolv_conf, search_path
from gitops.proxy.dns import TTL, SrvRecord, Zone, build_zone, host_upstreams

READY = {"conditions": [{"type": "Ready", "status": "True"}]}
NOT_READY = {"conditions": [{"type": "Ready", "status": "False"}]}


def svc(name, ns="default", cluster_ip="10.96.0.10", ports=(), **spec):
    return {"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": name, "namespace": ns},
            "spec": {"clusterIP": cluster_ip, "ports": list(ports), **spec}}


def eps(name, ns="default", addresses=(), not_ready=(), ports=()):
    subset = {"addresses": list(addresses), "ports": list(ports)}
    if not_ready:
        subset["notReadyAddresses"] = list(not_ready)
    return {"apiVersion": "v1", "kind": "Endpoints",
            "metadata": {"name": name, "namespace": ns}, "subsets": [subset]}


def pod(name, ip, ns="default", hostname=None, subdomain=None, status=READY, deleting=False):
    meta = {"name": name, "namespace": ns}
    if deleting:
        meta["deletionTimestamp"] = "2024-01-01T00:00:00Z"
    spec = {k: v for k, v in (("hostname", hostname), ("subdomain", subdomain)) if v}
    return {"metadata": meta, "spec": spec, "status": {**status, "podIP": ip}}


def test_cluster_ip_service():
    zone = build_zone([svc("web", "shop", "10.96.3.4")], [], [])
    assert dict(zone) == {"web.shop.svc.cluster.local": ("10.96.3.4",)}
    assert zone.ttl == TTL == 5


@pytest.mark.parametrize("cluster_ip", ["None", "", None])
def test_no_cluster_ip_and_no_endpoints_gives_no_record(cluster_ip):
    assert dict(build_zone([svc("web", cluster_ip=cluster_ip)], [], [])) == {}


def test_custom_domain():
    zone = build_zone([svc("web")], [], [], domain="Corp.Internal.")
    assert list(zone) == ["web.default.svc.corp.internal"]
    assert zone.domain == "corp.internal"


def test_lookups_ignore_case_and_trailing_dot():
    zone = build_zone([svc("web")], [], [])
    for name in ("web.default.svc.cluster.local", "WEB.Default.SVC.cluster.local.",
                 "web.default.svc.cluster.local."):
        assert zone[name] == ("10.96.0.10",)
        assert name in zone
    assert "web.other.svc.cluster.local" not in zone


def test_headless_service_resolves_ready_endpoints_only():
    zone = build_zone(
        [svc("db", cluster_ip="None")],
        [eps("db", addresses=[{"ip": "10.213.0.12"}, {"ip": "10.213.0.3"}],
             not_ready=[{"ip": "10.213.0.9"}])], [])
    assert zone["db.default.svc.cluster.local"] == ("10.213.0.3", "10.213.0.12")  # numeric order


def test_headless_publish_not_ready_addresses():
    zone = build_zone(
        [svc("db", cluster_ip="None", publishNotReadyAddresses=True)],
        [eps("db", addresses=[{"ip": "10.213.0.3"}], not_ready=[{"ip": "10.213.0.9"}])], [])
    assert zone["db.default.svc.cluster.local"] == ("10.213.0.3", "10.213.0.9")


def test_endpoints_of_a_cluster_ip_service_do_not_add_records():
    zone = build_zone([svc("web")], [eps("web", addresses=[{"ip": "10.213.0.3"}])], [])
    assert dict(zone) == {"web.default.svc.cluster.local": ("10.96.0.10",)}


def test_endpoints_in_another_namespace_do_not_match():
    zone = build_zone([svc("db", cluster_ip="None")],
                      [eps("db", ns="other", addresses=[{"ip": "10.213.0.3"}])], [])
    assert "db.default.svc.cluster.local" not in zone


def test_endpoint_hostname_records():
    zone = build_zone(
        [svc("db", cluster_ip="None")],
        [eps("db", addresses=[{"ip": "10.213.0.3", "hostname": "db-0"},
                              {"ip": "10.213.0.4", "hostname": "db-1"},
                              {"ip": "10.213.0.5"}])], [])
    assert zone["db-0.db.default.svc.cluster.local"] == ("10.213.0.3",)
    assert zone["db-1.db.default.svc.cluster.local"] == ("10.213.0.4",)
    # an address without hostname gets the dashed-IP name (an SRV target must resolve)
    assert zone["10-213-0-5.db.default.svc.cluster.local"] == ("10.213.0.5",)


def test_statefulset_pod_names():
    services = [svc("db", "data", cluster_ip="None"), svc("web", "data")]
    pods = [
        pod("db-0", "10.213.0.3", "data", hostname="db-0", subdomain="db"),
        pod("db-1", "10.213.0.4", "data", hostname="db-1", subdomain="db", status=NOT_READY),
        pod("db-2", "10.213.0.5", "data", hostname="db-2", subdomain="db", deleting=True),
        pod("db-3", "", "data", hostname="db-3", subdomain="db"),
        pod("x-0", "10.213.0.6", "data", hostname="x-0", subdomain="web"),     # not headless
        pod("y-0", "10.213.0.7", "data", hostname="y-0", subdomain="nosvc"),   # no such Service
        pod("z-0", "10.213.0.8", "other", hostname="z-0", subdomain="db"),     # other namespace
        pod("plain", "10.213.0.9", "data", hostname="plain"),                  # no subdomain
    ]
    zone = build_zone(services, [], pods)
    assert dict(zone) == {"db-0.db.data.svc.cluster.local": ("10.213.0.3",),
                          "web.data.svc.cluster.local": ("10.96.0.10",)}


def test_statefulset_not_ready_pod_published_when_service_asks():
    zone = build_zone([svc("db", cluster_ip="None", publishNotReadyAddresses=True)], [],
                      [pod("db-1", "10.213.0.4", hostname="db-1", subdomain="db",
                           status=NOT_READY)])
    assert zone["db-1.db.default.svc.cluster.local"] == ("10.213.0.4",)


def test_srv_for_named_ports():
    zone = build_zone([svc("web", ports=[{"name": "http", "port": 80},
                                         {"name": "dns", "port": 53, "protocol": "UDP"},
                                         {"port": 9000}])], [], [])
    fqdn = "web.default.svc.cluster.local"
    assert zone.srv == {
        f"_http._tcp.{fqdn}": (SrvRecord(0, 100, 80, fqdn),),
        f"_dns._udp.{fqdn}": (SrvRecord(0, 100, 53, fqdn),),
    }


def test_srv_for_headless_service_points_at_each_endpoint():
    zone = build_zone(
        [svc("db", cluster_ip="None", ports=[{"name": "pg", "port": 5432}])],
        [eps("db", addresses=[{"ip": "10.213.0.3", "hostname": "db-0"}, {"ip": "10.213.0.4"}],
             ports=[{"name": "pg", "port": 15432, "protocol": "TCP"}])], [])
    assert zone.srv["_pg._tcp.db.default.svc.cluster.local"] == (
        SrvRecord(0, 100, 15432, "10-213-0-4.db.default.svc.cluster.local"),
        SrvRecord(0, 100, 15432, "db-0.db.default.svc.cluster.local"),
    )


def test_external_name_is_a_cname():
    zone = build_zone([svc("ext", cluster_ip="", type="ExternalName",
                           externalName="Example.ORG.")], [], [])
    assert zone.cname == {"ext.default.svc.cluster.local": "example.org"}
    assert dict(zone) == {}


def test_ipv6_addresses_give_no_a_record():
    zone = build_zone([svc("v6", cluster_ip="fd00::10")], [], [])
    assert dict(zone) == {}


def test_exists_covers_owner_names_and_empty_non_terminals():
    zone = build_zone([svc("web", "shop", ports=[{"name": "http", "port": 80}])], [], [])
    for name in ("web.shop.svc.cluster.local", "shop.svc.cluster.local", "svc.cluster.local",
                 "cluster.local", "_http._tcp.web.shop.svc.cluster.local",
                 "_tcp.web.shop.svc.cluster.local", "SHOP.svc.cluster.local."):
        assert zone.exists(name), name
    for name in ("web.other.svc.cluster.local", "x.web.shop.svc.cluster.local", "example.org",
                 "local"):
        assert not zone.exists(name), name


@pytest.mark.parametrize("name, covered", [
    ("cluster.local", True), ("a.b.cluster.local.", True), ("A.CLUSTER.LOCAL", True),
    ("notcluster.local", False), ("example.org", False), ("local", False),
])
def test_covers(name, covered):
    assert Zone().covers(name) is covered


def test_zone_equality_is_by_content():
    services, endpoints = [svc("web"), svc("db", cluster_ip="None")], [
        eps("db", addresses=[{"ip": "10.213.0.3"}])]
    zone = build_zone(services, endpoints, [])
    assert zone == build_zone(list(reversed(services)), endpoints, [])
    assert build_zone(services, endpoints, []) != build_zone(services, [], [])


def test_search_path_and_options():
    assert search_path("shop") == ["shop.svc.cluster.local", "svc.cluster.local", "cluster.local"]
    assert search_path("shop", "corp.internal") == [
        "shop.svc.corp.internal", "svc.corp.internal", "corp.internal"]
    assert RESOLV_OPTIONS == ["ndots:5"]


def test_resolv_conf():
    assert resolv_conf(["10.213.0.1"], "shop") == (
        "nameserver 10.213.0.1\n"
        "search shop.svc.cluster.local svc.cluster.local cluster.local\n"
        "options ndots:5\n")


def test_host_upstreams(tmp_path):
    conf = tmp_path / "resolv.conf"
    conf.write_text("# generated\n"
                    "nameserver 127.0.0.53\n"
                    "  nameserver   10.0.0.2   # office\n"
                    "nameserver fd00::53\n"
                    "search example.org\n"
                    "options edns0 trust-ad\n"
                    "nameserver\n")
    assert host_upstreams(str(conf)) == [("127.0.0.53", 53), ("10.0.0.2", 53), ("fd00::53", 53)]
    assert host_upstreams(str(tmp_path / "missing")) == []
