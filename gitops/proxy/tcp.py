"""TCP forwarding for the proxy: non-blocking sockets in one edge-triggered epoll set of
our own, small exchanges copied through one shared buffer, bulk transfers moved by
splice(2) through a pipe (zero copy: socket -> pipe -> socket inside the kernel).

The event loop (asyncio's or uvloop) watches a single fd, the epoll instance; each socket
is registered once, for input and output, edge-triggered, and never modified: closing it
is its removal. Per connection that is two epoll_ctl calls, against a dozen when every
pause and resume goes through loop.add_reader/remove_reader. Edge-triggered means a
handler works until the socket is drained (a read shorter than the buffer proves it, or
EAGAIN), and a long bulk run yields to the loop after a few rounds.

Per connection: accept, a non-blocking connect (its timeout a timer, not a Task), then per
message one recv and one send. The first read that fills the 64 KiB buffer switches that
direction to splice, a chunk being whatever the socket holds up to the pipe's capacity
(1 MiB when the kernel allows it). Back-pressure: while a chunk cannot be written on, its
source is not read (at most one buffer or pipe's worth is in flight per direction). Pipes
are pooled: a connection that ends cleanly leaves them empty.

Half-close passes through (FIN becomes shutdown(SHUT_WR) once everything was written); a
reset or write error on one side resets the other. Linux only (epoll, splice), like the
rest of the proxy (loopback VIPs).
"""

from __future__ import annotations

import _socket
import asyncio
import errno
import fcntl
import os
import resource
import select
import socket
import struct
from collections.abc import Callable

import structlog

log = structlog.get_logger(component="proxy")

_SPLICE = os.SPLICE_F_MOVE | os.SPLICE_F_NONBLOCK
_PIPE_SIZE = 1 << 20                            # bytes per pipe if pipe-max-size allows
_F_SETPIPE_SZ = getattr(fcntl, "F_SETPIPE_SZ", 1031)
_POOL_MAX = 256                                 # idle pipes kept for reuse
_COPY_SIZE = 64 * 1024                          # reads below this are copied, not spliced
_ROUNDS = 8                                     # chunks per direction before yielding
_ACCEPT_BATCH = 64                              # connections accepted per wakeup at most
_ACCEPT_BACKOFF = 0.1                           # seconds without accepting after EMFILE
_EVENTS_BATCH = 512                             # epoll events handled per wakeup at most
_RESET = struct.pack("ii", 1, 0)                # SO_LINGER on, 0 s: close() sends RST
# The C socket type: the per-connection sockets skip socket.socket's Python layer (its
# __init__ and the enum conversions of family/type), which costs per connection.
_AF_INET, _AF_INET6 = int(socket.AF_INET), int(socket.AF_INET6)
_STREAM, _STREAM_NB = int(socket.SOCK_STREAM), int(socket.SOCK_STREAM | socket.SOCK_NONBLOCK)
_SOCKET_EVENTS = select.EPOLLIN | select.EPOLLOUT | select.EPOLLRDHUP | select.EPOLLET
_HUP = select.EPOLLRDHUP | select.EPOLLHUP | select.EPOLLERR
_READ = select.EPOLLIN | select.EPOLLRDHUP | select.EPOLLHUP | select.EPOLLERR
_WRITE = select.EPOLLOUT | select.EPOLLHUP | select.EPOLLERR


class Poller:
    """One epoll instance for the proxy's TCP sockets, watched by the event loop as one fd.
    Handlers get the event mask."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self._ep = select.epoll()
        self._handlers: dict[int, Callable[[int], None]] = {}
        # fds registered while a batch is being handled: an event later in that batch for
        # the same number belongs to the socket closed before (fd numbers are reused).
        self._fresh: set[int] = set()
        loop.add_reader(self._ep.fileno(), self._dispatch)

    def add(self, sock: socket.socket, handler: Callable[[int], None],
            events: int = _SOCKET_EVENTS) -> None:
        fd = sock.fileno()
        self._handlers[fd] = handler
        self._fresh.add(fd)
        self._ep.register(fd, events)

    def drop(self, sock: socket.socket) -> None:
        """Forget a socket that is about to be closed (closing removes it from epoll)."""
        self._handlers.pop(sock.fileno(), None)

    def remove(self, sock: socket.socket) -> None:
        """Stop watching a socket that stays open (a listener backing off)."""
        self._handlers.pop(sock.fileno(), None)
        try:
            self._ep.unregister(sock.fileno())
        except OSError:
            pass

    def _dispatch(self) -> None:
        handlers, fresh = self._handlers, self._fresh
        fresh.clear()
        for fd, events in self._ep.poll(0, _EVENTS_BATCH):
            handler = handlers.get(fd)
            if handler is None or fd in fresh:   # closed earlier in this batch
                continue
            try:
                handler(events)
            except Exception:   # a bug costs one connection; the batch's other events
                log.exception("proxy_event_failed", fd=fd)   # (edge-triggered) must run
                owner = getattr(handler, "__self__", None)
                if isinstance(owner, TcpConn):
                    owner.abort()

    def close(self) -> None:
        self.loop.remove_reader(self._ep.fileno())
        self._ep.close()
        self._handlers.clear()


class PipePool:
    """Non-blocking pipes for splice, reused across connections."""

    def __init__(self, size: int = _PIPE_SIZE, limit: int = _POOL_MAX) -> None:
        self._size, self._limit = size, limit
        self._free: list[tuple[int, int]] = []

    def get(self) -> tuple[int, int]:
        if self._free:
            return self._free.pop()
        r, w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        try:
            fcntl.fcntl(w, _F_SETPIPE_SZ, self._size)
        except OSError:
            pass  # above pipe-max-size (unprivileged): the default 64 KiB still works
        return r, w

    def put(self, pipe: tuple[int, int], empty: bool) -> None:
        if empty and len(self._free) < self._limit:
            self._free.append(pipe)
        else:
            os.close(pipe[0])
            os.close(pipe[1])

    def close(self) -> None:
        for r, w in self._free:
            os.close(r)
            os.close(w)
        self._free.clear()


class Engine:
    """What every TCP listener of one proxy shares: the loop, the poller, the pipes, and
    the set of open connections (so shutdown can reach the draining ones too)."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        raise_fd_limit()
        self.loop = loop
        self.poller = Poller(loop)
        self.pipes = PipePool()
        self.buffer = bytearray(_COPY_SIZE)    # shared: filled and sent on in one go
        self.view = memoryview(self.buffer)
        self.conns: set[TcpConn] = set()

    def close(self) -> None:
        for conn in list(self.conns):
            conn.abort()
        self.poller.close()
        self.pipes.close()


def raise_fd_limit() -> None:
    """Soft RLIMIT_NOFILE up to the hard limit (as Go programs do at start): a proxied
    connection holds two sockets and two pipe ends, and 1024 would cap it near 250."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        except (ValueError, OSError):
            pass


class _Flow:
    """One direction of a connection, src -> dst.

    Small exchanges are copied through one shared buffer: recv, send, done; a read shorter
    than the buffer proves the socket drained, so (edge-triggered) nothing more is owed
    until the next event. The first read that fills the buffer marks a bulk transfer: the
    flow takes a pipe and moves the rest with splice, zero copy, reading until EAGAIN.
    """

    __slots__ = ("conn", "src", "dst", "pipe", "queued", "pending", "writing", "done")

    def __init__(self, conn: TcpConn, src: socket.socket, dst: socket.socket) -> None:
        self.conn, self.src, self.dst = conn, src, dst
        self.pipe: tuple[int, int] | None = None   # once bulk
        self.queued = 0         # bytes in the pipe, read from src, not yet written to dst
        self.pending = b""      # copied bytes dst did not take yet
        self.writing = False    # dst was full: waiting for it to become writable
        self.done = False       # src sent FIN and everything reached dst

    def readable(self, events: int = _HUP) -> None:
        """events: what the poller saw; without a hang-up among them, a short read ends
        the work (any later data or FIN raises a new event)."""
        if self.writing or self.done or self.conn.closed:
            return
        if self.pipe is None:
            if not self._copy(events):
                return
        for _ in range(_ROUNDS):
            try:
                n = os.splice(self.src.fileno(), self.pipe[1], _PIPE_SIZE, flags=_SPLICE)
            except BlockingIOError:
                return
            except OSError as e:
                self.conn.abort(e)
                return
            if n == 0:
                self._eof()
                return
            self.queued = n
            if not self._drain():
                return
        # Still more to read (edge-triggered: no new event will say so): later, in turn.
        self.conn.loop.call_soon(self.readable)

    def _copy(self, events: int) -> bool:
        """Copy until drained; True: a full buffer came, continue with splice."""
        engine = self.conn.engine
        buf, view = engine.buffer, engine.view
        while True:
            try:
                n = self.src.recv_into(buf)
            except BlockingIOError:
                return False
            except OSError as e:
                self.conn.abort(e)
                return False
            if n == 0:
                self._eof()
                return False
            try:
                sent = self.dst.send(view[:n])
            except BlockingIOError:
                sent = 0
            except OSError as e:
                self.conn.abort(e)
                return False
            if sent < n:
                self.pending = bytes(view[sent:n])
                self.writing = True
                return False
            if n == len(buf):
                try:
                    self.pipe = engine.pipes.get()
                except OSError:
                    continue        # no fd for a pipe: keep copying
                return True
            if not events & _HUP:
                return False

    def _eof(self) -> None:
        self.done = True
        if self.conn.other(self).done:
            self.conn.close()       # both ways finished: close() flushes and sends FIN
            return
        try:
            self.dst.shutdown(socket.SHUT_WR)
        except OSError:
            pass  # dst already gone; its own direction reports that

    def writable(self) -> None:
        if self.writing and not self.conn.closed and self._drain():
            self.writing = False
            self.readable()         # the source may have filled while we waited

    def _drain(self) -> bool:
        try:
            if self.pending:
                sent = self.dst.send(self.pending)
                self.pending = self.pending[sent:]
                if self.pending:
                    raise BlockingIOError
            while self.queued:
                self.queued -= os.splice(self.pipe[0], self.dst.fileno(), self.queued,
                                         flags=_SPLICE)
        except BlockingIOError:
            self.writing = True
            return False
        except OSError as e:
            self.conn.abort(e)
            return False
        return True


class TcpConn:
    """A client socket and, once dialed, its backend socket, relayed both ways."""

    __slots__ = ("engine", "loop", "client", "backend", "up", "down", "closed", "on_close",
                 "dial_timer", "dial_timeout", "candidates", "attempt", "client_ip", "events")

    def __init__(self, engine: Engine, client: socket.socket, client_ip: str | None, events,
                 on_close: Callable[[TcpConn], None]) -> None:
        self.engine, self.loop = engine, engine.loop
        self.client, self.client_ip, self.events, self.on_close = client, client_ip, events, on_close
        self.backend: socket.socket | None = None
        self.up: _Flow | None = None        # client -> backend
        self.down: _Flow | None = None      # backend -> client
        self.closed = False
        self.dial_timer: asyncio.TimerHandle | None = None
        self.dial_timeout = 0.0
        self.candidates: list[tuple[str, int]] = []
        self.attempt = -1

    # -- dialing: candidates in order, each with a timeout, until one connects ------------
    def dial(self, candidates: list[tuple[str, int]], timeout: float) -> None:
        self.candidates, self.dial_timeout = candidates, timeout
        self._next(None)

    def _next(self, error: BaseException | None) -> None:
        while True:
            self.attempt += 1
            if self.attempt >= len(self.candidates):
                self.events.dial_failed(self, error)
                self.close()
                return
            ip, port = self.candidates[self.attempt]
            try:
                sock = _socket.socket(_AF_INET6 if ":" in ip else _AF_INET, _STREAM_NB)
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                err = sock.connect_ex((ip, port))
            except OSError as e:
                error = e
                continue
            if err not in (0, errno.EINPROGRESS):
                sock.close()
                error = OSError(err, os.strerror(err))
                self.events.endpoint_failed(self, (ip, port), error)
                continue
            self.backend = sock
            self.engine.poller.add(sock, self._backend_event)   # EPOLLOUT says: dialed
            self.dial_timer = self.loop.call_later(self.dial_timeout, self._dial_expired)
            return

    def _backend_event(self, events: int) -> None:
        if self.down is not None:
            if events & _READ:
                self.down.readable(events)
            if events & _WRITE and not self.closed:
                self.up.writable()
        elif events & _WRITE:       # the connect finished, one way or the other
            err = self.backend.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if err:
                self._dial_failed(OSError(err, os.strerror(err)))
            else:
                self._connected()

    def _dial_expired(self) -> None:
        self._dial_failed(TimeoutError())

    def _dial_failed(self, error: BaseException) -> None:
        self.dial_timer.cancel()
        self.dial_timer = None
        self.engine.poller.drop(self.backend)
        self.backend.close()
        self.backend = None
        self.events.endpoint_failed(self, self.candidates[self.attempt], error)
        self._next(error)

    def _connected(self) -> None:
        self.dial_timer.cancel()
        self.dial_timer = None
        if self.attempt:
            self.events.fell_through(self, self.candidates[self.attempt])
        self.up = _Flow(self, self.client, self.backend)
        self.down = _Flow(self, self.backend, self.client)
        # Registering reports what is already there; reading now as well is harmless.
        self.engine.poller.add(self.client, self._client_event)
        up, down = self.up, self.down       # the first may close the connection
        up.readable()
        down.readable()

    def _client_event(self, events: int) -> None:
        if events & _READ:
            self.up.readable(events)
        if events & _WRITE and not self.closed:
            self.down.writable()

    # -- ending --------------------------------------------------------------------------
    def other(self, flow: _Flow) -> _Flow:
        return self.down if flow is self.up else self.up

    def abort(self, error: BaseException | None = None) -> None:
        """End both sides with a reset (a peer reset us, or the proxy shuts down)."""
        for sock in (self.client, self.backend):
            if sock is not None and sock.fileno() >= 0:
                try:
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _RESET)
                except OSError:
                    pass
        self.close()

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        if self.dial_timer is not None:
            self.dial_timer.cancel()
        poller = self.engine.poller
        for sock in (self.client, self.backend):
            if sock is not None and sock.fileno() >= 0:
                poller.drop(sock)
                sock.close()
        pipes = self.engine.pipes
        for flow in (self.up, self.down):
            if flow is not None and flow.pipe is not None:
                pipes.put(flow.pipe, flow.queued == 0)
        # The flows point back at the connection: without this, every connection would be
        # a cycle left to the garbage collector, whose passes over the agent's heap then
        # cost the proxy a few percent of its time.
        self.up = self.down = None
        self.on_close(self)


class TcpListener:
    """A listening socket whose accepted connections are dialed to the endpoints pick()
    returns. `events` receives the dial outcomes (for logs and affinity)."""

    def __init__(self, engine: Engine, sock: socket.socket,
                 pick: Callable[[str | None], list[tuple[str, int]]], dial_timeout: float,
                 wants_client_ip: Callable[[], bool], events) -> None:
        self.engine, self.sock, self.pick = engine, sock, pick
        self.dial_timeout, self.wants_client_ip, self.events = dial_timeout, wants_client_ip, events
        self.conns: set[TcpConn] = set()   # this listener's open connections
        self._family = int(sock.family)
        self.paused = False                # other processes accept on it (workers)
        self._backing_off = False
        engine.poller.add(sock, self._accept, select.EPOLLIN)   # level-triggered

    @staticmethod
    def bind(host: str, port: int, backlog: int) -> socket.socket:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            # SO_REUSEADDR: a restarted agent rebinds despite TIME_WAIT sockets.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((host, port))
            sock.listen(backlog)
            sock.setblocking(False)
        except OSError as e:
            sock.close()
            raise OSError(e.errno, f"error while attempting to bind on address "
                                   f"{(host, port)!r}: {e.strerror}") from None
        return sock

    @staticmethod
    def probe(host: str, port: int) -> None:
        """Raise OSError (as bind does) when (host, port) could not be listened on now:
        another process listens there, or the address is not this host's."""
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        with socket.socket(family, socket.SOCK_STREAM) as sock:
            try:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                sock.bind((host, port))
            except OSError as e:
                raise OSError(e.errno, f"error while attempting to bind on address "
                                       f"{(host, port)!r}: {e.strerror}") from None

    def _accept(self, _events: int) -> None:
        engine = self.engine
        for _ in range(_ACCEPT_BATCH):
            try:
                fd, addr = self.sock._accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as e:    # EMFILE and friends: keep serving the open ones,
                self.events.accept_failed(e)   # and stop polling a while (level-triggered)
                engine.poller.remove(self.sock)
                self._backing_off = True
                engine.loop.call_later(_ACCEPT_BACKOFF, self._resume)
                return
            client = _socket.socket(self._family, _STREAM, 0, fd)
            client.setblocking(False)   # accept4 without SOCK_NONBLOCK: the fd blocks
            client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            client_ip = addr[0] if self.wants_client_ip() else None
            candidates = self.pick(client_ip)
            conn = TcpConn(engine, client, client_ip, self.events, self._closed)
            if not candidates:
                self.events.no_endpoint()
                conn.close()
                continue
            self.conns.add(conn)
            engine.conns.add(conn)
            conn.dial(candidates, self.dial_timeout)

    def _resume(self) -> None:
        self._backing_off = False
        if self.sock.fileno() >= 0 and not self.paused:
            self.engine.poller.add(self.sock, self._accept, select.EPOLLIN)

    def pause(self) -> None:
        """Stop accepting, the socket kept open (and listening) for other processes."""
        if not self.paused and self.sock.fileno() >= 0:
            self.paused = True
            if not self._backing_off:
                self.engine.poller.remove(self.sock)

    def resume(self) -> None:
        if self.paused and self.sock.fileno() >= 0:
            self.paused = False
            if not self._backing_off:
                self.engine.poller.add(self.sock, self._accept, select.EPOLLIN)

    def _closed(self, conn: TcpConn) -> None:
        self.conns.discard(conn)
        self.engine.conns.discard(conn)

    def close(self) -> None:
        """Stop accepting; established connections keep draining."""
        if self.sock.fileno() >= 0:
            self.engine.poller.drop(self.sock)
            self.sock.close()
