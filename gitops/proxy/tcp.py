"""TCP forwarding for the proxy: non-blocking sockets driven by the event loop's
add_reader/add_writer callbacks, with the bytes moved by splice(2) through a pipe, so a
payload never enters Python (zero copy: socket -> pipe -> socket inside the kernel).

Per connection the work is a handful of callbacks and syscalls: accept, a non-blocking
connect (its timeout a timer, not a Task), then per chunk one splice in and one out. A
chunk is whatever the socket holds, up to the pipe's capacity (1 MiB when the kernel
allows it), so bulk transfers move large pieces per wakeup. Back-pressure is the pipe:
while a chunk cannot be written on, its source is not read (at most one pipe's worth is
in flight per direction). Pipes are pooled: a connection that ends cleanly leaves them
empty for the next one.

Half-close passes through (FIN becomes shutdown(SHUT_WR) once the pipe is drained); a reset
or write error on one side resets the other. Linux only (splice), like the rest of the
proxy (loopback VIPs).
"""

from __future__ import annotations

import asyncio
import errno
import fcntl
import os
import socket
import struct
from collections.abc import Callable

_SPLICE = os.SPLICE_F_MOVE | os.SPLICE_F_NONBLOCK
_PIPE_SIZE = 1 << 20                            # bytes per pipe if pipe-max-size allows
_F_SETPIPE_SZ = getattr(fcntl, "F_SETPIPE_SZ", 1031)
_POOL_MAX = 256                                 # idle pipes kept for reuse
_ROUNDS = 8                                     # splice rounds per readable wakeup at most
_ACCEPT_BATCH = 64                              # connections accepted per wakeup at most
_RESET = struct.pack("ii", 1, 0)                # SO_LINGER on, 0 s: close() sends RST
_GONE = (errno.ECONNRESET, errno.EPIPE, errno.ETIMEDOUT, errno.EHOSTUNREACH,
         errno.ENETUNREACH, errno.ENOTCONN)


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


class _Flow:
    """One direction of a connection: src -> pipe -> dst."""

    __slots__ = ("conn", "src", "dst", "pipe", "queued", "writing", "done")

    def __init__(self, conn: TcpConn, src: socket.socket, dst: socket.socket,
                 pipe: tuple[int, int]) -> None:
        self.conn, self.src, self.dst, self.pipe = conn, src, dst, pipe
        self.queued = 0         # bytes in the pipe, read from src, not yet written to dst
        self.writing = False    # dst was full: waiting for it to become writable
        self.done = False       # src sent FIN and everything reached dst

    def readable(self) -> None:
        # A few rounds per wakeup: a bulk sender refills the socket while we write.
        for _ in range(_ROUNDS):
            try:
                n = os.splice(self.src.fileno(), self.pipe[1], _PIPE_SIZE, flags=_SPLICE)
            except BlockingIOError:
                return
            except OSError as e:
                self.conn.abort(e)
                return
            if n == 0:              # FIN from src
                self.conn.loop.remove_reader(self.src.fileno())
                self.done = True
                self._pass_eof()
                return
            self.queued = n
            self.flush()
            if self.queued or self.conn.closed:
                return

    def flush(self) -> None:
        try:
            while self.queued:
                self.queued -= os.splice(self.pipe[0], self.dst.fileno(), self.queued,
                                         flags=_SPLICE)
        except BlockingIOError:
            if not self.writing:
                self.writing = True
                loop = self.conn.loop
                loop.remove_reader(self.src.fileno())
                loop.add_writer(self.dst.fileno(), self.flush)
            return
        except OSError as e:
            self.conn.abort(e)
            return
        if self.writing:
            self.writing = False
            loop = self.conn.loop
            loop.remove_writer(self.dst.fileno())
            loop.add_reader(self.src.fileno(), self.readable)

    def _pass_eof(self) -> None:
        try:
            self.dst.shutdown(socket.SHUT_WR)
        except OSError:
            pass  # dst already gone; its own direction reports that
        self.conn.flow_done()


class TcpConn:
    """A client socket and, once dialed, its backend socket, relayed both ways."""

    __slots__ = ("loop", "pool", "client", "backend", "flows", "closed", "on_close",
                 "dial_timer", "candidates", "attempt", "client_ip", "listener")

    def __init__(self, loop: asyncio.AbstractEventLoop, pool: PipePool, client: socket.socket,
                 client_ip: str | None, listener, on_close: Callable[[TcpConn], None]) -> None:
        self.loop, self.pool, self.client, self.client_ip = loop, pool, client, client_ip
        self.listener, self.on_close = listener, on_close
        self.backend: socket.socket | None = None
        self.flows: tuple[_Flow, _Flow] | None = None
        self.closed = False
        self.dial_timer: asyncio.TimerHandle | None = None
        self.candidates: list[tuple[str, int]] = []
        self.attempt = -1

    # -- dialing: candidates in order, each with a timeout, until one connects ------------
    def dial(self, candidates: list[tuple[str, int]], timeout: float) -> None:
        self.candidates = candidates
        self._next(timeout)

    def _next(self, timeout: float, error: BaseException | None = None) -> None:
        while True:
            self.attempt += 1
            if self.attempt >= len(self.candidates):
                self.listener.dial_failed(self, error)
                self.close()
                return
            ip, port = self.candidates[self.attempt]
            try:
                sock = socket.socket(socket.AF_INET6 if ":" in ip else socket.AF_INET,
                                     socket.SOCK_STREAM | socket.SOCK_NONBLOCK)
            except OSError as e:
                error = e
                continue
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            err = sock.connect_ex((ip, port))
            if err == 0:
                self.backend = sock
                self._connected()
                return
            if err != errno.EINPROGRESS:
                sock.close()
                error = OSError(err, os.strerror(err))
                self.listener.endpoint_failed(self, (ip, port), error)
                continue
            self.backend = sock
            self.loop.add_writer(sock.fileno(), self._dial_done, timeout)
            self.dial_timer = self.loop.call_later(timeout, self._dial_timeout, timeout)
            return

    def _dial_done(self, timeout: float) -> None:
        sock = self.backend
        self.dial_timer.cancel()
        err = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if err:
            self.loop.remove_writer(sock.fileno())
            self._drop_backend()
            error = OSError(err, os.strerror(err))
            self.listener.endpoint_failed(self, self.candidates[self.attempt], error)
            self._next(timeout, error)
            return
        self._connected()

    def _dial_timeout(self, timeout: float) -> None:
        self.loop.remove_writer(self.backend.fileno())
        self._drop_backend()
        error = TimeoutError()
        self.listener.endpoint_failed(self, self.candidates[self.attempt], error)
        self._next(timeout, error)

    def _drop_backend(self) -> None:
        self.backend.close()
        self.backend = None

    def _connected(self) -> None:
        self.dial_timer = None
        if self.attempt:
            self.listener.fell_through(self, self.candidates[self.attempt])
        up = _Flow(self, self.client, self.backend, self.pool.get())
        down = _Flow(self, self.backend, self.client, self.pool.get())
        self.flows = (up, down)
        loop, backend = self.loop, self.backend.fileno()
        loop.add_reader(self.client.fileno(), up.readable)
        # Reader first, then drop the dial's writer: the fd's poll registration is modified
        # in place instead of torn down and made again (fewer epoll_ctl calls on uvloop).
        loop.add_reader(backend, down.readable)
        loop.remove_writer(backend)

    # -- ending --------------------------------------------------------------------------
    def flow_done(self) -> None:
        if self.flows and self.flows[0].done and self.flows[1].done:
            self.close()

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
        loop = self.loop
        if self.dial_timer is not None:
            self.dial_timer.cancel()
        for sock in (self.client, self.backend):
            if sock is not None and sock.fileno() >= 0:
                loop.remove_reader(sock.fileno())
                loop.remove_writer(sock.fileno())
                sock.close()
        if self.flows:
            for flow in self.flows:
                self.pool.put(flow.pipe, flow.queued == 0)
        self.on_close(self)


class TcpListener:
    """A listening socket whose accepted connections are dialed to the endpoints its
    Balancer picks. `events` receives the dial outcomes (for logs)."""

    def __init__(self, loop: asyncio.AbstractEventLoop, sock: socket.socket, pool: PipePool,
                 pick: Callable[[str | None], list[tuple[str, int]]], dial_timeout: float,
                 wants_client_ip: Callable[[], bool], events, registry: set) -> None:
        self.loop, self.sock, self.pool, self.pick = loop, sock, pool, pick
        self.dial_timeout, self.wants_client_ip, self.events = dial_timeout, wants_client_ip, events
        self.conns: set[TcpConn] = set()   # this listener's open connections
        self.registry = registry           # every listener's, for shutting down
        loop.add_reader(sock.fileno(), self._accept)

    @classmethod
    def bind(cls, host: str, port: int, backlog: int) -> socket.socket:
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

    def _accept(self) -> None:
        for _ in range(_ACCEPT_BATCH):
            try:
                client, addr = self.sock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as e:    # EMFILE and friends: keep serving the open ones
                self.events.accept_failed(e)
                return
            client.setblocking(False)
            client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            client_ip = addr[0] if self.wants_client_ip() else None
            candidates = self.pick(client_ip)
            conn = TcpConn(self.loop, self.pool, client, client_ip, self.events, self._closed)
            if not candidates:
                self.events.no_endpoint()
                conn.close()
                continue
            self.conns.add(conn)
            self.registry.add(conn)
            conn.dial(candidates, self.dial_timeout)

    def _closed(self, conn: TcpConn) -> None:
        self.conns.discard(conn)
        self.registry.discard(conn)

    def close(self) -> None:
        """Stop accepting; established connections keep draining."""
        if self.sock.fileno() >= 0:
            self.loop.remove_reader(self.sock.fileno())
            self.sock.close()

    def abort_all(self) -> None:
        for conn in list(self.conns):
            conn.abort()
