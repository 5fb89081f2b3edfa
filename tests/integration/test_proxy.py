"""The TCP proxy over real loopback sockets (127.0.0.1 only).

Backends greet each connection with their name, echo what they read, and on EOF send
"bye\\n" and close, which lets one backend exercise round-robin, echo, half-close and bulk.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import socket
from collections import Counter

import pytest

from gitops.proxy.listeners import Proxy, _Throttle

LO = "127.0.0.1"
T = 5.0  # per-step bound; every await on the network goes through it


def run(coro, timeout: float = 60.0):
    return asyncio.run(asyncio.wait_for(coro, timeout))


def free_port() -> int:
    with socket.socket() as s:
        s.bind((LO, 0))
        return s.getsockname()[1]


class Backend:
    def __init__(self, name: str) -> None:
        self.name = name
        self.accepted = 0
        self.writers: set[asyncio.StreamWriter] = set()
        self.server: asyncio.Server | None = None

    @property
    def addr(self) -> tuple[str, int]:
        return self.server.sockets[0].getsockname()[:2]

    async def start(self) -> Backend:
        self.server = await asyncio.start_server(self._handle, LO, 0)
        return self

    async def _handle(self, r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        self.accepted += 1
        self.writers.add(w)
        try:
            w.write(self.name.encode() + b"\n")
            while chunk := await r.read(256 * 1024):
                w.write(chunk)
                await w.drain()
            w.write(b"bye\n")
            await w.drain()
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            self.writers.discard(w)
            w.close()

    async def stop(self) -> None:
        self.server.close()
        for w in list(self.writers):
            w.transport.abort()
        await self.server.wait_closed()


@contextlib.asynccontextmanager
async def setup(n: int = 2, dial_timeout: float = 1.0):
    backends = [await Backend(f"b{i}").start() for i in range(n)]
    proxy = Proxy(dial_timeout=dial_timeout)
    try:
        yield proxy, backends
    finally:
        await proxy.close()
        for b in backends:
            await b.stop()


async def connect(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter, str]:
    r, w = await asyncio.wait_for(asyncio.open_connection(LO, port), T)
    name = (await asyncio.wait_for(r.readline(), T)).decode().strip()
    return r, w, name


async def echo(r: asyncio.StreamReader, w: asyncio.StreamWriter, data: bytes) -> bytes:
    w.write(data)
    await w.drain()
    return await asyncio.wait_for(r.readexactly(len(data)), T)


async def close(w: asyncio.StreamWriter) -> None:
    w.close()
    with contextlib.suppress(ConnectionError):
        await asyncio.wait_for(w.wait_closed(), T)


def test_round_robin_across_backends():
    async def main():
        async with setup(2) as (proxy, bs):
            port = free_port()
            assert await proxy.apply({(LO, port): [b.addr for b in bs]},
                                     names={(LO, port): "default/web:80"}) == {}
            assert proxy.listening() == {(LO, port)}
            seen = Counter()
            for _ in range(10):
                r, w, name = await connect(port)
                seen[name] += 1
                await close(w)
            assert seen == {"b0": 5, "b1": 5}
    run(main())


def test_dead_endpoint_is_skipped():
    async def main():
        async with setup(1) as (proxy, (live,)):
            port, dead = free_port(), (LO, free_port())  # nothing listens on `dead`
            await proxy.apply({(LO, port): [dead, live.addr]})
            for _ in range(6):  # whichever the rotation starts with, the client is served
                r, w, name = await connect(port)
                assert name == "b0"
                assert await echo(r, w, b"ping") == b"ping"
                await close(w)
            assert live.accepted == 6
    run(main())


def test_unresponsive_endpoint_times_out_and_falls_through():
    async def main():
        # A listener with a full accept queue drops SYNs: connect() hangs, like a blackholed pod.
        hole = socket.socket()
        hole.bind((LO, 0))
        hole.listen(0)
        filler = socket.create_connection(hole.getsockname())
        try:
            async with setup(1, dial_timeout=0.3) as (proxy, (live,)):
                port = free_port()
                await proxy.apply({(LO, port): [hole.getsockname(), live.addr]})
                for _ in range(4):
                    r, w, name = await connect(port)
                    assert name == "b0"
                    await close(w)
                assert live.accepted == 4
        finally:
            filler.close()
            hole.close()
    run(main())


@pytest.mark.parametrize("endpoints", ["none", "all_dead"])
def test_no_usable_endpoint_closes_client(endpoints):
    async def main():
        async with setup(0) as (proxy, _):
            port = free_port()
            eps = [] if endpoints == "none" else [(LO, free_port()), (LO, free_port())]
            await proxy.apply({(LO, port): eps})
            for _ in range(20):  # repeated failures must not flood logs or leak connections
                r, w = await asyncio.wait_for(asyncio.open_connection(LO, port), T)
                assert await asyncio.wait_for(r.read(), T) == b""
                await close(w)
            await asyncio.sleep(0.05)
            assert not proxy._conns
    run(main())


def test_update_keeps_established_connection():
    async def main():
        async with setup(2) as (proxy, (b0, b1)):
            port = free_port()
            await proxy.apply({(LO, port): [b0.addr]})
            r, w, name = await connect(port)
            assert name == "b0"
            await proxy.apply({(LO, port): [b1.addr]})  # b0 leaves the Service
            assert await echo(r, w, b"still here") == b"still here"
            r2, w2, name2 = await connect(port)
            assert name2 == "b1"
            await proxy.apply({(LO, port): [b0.addr, b1.addr]})
            assert await echo(r, w, b"and here") == b"and here"
            assert await echo(r2, w2, b"me too") == b"me too"
            await close(w)
            await close(w2)
    run(main())


def test_removed_route_refuses_new_but_drains_open_connections():
    async def main():
        async with setup(1) as (proxy, (b0,)):
            keep, other = free_port(), free_port()
            await proxy.apply({(LO, keep): [b0.addr], (LO, other): [b0.addr]})
            r, w, _ = await connect(other)
            assert await proxy.apply({(LO, keep): [b0.addr]}) == {}
            assert proxy.listening() == {(LO, keep)}
            with pytest.raises(ConnectionRefusedError):
                await asyncio.wait_for(asyncio.open_connection(LO, other), T)
            assert await echo(r, w, b"draining") == b"draining"
            # close() ends everything, draining connections included.
            await proxy.close()
            assert proxy.listening() == set()
            with contextlib.suppress(ConnectionError):
                assert await asyncio.wait_for(r.read(), T) == b""
            await close(w)
            with pytest.raises(ConnectionRefusedError):
                await asyncio.wait_for(asyncio.open_connection(LO, keep), T)
    run(main())


def test_half_close():
    async def main():
        async with setup(1) as (proxy, (b0,)):
            port = free_port()
            await proxy.apply({(LO, port): [b0.addr]})
            r, w, _ = await connect(port)
            w.write(b"request body")
            w.write_eof()  # client is done sending, still wants the reply
            assert await asyncio.wait_for(r.read(), T) == b"request body" + b"bye\n"
            await close(w)
    run(main())


def test_large_payload_intact():
    async def main():
        async with setup(1) as (proxy, (b0,)):
            port = free_port()
            await proxy.apply({(LO, port): [b0.addr]})
            payload = os.urandom(20 * 1024 * 1024)
            r, w, _ = await connect(port)

            async def send():
                for i in range(0, len(payload), 1 << 20):
                    w.write(payload[i:i + (1 << 20)])
                    await w.drain()
                w.write_eof()

            sender = asyncio.create_task(send())
            got = hashlib.sha256()
            total = 0
            while chunk := await asyncio.wait_for(r.read(1 << 20), T):
                got.update(chunk)
                total += len(chunk)
            await sender
            await close(w)
            assert total == len(payload) + 4
            want = hashlib.sha256(payload + b"bye\n").hexdigest()
            assert got.hexdigest() == want
    run(main())


def test_backpressure_bounds_buffering():
    async def main():
        sink = socket.socket()  # the kernel accepts connections; nobody ever reads them
        sink.bind((LO, 0))
        sink.listen(8)
        try:
            async with setup(0) as (proxy, _):
                port = free_port()
                await proxy.apply({(LO, port): [sink.getsockname()]})
                r, w = await asyncio.wait_for(asyncio.open_connection(LO, port), T)
                chunk, sent = b"z" * (1 << 20), 0
                with contextlib.suppress(TimeoutError):
                    while sent < 128 << 20:
                        w.write(chunk)
                        await asyncio.wait_for(w.drain(), 0.5)
                        sent += len(chunk)
                # Only socket buffers (a few MiB each) plus one high-water mark may hold data;
                # a proxy that kept reading would swallow everything into memory.
                assert sent < 64 << 20
                w.transport.abort()
        finally:
            sink.close()
    run(main())


def test_bind_error_is_reported_and_others_apply():
    async def main():
        async with setup(1) as (proxy, (b0,)):
            taken = socket.socket()
            taken.bind((LO, 0))
            taken.listen()
            busy, ok = (LO, taken.getsockname()[1]), (LO, free_port())
            try:
                errors = await proxy.apply({busy: [b0.addr], ok: [b0.addr]})
                assert set(errors) == {busy} and "in use" in errors[busy]
                assert proxy.listening() == {ok}
                _, w, name = await connect(ok[1])
                assert name == "b0"
                await close(w)
            finally:
                taken.close()
            assert await proxy.apply({busy: [b0.addr], ok: [b0.addr]}) == {}  # level-triggered retry
            assert proxy.listening() == {busy, ok}
    run(main())


def test_reapply_after_close_rebinds_same_port():
    async def main():
        async with setup(1) as (proxy, (b0,)):
            port = free_port()
            await proxy.apply({(LO, port): [b0.addr]})
            _, w, _ = await connect(port)
            await proxy.close()  # leaves TIME_WAIT behind; SO_REUSEADDR must let us rebind
            await close(w)
            again = Proxy()
            try:
                assert await again.apply({(LO, port): [b0.addr]}) == {}
                _, w, name = await connect(port)
                assert name == "b0"
                await close(w)
            finally:
                await again.close()
    run(main())


def test_throttle_aggregates_repeats():
    now = [0.0]
    th = _Throttle(window=10.0, clock=lambda: now[0])
    assert th.allow("k") == 0
    assert [th.allow("k") for _ in range(5)] == [None] * 5
    assert th.allow("other") == 0
    now[0] = 10.0
    assert th.allow("k") == 5
    assert th.allow("k") is None
