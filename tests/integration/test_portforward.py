"""port-forward: the Forwarder over loopback sockets following its targets (parsing and
target resolution are pure: tests/unit/test_portforward.py)."""

from __future__ import annotations

import asyncio
import socket

import pytest

from gitops.proxy.portforward import Forwarder, PortSpec


def test_forwarder_follows_its_targets():
    async def serve(name: bytes):
        async def handle(r, w):
            w.write(name)
            await w.drain()
            w.close()
        return await asyncio.start_server(handle, "127.0.0.1", 0)

    async def ask(port: int) -> bytes:
        r, w = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), 5)
        data = await asyncio.wait_for(r.read(), 5)
        w.close()
        return data

    async def main():
        a, b = await serve(b"a"), await serve(b"b")
        current = [[a.sockets[0].getsockname()[:2]]]
        fwd = Forwarder("127.0.0.1", [PortSpec(0, 80)], lambda: current, refresh=0.05)
        [port] = await fwd.start()
        stop = asyncio.Event()
        task = asyncio.create_task(fwd.follow(stop))
        try:
            assert await ask(port) == b"a"
            current[0] = [b.sockets[0].getsockname()[:2]]   # the pod was replaced
            for _ in range(100):
                if await ask(port) == b"b":
                    break
                await asyncio.sleep(0.05)
            assert await ask(port) == b"b"
        finally:
            stop.set()
            await asyncio.wait_for(task, 5)
            await fwd.close()
            a.close()
            b.close()
        with pytest.raises(OSError):
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
    asyncio.run(asyncio.wait_for(main(), 30))


def test_forwarder_keeps_its_port_while_the_target_has_no_endpoint():
    """Unlike a Service's listener, a forward keeps the local port it announced: a pod not
    running yet gets connections accepted and closed, never the port lost."""
    async def main():
        fwd = Forwarder("127.0.0.1", [PortSpec(0, 80)], lambda: [[]], refresh=0.05)
        [port] = await fwd.start()
        try:
            r, w = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), 5)
            assert await asyncio.wait_for(r.read(), 5) == b""
            w.close()
            with pytest.raises(OSError):
                socket.create_server(("127.0.0.1", port)).close()
        finally:
            await fwd.close()
    asyncio.run(asyncio.wait_for(main(), 30))
