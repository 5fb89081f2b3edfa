"""routes: Services + Endpoints -> listener keys, endpoints, affinity, protocol (pure)."""

from __future__ import annotations

import pytest

from gitops.proxy.routes import (DEFAULT_AFFINITY_TIMEOUT, Route, affinity_timeout,
                                 cluster_ip_routes, listen_addr, node_port_routes, protocol_of)


def svc(name="web", ns="default", ports=None, type_="ClusterIP", cluster_ip="10.96.0.10", **spec):
    body = {"type": type_, "clusterIP": cluster_ip,
            "ports": ports if ports is not None else [{"port": 80, "targetPort": 8080}], **spec}
    return {"metadata": {"name": name, "namespace": ns}, "spec": body}


def eps(name="web", ns="default", ips=("10.1.0.1", "10.1.0.2"), ports=None):
    return {"metadata": {"name": name, "namespace": ns},
            "subsets": [{"addresses": [{"ip": ip} for ip in ips],
                         "ports": ports if ports is not None
                         else [{"port": 8080, "protocol": "TCP"}]}]}


def same_host(ip: str) -> str:
    return ip


def test_tcp_route_keeps_two_tuple_key_and_no_affinity():
    routes, names = cluster_ip_routes([svc()], [eps()], same_host)
    assert routes == {("10.96.0.10", 80): Route((("10.1.0.1", 8080), ("10.1.0.2", 8080)), None)}
    assert names == {("10.96.0.10", 80): "default/web:80"}


@pytest.mark.parametrize("spec, want", [
    ({}, None),
    ({"sessionAffinity": "None"}, None),
    ({"sessionAffinity": "ClientIP"}, float(DEFAULT_AFFINITY_TIMEOUT)),
    ({"sessionAffinity": "ClientIP", "sessionAffinityConfig": {}}, 10800.0),
    ({"sessionAffinity": "ClientIP", "sessionAffinityConfig": {"clientIP": {}}}, 10800.0),
    ({"sessionAffinity": "ClientIP",
      "sessionAffinityConfig": {"clientIP": {"timeoutSeconds": 60}}}, 60.0),
    ({"sessionAffinity": "ClientIP",
      "sessionAffinityConfig": {"clientIP": {"timeoutSeconds": 86400}}}, 86400.0),
    ({"sessionAffinity": "ClientIP",   # out of the API's range: the default, not an error
      "sessionAffinityConfig": {"clientIP": {"timeoutSeconds": 0}}}, 10800.0),
    ({"sessionAffinity": "ClientIP",
      "sessionAffinityConfig": {"clientIP": {"timeoutSeconds": 86401}}}, 10800.0),
    ({"sessionAffinity": "ClientIP",
      "sessionAffinityConfig": {"clientIP": {"timeoutSeconds": "60"}}}, 10800.0),
    ({"sessionAffinityConfig": {"clientIP": {"timeoutSeconds": 60}}}, None),  # config alone
])
def test_affinity_timeout(spec, want):
    assert affinity_timeout(spec) == want


def test_affinity_carried_on_every_port_of_cluster_ip_and_node_port_routes():
    spec = {"sessionAffinity": "ClientIP",
            "sessionAffinityConfig": {"clientIP": {"timeoutSeconds": 300}}}
    s = svc(type_="NodePort", ports=[{"name": "http", "port": 80, "nodePort": 30080},
                                     {"name": "dns", "port": 53, "nodePort": 30053,
                                      "protocol": "UDP"}], **spec)
    e = eps(ports=[{"name": "http", "port": 8080, "protocol": "TCP"},
                   {"name": "dns", "port": 5353, "protocol": "UDP"}])
    cluster, _ = cluster_ip_routes([s], [e], same_host)
    nodes, _ = node_port_routes([s], [e], "127.0.0.1")
    assert set(cluster) == {("10.96.0.10", 80), ("10.96.0.10", 53, "UDP")}
    assert set(nodes) == {("127.0.0.1", 30080), ("127.0.0.1", 30053, "UDP")}
    for route in [*cluster.values(), *nodes.values()]:
        assert route.affinity_timeout == 300.0
    assert nodes[("127.0.0.1", 30053, "UDP")].endpoints == (("10.1.0.1", 5353), ("10.1.0.2", 5353))


def test_udp_and_tcp_on_the_same_port_are_separate_routes():
    s = svc(ports=[{"name": "dns-tcp", "port": 53, "protocol": "TCP"},
                   {"name": "dns", "port": 53, "protocol": "UDP"}])
    e = eps(ips=("10.1.0.7",), ports=[{"name": "dns-tcp", "port": 1053, "protocol": "TCP"},
                                      {"name": "dns", "port": 2053, "protocol": "UDP"}])
    routes, names = cluster_ip_routes([s], [e], same_host)
    assert routes == {("10.96.0.10", 53): Route((("10.1.0.7", 1053),)),
                      ("10.96.0.10", 53, "UDP"): Route((("10.1.0.7", 2053),))}
    assert names == {("10.96.0.10", 53): "default/web:dns-tcp",
                     ("10.96.0.10", 53, "UDP"): "default/web:dns/UDP"}


def test_endpoint_port_must_match_protocol_too():
    # Same (empty) port name, but the Endpoints only know a TCP port: a UDP Service port
    # must not borrow it.
    s = svc(ports=[{"port": 53, "protocol": "UDP"}])
    routes, _ = cluster_ip_routes([s], [eps(ports=[{"port": 53, "protocol": "TCP"}])], same_host)
    assert routes == {("10.96.0.10", 53, "UDP"): Route(())}


def test_endpoint_port_without_protocol_is_tcp():
    routes, _ = cluster_ip_routes([svc()], [eps(ports=[{"port": 8080}])], same_host)
    assert routes[("10.96.0.10", 80)].endpoints == (("10.1.0.1", 8080), ("10.1.0.2", 8080))


def test_sctp_gets_no_listener():
    s = svc(type_="NodePort", ports=[{"port": 9, "nodePort": 30009, "protocol": "SCTP"}])
    assert cluster_ip_routes([s], [], same_host) == ({}, {})
    assert node_port_routes([s], [], "127.0.0.1") == ({}, {})


def test_node_ports_only_for_node_port_and_load_balancer():
    ports = [{"port": 80, "nodePort": 30080}, {"port": 81, "protocol": "UDP", "nodePort": 30081}]
    services = [svc("a", type_="ClusterIP", ports=ports), svc("b", type_="NodePort", ports=ports),
                svc("c", type_="LoadBalancer",
                    ports=[{"port": 80, "nodePort": 30090}, {"port": 82}])]  # 82: no nodePort
    routes, names = node_port_routes(services, [], "127.0.0.1")
    assert routes == {("127.0.0.1", 30080): Route(), ("127.0.0.1", 30081, "UDP"): Route(),
                      ("127.0.0.1", 30090): Route()}
    assert names[("127.0.0.1", 30081, "UDP")] == "default/b:81/UDP"


def test_cluster_ip_skips_headless_and_unbindable():
    services = [svc("headless", cluster_ip="None"), svc("none", cluster_ip=None),
                svc("far", cluster_ip="10.96.0.99"), svc("ok", cluster_ip="10.96.0.11")]
    routes, _ = cluster_ip_routes(services, [],
                                  lambda ip: None if ip == "10.96.0.99" else "127.0.0.5")
    assert routes == {("127.0.0.5", 80): Route()}


def test_no_endpoints_object_means_no_endpoints():
    routes, _ = cluster_ip_routes([svc(sessionAffinity="ClientIP")], [], same_host)
    assert routes == {("10.96.0.10", 80): Route((), 10800.0)}


def test_route_takes_any_sequence_and_is_hashable():
    r = Route([("10.0.0.1", 80)], 5)
    assert r.endpoints == (("10.0.0.1", 80),) and r == Route((("10.0.0.1", 80),), 5.0)
    assert hash(r) == hash(Route((("10.0.0.1", 80),), 5))


@pytest.mark.parametrize("key, proto", [
    (("h", 1), "TCP"), (("h", 1, "UDP"), "UDP"), (("h", 1, "udp"), "UDP"), (("h", 1, "TCP"), "TCP")])
def test_protocol_of(key, proto):
    assert protocol_of(key) == proto


def test_listen_addr_canonical():
    assert listen_addr("h", 1) == ("h", 1)
    assert listen_addr("h", 1, "tcp") == ("h", 1)
    assert listen_addr("h", 1, "udp") == ("h", 1, "UDP")
