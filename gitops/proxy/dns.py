"""Cluster DNS: the records Kubernetes' DNS would serve (pure), and a small asyncio server
that answers them and forwards every other name to the host's resolvers.

Records (all TTL 5 s, names case-insensitive, trailing dot optional):

- ``<svc>.<ns>.svc.<domain>``            A     the Service's ClusterIP
- ``<svc>.<ns>.svc.<domain>`` (headless) A     the ready addresses of its Endpoints
- ``<host>.<svc>.<ns>.svc.<domain>``     A     an Endpoints address that carries ``hostname``,
  or a Pod with ``spec.hostname`` and ``spec.subdomain`` = a headless Service (StatefulSets)
- ``<a-b-c-d>.<svc>.<ns>.svc.<domain>``  A     other headless endpoint addresses (the SRV
  targets of a headless Service must resolve)
- ``_<port>._<proto>.<svc>.<ns>.svc.<domain>`` SRV for each named Service port
- ``<svc>.<ns>.svc.<domain>`` (ExternalName) CNAME spec.externalName

A name under the cluster domain that has no record is NXDOMAIN (or NOERROR without answers
when it exists with other types, e.g. AAAA for a Service name). Everything else goes to the
upstream resolvers over UDP (then TCP when a TCP client's answer came back truncated).

Parsing and packing DNS messages is dnslib's; this module decides what to answer.
"""

from __future__ import annotations

import asyncio
import ipaddress
import struct
from collections.abc import Iterable, Iterator, Mapping
from contextlib import suppress
from dataclasses import dataclass

import structlog
from dnslib import (
    CNAME,
    EDNS0,
    QTYPE,
    RCODE,
    RR,
    SOA,
    SRV,
    A,
    DNSError,
    DNSHeader,
    DNSRecord,
)

from gitops.model.dns import CLUSTER_DOMAIN, normalize
from gitops.model.meta import is_deleting
from gitops.model.pods import is_ready
from gitops.proxy.listeners import LogThrottle

log = structlog.get_logger(component="dns")

TTL = 5
DNS_PORT = 53
UPSTREAM_TIMEOUT = 2.0

UpstreamAddr = tuple[str, int]

_UDP_LIMIT = 512            # a UDP answer larger than the client can take is sent truncated
_EDNS_PAYLOAD = 1232        # what we advertise and accept at most (the DNS Flag Day value)
_TCP_IDLE = 10.0            # seconds a TCP client may keep a connection open doing nothing
_MAX_INFLIGHT = 1024        # concurrent UDP queries; past that, queries are dropped (clients retry)


@dataclass(frozen=True, order=True)
class SrvRecord:
    priority: int
    weight: int
    port: int
    target: str


class Zone(Mapping[str, tuple[str, ...]]):
    """The records of the cluster domain. As a Mapping: name -> A record addresses.

    ``srv`` and ``cname`` hold the other record types; ``exists(name)`` is true for every
    owner name and every name between it and the domain (empty non-terminals such as
    ``<ns>.svc.<domain>``), which answer NOERROR rather than NXDOMAIN.
    """

    def __init__(self, domain: str = CLUSTER_DOMAIN,
                 a: Mapping[str, Iterable[str]] | None = None,
                 srv: Mapping[str, Iterable[SrvRecord]] | None = None,
                 cname: Mapping[str, str] | None = None, ttl: int = TTL) -> None:
        self.domain = normalize(domain)
        self.ttl = ttl
        self.a: dict[str, tuple[str, ...]] = {normalize(k): tuple(v) for k, v in (a or {}).items()}
        self.srv: dict[str, tuple[SrvRecord, ...]] = {
            normalize(k): tuple(sorted(v)) for k, v in (srv or {}).items()}
        self.cname: dict[str, str] = {normalize(k): normalize(v) for k, v in (cname or {}).items()}
        self._names: set[str] = {self.domain}
        for name in (*self.a, *self.srv, *self.cname):
            while self.covers(name) and name not in self._names:
                self._names.add(name)
                name = name.partition(".")[2]

    def __getitem__(self, name: str) -> tuple[str, ...]:
        return self.a[normalize(name)]

    def __iter__(self) -> Iterator[str]:
        return iter(self.a)

    def __len__(self) -> int:
        return len(self.a)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Zone):
            return NotImplemented
        return (self.domain, self.ttl, self.a, self.srv, self.cname) == \
            (other.domain, other.ttl, other.a, other.srv, other.cname)

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return (f"Zone({self.domain!r}, a={len(self.a)}, srv={len(self.srv)}, "
                f"cname={len(self.cname)})")

    def covers(self, name: str) -> bool:
        """Whether this zone is authoritative for name (the domain or below it)."""
        name = normalize(name)
        return name == self.domain or name.endswith("." + self.domain)

    def exists(self, name: str) -> bool:
        return normalize(name) in self._names


def _ns_name(meta: dict) -> tuple[str, str]:
    return meta.get("namespace") or "default", meta["name"]


def _ip_key(ip: str) -> tuple[int, int]:
    try:
        addr = ipaddress.ip_address(ip)
    except ValueError:
        return (9, 0)
    return (addr.version, int(addr))


def _is_ipv4(value: object) -> bool:
    try:
        return isinstance(value, str) and ipaddress.ip_address(value).version == 4
    except ValueError:
        return False


def build_zone(services: Iterable[dict], endpoints: Iterable[dict], pods: Iterable[dict],
               domain: str = CLUSTER_DOMAIN) -> Zone:
    """The records for these Services, Endpoints and Pods (raw store objects). Pure."""
    domain = normalize(domain)
    a: dict[str, set[str]] = {}
    srv: dict[str, set[SrvRecord]] = {}
    cname: dict[str, str] = {}
    eps = {_ns_name(e["metadata"]): e for e in endpoints}
    headless: dict[tuple[str, str], dict] = {}

    def add_a(name: str, ip: str) -> None:
        if _is_ipv4(ip):  # A records only; AAAA answers stay empty
            a.setdefault(name, set()).add(ip)

    for svc in services:
        meta, spec = svc["metadata"], svc.get("spec") or {}
        ns, name = _ns_name(meta)
        fqdn = f"{name}.{ns}.svc.{domain}"
        if spec.get("type") == "ExternalName":
            if spec.get("externalName"):
                cname[fqdn] = spec["externalName"]
            continue
        cluster_ip = spec.get("clusterIP")
        ports = [p for p in spec.get("ports") or [] if p.get("name")]
        if cluster_ip == "None":
            headless[(ns, name)] = svc
            _headless_records(fqdn, spec, eps.get((ns, name)), add_a, srv)
        elif cluster_ip:
            add_a(fqdn, cluster_ip)
            for p in ports:
                srv_name = f"_{p['name']}._{p.get('protocol', 'TCP').lower()}.{fqdn}"
                srv.setdefault(srv_name, set()).add(SrvRecord(0, 100, int(p["port"]), fqdn))

    for pod in pods:
        meta, spec = pod["metadata"], pod.get("spec") or {}
        hostname, subdomain = spec.get("hostname"), spec.get("subdomain")
        ip = (pod.get("status") or {}).get("podIP")
        svc = headless.get((meta.get("namespace") or "default", subdomain)) if subdomain else None
        if not (hostname and svc and ip) or is_deleting(pod):
            continue
        if is_ready(pod) or (svc.get("spec") or {}).get("publishNotReadyAddresses"):
            ns = meta.get("namespace") or "default"
            add_a(f"{hostname}.{subdomain}.{ns}.svc.{domain}", ip)

    return Zone(domain, {k: sorted(v, key=_ip_key) for k, v in a.items()}, srv, cname)


def _headless_records(fqdn: str, spec: dict, endpoints: dict | None, add_a, srv) -> None:
    if endpoints is None:
        return
    keys = ["addresses"] + (["notReadyAddresses"] if spec.get("publishNotReadyAddresses") else [])
    for subset in endpoints.get("subsets") or []:
        named = [p for p in subset.get("ports") or [] if p.get("name") and p.get("port")]
        for address in (addr for key in keys for addr in subset.get(key) or []):
            ip = address.get("ip")
            if not ip:
                continue
            add_a(fqdn, ip)
            host = address.get("hostname") or ip.replace(".", "-").replace(":", "-")
            target = f"{host}.{fqdn}"
            add_a(target, ip)
            for p in named:
                srv_name = f"_{p['name']}._{p.get('protocol', 'TCP').lower()}.{fqdn}"
                srv.setdefault(srv_name, set()).add(SrvRecord(0, 100, int(p["port"]), target))


def host_upstreams(resolv_conf: str = "/etc/resolv.conf") -> list[UpstreamAddr]:
    """The host's nameservers, in order, as written (port 53). Missing file: none."""
    try:
        with open(resolv_conf, encoding="utf-8", errors="replace") as f:
            text = f.read()
    except OSError:
        return []
    out: list[UpstreamAddr] = []
    for line in text.splitlines():
        fields = line.split("#", 1)[0].split(";", 1)[0].split()
        if len(fields) >= 2 and fields[0] == "nameserver":
            out.append((fields[1], DNS_PORT))
    return out


# --------------------------------------------------------------------------- the server


class _UdpServer(asyncio.DatagramProtocol):
    def __init__(self, server: DnsServer) -> None:
        self.server = server
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple) -> None:
        self.server._spawn_udp(self, data, addr)

    def error_received(self, exc: Exception) -> None:  # e.g. ICMP unreachable for a reply
        pass


class _UpstreamReply(asyncio.DatagramProtocol):
    def __init__(self, query_id: int) -> None:
        self.query_id = query_id
        self.answer: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()

    def datagram_received(self, data: bytes, addr: tuple) -> None:
        # Ignore anything that is not the answer to our query (late or spoofed datagrams).
        if len(data) >= 12 and struct.unpack("!H", data[:2])[0] == self.query_id \
                and not self.answer.done():
            self.answer.set_result(data)

    def error_received(self, exc: Exception) -> None:
        if not self.answer.done():
            self.answer.set_exception(exc)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.answer.done():
            self.answer.set_exception(exc or ConnectionError("closed"))


class DnsServer:
    """Answers the cluster zone, forwards the rest. Serve it with start() (once per listen
    address; UDP and TCP on the same port), feed it with set_zone() whenever the Services,
    Endpoints or Pods change; set_zone may be called before start and from any thread."""

    def __init__(self, upstreams: list[UpstreamAddr], timeout: float = UPSTREAM_TIMEOUT) -> None:
        self._upstreams = [(str(h), int(p)) for h, p in upstreams]
        self._timeout = timeout
        self._zone = Zone()
        self._udp: list[asyncio.DatagramTransport] = []
        self._tcp: list[asyncio.Server] = []
        self._bound: list[UpstreamAddr] = []
        self._tasks: set[asyncio.Task] = set()
        self._throttle = LogThrottle()

    @property
    def zone(self) -> Zone:
        return self._zone

    @property
    def upstreams(self) -> list[UpstreamAddr]:
        """The upstreams actually used: those that would not loop back to this server."""
        return [u for u in self._upstreams if not self._loops(u)]

    def set_zone(self, zone: Zone) -> None:
        if zone != self._zone:
            log.debug("dns_zone_updated", names=len(zone), srv=len(zone.srv),
                      cname=len(zone.cname))
        self._zone = zone

    async def start(self, host: str, port: int) -> tuple[str, int]:
        """Listen on host:port (UDP and TCP); port 0 picks one free for both. Returns the
        address actually bound. Call again to listen on another address too."""
        loop = asyncio.get_running_loop()
        for attempt in range(10):
            udp, _ = await loop.create_datagram_endpoint(
                lambda: _UdpServer(self), local_addr=(host, port))
            bound = udp.get_extra_info("sockname")[:2]
            try:
                tcp = await asyncio.start_server(self._serve_tcp, host, bound[1],
                                                 reuse_address=True)
            except OSError:
                udp.close()
                if port or attempt == 9:  # a fixed port is taken; a random one may retry
                    raise
                continue
            break
        self._udp.append(udp)
        self._tcp.append(tcp)
        self._bound.append((bound[0], bound[1]))
        for u in self._upstreams:
            if self._loops(u):
                log.warning("dns_upstream_skipped", upstream=_fmt(u), reason="loops back to us")
        log.info("dns_server_started", addr=_fmt(bound),
                 upstreams=[_fmt(u) for u in self.upstreams], domain=self._zone.domain)
        return bound[0], bound[1]

    async def stop(self) -> None:
        for udp in self._udp:
            udp.close()
        for tcp in self._tcp:
            tcp.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for tcp in self._tcp:
            with suppress(Exception):
                await tcp.wait_closed()
        if self._bound:
            log.info("dns_server_stopped", addrs=[_fmt(b) for b in self._bound])
        self._udp, self._tcp, self._bound = [], [], []

    def _loops(self, upstream: UpstreamAddr) -> bool:
        host, port = upstream
        for bhost, bport in self._bound:
            if port != bport:
                continue
            if host == bhost:
                return True
            with suppress(ValueError):
                loopback = ipaddress.ip_address(host.split("%")[0]).is_loopback
                if bhost in ("0.0.0.0", "::") and loopback:
                    return True
        return False

    # ---- transports

    def _spawn_udp(self, proto: _UdpServer, data: bytes, addr: tuple) -> None:
        if len(self._tasks) >= _MAX_INFLIGHT:
            self._note("warning", "dns_overloaded", "udp", inflight=len(self._tasks))
            return
        task = asyncio.get_running_loop().create_task(self._answer_udp(proto, data, addr))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _answer_udp(self, proto: _UdpServer, data: bytes, addr: tuple) -> None:
        try:
            reply = await self.handle(data, tcp=False)
        except Exception as e:  # noqa: BLE001 - a bug must cost one query, not the server
            log.error("dns_query_error", error=repr(e))
            return
        if reply is not None and proto.transport is not None and not proto.transport.is_closing():
            proto.transport.sendto(reply, addr)

    async def _serve_tcp(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
        try:
            while True:
                async with asyncio.timeout(_TCP_IDLE):
                    size = struct.unpack("!H", await reader.readexactly(2))[0]
                    data = await reader.readexactly(size)
                reply = await self.handle(data, tcp=True)
                if reply is None:
                    break
                writer.write(struct.pack("!H", len(reply)) + reply)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, TimeoutError):
            pass
        except Exception as e:  # noqa: BLE001 - likewise: one connection, not the server
            log.error("dns_query_error", error=repr(e), transport="tcp")
        finally:
            if task is not None:
                self._tasks.discard(task)
            writer.close()

    # ---- answering

    async def handle(self, data: bytes, tcp: bool = False) -> bytes | None:
        """One DNS message in, the reply out (None: send nothing)."""
        try:
            query = DNSRecord.parse(data)
        except (DNSError, struct.error, IndexError, ValueError, UnicodeError):
            self._note("debug", "dns_query_malformed", "parse", size=len(data))
            return _formerr(data)
        if query.header.qr or not query.questions:
            return None if query.header.qr else _formerr(data)
        if query.header.opcode != 0:  # only QUERY
            reply = query.reply()
            reply.header.rcode = RCODE.NOTIMP
            return reply.pack()
        zone = self._zone
        qname = str(query.q.qname)
        if zone.covers(qname):
            reply = await self._local(query, zone)
            return self._fit(query, reply, tcp)
        return await self._forward(data, query, tcp)

    async def _local(self, query: DNSRecord, zone: Zone) -> DNSRecord:
        q = query.q
        name, qtype = normalize(str(q.qname)), q.qtype
        reply = query.reply(ra=1, aa=1)
        if _edns(query) is not None:
            reply.add_ar(EDNS0(udp_len=_EDNS_PAYLOAD))
        if not zone.exists(name):
            reply.header.rcode = RCODE.NXDOMAIN
            reply.add_auth(_soa(zone))
            return reply
        target = zone.cname.get(name)
        if target is not None and qtype != QTYPE.CNAME:
            reply.add_answer(RR(q.qname, QTYPE.CNAME, rdata=CNAME(target + "."), ttl=zone.ttl))
            await self._chase(reply, target, qtype, zone)
            return reply
        if qtype in (QTYPE.A, QTYPE.ANY):
            for ip in zone.a.get(name, ()):
                reply.add_answer(RR(q.qname, QTYPE.A, rdata=A(ip), ttl=zone.ttl))
        if qtype in (QTYPE.SRV, QTYPE.ANY):
            for rec in zone.srv.get(name, ()):
                reply.add_answer(RR(q.qname, QTYPE.SRV, ttl=zone.ttl, rdata=SRV(
                    rec.priority, rec.weight, rec.port, rec.target + ".")))
                for ip in zone.a.get(rec.target, ()):
                    reply.add_ar(RR(rec.target + ".", QTYPE.A, rdata=A(ip), ttl=zone.ttl))
        if qtype == QTYPE.CNAME and target is not None:
            reply.add_answer(RR(q.qname, QTYPE.CNAME, rdata=CNAME(target + "."), ttl=zone.ttl))
        if qtype == QTYPE.SOA and name == zone.domain:
            reply.add_answer(_soa(zone))
        if not reply.rr:
            reply.add_auth(_soa(zone))  # NODATA: the name exists, not with this type
        return reply

    async def _chase(self, reply: DNSRecord, target: str, qtype: int, zone: Zone) -> None:
        """Resolve an ExternalName's target so stub resolvers get addresses, not just a CNAME."""
        if zone.covers(target):
            if qtype in (QTYPE.A, QTYPE.ANY):
                for ip in zone.a.get(target, ()):
                    reply.add_answer(RR(target + ".", QTYPE.A, rdata=A(ip), ttl=zone.ttl))
            return
        try:
            sub = DNSRecord.question(target, QTYPE[qtype])
        except (DNSError, AttributeError, KeyError):
            return
        raw = await self._ask_upstreams(sub.pack(), sub, tcp=False)
        if raw is None:
            return
        with suppress(DNSError, struct.error, IndexError, ValueError, UnicodeError):
            answer = DNSRecord.parse(raw)
            for rr in answer.rr:
                reply.add_answer(rr)

    def _fit(self, query: DNSRecord, reply: DNSRecord, tcp: bool) -> bytes:
        packed = reply.pack()
        if tcp:
            return packed
        edns = _edns(query)
        limit = max(_UDP_LIMIT, min(edns.rclass, _EDNS_PAYLOAD)) if edns is not None else _UDP_LIMIT
        if len(packed) <= limit:
            return packed
        short = query.reply(ra=1, aa=1)
        short.header.tc = 1
        return short.pack()

    async def _forward(self, data: bytes, query: DNSRecord, tcp: bool) -> bytes:
        raw = await self._ask_upstreams(data, query, tcp)
        if raw is not None:
            return raw
        reply = query.reply(ra=1, aa=0)
        reply.header.rcode = RCODE.SERVFAIL
        return reply.pack()

    async def _ask_upstreams(self, data: bytes, query: DNSRecord, tcp: bool) -> bytes | None:
        """The first answer from the upstreams in turn: UDP, then TCP when the answer came
        back truncated and the client is on TCP (a UDP client gets TC and retries itself)."""
        for upstream in self.upstreams:
            try:
                raw = await self._udp_exchange(upstream, data, query.header.id)
                if tcp and len(raw) > 3 and raw[2] & 0x02:  # TC bit
                    raw = await self._tcp_exchange(upstream, data)
            except (OSError, TimeoutError, asyncio.IncompleteReadError, struct.error) as e:
                why = "timeout" if isinstance(e, TimeoutError) else str(e) or type(e).__name__
                self._note("warning", "dns_upstream_failed", upstream, upstream=_fmt(upstream),
                           error=why)
                continue
            return raw
        if not self.upstreams:
            self._note("warning", "dns_no_upstream", "none", name=str(query.q.qname))
        return None

    async def _udp_exchange(self, upstream: UpstreamAddr, data: bytes, query_id: int) -> bytes:
        loop = asyncio.get_running_loop()
        async with asyncio.timeout(self._timeout):
            transport, proto = await loop.create_datagram_endpoint(
                lambda: _UpstreamReply(query_id), remote_addr=upstream)
            try:
                transport.sendto(data)
                return await proto.answer
            finally:
                transport.close()

    async def _tcp_exchange(self, upstream: UpstreamAddr, data: bytes) -> bytes:
        async with asyncio.timeout(self._timeout):
            reader, writer = await asyncio.open_connection(*upstream)
            try:
                writer.write(struct.pack("!H", len(data)) + data)
                await writer.drain()
                size = struct.unpack("!H", await reader.readexactly(2))[0]
                return await reader.readexactly(size)
            finally:
                writer.close()

    def _note(self, level: str, event: str, key: object, **fields: object) -> None:
        self._throttle.note(log, level, event, key, **fields)


def _edns(query: DNSRecord) -> RR | None:
    return next((rr for rr in query.ar if rr.rtype == QTYPE.OPT), None)


def _soa(zone: Zone) -> RR:
    origin = zone.domain + "."
    return RR(origin, QTYPE.SOA, ttl=zone.ttl, rdata=SOA(
        "ns.dns." + origin, "hostmaster." + origin, (1, 7200, 1800, 86400, zone.ttl)))


def _formerr(data: bytes) -> bytes | None:
    """FORMERR echoing the query id, or nothing when not even a header is there."""
    if len(data) < 12:
        return None
    header = DNSHeader(id=struct.unpack("!H", data[:2])[0], qr=1, ra=1, rcode=RCODE.FORMERR)
    return DNSRecord(header).pack()


def _fmt(addr: tuple) -> str:
    host, port = addr[0], addr[1]
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


__all__ = ["DNS_PORT", "TTL", "DnsServer", "SrvRecord", "Zone", "build_zone", "host_upstreams"]
