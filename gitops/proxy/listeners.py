"""Userspace Service proxy: one listener per (host, port) for TCP and per (host, port, "UDP")
for UDP, each forwarding to an endpoint chosen by that listener's Balancer. With
gitops.proxy.tcp, the only socket code of the proxy.

TCP connections are relayed by gitops.proxy.tcp: raw non-blocking sockets in one
edge-triggered epoll set the event loop watches as a single fd, small messages copied
once, bulk moved with splice(2) (zero copy), no Task per connection. It runs on any asyncio
loop (uvloop is faster).

UDP has no connections, so the proxy makes flows: the first datagram from a client address
picks an endpoint (round-robin, or the client IP's pin with sessionAffinity) and opens a
connected socket to it; later datagrams from that address go through the same socket, and
replies arriving on it are sent back to the client from the listening socket. A flow ends
after udp_idle_timeout without traffic in either direction, or when its endpoint leaves
the route. Datagrams are dropped, never queued without bound, when a socket backs up.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable, Mapping, Sequence

import structlog

from gitops.proxy.balancer import Balancer, Endpoint
from gitops.proxy.routes import PROTOCOLS, ListenAddr, Route, listen_addr, protocol_of
from gitops.proxy.tcp import Engine, TcpConn, TcpListener
from gitops.proxy.workers import WorkerPool

log = structlog.get_logger(component="proxy")

_BACKLOG = 1024            # bursts of new connections should queue, not get refused
_LOG_WINDOW = 10.0         # seconds between repeated lines of the same kind for the same key
_UDP_IDLE = 30.0           # seconds a UDP flow lives without traffic either way
_UDP_MAX_FLOWS = 1024      # per listener (each flow holds a socket); beyond it the oldest goes
_UDP_PENDING = 64          # datagrams held per flow while its upstream socket opens
_UDP_BUFFERED = 1 << 20    # bytes queued in a datagram transport beyond which we drop


class LogThrottle:
    """At most one log line per key per window; the next line says how many were dropped.
    A dead Service can see thousands of connection attempts a second; the logs must not."""

    def __init__(self, window: float = _LOG_WINDOW, clock: Callable[[], float] = time.monotonic) -> None:
        self._window, self._clock = window, clock
        self._seen: dict[object, list] = {}  # key -> [last emitted at, suppressed since]

    def allow(self, key: object) -> int | None:
        """None: drop this line. Otherwise: emit it, with the returned suppressed count."""
        now = self._clock()
        entry = self._seen.get(key)
        if entry is not None and now - entry[0] < self._window:
            entry[1] += 1
            return None
        if len(self._seen) > 4096:  # keys include endpoints, which churn; forget stale ones
            self._seen = {k: v for k, v in self._seen.items() if now - v[0] < self._window}
        self._seen[key] = [now, 0]
        return entry[1] if entry else 0

    def note(self, logger, level: str, event: str, key: object, **fields: object) -> None:
        """Log `event` unless a line for `key` went out within the window."""
        suppressed = self.allow((event, key))
        if suppressed is None:
            return
        if suppressed:
            fields["suppressed"] = suppressed
        getattr(logger, level)(event, **fields)


class _TcpListener:
    """A TCP listen address: its Balancer, and the socket work in gitops.proxy.tcp. Also
    what the connections report dial outcomes to (logs, affinity after a fall-through).

    It listens only while its route has a ready endpoint: without one, connect() is
    refused (ECONNREFUSED), as kube-proxy rejects it, instead of accepted and then reset,
    so clients that wait for the port to open wait for a backend. The address is still
    checked on each apply (a bind without listen), so a port another process holds is
    reported whether or not endpoints exist."""

    def __init__(self, addr: ListenAddr, name: str, route: Route, proxy: Proxy) -> None:
        self.addr, self.name, self.proxy = addr, name, proxy
        self.balancer = Balancer(route.endpoints, affinity_timeout=route.affinity_timeout)
        self.tcp: TcpListener | None = None
        self.retired: list[TcpListener] = []   # stopped accepting, connections draining
        self.shared = False   # worker processes accept on it too

    @property
    def active(self) -> int:
        """Open client connections, including ones still draining after removal."""
        self.retired = [t for t in self.retired if t.conns]
        return (len(self.tcp.conns) if self.tcp else 0) + sum(len(t.conns) for t in self.retired)

    async def open(self, proxy: Proxy) -> None:
        self.sync_socket()

    def sync_socket(self) -> None:
        """Listen when some endpoint is ready, stop when none is. Raises OSError when the
        address cannot be bound (another process holds it)."""
        host, port = self.addr[:2]
        if self.balancer.endpoints or not self.proxy._refuse_idle:
            if self.tcp is None:
                sock = TcpListener.bind(host, port, _BACKLOG)
                self.tcp = TcpListener(self.proxy._engine(), sock, self.balancer.candidates,
                                       self.proxy._dial_timeout,
                                       lambda: self.balancer.affinity_timeout is not None,
                                       self)
                log.info("proxy_listening", listener=self.name, addr=_fmt(self.addr))
            return
        if self.tcp is not None:
            self.tcp.close()
            self.retired.append(self.tcp)
            self.tcp = None
            log.info("proxy_refusing", listener=self.name, addr=_fmt(self.addr),
                     reason="no ready endpoint")
        if not self.shared:     # else the workers hold it until told to close (next)
            TcpListener.probe(host, port)

    def update(self, route: Route, name: str) -> bool:
        before = (self.balancer.endpoints, self.balancer.affinity_timeout)
        self.balancer.update(route.endpoints)
        self.balancer.affinity_timeout = route.affinity_timeout
        self.name = name
        return (self.balancer.endpoints, self.balancer.affinity_timeout) != before

    def close(self) -> None:
        # Only stops accepting: established connections keep draining (Proxy.close()
        # aborts them itself).
        if self.tcp is not None:
            self.tcp.close()
            self.retired.append(self.tcp)
            self.tcp = None

    # -- what connections report ---------------------------------------------------------
    def no_endpoint(self) -> None:
        self.proxy._note("warning", "proxy_no_endpoint", ("none", self.addr), listener=self.name)

    def endpoint_failed(self, conn: TcpConn, endpoint: Endpoint, error: BaseException) -> None:
        ip, port = endpoint
        self.proxy._note("debug", "proxy_endpoint_dial_failed", ("ep", self.addr, ip, port),
                         listener=self.name, endpoint=f"{ip}:{port}", error=_why(error))

    def fell_through(self, conn: TcpConn, endpoint: Endpoint) -> None:
        # With affinity, the client now belongs to the endpoint that answered.
        self.balancer.stick(conn.client_ip, endpoint)

    def dial_failed(self, conn: TcpConn, error: BaseException | None) -> None:
        self.proxy._note("warning", "proxy_dial_failed", ("all", self.addr), listener=self.name,
                         tried=len(conn.candidates), error=_why(error))

    def accept_failed(self, error: OSError) -> None:
        self.proxy._note("warning", "proxy_accept_failed", ("accept", self.addr),
                         listener=self.name, error=_why(error))


class _UdpServer(asyncio.DatagramProtocol):
    """The listening socket: datagrams from clients in, replies to clients out."""

    def __init__(self, listener: _UdpListener) -> None:
        self.listener = listener

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.listener.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple) -> None:
        self.listener.from_client(data, addr)

    def error_received(self, exc: Exception) -> None:
        pass  # a reply to a client that went away; the flow's idle timer cleans up


class _UdpFlow(asyncio.DatagramProtocol):
    """One client address and its connected socket to the endpoint it was given."""

    __slots__ = ("listener", "client", "endpoint", "transport", "pending", "last", "timer",
                 "opening", "closed")

    def __init__(self, listener: _UdpListener, client: tuple, endpoint: Endpoint, now: float) -> None:
        self.listener, self.client, self.endpoint = listener, client, endpoint
        self.transport: asyncio.DatagramTransport | None = None
        self.pending: list[bytes] | None = []  # until the upstream socket is ready
        self.last = now                           # last datagram either way (loop.time())
        self.timer: asyncio.TimerHandle | None = None
        self.opening: asyncio.Task | None = None
        self.closed = False

    def send(self, data: bytes) -> bool:
        if self.pending is not None:
            if len(self.pending) >= _UDP_PENDING:
                return False
            self.pending.append(data)
            return True
        if self.transport.get_write_buffer_size() > _UDP_BUFFERED:
            return False
        self.transport.sendto(data)
        return True

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        if self.closed:
            transport.close()
            return
        pending, self.pending = self.pending or [], None
        for data in pending:
            self.transport.sendto(data)

    def datagram_received(self, data: bytes, addr: tuple) -> None:
        self.last = self.listener.loop.time()
        self.listener.to_client(data, self.client)

    def error_received(self, exc: Exception) -> None:
        # On a connected socket this is the endpoint's ICMP error (port unreachable: nothing
        # listens there). End the flow so the client's next datagram picks again.
        self.listener.flow_failed(self, exc)

    def connection_lost(self, exc: Exception | None) -> None:
        self.listener.forget(self)

    def close(self) -> None:
        if self.closed:
            return
        self.listener.forget(self)  # at once: the client's next datagram starts a new flow
        if self.opening is not None and not self.opening.done():
            self.opening.cancel()
        if self.transport is not None:
            self.transport.close()


class _UdpListener:
    """Same surface as _TcpListener (open/update/close, balancer, active)."""

    def __init__(self, addr: ListenAddr, name: str, route: Route, proxy: Proxy) -> None:
        self.addr, self.name, self.proxy = addr, name, proxy
        self.balancer = Balancer(route.endpoints, affinity_timeout=route.affinity_timeout)
        self.transport: asyncio.DatagramTransport | None = None
        self.flows: dict[tuple, _UdpFlow] = {}  # client address -> flow, oldest first
        self.loop = asyncio.get_running_loop()

    @property
    def active(self) -> int:
        return len(self.flows)

    async def open(self, proxy: Proxy) -> None:
        host, port = self.addr[:2]
        await self.loop.create_datagram_endpoint(lambda: _UdpServer(self), local_addr=(host, port))

    def update(self, route: Route, name: str) -> bool:
        before = (self.balancer.endpoints, self.balancer.affinity_timeout)
        self.balancer.update(route.endpoints)
        self.balancer.affinity_timeout = route.affinity_timeout
        self.name = name
        alive = set(self.balancer.endpoints)
        for flow in [f for f in self.flows.values() if f.endpoint not in alive]:
            flow.close()  # unlike TCP there is nothing to drain: the next datagram re-picks
        return (self.balancer.endpoints, self.balancer.affinity_timeout) != before

    def close(self) -> None:
        # Replies leave through the listening socket, so flows cannot outlive it.
        for flow in list(self.flows.values()):
            flow.close()
        if self.transport is not None:
            self.transport.close()

    def from_client(self, data: bytes, client: tuple) -> None:
        flow = self.flows.get(client)
        if flow is None:
            flow = self._new_flow(client)
            if flow is None:
                return
        flow.last = self.loop.time()
        if not flow.send(data):
            self.proxy._note("debug", "proxy_udp_dropped", ("udp_drop", self.addr),
                             listener=self.name, direction="to_endpoint")

    def to_client(self, data: bytes, client: tuple) -> None:
        t = self.transport
        if t is None or t.is_closing() or t.get_write_buffer_size() > _UDP_BUFFERED:
            self.proxy._note("debug", "proxy_udp_dropped", ("udp_drop", self.addr),
                             listener=self.name, direction="to_client")
            return
        t.sendto(data, client)

    def _new_flow(self, client: tuple) -> _UdpFlow | None:
        candidates = self.balancer.candidates(client[0])
        if not candidates:
            self.proxy._note("warning", "proxy_no_endpoint", ("none", self.addr), listener=self.name)
            return None
        if len(self.flows) >= self.proxy._udp_max_flows:
            next(iter(self.flows.values())).close()  # the oldest flow makes room
        flow = _UdpFlow(self, client, candidates[0], self.loop.time())
        self.flows[client] = flow
        flow.opening = self.loop.create_task(self._open_flow(flow))
        flow.timer = self.loop.call_at(flow.last + self.proxy._udp_idle, self._expire, flow)
        return flow

    async def _open_flow(self, flow: _UdpFlow) -> None:
        try:
            await self.loop.create_datagram_endpoint(lambda: flow, remote_addr=flow.endpoint)
        except OSError as e:
            self.proxy._note("warning", "proxy_udp_open_failed", ("udp_open", self.addr, flow.endpoint),
                             listener=self.name, endpoint=_fmt(flow.endpoint), error=_why(e))
            flow.opening = None
            flow.close()

    def _expire(self, flow: _UdpFlow) -> None:
        # Re-armed lazily: traffic only moves flow.last, it never touches the timer.
        due = flow.last + self.proxy._udp_idle
        if self.loop.time() < due:
            flow.timer = self.loop.call_at(due, self._expire, flow)
            return
        flow.timer = None
        flow.close()

    def flow_failed(self, flow: _UdpFlow, exc: Exception) -> None:
        self.proxy._note("debug", "proxy_endpoint_dial_failed", ("ep", self.addr, *flow.endpoint),
                         listener=self.name, endpoint=_fmt(flow.endpoint), error=_why(exc))
        flow.close()

    def forget(self, flow: _UdpFlow) -> None:
        flow.closed = True
        if flow.timer is not None:
            flow.timer.cancel()
            flow.timer = None
        if self.flows.get(flow.client) is flow:
            del self.flows[flow.client]


class Proxy:
    """Level-triggered set of listeners: apply() makes it exactly the given routes."""

    def __init__(self, dial_timeout: float = 2.0, udp_idle_timeout: float = _UDP_IDLE,
                 udp_max_flows: int = _UDP_MAX_FLOWS, workers: int | None = None,
                 refuse_without_endpoints: bool = True) -> None:
        """workers: extra processes accepting on the TCP listeners (gitops.proxy.workers);
        None reads GITOPS_PROXY_WORKERS (default 0: all in this process).
        refuse_without_endpoints: a TCP listener without endpoints stops listening
        (Services); False keeps it bound, accepting and closing (a port-forward keeps the
        local port it announced)."""
        self._refuse_idle = refuse_without_endpoints
        if workers is None:
            workers = int(os.environ.get("GITOPS_PROXY_WORKERS", "0") or 0)
        self._workers_wanted = max(0, workers)
        self._pool: WorkerPool | None = None
        self._pool_broken = False      # a worker exited: this process accepts everything
        self._dial_timeout = dial_timeout
        self._udp_idle = udp_idle_timeout
        self._udp_max_flows = udp_max_flows
        self._listeners: dict[ListenAddr, _TcpListener | _UdpListener] = {}
        self._tcp: Engine | None = None      # made with the first TCP listener
        self._throttle = LogThrottle()
        self._lock = asyncio.Lock()  # apply() awaits binds; overlapping calls must not interleave
        self._routed: frozenset[str] = frozenset()

    async def __aenter__(self) -> Proxy:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @property
    def _conns(self) -> set[TcpConn]:
        """Every open TCP connection, draining ones too."""
        return self._tcp.conns if self._tcp else set()

    def _engine(self) -> Engine:
        if self._tcp is None:
            self._tcp = Engine(asyncio.get_running_loop())
        return self._tcp

    def listening(self) -> set[ListenAddr]:
        return set(self._listeners)

    def routes_to(self, ip: str) -> bool:
        """Whether a new connection may still go to this endpoint IP. Safe from any thread
        (the node agent asks before it signals a deleted pod)."""
        return ip in self._routed

    def _note_routed(self) -> None:
        self._routed = frozenset(ip for lst in self._listeners.values()
                                 for ip, _ in lst.balancer.endpoints)

    async def apply(self, routes: Mapping[ListenAddr, Route | Sequence[Endpoint]],
                    names: Mapping[ListenAddr, str] | None = None) -> dict[ListenAddr, str]:
        """Open, update in place, or close listeners so they match routes.

        Keys: (host, port) is TCP; (host, port, "UDP") is UDP ((host, port, "TCP") is taken
        as (host, port)). Values: a Route (endpoints + affinity) or a plain endpoint list
        (no affinity). Returns the keys that could not be applied (bind error, unknown
        protocol), with the reason; the rest is applied anyway."""
        async with self._lock:
            return await self._apply(routes, names or {})

    async def _apply(self, routes: Mapping[ListenAddr, Route | Sequence[Endpoint]],
                     names: Mapping[ListenAddr, str]) -> dict[ListenAddr, str]:
        errors: dict[ListenAddr, str] = {}
        if self._pool_broken or (self._pool is not None and self._pool.dead()):
            await self._replace_pool()
        wanted: dict[ListenAddr, tuple[Route, str | None]] = {}
        for key, route in routes.items():
            protocol = protocol_of(key)
            if protocol not in PROTOCOLS:
                errors[key] = f"unsupported protocol {protocol}"
                continue
            addr = listen_addr(str(key[0]), int(key[1]), protocol)
            wanted[addr] = (route if isinstance(route, Route) else Route(tuple(route)),
                            names.get(key, names.get(addr)))
        for addr in [a for a in self._listeners if a not in wanted]:
            lst = self._listeners.pop(addr)
            lst.close()
            if isinstance(lst, _TcpListener) and lst.shared:
                await self._to_workers(("close", addr))
            log.info("proxy_listener_closed", listener=lst.name, addr=_fmt(addr), draining=lst.active)
        for addr, (route, name) in wanted.items():
            name = name or _fmt(addr)
            lst = self._listeners.get(addr)
            if lst is not None:
                changed = lst.update(route, name)
                if changed:
                    log.info("proxy_endpoints_updated", listener=name,
                             endpoints=len(lst.balancer.endpoints),
                             affinity_timeout=lst.balancer.affinity_timeout)
                if isinstance(lst, _TcpListener):
                    was = lst.tcp
                    try:
                        lst.sync_socket()
                    except OSError as e:     # endpoints came back, the port was taken
                        errors[addr] = str(e)
                        self._note("warning", "proxy_listen_failed", ("listen", addr),
                                   listener=name, addr=_fmt(addr), error=str(e))
                    if changed or lst.tcp is not was or not lst.shared:
                        await self._share(lst)
                continue
            lst = _TcpListener(addr, name, route, self) if protocol_of(addr) == "TCP" \
                else _UdpListener(addr, name, route, self)
            try:
                await lst.open(self)
            except Exception as e:  # one bad route never stops the others (bind error, bad host)
                errors[addr] = str(e)
                self._note("warning", "proxy_listen_failed", ("listen", addr),
                           listener=name, addr=_fmt(addr), error=str(e))
                continue
            self._listeners[addr] = lst
            log.info("proxy_listener_opened", listener=name, addr=_fmt(addr),
                     endpoints=len(lst.balancer.endpoints),
                     affinity_timeout=lst.balancer.affinity_timeout)
            if isinstance(lst, _TcpListener):
                await self._share(lst)
        self._note_routed()
        return errors

    async def _share(self, lst: _TcpListener) -> None:
        """Bring the workers in line with one TCP listener: accepting with the same
        endpoints, unless it has sessionAffinity (pins live in this process only)."""
        if not self._workers_wanted:
            return
        if self._pool is None:
            self._pool = await asyncio.to_thread(WorkerPool, self._workers_wanted,
                                                 self._dial_timeout)
            self._pool.watch(asyncio.get_running_loop(), self._worker_gone)
        want = lst.balancer.affinity_timeout is None and lst.tcp is not None
        endpoints = list(lst.balancer.endpoints)
        if want and not lst.shared:
            if await self._to_workers(("open", lst.addr, endpoints, lst.name),
                                      lst.tcp.sock.fileno()) and not self._pool_broken:
                # The data path is the workers' alone: connections never wait behind
                # this process's other work (a node agent's passes, its GIL), and no
                # connection wakes two processes.
                lst.tcp.pause()
            lst.shared = True
        elif want:
            await self._to_workers(("update", lst.addr, endpoints))
        elif lst.shared:
            await self._to_workers(("close", lst.addr))
            lst.shared = False
            if lst.tcp is not None:
                lst.tcp.resume()

    async def _to_workers(self, message: tuple, fd: int | None = None) -> bool:
        """True when every worker did it."""
        if self._pool is None:
            return False
        ok = True
        for error in await asyncio.to_thread(self._pool.call, message, fd):
            if error:
                ok = False
                self._note("warning", "proxy_worker_failed", ("worker", message[0], message[1]),
                           op=message[0], addr=_fmt(message[1]), error=error)
        return ok

    def _worker_gone(self, pid: int) -> None:
        """A worker exited (killed, out of memory): this process accepts on every
        listener again at once; the next apply starts a new set of workers."""
        if self._pool_broken:
            return
        self._pool_broken = True
        log.warning("proxy_worker_exited", pid=pid)
        for lst in self._listeners.values():
            if isinstance(lst, _TcpListener) and lst.tcp is not None:
                lst.tcp.resume()

    async def _replace_pool(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.unwatch()
            await asyncio.to_thread(pool.close)
        for lst in self._listeners.values():
            if isinstance(lst, _TcpListener):
                lst.shared = False      # the next _share opens it in the new workers
                if lst.tcp is not None:
                    lst.tcp.resume()    # meanwhile this process accepts
        self._pool_broken = False

    async def close(self) -> None:
        """Stop every listener, then end every connection, draining or not."""
        async with self._lock:
            await self._close()

    async def _close(self) -> None:
        for lst in self._listeners.values():
            lst.close()
        self._listeners.clear()
        self._note_routed()
        if self._pool is not None:
            self._pool.unwatch()
            await asyncio.to_thread(self._pool.close)
            self._pool = None
        self._pool_broken = False
        if self._tcp is not None:
            self._tcp.close()
            self._tcp = None
        await asyncio.sleep(0)  # let closed UDP transports run connection_lost and free their fds

    def _note(self, level: str, event: str, key: object, **fields: object) -> None:
        self._throttle.note(log, level, event, key, **fields)


def _fmt(addr: Sequence) -> str:
    host, port = addr[0], addr[1]
    out = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    return out if len(addr) < 3 or protocol_of(addr) == "TCP" else f"{out}/{protocol_of(addr).lower()}"


def _why(e: BaseException | None) -> str:
    if isinstance(e, TimeoutError):
        return "timeout"
    if e is None:
        return ""
    errno = getattr(e, "errno", None)  # asyncio's "Connect call failed (...)" hides the reason
    return os.strerror(errno) if errno else (str(e) or type(e).__name__)
