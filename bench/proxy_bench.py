"""Loopback benchmark: direct connection vs through gitops.proxy. Prints a table.

Backend, proxy and load generator each run in their own process (all on 127.0.0.1), so the
proxy's event loop is not competing with the client's inside one interpreter. Every phase is
bounded by a request count and a time cap.

    python bench/proxy_bench.py [--clients 50] [--requests 100000] [--conns 5000] [--seconds 10] [--bulk-mb 1024]

Backend protocol: first byte picks the mode.
  R  then fixed REQ-byte requests, each answered with RESP bytes (keep-alive RPC)
  D  + 8-byte size: the backend streams that many bytes, then closes (download)
  U  the backend counts bytes until EOF, answers with the 8-byte count (upload)
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import logging
import multiprocessing as mp
import os
import resource
import socket
import struct
import time

import structlog

LO = "127.0.0.1"
REQ, RESP = 128, 512
CHUNK = b"x" * (256 * 1024)


# ---------------------------------------------------------------- backend process

class _Backend(asyncio.Protocol):
    def connection_made(self, t):
        self.t, self.mode, self.buf, self.n = t, None, b"", 0

    def data_received(self, data):
        if self.mode is None:
            self.mode, data = data[:1], data[1:]
            if self.mode == b"D" and len(data) < 8:
                self.buf = data
                return
        if self.mode == b"R":
            self.n += len(data)
            k, self.n = divmod(self.n, REQ)
            if k:
                self.t.write(b"r" * (RESP * k))
        elif self.mode == b"D":
            (size,) = struct.unpack("!Q", (self.buf + data)[:8])
            asyncio.get_running_loop().create_task(self._download(size))
            self.mode = b"-"
        elif self.mode == b"U":
            self.n += len(data)

    async def _download(self, size):
        self.drained = asyncio.Event()
        self.drained.set()
        while size > 0:
            piece = CHUNK if size >= len(CHUNK) else CHUNK[:size]
            self.t.write(piece)
            size -= len(piece)
            await self.drained.wait()
        self.t.close()

    def pause_writing(self):
        self.drained.clear()

    def resume_writing(self):
        self.drained.set()

    def eof_received(self):
        if self.mode == b"U":
            self.t.write(struct.pack("!Q", self.n))
        return False


def _backend_main(conn):
    async def main():
        server = await asyncio.get_running_loop().create_server(_Backend, LO, 0, backlog=4096)
        conn.send(server.sockets[0].getsockname()[1])
        await asyncio.get_running_loop().run_in_executor(None, conn.recv)  # wait for "stop"
        server.close()
    asyncio.run(main())


# ---------------------------------------------------------------- proxy process

def _proxy_main(conn, backend_port, factory):
    mod, _, attr = factory.partition(":")
    proxy_cls = getattr(importlib.import_module(mod), attr)

    async def main():
        structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
        proxy = proxy_cls()
        port = _free_port()
        errors = await proxy.apply({(LO, port): [(LO, backend_port)]})
        conn.send(port if not errors else errors)
        while await asyncio.get_running_loop().run_in_executor(None, conn.recv) == "cpu":
            ru = resource.getrusage(resource.RUSAGE_SELF)
            conn.send(ru.ru_utime + ru.ru_stime)
        await proxy.close()
    asyncio.run(main())


def _free_port() -> int:
    with socket.socket() as s:
        s.bind((LO, 0))
        return s.getsockname()[1]


# ---------------------------------------------------------------- load generator

class _RPC(asyncio.Protocol):
    """Keep-alive client: one request in flight, next one sent when the reply is complete."""

    def __init__(self, budget, deadline, lat, done):
        self.budget, self.deadline, self.lat, self.done = budget, deadline, lat, done

    def connection_made(self, t):
        self.t = t
        t.write(b"R")
        self._send()

    def _send(self):
        if self.budget[0] <= 0 or time.perf_counter() > self.deadline:
            self.t.close()
            return
        self.budget[0] -= 1
        self.got, self.t0 = 0, time.perf_counter()
        self.t.write(b"q" * REQ)

    def data_received(self, data):
        self.got += len(data)
        if self.got >= RESP:
            self.lat.append(time.perf_counter() - self.t0)
            self._send()

    def connection_lost(self, exc):
        if not self.done.done():
            self.done.set_result(None)


class _OneShot(asyncio.Protocol):
    def __init__(self, done):
        self.done, self.got = done, 0

    def connection_made(self, t):
        self.t = t
        t.write(b"R" + b"q" * REQ)

    def data_received(self, data):
        self.got += len(data)
        if self.got >= RESP:
            self.t.close()

    def connection_lost(self, exc):
        if not self.done.done():
            self.done.set_result(self.got >= RESP)


async def keepalive(port, clients, requests, seconds):
    loop = asyncio.get_running_loop()
    budget, lat = [requests], []
    deadline = time.perf_counter() + seconds
    t0 = time.perf_counter()
    dones = []
    for _ in range(clients):
        done = loop.create_future()
        await loop.create_connection(lambda d=done: _RPC(budget, deadline, lat, d), LO, port)
        dones.append(done)
    await asyncio.wait_for(asyncio.gather(*dones), seconds + 10)
    return len(lat) / (time.perf_counter() - t0), lat


async def new_conn(port, clients, requests, seconds):
    loop = asyncio.get_running_loop()
    budget, lat, failed = [requests], [], [0]
    deadline = time.perf_counter() + seconds

    async def worker():
        while budget[0] > 0 and time.perf_counter() < deadline:
            budget[0] -= 1
            t0 = time.perf_counter()
            done = loop.create_future()
            try:
                await loop.create_connection(lambda: _OneShot(done), LO, port)
                ok = await asyncio.wait_for(done, 5)
            except (OSError, TimeoutError):
                ok = False
            if ok:
                lat.append(time.perf_counter() - t0)
            else:
                failed[0] += 1

    t0 = time.perf_counter()
    await asyncio.wait_for(asyncio.gather(*(worker() for _ in range(clients))), seconds + 10)
    return len(lat) / (time.perf_counter() - t0), lat, failed[0]


def bulk(port, mode, size, seconds):
    """Blocking socket, 1 MiB buffers: the client should not be the bottleneck here."""
    with socket.create_connection((LO, port), timeout=seconds + 5) as s:
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        t0 = time.perf_counter()
        if mode == "download":
            s.sendall(b"D" + struct.pack("!Q", size))
            buf, got = bytearray(1 << 20), 0
            while n := s.recv_into(buf):
                got += n
        else:
            s.sendall(b"U")
            block, sent = b"u" * (1 << 20), 0
            while sent < size:
                s.sendall(block)
                sent += len(block)
            s.shutdown(socket.SHUT_WR)
            got = struct.unpack("!Q", s.recv(8))[0]
        dt = time.perf_counter() - t0
    assert got == size, (mode, got, size)
    return size / dt / 1e6


def pct(lat, q):
    if not lat:
        return float("nan")
    s = sorted(lat)
    return s[min(len(s) - 1, int(q * len(s)))] * 1e3


def measure(port, args, cpu):
    """cpu() returns the proxy process's CPU seconds so far (0 when measuring direct)."""
    out = {}
    c0 = cpu()
    rps, lat = asyncio.run(keepalive(port, args.clients, args.requests, args.seconds))
    c1 = cpu()
    out["keep-alive req/s"], out["keep-alive p50 ms"], out["keep-alive p99 ms"] = rps, pct(lat, .5), pct(lat, .99)
    out["keep-alive cpu us/req"] = (c1 - c0) / max(1, len(lat)) * 1e6
    rps, lat, failed = asyncio.run(new_conn(port, args.clients, args.conns, args.seconds))
    c2 = cpu()
    out["new-conn req/s"], out["new-conn p50 ms"], out["new-conn p99 ms"] = rps, pct(lat, .5), pct(lat, .99)
    out["new-conn cpu us/req"] = (c2 - c1) / max(1, len(lat)) * 1e6
    out["new-conn failed"] = failed
    size = args.bulk_mb * 1024 * 1024
    out["download MB/s"] = bulk(port, "download", size, args.seconds)
    out["upload MB/s"] = bulk(port, "upload", size, args.seconds)
    out["bulk cpu s/GB"] = (cpu() - c2) / (2 * size / 1e9)
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clients", type=int, default=50)
    ap.add_argument("--requests", type=int, default=100000, help="keep-alive requests per run")
    ap.add_argument("--conns", type=int, default=5000, help="connection-per-request requests per run")
    ap.add_argument("--seconds", type=float, default=10.0, help="time cap per phase")
    ap.add_argument("--bulk-mb", type=int, default=1024)
    ap.add_argument("--proxy", default="gitops.proxy.listeners:Proxy", help="module:Class to compare")
    args = ap.parse_args()

    procs = []
    try:
        b_parent, b_child = mp.Pipe()
        procs.append(mp.Process(target=_backend_main, args=(b_child,), daemon=True))
        procs[-1].start()
        backend_port = b_parent.recv()
        p_parent, p_child = mp.Pipe()
        procs.append(mp.Process(target=_proxy_main, args=(p_child, backend_port, args.proxy), daemon=True))
        procs[-1].start()
        proxy_port = p_parent.recv()
        if not isinstance(proxy_port, int):
            raise SystemExit(f"proxy failed to listen: {proxy_port}")

        def proxy_cpu():
            p_parent.send("cpu")
            return p_parent.recv()

        direct = measure(backend_port, args, lambda: 0.0)
        proxied = measure(proxy_port, args, proxy_cpu)
    finally:
        for parent in (locals().get("p_parent"), locals().get("b_parent")):
            if parent is not None:
                parent.send("stop")
        for p in procs:
            p.join(10)
            if p.is_alive():
                p.terminate()

    print(f"\nproxy: {args.proxy}   clients={args.clients}  cpus={os.cpu_count()}  "
          f"req={REQ}B resp={RESP}B  bulk={args.bulk_mb} MiB  (all on 127.0.0.1)\n")
    print(f"{'metric':<24}{'direct':>12}{'proxy':>12}{'proxy/direct':>14}")
    for k in direct:
        d, p = direct[k], proxied[k]
        fmt = "{:>12.0f}" if "req/s" in k or "failed" in k else "{:>12.2f}"
        if "cpu" in k:  # the proxy's own cost; there is nothing to compare it with
            print(f"{k:<24}{'-':>12}" + fmt.format(p) + f"{'-':>14}")
            continue
        ratio = f"{p / d:.2f}" if d else "-"
        print(f"{k:<24}" + fmt.format(d) + fmt.format(p) + f"{ratio:>14}")


if __name__ == "__main__":
    main()
