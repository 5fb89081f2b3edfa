"""TLS for the agent's API: a CA kept in the data dir, kubectl's HTTPS listener on
loopback binds, and HTTPS only on any other bind."""

from __future__ import annotations

import asyncio
import json
import os
import ssl
import urllib.error
import urllib.request

import pytest
from aiohttp import web
from cryptography import x509

from gitops.api.kube import tls
from gitops.api.kube.listen import is_loopback, start_listeners
from gitops.cli.client import Client
from gitops.paths import DataDir


def test_ca_is_kept_and_the_serving_cert_follows_the_addresses(tmp_path):
    cert, _ = tls.ensure_server_cert(tmp_path, ["127.0.0.1"])
    ca = (tmp_path / "ca.crt").read_bytes()
    assert oct((tmp_path / "ca.key").stat().st_mode & 0o777) == "0o600"
    names = x509.load_pem_x509_certificate(cert.read_bytes()).extensions \
        .get_extension_for_class(x509.SubjectAlternativeName).value
    assert set(names.get_values_for_type(x509.DNSName)) == {"localhost"}
    first = cert.read_bytes()
    tls.ensure_server_cert(tmp_path, ["127.0.0.1"])
    assert cert.read_bytes() == first                 # same addresses: kept
    tls.ensure_server_cert(tmp_path, ["agent.example.internal"])
    assert cert.read_bytes() != first and (tmp_path / "ca.crt").read_bytes() == ca
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("10.1.2.3")


def _serve(root, host):
    async def main():
        app = web.Application()

        async def hello(_request):
            return web.json_response({"ok": True})
        app.router.add_get("/gitops/v1/status", hello)
        runner = web.AppRunner(app)
        await runner.setup()
        urls = await start_listeners(runner, root, host)
        return runner, urls
    return main


@pytest.mark.parametrize("host", ["127.0.0.1", "0.0.0.0"])
def test_listeners_by_bind_address(tmp_path, host):
    loop = asyncio.new_event_loop()
    runner, (url, kube_url) = loop.run_until_complete(_serve(tmp_path, host)())
    try:
        ctx = ssl.create_default_context(cafile=str(tmp_path / "ca.crt"))

        def get(u, context=None):
            fut = loop.run_in_executor(None, lambda: urllib.request.urlopen(
                u + "/gitops/v1/status", timeout=10, context=context).read())
            return loop.run_until_complete(fut)

        assert kube_url.startswith("https://127.0.0.1:")
        assert json.loads(get(kube_url, ctx)) == {"ok": True}
        if host == "127.0.0.1":
            assert url.startswith("http://127.0.0.1:") and url != kube_url
            assert json.loads(get(url)) == {"ok": True}
        else:                             # beyond loopback: one listener, HTTPS only
            assert url == kube_url
            with pytest.raises((urllib.error.URLError, ConnectionError)):
                get(url.replace("https://", "http://"))
            # the CLI's client trusts the data dir's CA
            (tmp_path / "token").write_text("t")
            (tmp_path / "agent.json").write_text(json.dumps({"pid": os.getpid(), "url": url}))
            client = loop.run_until_complete(loop.run_in_executor(
                None, lambda: Client(DataDir.at(tmp_path)).get("/gitops/v1/status")))
            assert client == {"ok": True}
    finally:
        loop.run_until_complete(runner.cleanup())
        loop.close()


def test_the_kube_port_asked_for_is_used_and_a_taken_remembered_one_falls_back(tmp_path):
    import socket

    from gitops.api.kube.listen import port_of
    from tests.conftest import free_port

    async def main(kube_port, fallback):
        runner = web.AppRunner(web.Application())
        await runner.setup()
        try:
            return await start_listeners(runner, tmp_path, "127.0.0.1", 0, kube_port,
                                         fallback)
        finally:
            await runner.cleanup()
    wanted = free_port()
    loop = asyncio.new_event_loop()
    try:
        _, kube_url = loop.run_until_complete(main(wanted, False))
        assert port_of(kube_url) == wanted
        with socket.socket() as taken:
            taken.bind(("127.0.0.1", wanted))
            taken.listen()
            _, kube_url = loop.run_until_complete(main(wanted, True))      # remembered
            assert port_of(kube_url) not in (wanted, 0)
            with pytest.raises(OSError):                                    # asked for
                loop.run_until_complete(main(wanted, False))
    finally:
        loop.close()
