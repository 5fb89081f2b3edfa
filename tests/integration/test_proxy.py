"""The proxy over real loopback sockets (traffic only to 127.0.0.1).

TCP backends greet each connection with their name, echo what they read, and on EOF send
"bye\\n" and close, which lets one backend exercise round-robin, echo, half-close and bulk.
UDP backends answer each datagram with "<name>:<datagram>".
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import importlib.util
import os
import socket
from collections import Counter
from multiprocessing import reduction

import pytest

from gitops.proxy.listeners import Proxy, LogThrottle
from gitops.proxy.routes import Route
from gitops.proxy.tcp import TcpListener
from gitops.proxy.workers import WorkerPool

LO = "127.0.0.1"
T = 5.0  # per-step bound; every await on the network goes through it


LOOPS = ["asyncio"] + (["uvloop"] if importlib.util.find_spec("uvloop") else [])
_loop = {"kind": "asyncio"}


@pytest.fixture(autouse=True, params=LOOPS)
def event_loop_kind(request):
    """Every test on both event loops the agent may run on (uvloop when installed)."""
    _loop["kind"] = request.param
    yield request.param


def run(coro, timeout: float = 60.0):
    if _loop["kind"] == "uvloop":
        import uvloop
        return uvloop.run(asyncio.wait_for(coro, timeout))
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


async def connect(port: int, source: str | None = None
                  ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter, str]:
    """source: another loopback address to connect from (a second "client IP")."""
    local = (source, 0) if source else None
    r, w = await asyncio.wait_for(asyncio.open_connection(LO, port, local_addr=local), T)
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


def test_no_ready_endpoint_refuses_and_one_update_accepts_again():
    """kube-proxy rejects connections to a Service without ready endpoints: connect()
    fails with ECONNREFUSED (a client waiting for the port waits for a backend), never
    accepted and then reset; the next update with an endpoint accepts at once, and one
    that removes the last endpoint refuses again while established connections drain."""
    async def main():
        async with setup(1) as (proxy, (b0,)):
            port = free_port()
            assert await proxy.apply({(LO, port): []}) == {}
            for _ in range(3):
                with pytest.raises(ConnectionRefusedError):
                    await asyncio.wait_for(asyncio.open_connection(LO, port), T)
            await proxy.apply({(LO, port): [b0.addr]})
            r, w, name = await connect(port)
            assert name == "b0"
            await proxy.apply({(LO, port): []})        # the last endpoint left
            with pytest.raises(ConnectionRefusedError):
                await asyncio.wait_for(asyncio.open_connection(LO, port), T)
            assert await echo(r, w, b"draining") == b"draining"   # not cut
            await close(w)
            await proxy.apply({(LO, port): [b0.addr]})
            r, w, name = await connect(port)
            assert name == "b0"
            await close(w)
    run(main())


def test_a_port_held_elsewhere_is_reported_with_or_without_endpoints():
    async def main():
        async with setup(1) as (proxy, (b0,)):
            holder = socket.create_server((LO, 0))
            port = holder.getsockname()[1]
            try:
                errors = await proxy.apply({(LO, port): []})
                assert "address already in use" in errors[(LO, port)].lower()
                errors = await proxy.apply({(LO, port): [b0.addr]})
                assert "address already in use" in errors[(LO, port)].lower()
            finally:
                holder.close()
            assert await proxy.apply({(LO, port): [b0.addr]}) == {}
            r, w, name = await connect(port)
            assert name == "b0"
            await close(w)
    run(main())


@pytest.mark.parametrize("endpoints", ["all_dead"])
def test_no_usable_endpoint_closes_client(endpoints):
    async def main():
        async with setup(0) as (proxy, _):
            port = free_port()
            eps = [(LO, free_port()), (LO, free_port())]
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


def test_routes_to_tells_which_endpoint_ips_still_get_new_connections():
    async def main():
        async with setup(2) as (proxy, (b0, b1)):
            port, udp = free_port(), free_port()
            assert not proxy.routes_to(LO)
            await proxy.apply({(LO, port): [b0.addr], (LO, udp, "UDP"): [("127.0.0.2", 53)]})
            assert proxy.routes_to(LO) and proxy.routes_to("127.0.0.2")
            await proxy.apply({(LO, port): [], (LO, udp, "UDP"): [("127.0.0.2", 53)]})
            assert not proxy.routes_to(LO) and proxy.routes_to("127.0.0.2")
            await proxy.close()
            assert not proxy.routes_to("127.0.0.2")
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


def test_many_concurrent_connections_each_get_their_own_bytes():
    # Batches of edge-triggered events, fd numbers reused as connections come and go.
    async def main():
        async with setup(2) as (proxy, backends):
            port = free_port()
            await proxy.apply({(LO, port): [b.addr for b in backends]})

            async def client(i: int) -> None:
                r, w, _ = await connect(port)
                for j in range(5):
                    msg = f"{i}:{j}:".encode() * 50
                    assert await echo(r, w, msg) == msg
                await close(w)

            for _ in range(3):   # 3 waves of 60 connections at once, 900 round trips
                await asyncio.gather(*(client(i) for i in range(60)))
            assert sum(b.accepted for b in backends) == 180
            await asyncio.sleep(0.05)
            assert not proxy._conns
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
    th = LogThrottle(window=10.0, clock=lambda: now[0])
    assert th.allow("k") == 0
    assert [th.allow("k") for _ in range(5)] == [None] * 5
    assert th.allow("other") == 0
    now[0] = 10.0
    assert th.allow("k") == 5
    assert th.allow("k") is None


# ---------------------------------------------------------------- sessionAffinity (TCP)

async def names_seen(port: int, n: int, source: str | None = None) -> list[str]:
    out = []
    for _ in range(n):
        _, w, name = await connect(port, source)
        out.append(name)
        await close(w)
    return out


def test_affinity_keeps_a_client_ip_on_one_backend():
    async def main():
        async with setup(2) as (proxy, bs):
            port = free_port()
            await proxy.apply({(LO, port): Route([b.addr for b in bs], affinity_timeout=60.0)})
            first = await names_seen(port, 8)
            assert len(set(first)) == 1
            # another client IP (127.0.0.2 -> 127.0.0.1) takes the next round-robin pick
            other = await names_seen(port, 4, source="127.0.0.2")
            assert len(set(other)) == 1 and other[0] != first[0]
            assert await names_seen(port, 2) == first[:2]
            # turning affinity off (same endpoints) goes back to round-robin
            await proxy.apply({(LO, port): [b.addr for b in bs]})
            assert Counter(await names_seen(port, 6)) == {"b0": 3, "b1": 3}
    run(main())


def test_affinity_expires_and_follows_endpoint_removal():
    async def main():
        async with setup(2) as (proxy, (b0, b1)):
            port = free_port()
            by_name = {"b0": b0, "b1": b1}
            route = Route([b0.addr, b1.addr], affinity_timeout=0.4)
            await proxy.apply({(LO, port): route})
            (pinned,) = set(await names_seen(port, 3))
            await asyncio.sleep(0.6)  # idle past the timeout: the next pick is round-robin
            (moved,) = set(await names_seen(port, 3))
            assert moved != pinned
            # the pinned backend leaves the Service: the client moves, and stays moved
            # when it returns
            rest = [b.addr for n, b in by_name.items() if n != moved]
            await proxy.apply({(LO, port): Route(rest, affinity_timeout=60.0)})
            (now,) = set(await names_seen(port, 3))
            assert now != moved
            await proxy.apply({(LO, port): Route([b0.addr, b1.addr], affinity_timeout=60.0)})
            assert set(await names_seen(port, 3)) == {now}
    run(main())


def test_affinity_falls_through_a_dead_endpoint_and_sticks_to_the_live_one():
    async def main():
        async with setup(2) as (proxy, (b0, b1)):
            port, dead = free_port(), (LO, free_port())
            await proxy.apply({(LO, port): Route([dead, b0.addr, b1.addr], affinity_timeout=60.0)})
            for source in ("127.0.0.1", "127.0.0.2", "127.0.0.3"):
                seen = await names_seen(port, 4, source=source)
                assert len(set(seen)) == 1  # including the client whose first pick was dead
    run(main())


# ---------------------------------------------------------------- UDP

class UdpBackend(asyncio.DatagramProtocol):
    def __init__(self, name: str) -> None:
        self.name, self.got, self.peers = name, 0, set()

    def connection_made(self, transport):
        self.transport = transport

    def datagram_received(self, data, addr):
        self.got += 1
        self.peers.add(addr)
        self.transport.sendto(self.name.encode() + b":" + data, addr)

    @property
    def addr(self) -> tuple[str, int]:
        return self.transport.get_extra_info("sockname")[:2]


class UdpClient(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.replies: asyncio.Queue[bytes] = asyncio.Queue()

    def connection_made(self, transport):
        self.transport = transport

    def datagram_received(self, data, addr):
        self.replies.put_nowait(data)

    async def ask(self, data: bytes, timeout: float = T) -> bytes:
        self.transport.sendto(data)
        return await asyncio.wait_for(self.replies.get(), timeout)


@contextlib.asynccontextmanager
async def udp_setup(n: int = 2, **proxy_args):
    loop = asyncio.get_running_loop()
    backends, clients = [], []
    for i in range(n):
        _, b = await loop.create_datagram_endpoint(lambda i=i: UdpBackend(f"u{i}"),
                                                   local_addr=(LO, 0))
        backends.append(b)
    proxy = Proxy(**proxy_args)

    async def client(port: int, source: str = LO) -> UdpClient:
        _, c = await loop.create_datagram_endpoint(UdpClient, local_addr=(source, 0),
                                                   remote_addr=(LO, port))
        clients.append(c)
        return c
    try:
        yield proxy, backends, client
    finally:
        await proxy.close()
        for x in backends + clients:
            x.transport.close()


def udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind((LO, 0))
        return s.getsockname()[1]


def flows(proxy: Proxy, key) -> int:
    return len(proxy._listeners[key].flows)


def test_udp_echo_round_robin_per_client_flow():
    async def main():
        async with udp_setup(2) as (proxy, bs, client):
            port = udp_port()
            key = (LO, port, "UDP")
            assert await proxy.apply({key: [b.addr for b in bs]}, names={key: "default/dns:53/UDP"}) == {}
            assert proxy.listening() == {key}
            clients = [await client(port) for _ in range(6)]
            firsts = []
            for i, c in enumerate(clients):
                reply = await c.ask(b"q%d" % i)
                name, _, body = reply.partition(b":")
                assert body == b"q%d" % i
                firsts.append(name)
            assert Counter(firsts) == {b"u0": 3, b"u1": 3}
            for _ in range(3):  # later datagrams of a flow stay on its backend
                for i, c in enumerate(clients):
                    assert await c.ask(b"again") == firsts[i] + b":again"
            assert flows(proxy, key) == 6
            # one upstream socket per client flow: each backend saw 3 distinct source ports
            assert [len(b.peers) for b in bs] == [3, 3]
            big = os.urandom(60000)  # near the largest IPv4 datagram, still one datagram
            assert await clients[0].ask(big) == firsts[0] + b":" + big
    run(main())


def test_udp_idle_flow_is_cleaned_up_and_activity_keeps_it():
    async def main():
        async with udp_setup(2, udp_idle_timeout=0.4) as (proxy, bs, client):
            port = udp_port()
            key = (LO, port, "UDP")
            await proxy.apply({key: [b.addr for b in bs]})
            busy, idle = await client(port), await client(port)
            first_busy = (await busy.ask(b"x")).partition(b":")[0]
            await idle.ask(b"x")
            assert flows(proxy, key) == 2
            for _ in range(8):  # 0.8 s of traffic every 0.1 s: the busy flow survives
                await asyncio.sleep(0.1)
                assert (await busy.ask(b"y")).partition(b":")[0] == first_busy
            assert flows(proxy, key) == 1
            (flow,) = proxy._listeners[key].flows.values()
            await asyncio.sleep(0.6)
            assert flows(proxy, key) == 0
            sock = flow.transport.get_extra_info("socket")   # None once closed, on uvloop
            assert flow.transport.is_closing() and (sock is None or sock.fileno() == -1)
            # a returning client gets a new flow
            assert (await busy.ask(b"z")).endswith(b":z")
            assert flows(proxy, key) == 1
    run(main())


def test_udp_affinity_same_ip_other_ports_share_a_backend():
    async def main():
        async with udp_setup(2) as (proxy, bs, client):
            port = udp_port()
            key = (LO, port, "UDP")
            await proxy.apply({key: Route([b.addr for b in bs], affinity_timeout=60.0)})
            here = {(await (await client(port)).ask(b"a")).partition(b":")[0] for _ in range(4)}
            there = {(await (await client(port, "127.0.0.2")).ask(b"a")).partition(b":")[0]
                     for _ in range(4)}
            assert len(here) == 1 and len(there) == 1 and here != there
    run(main())


def test_udp_endpoint_removal_moves_flows_and_dead_endpoint_is_left():
    async def main():
        async with udp_setup(2) as (proxy, (u0, u1), client):
            port = udp_port()
            key = (LO, port, "UDP")
            await proxy.apply({key: [u0.addr]})
            c = await client(port)
            assert await c.ask(b"1") == b"u0:1"
            await proxy.apply({key: [u1.addr]})
            assert flows(proxy, key) == 0  # nothing to drain for UDP: the flow ends now
            assert await c.ask(b"2") == b"u1:2"
            # an endpoint with nothing listening answers ICMP port unreachable: the flow
            # ends and the client's retry picks the next endpoint
            await proxy.apply({key: [(LO, udp_port()), u1.addr]})
            replies = []
            for i in range(4):
                with contextlib.suppress(TimeoutError):
                    replies.append(await c.ask(b"r%d" % i, timeout=0.3))
            assert replies and all(r.startswith(b"u1:") for r in replies)
    run(main())


def test_udp_no_endpoints_drops_and_max_flows_evicts_oldest():
    async def main():
        async with udp_setup(1, udp_max_flows=3) as (proxy, (u0,), client):
            port = udp_port()
            key = (LO, port, "UDP")
            await proxy.apply({key: []})
            c = await client(port)
            with pytest.raises(TimeoutError):
                await c.ask(b"nobody", timeout=0.2)
            assert flows(proxy, key) == 0
            await proxy.apply({key: [u0.addr]})
            cs = [c] + [await client(port) for _ in range(4)]
            for x in cs:
                assert (await x.ask(b"hi")) == b"u0:hi"
                assert flows(proxy, key) <= 3
            assert set(proxy._listeners[key].flows) == \
                {x.transport.get_extra_info("sockname") for x in cs[-3:]}
    run(main())


def test_tcp_and_udp_share_a_port_and_close_cleanly():
    async def main():
        async with setup(1) as (proxy, (b0,)):
            loop = asyncio.get_running_loop()
            _, u = await loop.create_datagram_endpoint(lambda: UdpBackend("u0"), local_addr=(LO, 0))
            try:
                port = free_port()
                routes = {(LO, port): [b0.addr], (LO, port, "UDP"): [u.addr],
                          (LO, port + 0, "SCTP"): [b0.addr]}
                errors = await proxy.apply(routes)
                assert set(errors) == {(LO, port, "SCTP")}
                assert proxy.listening() == {(LO, port), (LO, port, "UDP")}
                _, w, name = await connect(port)
                assert name == "b0"
                _, c = await loop.create_datagram_endpoint(UdpClient, remote_addr=(LO, port))
                assert await c.ask(b"x") == b"u0:x"
                # (host, port, "TCP") is the same listener as (host, port)
                assert await proxy.apply({(LO, port, "TCP"): [b0.addr]}) == {}
                assert proxy.listening() == {(LO, port)}
                with pytest.raises(TimeoutError):
                    await c.ask(b"gone", timeout=0.2)
                await close(w)
                c.transport.close()
                await proxy.close()
                assert proxy.listening() == set()
            finally:
                u.transport.close()
    run(main())


def test_worker_processes_share_listeners_and_follow_every_update():
    async def main():
        backends = [await Backend(f"b{i}").start() for i in range(2)]
        proxy = Proxy(dial_timeout=1.0, workers=2)
        try:
            port, sticky = free_port(), free_port()
            await proxy.apply({(LO, port): [b.addr for b in backends],
                               (LO, sticky): Route((backends[0].addr, backends[1].addr), 60.0)})
            assert proxy._pool is not None
            names = set()
            for _ in range(16):
                r, w, name = await connect(port)
                names.add(name)
                assert await echo(r, w, b"hi") == b"hi"
                await close(w)
            assert names == {"b0", "b1"}
            # Affinity stays in one process: one client IP, one backend.
            assert len({(await connect(sticky))[2] for _ in range(6)}) == 1
            # Once apply() returns, no process sends new connections to a removed endpoint.
            await proxy.apply({(LO, port): [backends[1].addr]})
            before = backends[0].accepted
            for _ in range(16):
                _, w, name = await connect(port)
                assert name == "b1"
                await close(w)
            assert backends[0].accepted == before
            await proxy.apply({})
            with pytest.raises(ConnectionRefusedError):
                await asyncio.wait_for(asyncio.open_connection(LO, port), T)
        finally:
            await proxy.close()
            for b in backends:
                await b.stop()
        assert proxy._pool is None
    run(main(), timeout=90)


def test_a_worker_takes_a_listener_whose_fd_comes_a_moment_after_its_message():
    """An "open" is two sends; under load the worker sees the message before the fd."""
    async def main():
        backend = await Backend("b0").start()
        pool = WorkerPool(1, dial_timeout=1.0)
        listener = TcpListener.bind(LO, free_port(), 16)
        try:
            proc, conn = pool._workers[0]
            addr = listener.getsockname()
            conn.send(("open", addr, [backend.addr], "test/late-fd"))
            await asyncio.sleep(0.3)              # the worker is reading the message now
            reduction.send_handle(conn, listener.fileno(), proc.pid)
            assert conn.poll(10) and conn.recv() is None
            listener.close()                      # only the worker accepts from here on
            _, w, name = await connect(addr[1])
            assert name == "b0"
            await close(w)
            assert pool.call(("update", addr, [backend.addr])) == [None]
        finally:
            listener.close()
            await asyncio.to_thread(pool.close)
            await backend.stop()
    run(main(), timeout=60)


def test_with_workers_a_listener_refuses_without_endpoints_and_listens_again():
    """The workers hold a duplicate of the listening socket: losing the last endpoint must
    not read as "another process holds the port", and the port must come back."""
    async def main():
        backend = await Backend("b0").start()
        proxy = Proxy(dial_timeout=1.0, workers=1)
        port = free_port()
        try:
            assert await proxy.apply({(LO, port): [backend.addr]}) == {}
            assert await proxy.apply({(LO, port): []}) == {}
            with pytest.raises(ConnectionRefusedError):
                await asyncio.wait_for(asyncio.open_connection(LO, port), T)
            assert await proxy.apply({(LO, port): [backend.addr]}) == {}
            for _ in range(8):
                _, w, name = await connect(port)
                assert name == "b0"
                await close(w)
        finally:
            await proxy.close()
            await backend.stop()
    run(main(), timeout=60)


def test_with_workers_the_proxy_process_stops_accepting_and_takes_over_when_one_exits():
    """The data path is the workers' alone; a worker that dies (killed, OOM) hands it back
    to the proxy process at once, and the next apply starts a new worker."""
    async def main():
        backend = await Backend("b0").start()
        proxy = Proxy(dial_timeout=1.0, workers=1)
        port = free_port()
        try:
            assert await proxy.apply({(LO, port): [backend.addr]}) == {}
            lst = proxy._listeners[(LO, port)]
            assert lst.shared and lst.tcp.paused
            for _ in range(4):
                _, w, name = await connect(port)
                assert name == "b0"
                await close(w)
            assert not proxy._conns            # none went through this process
            (proc, _), = proxy._pool._workers
            proc.kill()
            for _ in range(100):               # the pidfd wakes the loop when it exits
                if not lst.tcp.paused:
                    break
                await asyncio.sleep(0.05)
            assert not lst.tcp.paused
            _, w, name = await connect(port)   # no apply in between: served here
            assert name == "b0"
            await close(w)
            assert await proxy.apply({(LO, port): [backend.addr]}) == {}
            (fresh, _), = proxy._pool._workers
            assert fresh.pid != proc.pid and fresh.poll() is None
            assert lst.shared and lst.tcp.paused
            _, w, name = await connect(port)
            assert name == "b0"
            await close(w)
        finally:
            await proxy.close()
            await backend.stop()
    run(main(), timeout=60)


def test_without_pidfds_the_next_apply_replaces_a_dead_worker(monkeypatch):
    """Before Linux 5.3 (no pidfd_open) nobody tells the proxy at once: its next apply
    (a resync at the latest) finds the dead worker and starts a new one."""
    def no_pidfd(pid):
        raise OSError(38, "Function not implemented")
    monkeypatch.setattr(os, "pidfd_open", no_pidfd)

    async def main():
        backend = await Backend("b0").start()
        proxy = Proxy(dial_timeout=1.0, workers=1)
        port = free_port()
        try:
            await proxy.apply({(LO, port): [backend.addr]})
            (proc, _), = proxy._pool._workers
            proc.kill()
            proc.wait(10)
            assert await proxy.apply({(LO, port): [backend.addr]}) == {}
            (fresh, _), = proxy._pool._workers
            assert fresh.pid != proc.pid and proxy._listeners[(LO, port)].tcp.paused
            _, w, name = await connect(port)
            assert name == "b0"
            await close(w)
        finally:
            await proxy.close()
            await backend.stop()
    run(main(), timeout=60)


def test_a_closed_connection_is_freed_without_the_garbage_collector():
    """No reference cycle per connection: the collector's passes over a big agent heap
    would otherwise cost the data path."""
    import gc

    from gitops.proxy.tcp import TcpConn, _Flow

    async def main():
        async with setup(1) as (proxy, (backend,)):
            port = free_port()
            await proxy.apply({(LO, port): [backend.addr]})
            gc.collect()
            gc.disable()
            gc.set_debug(gc.DEBUG_SAVEALL)     # what a pass finds unreachable stays here
            try:
                for _ in range(3):
                    r, w, _ = await connect(port)
                    w.write_eof()
                    assert await asyncio.wait_for(r.read(), T) == b"bye\n"
                    await close(w)
                for _ in range(100):
                    if not proxy._conns:
                        break
                    await asyncio.sleep(0.02)
                assert not proxy._conns
                gc.collect()
                assert not [o for o in gc.garbage if isinstance(o, (TcpConn, _Flow))]
            finally:
                gc.set_debug(0)
                gc.garbage.clear()
                gc.enable()
    run(main())
