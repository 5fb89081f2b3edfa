"""Worker processes for the proxy's TCP data path, so it can use more than one core (one
Python process is one core, whatever its threads do).

The proxy process binds every listening socket itself (bind errors stay its own, once)
and hands a duplicate of each to every worker over a Unix socket (SCM_RIGHTS). The
workers accept on it, the kernel giving each connection to one; once they all have it,
the proxy process stops accepting there, so the data path never shares its loop, GIL or
heap with the rest of the agent. A worker keeps its own Balancer per listener, updated
with the same endpoints. Every command is acknowledged, so when Proxy.apply() returns the
workers route like the proxy does (the node agent relies on that before it signals a
deleted pod).

Listeners with sessionAffinity stay in the proxy process alone: a client IP's pin must
live in one Balancer. Workers die with the proxy process (PR_SET_PDEATHSIG) and when
their command pipe closes; when one exits, the proxy process accepts on every listener
again at once (a pidfd tells it) and its next apply starts new workers.

Proxy(workers=N) or GITOPS_PROXY_WORKERS=N: the all-in-one agent defaults to 0 (all
in-process), a cluster's node (`gitops agent --server`) to 1.
"""

from __future__ import annotations

import asyncio
import ctypes
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Callable
from multiprocessing import reduction
from multiprocessing.connection import Connection

import structlog

from gitops.proxy.balancer import Balancer

log = structlog.get_logger(component="proxy-worker")

_REPLY_TIMEOUT = 10.0   # seconds a worker may take to acknowledge a command
_PR_SET_PDEATHSIG = 1
_ENTRY = ("import sys; from multiprocessing.connection import Connection; "
          "from gitops.proxy.workers import worker_main; "
          "worker_main(Connection(int(sys.argv[1])), float(sys.argv[2]))")


class WorkerPool:
    """count worker processes; every call goes to all of them and waits for their replies
    (blocking: run it off the event loop).

    Workers are plain `python -c` children, not multiprocessing ones: spawn would re-run the
    parent's __main__ (the gitops CLI), and fork is unsafe in a threaded agent.
    """

    def __init__(self, count: int, dial_timeout: float) -> None:
        self._workers: list[tuple[subprocess.Popen, Connection]] = []
        self._pidfds: list[int] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        for _ in range(count):
            ours, theirs = socket.socketpair()
            proc = subprocess.Popen(
                [sys.executable, "-c", _ENTRY, str(theirs.fileno()), str(dial_timeout)],
                pass_fds=[theirs.fileno()], stdin=subprocess.DEVNULL)
            theirs.close()
            self._workers.append((proc, Connection(ours.detach())))

    def call(self, message: tuple, fd: int | None = None) -> list[str | None]:
        """Send to every worker (with a listening fd for "open"); their errors, or None."""
        for proc, conn in self._workers:
            try:
                conn.send(message)
                if fd is not None:
                    reduction.send_handle(conn, fd, proc.pid)
            except OSError:
                pass  # a dead worker: its reply below says so
        replies: list[str | None] = []
        for proc, conn in self._workers:
            try:
                if not conn.poll(_REPLY_TIMEOUT):
                    replies.append(f"worker {proc.pid} did not answer")
                    continue
                replies.append(conn.recv())
            except (EOFError, OSError) as e:
                replies.append(f"worker {proc.pid} is gone: {e!r}")
        return replies

    def watch(self, loop: asyncio.AbstractEventLoop, gone: Callable[[int], None]) -> None:
        """gone(pid) on the loop as soon as a worker exits (a pidfd per worker)."""
        for proc, _ in self._workers:
            try:
                fd = os.pidfd_open(proc.pid)
            except OSError:                   # before Linux 5.3: the next apply notices
                continue
            self._pidfds.append(fd)
            loop.add_reader(fd, gone, proc.pid)
        self._loop = loop

    def unwatch(self) -> None:
        for fd in self._pidfds:
            if self._loop is not None:
                self._loop.remove_reader(fd)
            os.close(fd)
        self._pidfds.clear()

    def dead(self) -> list[int]:
        """Workers that have exited."""
        return [proc.pid for proc, _ in self._workers if proc.poll() is not None]

    def close(self) -> None:
        for proc, conn in self._workers:
            try:
                conn.send(("stop",))
            except OSError:
                pass
        for proc, conn in self._workers:
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
            conn.close()
        self._workers.clear()


class _Events:
    """What a worker's connections report: logs only (the proxy process throttles its
    own; a worker logs dial failures at debug, as the proxy does)."""

    def __init__(self, name: str) -> None:
        self.name = name

    def no_endpoint(self) -> None:
        log.debug("proxy_no_endpoint", listener=self.name)

    def endpoint_failed(self, conn, endpoint, error) -> None:
        log.debug("proxy_endpoint_dial_failed", listener=self.name,
                  endpoint=f"{endpoint[0]}:{endpoint[1]}", error=str(error))

    def fell_through(self, conn, endpoint) -> None:
        pass

    def dial_failed(self, conn, error) -> None:
        log.debug("proxy_dial_failed", listener=self.name, error=str(error))

    def accept_failed(self, error) -> None:
        log.warning("proxy_accept_failed", listener=self.name, error=str(error))


def worker_main(conn: Connection, dial_timeout: float) -> None:
    try:
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):
        pass
    signal.signal(signal.SIGINT, signal.SIG_IGN)   # the agent's Ctrl-C is the agent's
    from gitops import log as logsetup
    from gitops.proxy.loop import run
    logsetup.configure("json", "info")
    run(_serve(conn, dial_timeout))


async def _serve(conn: Connection, dial_timeout: float) -> None:
    from gitops.proxy.tcp import Engine, TcpListener
    loop = asyncio.get_running_loop()
    engine = Engine(loop)
    listeners: dict[tuple, tuple[Balancer, TcpListener]] = {}
    done = loop.create_future()

    def handle(message: tuple) -> None:
        op = message[0]
        if op == "open":
            _, addr, endpoints, name = message
            sock = socket.socket(fileno=reduction.recv_handle(conn))
            sock.setblocking(False)
            balancer = Balancer(endpoints)
            listeners[addr] = (balancer, TcpListener(engine, sock, balancer.candidates,
                                                     dial_timeout, lambda: False,
                                                     _Events(name)))
        elif op == "update":
            _, addr, endpoints = message
            listeners[addr][0].update(endpoints)
        elif op == "close":
            entry = listeners.pop(message[1], None)
            if entry is not None:
                entry[1].close()   # established connections keep draining here
        elif op == "stop" and not done.done():
            done.set_result(None)

    def readable() -> None:
        try:
            while conn.poll():
                message = conn.recv()
                try:
                    handle(message)
                    reply = None
                except Exception as e:   # one bad command must not end the worker
                    reply = repr(e)
                if message[0] != "stop":
                    conn.send(reply)
        except (EOFError, OSError):       # the proxy process is gone
            if not done.done():
                done.set_result(None)

    loop.add_reader(conn.fileno(), readable)
    # uvloop made the pipe non-blocking; reads on it must block: an "open" is two sends
    # (the message, then the listening fd), and under load the fd, or the rest of a
    # message, may come a moment after the loop saw the pipe readable.
    os.set_blocking(conn.fileno(), True)
    try:
        await done
    finally:
        loop.remove_reader(conn.fileno())
        for _, listener in listeners.values():
            listener.close()
        engine.close()

