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


def test_every_pod_gets_the_api_address_even_without_service_links():
    from gitops.agent.specs import container_env
    api = {**apiservice.service("10.96.0.0/20"), "metadata": {"name": "kubernetes",
                                                              "namespace": "default"}}
    web = {"metadata": {"name": "web", "namespace": "apps"},
           "spec": {"clusterIP": "10.96.0.9", "ports": [{"port": 80}]}}
    lookup = lambda kind, ns, name: api if (kind, ns, name) == (  # noqa: E731
        "Service", "default", "kubernetes") else None
    pod = {"metadata": {"name": "p", "namespace": "apps"},
           "spec": {"enableServiceLinks": False, "containers": [{"name": "a"}]}}
    env = container_env(pod, pod["spec"]["containers"][0], lookup, lambda ns: [web])
    assert env["KUBERNETES_SERVICE_HOST"] == "10.96.0.1"
    assert env["KUBERNETES_SERVICE_PORT"] == "443"
    assert "WEB_SERVICE_HOST" not in env
