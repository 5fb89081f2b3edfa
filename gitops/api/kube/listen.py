"""The agent's listeners: its API over HTTP on loopback, and over HTTPS for kubectl.

client-go only sends a kubeconfig's bearer token over TLS, so kubectl always gets an HTTPS
listener with a certificate from the data dir's CA. On a loopback bind the plain HTTP
listener stays for the gitops CLI and webhooks; on any other bind there is only HTTPS, so
the token never crosses a network in clear.
"""

from __future__ import annotations

import errno
import ipaddress
from pathlib import Path

import structlog
from aiohttp import web

from gitops.api.kube.tls import server_context

log = structlog.get_logger(component="api")


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


def port_of(url: str) -> int:
    return int(url.rsplit(":", 1)[1])


async def start_listeners(runner: web.AppRunner, root: Path, host: str, port: int = 0,
                          kube_port: int = 0, fallback: bool = False,
                          names: tuple[str, ...] = ()) -> tuple[str, str]:
    """Start the sites; (the agent's URL, the Kubernetes API's URL for kubeconfigs).
    kube_port: the HTTPS port kubectl uses (beyond loopback, the one port, unless `port`
    is given). fallback: when kube_port is taken, take a free one (and log it) instead of
    failing: a remembered port, not one the user asked for. names: more addresses and DNS
    names the certificate must carry (the `kubernetes` Service's, for in-cluster clients)."""
    tls = server_context(root, [*([host] if host not in ("0.0.0.0", "") else []), *names])
    if not is_loopback(host):
        await _start_tls(runner, host, port or kube_port, tls, fallback and not port)
        url = _url("https", host, runner.addresses[-1][1])
        return url, url
    site = web.TCPSite(runner, host, port)
    await site.start()
    url = _url("http", host, runner.addresses[-1][1])
    await _start_tls(runner, host, kube_port, tls, fallback)
    return url, _url("https", host, runner.addresses[-1][1])


async def _start_tls(runner: web.AppRunner, host: str, port: int, tls,
                     fallback: bool) -> None:
    site = web.TCPSite(runner, host, port, ssl_context=tls)
    try:
        await site.start()
    except OSError as exc:
        await site.stop()               # a site that failed to bind leaves the runner
        if not (fallback and port and exc.errno == errno.EADDRINUSE):
            raise
        log.warning("kube_port_taken", port=port,
                    hint="kubeconfigs made before name the old port: run `gitops kubeconfig` "
                         "again, or give --kube-port")
        await web.TCPSite(runner, host, 0, ssl_context=tls).start()
