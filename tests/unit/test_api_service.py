"""The `kubernetes` Service: at the service CIDR's first address, port 443, its Endpoints
at the API's HTTPS listener; the allocator keeps that address for it."""

from __future__ import annotations

from gitops.model import apiservice
from gitops.model.addresses import allocate


def test_the_api_service_and_its_endpoints():
    svc = apiservice.service("10.96.0.0/20")
    assert svc["spec"]["clusterIP"] == "10.96.0.1" == apiservice.cluster_ip("10.96.0.0/20")
    assert svc["spec"]["ports"] == [{"name": "https", "port": 443, "protocol": "TCP",
                                     "targetPort": 443}]
    assert "selector" not in svc["spec"]        # its Endpoints are the agent's to write
    ep = apiservice.endpoints("127.0.0.1", 40123)
    assert ep["subsets"] == [{"addresses": [{"ip": "127.0.0.1"}],
                              "ports": [{"name": "https", "port": 40123, "protocol": "TCP"}]}]
    other = {"metadata": {"name": "web", "namespace": "default"},
             "spec": {"clusterIP": "10.96.0.1"}}
    ips = allocate([other, svc], "10.96.0.0/20")
    assert ips[("default", "kubernetes")] == "10.96.0.1" != ips[("default", "web")]
