"""The cluster DNS server over real sockets on 127.0.0.1 only.

The "upstream" resolver is a small fake DNS server started here on 127.0.0.1 with an
ephemeral port; the addresses it hands out are documentation addresses (192.0.2.0/24)
that nothing ever connects to.
"""

from __future__ import annotations

import asyncio
import importlib.util
import socket
import struct

import pytest
from dnslib import EDNS0, QTYPE, RCODE, RR, A, DNSRecord

from gitops.proxy.dns import DnsServer, Zone, build_zone

LO = "127.0.0.1"
T = 5.0


LOOPS = ["asyncio"] + (["uvloop"] if importlib.util.find_spec("uvloop") else [])
_loop = {"kind": "asyncio"}


@pytest.fixture(autouse=True, params=LOOPS)
def event_loop_kind(request):
    """Every test on both event loops the agent may run on (uvloop when installed)."""
    _loop["kind"] = request.param
    yield request.param


def run(coro, timeout: float = 30.0):
    if _loop["kind"] == "uvloop":
        import uvloop
        return uvloop.run(asyncio.wait_for(coro, timeout))
    return asyncio.run(asyncio.wait_for(coro, timeout))


def free_udp_tcp_port() -> int:
    for _ in range(20):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
            u.bind((LO, 0))
            port = u.getsockname()[1]
            with socket.socket() as t:
                try:
                    t.bind((LO, port))
                except OSError:
                    continue
                return port
    raise RuntimeError("no free port")


class _ClientProto(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.reply = asyncio.get_running_loop().create_future()

    def datagram_received(self, data, addr):
        if not self.reply.done():
            self.reply.set_result(data)


async def udp_raw(addr, data: bytes, timeout: float = T) -> bytes:
    loop = asyncio.get_running_loop()
    transport, proto = await loop.create_datagram_endpoint(_ClientProto, remote_addr=addr)
    try:
        transport.sendto(data)
        return await asyncio.wait_for(proto.reply, timeout)
    finally:
        transport.close()


async def tcp_raw(addr, data: bytes) -> bytes:
    reader, writer = await asyncio.wait_for(asyncio.open_connection(*addr), T)
    try:
        writer.write(struct.pack("!H", len(data)) + data)
        size = struct.unpack("!H", await asyncio.wait_for(reader.readexactly(2), T))[0]
        return await asyncio.wait_for(reader.readexactly(size), T)
    finally:
        writer.close()


async def ask(addr, name: str, qtype: str = "A", tcp: bool = False, edns: int | None = None,
              timeout: float = T) -> DNSRecord:
    q = DNSRecord.question(name, qtype)
    if edns:
        q.add_ar(EDNS0(udp_len=edns))
    raw = await (tcp_raw(addr, q.pack()) if tcp else udp_raw(addr, q.pack(), timeout))
    reply = DNSRecord.parse(raw)
    assert reply.header.id == q.header.id
    assert reply.header.qr == 1
    return reply


def ips(reply: DNSRecord) -> list[str]:
    return sorted(str(rr.rdata) for rr in reply.rr if rr.rtype == QTYPE.A)


class FakeUpstream:
    """Answers A queries from `records` (NXDOMAIN otherwise); UDP and TCP on one port.
    mode: "ok", "silent" (never answers), "truncate" (UDP answers carry TC, TCP is full)."""

    def __init__(self, records: dict[str, list[str]] | None = None, mode: str = "ok") -> None:
        self.records = {k.lower().rstrip("."): v for k, v in (records or {}).items()}
        self.mode = mode
        self.queries: list[tuple[str, str, str]] = []   # (transport, name, type)
        self.udp = self.tcp = None
        self.addr: tuple[str, int] | None = None

    def answer(self, data: bytes, transport: str) -> bytes | None:
        q = DNSRecord.parse(data)
        name = str(q.q.qname).lower().rstrip(".")
        self.queries.append((transport, name, QTYPE[q.q.qtype]))
        if self.mode == "silent":
            return None
        reply = q.reply(ra=1, aa=0)
        if name not in self.records:
            reply.header.rcode = RCODE.NXDOMAIN
        elif q.q.qtype == QTYPE.A:
            if self.mode == "truncate" and transport == "udp":
                reply.header.tc = 1
            else:
                for ip in self.records[name]:
                    reply.add_answer(RR(q.q.qname, QTYPE.A, rdata=A(ip), ttl=60))
        return reply.pack()

    async def start(self) -> FakeUpstream:
        loop = asyncio.get_running_loop()
        outer = self

        class Udp(asyncio.DatagramProtocol):
            def connection_made(self, transport):
                self.transport = transport

            def datagram_received(self, data, addr):
                reply = outer.answer(data, "udp")
                if reply is not None:
                    self.transport.sendto(reply, addr)

        async def on_tcp(reader, writer):
            try:
                while True:
                    size = struct.unpack("!H", await reader.readexactly(2))[0]
                    reply = outer.answer(await reader.readexactly(size), "tcp")
                    if reply is None:
                        break
                    writer.write(struct.pack("!H", len(reply)) + reply)
                    await writer.drain()
            except (asyncio.IncompleteReadError, ConnectionError):
                pass
            finally:
                writer.close()

        port = free_udp_tcp_port()
        self.udp, _ = await loop.create_datagram_endpoint(Udp, local_addr=(LO, port))
        self.tcp = await asyncio.start_server(on_tcp, LO, port)
        self.addr = (LO, port)
        return self

    async def stop(self) -> None:
        self.udp.close()
        self.tcp.close()
        await self.tcp.wait_closed()


SERVICES = [
    {"metadata": {"name": "web", "namespace": "shop"},
     "spec": {"clusterIP": "10.96.0.10", "ports": [{"name": "http", "port": 80}]}},
    {"metadata": {"name": "db", "namespace": "shop"}, "spec": {"clusterIP": "None"}},
    {"metadata": {"name": "ext", "namespace": "shop"},
     "spec": {"type": "ExternalName", "externalName": "api.example.test"}},
]
ENDPOINTS = [
    {"metadata": {"name": "db", "namespace": "shop"},
     "subsets": [{"addresses": [{"ip": "10.213.0.3", "hostname": "db-0"}, {"ip": "10.213.0.4"}],
                  "ports": [{"name": "pg", "port": 5432}]}]},
]
UPSTREAM_RECORDS = {"example.test": ["192.0.2.1"], "api.example.test": ["192.0.2.7", "192.0.2.8"]}


async def serving(upstreams=None, timeout: float = 0.5, zone: Zone | None = None):
    server = DnsServer(upstreams or [], timeout=timeout)
    server.set_zone(zone if zone is not None else build_zone(SERVICES, ENDPOINTS, []))
    addr = await server.start(LO, 0)
    return server, addr


def test_answers_cluster_names():
    async def main():
        up = await FakeUpstream(UPSTREAM_RECORDS).start()
        server, addr = await serving([up.addr])
        try:
            assert addr[0] == LO and addr[1] > 0
            for name in ("web.shop.svc.cluster.local", "WEB.Shop.svc.Cluster.Local.",
                         "web.shop.svc.cluster.local."):
                reply = await ask(addr, name)
                assert reply.header.rcode == RCODE.NOERROR and reply.header.aa == 1
                assert ips(reply) == ["10.96.0.10"]
                assert all(rr.ttl == 5 for rr in reply.rr)
                assert str(reply.rr[0].rname).lower() == "web.shop.svc.cluster.local."
            reply = await ask(addr, "db.shop.svc.cluster.local")
            assert ips(reply) == ["10.213.0.3", "10.213.0.4"]
            reply = await ask(addr, "db-0.db.shop.svc.cluster.local")
            assert ips(reply) == ["10.213.0.3"]
            assert up.queries == []  # nothing under the cluster domain leaves the server
        finally:
            await server.stop()
            await up.stop()
    run(main())


def test_aaaa_and_other_types_for_our_names_are_empty_noerror():
    async def main():
        server, addr = await serving()
        try:
            for qtype in ("AAAA", "TXT", "MX"):
                reply = await ask(addr, "web.shop.svc.cluster.local", qtype)
                assert reply.header.rcode == RCODE.NOERROR
                assert reply.rr == []
                assert [QTYPE[rr.rtype] for rr in reply.auth] == ["SOA"]
            # an empty non-terminal exists too (search path steps must not be NXDOMAIN
            # when a deeper name exists)
            reply = await ask(addr, "shop.svc.cluster.local")
            assert reply.header.rcode == RCODE.NOERROR and reply.rr == []
        finally:
            await server.stop()
    run(main())


def test_unknown_cluster_names_are_nxdomain_and_not_forwarded():
    async def main():
        up = await FakeUpstream(UPSTREAM_RECORDS).start()
        server, addr = await serving([up.addr])
        try:
            for name, qtype in [("nope.shop.svc.cluster.local", "A"),
                                ("example.test.shop.svc.cluster.local", "A"),   # search step
                                ("web.other.svc.cluster.local", "AAAA"),
                                ("x.cluster.local", "A")]:
                reply = await ask(addr, name, qtype)
                assert reply.header.rcode == RCODE.NXDOMAIN, name
                assert reply.header.aa == 1
                soa = [rr for rr in reply.auth if rr.rtype == QTYPE.SOA]
                assert len(soa) == 1 and str(soa[0].rname) == "cluster.local."
            assert up.queries == []
        finally:
            await server.stop()
            await up.stop()
    run(main())


def test_srv_records_with_additional_addresses():
    async def main():
        server, addr = await serving()
        try:
            reply = await ask(addr, "_http._tcp.web.shop.svc.cluster.local", "SRV")
            assert [(rr.rdata.port, str(rr.rdata.target)) for rr in reply.rr] == [
                (80, "web.shop.svc.cluster.local.")]
            assert [str(rr.rdata) for rr in reply.ar] == ["10.96.0.10"]
            reply = await ask(addr, "_pg._tcp.db.shop.svc.cluster.local", "SRV")
            assert sorted(str(rr.rdata.target) for rr in reply.rr) == [
                "10-213-0-4.db.shop.svc.cluster.local.", "db-0.db.shop.svc.cluster.local."]
            reply = await ask(addr, "10-213-0-4.db.shop.svc.cluster.local")
            assert ips(reply) == ["10.213.0.4"]
        finally:
            await server.stop()
    run(main())


def test_forwards_other_names_to_upstream():
    async def main():
        up = await FakeUpstream(UPSTREAM_RECORDS).start()
        server, addr = await serving([up.addr])
        try:
            reply = await ask(addr, "example.test")
            assert ips(reply) == ["192.0.2.1"] and reply.header.aa == 0
            reply = await ask(addr, "missing.example.test")
            assert reply.header.rcode == RCODE.NXDOMAIN
            assert up.queries == [("udp", "example.test", "A"),
                                  ("udp", "missing.example.test", "A")]
        finally:
            await server.stop()
            await up.stop()
    run(main())


def test_external_name_cname_is_chased_through_upstream():
    async def main():
        up = await FakeUpstream(UPSTREAM_RECORDS).start()
        server, addr = await serving([up.addr])
        try:
            reply = await ask(addr, "ext.shop.svc.cluster.local")
            assert [QTYPE[rr.rtype] for rr in reply.rr] == ["CNAME", "A", "A"]
            assert str(reply.rr[0].rdata) == "api.example.test."
            assert ips(reply) == ["192.0.2.7", "192.0.2.8"]
        finally:
            await server.stop()
            await up.stop()
    run(main())


def test_tries_upstreams_in_turn_then_servfail():
    async def main():
        silent = await FakeUpstream(UPSTREAM_RECORDS, mode="silent").start()
        good = await FakeUpstream(UPSTREAM_RECORDS).start()
        closed = (LO, free_udp_tcp_port())  # nothing listens: the kernel refuses at once
        server, addr = await serving([closed, silent.addr, good.addr], timeout=0.3)
        try:
            reply = await ask(addr, "example.test")
            assert ips(reply) == ["192.0.2.1"]
            assert silent.queries and good.queries
        finally:
            await server.stop()
        server, addr = await serving([closed, silent.addr], timeout=0.3)
        try:
            reply = await ask(addr, "example.test")
            assert reply.header.rcode == RCODE.SERVFAIL
            assert ips(reply) == []
        finally:
            await server.stop()
            await silent.stop()
            await good.stop()
    run(main())


def test_no_upstreams_is_servfail_for_outside_names():
    async def main():
        server, addr = await serving([])
        try:
            assert (await ask(addr, "example.test")).header.rcode == RCODE.SERVFAIL
            assert ips(await ask(addr, "web.shop.svc.cluster.local")) == ["10.96.0.10"]
        finally:
            await server.stop()
    run(main())


def test_tcp_on_the_same_port():
    async def main():
        up = await FakeUpstream(UPSTREAM_RECORDS).start()
        server, addr = await serving([up.addr])
        try:
            assert ips(await ask(addr, "web.shop.svc.cluster.local", tcp=True)) == ["10.96.0.10"]
            assert ips(await ask(addr, "example.test", tcp=True)) == ["192.0.2.1"]
            # two queries on one connection
            reader, writer = await asyncio.open_connection(*addr)
            try:
                for name in ("web.shop.svc.cluster.local", "db.shop.svc.cluster.local"):
                    q = DNSRecord.question(name).pack()
                    writer.write(struct.pack("!H", len(q)) + q)
                    size = struct.unpack("!H", await asyncio.wait_for(reader.readexactly(2), T))[0]
                    assert ips(DNSRecord.parse(await reader.readexactly(size)))
            finally:
                writer.close()
        finally:
            await server.stop()
            await up.stop()
    run(main())


def test_large_answers_are_truncated_over_udp_and_whole_over_tcp():
    async def main():
        services = [{"metadata": {"name": "big", "namespace": "default"},
                     "spec": {"clusterIP": "None"}}]
        endpoints = [{"metadata": {"name": "big", "namespace": "default"},
                      "subsets": [{"addresses": [{"ip": f"10.213.0.{i}"} for i in range(1, 61)]}]}]
        server, addr = await serving(zone=build_zone(services, endpoints, []))
        try:
            name = "big.default.svc.cluster.local"
            udp = await ask(addr, name)
            assert udp.header.tc == 1 and udp.rr == []
            edns = await ask(addr, name, edns=4096)  # 60 A records fit in 1232 bytes
            assert edns.header.tc == 0 and len(ips(edns)) == 60
            tcp = await ask(addr, name, tcp=True)
            assert tcp.header.tc == 0 and len(ips(tcp)) == 60
        finally:
            await server.stop()
    run(main())


def test_tcp_client_gets_the_whole_upstream_answer_when_udp_was_truncated():
    async def main():
        up = await FakeUpstream(UPSTREAM_RECORDS, mode="truncate").start()
        server, addr = await serving([up.addr])
        try:
            reply = await ask(addr, "api.example.test", tcp=True)
            assert reply.header.tc == 0 and ips(reply) == ["192.0.2.7", "192.0.2.8"]
            assert [t for t, _, _ in up.queries] == ["udp", "tcp"]
            reply = await ask(addr, "api.example.test")  # UDP client: gets TC, retries itself
            assert reply.header.tc == 1
        finally:
            await server.stop()
            await up.stop()
    run(main())


def test_set_zone_applies_to_the_next_query():
    async def main():
        server, addr = await serving()
        try:
            name = "new.shop.svc.cluster.local"
            assert (await ask(addr, name)).header.rcode == RCODE.NXDOMAIN
            server.set_zone(build_zone(SERVICES + [
                {"metadata": {"name": "new", "namespace": "shop"},
                 "spec": {"clusterIP": "10.96.0.99"}}], ENDPOINTS, []))
            assert ips(await ask(addr, name)) == ["10.96.0.99"]
        finally:
            await server.stop()
    run(main())


def test_upstream_that_is_ourselves_is_skipped():
    async def main():
        port = free_udp_tcp_port()
        server = DnsServer([(LO, port)], timeout=0.3)
        addr = await server.start(LO, port)
        try:
            assert addr == (LO, port)
            assert server.upstreams == []
            assert (await ask(addr, "example.test")).header.rcode == RCODE.SERVFAIL
        finally:
            await server.stop()
    run(main())


def test_malformed_queries_do_not_hurt_the_server():
    async def main():
        server, addr = await serving()
        try:
            header = b"\x12\x34" + b"\x01\x00" + b"\x00\x01" + b"\x00" * 6  # 1 question...
            raw = await udp_raw(addr, header + b"\xff")                        # ...cut short
            assert raw[:2] == b"\x12\x34" and raw[3] & 0x0F == RCODE.FORMERR
            loop = asyncio.get_running_loop()
            transport, _ = await loop.create_datagram_endpoint(
                asyncio.DatagramProtocol, remote_addr=addr)
            transport.sendto(b"\x00")  # too short for a header: dropped silently
            transport.close()
            assert ips(await ask(addr, "web.shop.svc.cluster.local")) == ["10.96.0.10"]
        finally:
            await server.stop()
    run(main())


def test_stop_releases_the_port_and_start_can_listen_twice():
    async def main():
        server, addr = await serving()
        second = await server.start(LO, 0)
        assert second != addr
        assert ips(await ask(second, "web.shop.svc.cluster.local")) == ["10.96.0.10"]
        await server.stop()
        with pytest.raises((TimeoutError, asyncio.TimeoutError, ConnectionError)):
            await ask(addr, "web.shop.svc.cluster.local", timeout=0.3)
        again = DnsServer([])
        assert await again.start(LO, addr[1]) == addr
        await again.stop()
    run(main())
