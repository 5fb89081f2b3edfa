"""The agent's listeners: its API over HTTP on loopback, and over HTTPS for kubectl.

client-go only sends a kubeconfig's bearer token over TLS, so kubectl always gets an HTTPS
listener with a certificate from the data dir's CA. On a loopback bind the plain HTTP
listener stays for the gitops CLI and webhooks; on any other bind there is only HTTPS, so
the token never crosses a network in clear.
"""

from __future__ import annotations

import ipaddress
from pathlib import Path

from aiohttp import web

from gitops.api.kube.tls import server_context


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _url(scheme: str, host: str, port: int) -> str:
    shown = "127.0.0.1" if host in ("0.0.0.0", "") else host
    if ":" in shown:
        shown = f"[{shown}]"
    return f"{scheme}://{shown}:{port}"


async def start_listeners(runner: web.AppRunner, root: Path, host: str, port: int = 0,
                          kube_port: int = 0, names: tuple[str, ...] = ()) -> tuple[str, str]:
    """Start the sites; (the agent's URL, the Kubernetes API's URL for kubeconfigs).
    names: more addresses and DNS names the certificate must carry (the `kubernetes`
    Service's, for in-cluster clients)."""
    tls = server_context(root, [*([host] if host not in ("0.0.0.0", "") else []), *names])
    if not is_loopback(host):
        site = web.TCPSite(runner, host, port, ssl_context=tls)
        await site.start()
        url = _url("https", host, runner.addresses[-1][1])
        return url, url
    site = web.TCPSite(runner, host, port)
    await site.start()
    url = _url("http", host, runner.addresses[-1][1])
    secure = web.TCPSite(runner, host, kube_port, ssl_context=tls)
    await secure.start()
    return url, _url("https", host, runner.addresses[-1][1])
