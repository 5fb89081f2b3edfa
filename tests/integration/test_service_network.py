"""ServiceNetwork.routes_to: what the node agent asks before it signals a deleted pod."""

from __future__ import annotations

import asyncio

from gitops.proxy.services import ServiceNetwork


def svc(name, cluster_ip, selector=True):
    return {"metadata": {"name": name, "namespace": "default"},
            "spec": {"clusterIP": cluster_ip, "selector": {"app": name} if selector else None,
                     "ports": [{"name": "http", "port": 80}]}}


def endpoints(name, ips):
    return {"metadata": {"name": name, "namespace": "default"},
            "subsets": [{"addresses": [{"ip": ip} for ip in ips],
                         "ports": [{"name": "http", "port": 8080}]}]}


def test_routes_to_covers_proxy_endpoints_and_headless_dns_answers():
    async def main():
        net = ServiceNetwork("tst00000", "10.250.240.0/20", "127.0.0.1")
        try:
            # Headless only: no VIP, no listener; its pods are reached through DNS answers.
            await net.apply([svc("db", "None")], [endpoints("db", ["10.9.0.7"])], [])
            assert net.routes_to("10.9.0.7")
            assert not net.routes_to("10.9.0.8")
            await net.apply([svc("db", "None")], [endpoints("db", [])], [])
            assert not net.routes_to("10.9.0.7")   # left the answers: may be signalled
        finally:
            await net.close()
    asyncio.run(asyncio.wait_for(main(), 30))
