"""The `kubernetes` Service in `default`, as every cluster has it (pure): the API at the
service CIDR's first address, port 443, so in-cluster clients (client-go's
InClusterConfig, the Python client, kubectl in a pod) find it through
KUBERNETES_SERVICE_HOST / KUBERNETES_SERVICE_PORT or kubernetes.default.svc, with the
ServiceAccount token and ca.crt the node mounts."""

from __future__ import annotations

import ipaddress

NAMESPACE, NAME = "default", "kubernetes"
PORT = 443
# The names the API's certificate must carry for in-cluster clients.
DNS_NAMES = ("kubernetes", "kubernetes.default", "kubernetes.default.svc",
             "kubernetes.default.svc.cluster.local")
_LABELS = {"component": "apiserver", "provider": "kubernetes"}


def cluster_ip(service_cidr: str) -> str:
    """The CIDR's first host address (the allocator keeps it for this Service alone)."""
    net = ipaddress.ip_network(service_cidr, strict=False)
    return str(net.network_address + 1)


def service(service_cidr: str) -> dict:
    return {"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": NAME, "namespace": NAMESPACE, "labels": dict(_LABELS)},
            "spec": {"type": "ClusterIP", "clusterIP": cluster_ip(service_cidr),
                     "ports": [{"name": "https", "port": PORT, "protocol": "TCP",
                                "targetPort": PORT}],
                     "sessionAffinity": "None"}}


def endpoints(ip: str, port: int) -> dict:
    """Where the proxy sends the Service's connections: the API's HTTPS listener."""
    return {"apiVersion": "v1", "kind": "Endpoints",
            "metadata": {"name": NAME, "namespace": NAMESPACE, "labels": dict(_LABELS)},
            "subsets": [{"addresses": [{"ip": ip}],
                         "ports": [{"name": "https", "port": port, "protocol": "TCP"}]}]}
