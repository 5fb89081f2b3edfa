"""gitops proxy vs Docker's docker-proxy vs a direct connection, against one container.

One busybox container (label gitops.bench.proxy=true) on a throwaway bridge network with subnet
10.213.251.0/24 serves
  :8080  busybox httpd: /index.html (1 KiB) and /big (--big-mb MiB)
  :9000  `nc -ll -e cat`: a TCP echo, one cat per connection (the keep-alive workload:
         busybox httpd answers every request with "Connection: close")
and is reached three ways:
  direct        the container IP (the limit)
  docker-proxy  a port published on 127.0.0.1; with --iptables=false the engine serves it
                with its userland docker-proxy (checked: the process must exist)
  gitops        gitops.proxy.listeners.Proxy on 127.0.0.1, in its own process, forwarding
                to the container IP

Workloads (every one bounded in count and time):
  http          wrk -t2 -c50 -d5s --latency on /index.html; httpd closes after each
                response, so this is one new connection per request
  echo          a Python asyncio client, 50 keep-alive connections, 128-byte request,
                128-byte reply, one in flight per connection
  download      a blocking Python client GETs /big (one connection at a time)

    python bench/proxy_vs_docker.py [--seconds 5] [--clients 50] [--big-mb 256] [--uvloop]

Traffic goes only to 127.0.0.1 and to the container this script creates. Containers and
the network are removed in `finally` (and leftovers with the label at the start).
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import ipaddress
import logging
import multiprocessing as mp
import os
import re
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import time

import structlog

LO = "127.0.0.1"
# Its own label: agent_bench labels its pods gitops.bench=true, which this sweep must not touch.
LABEL = {"gitops.bench.proxy": "true"}
SUBNET, GATEWAY = "10.213.251.0/24", "10.213.251.1"
NETWORK = "gitops-bench-proxy"
IMAGE = "gitops/busybox:1"
HTTP_PORT, ECHO_PORT = 8080, 9000
SMALL = 1024
REQ = 128

log = structlog.get_logger(component="bench")


# ---------------------------------------------------------------- gitops proxy process

def _proxy_main(conn, routes, factory: str, use_uvloop: bool) -> None:
    mod, _, attr = factory.partition(":")
    proxy_cls = getattr(importlib.import_module(mod), attr)

    async def main():
        structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
        proxy = proxy_cls()
        conn.send((await proxy.apply(routes), type(asyncio.get_running_loop()).__module__))
        while await asyncio.get_running_loop().run_in_executor(None, conn.recv) == "cpu":
            ru = resource.getrusage(resource.RUSAGE_SELF)
            conn.send(ru.ru_utime + ru.ru_stime)
        await proxy.close()

    if use_uvloop:
        import uvloop
        uvloop.run(main())
    else:
        asyncio.run(main())


# ---------------------------------------------------------------- helpers

def free_port() -> int:
    with socket.socket() as s:
        s.bind((LO, 0))
        return s.getsockname()[1]


def proc_cpu(pid: int) -> float:
    """utime + stime of a process, in seconds, from /proc (for docker-proxy)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def find_docker_proxy(host_port: int) -> int | None:
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                args = f.read().split(b"\0")
        except OSError:
            continue
        if os.path.basename(args[0]) == b"docker-proxy" and \
                str(host_port).encode() in args and b"-host-port" in args:
            return int(pid)
    return None


def wait_tcp(host: str, port: int, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while True:
        try:
            socket.create_connection((host, port), timeout=1).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3}


def _ms(text: str) -> float:
    m = re.fullmatch(r"([\d.]+)(us|ms|s)", text)
    return float(m.group(1)) * _UNITS[m.group(2)] if m else float("nan")


def wrk(url: str, args) -> dict:
    cmd = ["wrk", f"-t{args.threads}", f"-c{args.http_clients}", f"-d{args.seconds:g}s",
           "--timeout", "5s", "--latency", url]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=args.seconds + 30).stdout
    res = {"rps": float("nan"), "p50": float("nan"), "p99": float("nan"), "errors": 0}
    if m := re.search(r"Requests/sec:\s+([\d.]+)", out):
        res["rps"] = float(m.group(1))
    for q in ("50", "99"):
        if m := re.search(rf"^\s+{q}%\s+(\S+)", out, re.M):
            res[f"p{q}"] = _ms(m.group(1))
    if m := re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out):
        res["errors"] += sum(map(int, m.groups()))
    if m := re.search(r"Non-2xx or 3xx responses: (\d+)", out):
        res["errors"] += int(m.group(1))
    return res


class _Echo(asyncio.Protocol):
    """One keep-alive connection: REQ bytes out, REQ bytes back, repeat."""

    def __init__(self, budget, deadline, lat, done):
        self.budget, self.deadline, self.lat, self.done = budget, deadline, lat, done

    def connection_made(self, t):
        self.t, self.got, self.warm = t, 0, asyncio.get_running_loop().create_future()
        t.write(b"w" * REQ)  # one untimed round trip: the connection reaches the backend

    def go(self):
        self._send()

    def _send(self):
        if self.budget[0] <= 0 or time.perf_counter() > self.deadline[0]:
            self.t.close()
            return
        self.budget[0] -= 1
        self.got, self.t0 = 0, time.perf_counter()
        self.t.write(b"q" * REQ)

    def data_received(self, data):
        self.got += len(data)
        if self.got >= REQ:
            if not self.warm.done():
                self.warm.set_result(None)
                return
            self.lat.append(time.perf_counter() - self.t0)
            self._send()

    def connection_lost(self, exc):
        if not self.warm.done():
            self.warm.set_result(None)
        if not self.done.done():
            self.done.set_result(None)


async def _echo_load(host, port, clients, requests, seconds):
    loop = asyncio.get_running_loop()
    budget, lat, dones, protos = [requests], [], [], []
    deadline = [0.0]
    stuck = 0
    # Connect one by one, each with an untimed first round trip, so the timed phase is the
    # keep-alive steady state (a burst of dials overflows nc's small accept backlog).
    for _ in range(clients):
        done = loop.create_future()
        _, proto = await asyncio.wait_for(loop.create_connection(
            lambda d=done: _Echo(budget, deadline, lat, d), host, port), 5)
        protos.append(proto)
        try:
            await asyncio.wait_for(asyncio.shield(proto.warm), 5)
        except TimeoutError:
            stuck += 1
            continue
        if not done.done():
            dones.append((proto, done))
    t0 = time.perf_counter()
    deadline[0] = t0 + seconds
    for proto, _ in dones:
        proto.go()
    _, pending = await asyncio.wait([d for _, d in dones], timeout=seconds + 10)
    stuck += len(pending)  # connections still waiting for a reply: counted, then cut
    for proto in protos:
        proto.t.abort()
    return len(lat) / (time.perf_counter() - t0), lat, stuck


def echo(host: str, port: int, args) -> dict:
    rps, lat, stuck = asyncio.run(_echo_load(host, port, args.clients, args.requests, args.seconds))
    return {"rps": rps, "p50": pct(lat, .5), "p99": pct(lat, .99), "n": len(lat), "stuck": stuck}


def download(host: str, port: int, args) -> dict:
    """GET /big repeatedly (at most --downloads times, stop after --seconds)."""
    size, done, t_total = args.big_mb << 20, 0, 0.0
    buf = bytearray(1 << 20)
    deadline = time.perf_counter() + args.seconds
    for _ in range(args.downloads):
        with socket.create_connection((host, port), timeout=args.seconds + 5) as s:
            t0 = time.perf_counter()
            s.sendall(b"GET /big HTTP/1.0\r\n\r\n")
            got = 0
            while n := s.recv_into(buf):
                got += n
            t_total += time.perf_counter() - t0
        if got < size:
            raise RuntimeError(f"short download from {host}:{port}: {got} < {size}")
        done += size
        if time.perf_counter() > deadline:
            break
    return {"mbps": done / t_total / 1e6, "bytes": done}


def pct(lat, q):
    if not lat:
        return float("nan")
    s = sorted(lat)
    return s[min(len(s) - 1, int(q * len(s)))] * 1e3


def measure(host: str, http_port: int, echo_port: int, cpu, args) -> dict:
    """cpu() -> CPU seconds of the proxy process so far (None when there is none)."""
    out = {}
    work = args.workloads.split(",")
    if "http" in work:
        c0 = cpu()
        h = wrk(f"http://{host}:{http_port}/index.html", args)
        c1 = cpu()
        out["http conn/req req/s"], out["http p50 ms"], out["http p99 ms"] = h["rps"], h["p50"], h["p99"]
        out["http errors"] = h["errors"]
        if c0 is not None:
            out["proxy cpu us/http req"] = (c1 - c0) / max(1, h["rps"] * args.seconds) * 1e6
    if "echo" in work:
        c0 = cpu()
        e = echo(host, echo_port, args)
        c1 = cpu()
        out["echo keep-alive req/s"], out["echo p50 ms"], out["echo p99 ms"] = e["rps"], e["p50"], e["p99"]
        out["echo stuck conns"] = e["stuck"]
        if c0 is not None:
            out["proxy cpu us/echo req"] = (c1 - c0) / max(1, e["n"]) * 1e6
    if "download" in work:
        c0 = cpu()
        d = download(host, http_port, args)
        c1 = cpu()
        out["download MB/s"] = d["mbps"]
        if c0 is not None:
            out["proxy cpu s/GB"] = (c1 - c0) / (d["bytes"] / 1e9)
    return out


# ---------------------------------------------------------------- docker

def sweep(client) -> None:
    sel = {"label": [f"{k}={v}" for k, v in LABEL.items()]}
    for c in client.containers.list(all=True, filters=sel):
        c.remove(force=True)
    for n in client.networks.list(filters=sel):
        n.remove()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=5.0, help="time cap per workload")
    ap.add_argument("--clients", type=int, default=50, help="echo keep-alive connections")
    ap.add_argument("--http-clients", type=int, default=8,
                    help="wrk -c; busybox httpd listens with backlog 9 and forks per "
                         "connection, so more than ~8 measures its SYN drops (1 s retries)")
    ap.add_argument("--threads", type=int, default=2, help="wrk -t")
    ap.add_argument("--rounds", type=int, default=3,
                    help="repeat direct/docker-proxy/gitops this many times; report medians")
    ap.add_argument("--requests", type=int, default=300_000, help="echo requests per run (cap)")
    ap.add_argument("--big-mb", type=int, default=256, help="size of /big")
    ap.add_argument("--downloads", type=int, default=8, help="downloads of /big per run (cap)")
    ap.add_argument("--proxy", default="gitops.proxy.listeners:Proxy", help="module:Class")
    ap.add_argument("--uvloop", action="store_true", help="run the gitops proxy on uvloop")
    ap.add_argument("--only", default="direct,docker-proxy,gitops", help="which paths to run")
    ap.add_argument("--workloads", default="http,echo,download", help="which workloads to run")
    ap.add_argument("--hold", type=float, default=0.0,
                    help="after setup, keep everything up this many seconds (for profiling)")
    args = ap.parse_args()
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.INFO))
    os.environ.setdefault("DOCKER_HOST", "unix:///run/gitops-docker/docker.sock")
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is missing: apt-get install -y wrk")
    if args.uvloop:
        importlib.import_module("uvloop")  # fail early, not in the child
    import docker

    client = docker.from_env(timeout=60)
    sweep(client)
    procs, net, ct, parent, loop_kind = [], None, None, None, ""
    results: dict[str, dict] = {}
    try:
        net = client.networks.create(
            NETWORK, driver="bridge", labels=LABEL,
            ipam=docker.types.IPAMConfig(pool_configs=[
                docker.types.IPAMPool(subnet=SUBNET, gateway=GATEWAY)]))
        pub_http, pub_echo = free_port(), free_port()
        script = (f"mkdir -p /www && head -c {SMALL} /dev/zero | tr '\\0' a > /www/index.html"
                  f" && head -c {args.big_mb << 20} /dev/zero > /www/big"
                  f" && (nc -ll -p {ECHO_PORT} -e cat &) && exec httpd -f -p {HTTP_PORT} -h /www")
        ct = client.containers.run(
            IMAGE, ["sh", "-c", script], detach=True, network=NETWORK, labels=LABEL,
            ports={f"{HTTP_PORT}/tcp": (LO, pub_http), f"{ECHO_PORT}/tcp": (LO, pub_echo)})
        ct.reload()
        ip = ct.attrs["NetworkSettings"]["Networks"][NETWORK]["IPAddress"]
        if ipaddress.ip_address(ip) not in ipaddress.ip_network(SUBNET):
            raise SystemExit(f"container got {ip}, outside {SUBNET}: refusing to send traffic")
        for port in (HTTP_PORT, ECHO_PORT):
            wait_tcp(ip, port, 20)
        dp_pids = [find_docker_proxy(p) for p in (pub_http, pub_echo)]
        if None in dp_pids:
            raise SystemExit("no docker-proxy process for the published ports "
                             "(is the engine's userland-proxy off?)")
        log.info("bench_ready", container_ip=ip, docker_proxy_pids=dp_pids)

        ctx = mp.get_context("spawn")
        parent, child = ctx.Pipe()
        gp_http, gp_echo = free_port(), free_port()
        routes = {(LO, gp_http): [(ip, HTTP_PORT)], (LO, gp_echo): [(ip, ECHO_PORT)]}
        procs.append(ctx.Process(target=_proxy_main, args=(child, routes, args.proxy, args.uvloop),
                                 daemon=True))
        procs[-1].start()
        if not parent.poll(30):
            raise SystemExit("gitops proxy did not start")
        errors, loop_kind = parent.recv()
        if errors:
            raise SystemExit(f"gitops proxy failed to listen: {errors}")
        gitops_pid = procs[-1].pid

        def gitops_cpu() -> float:
            parent.send("cpu")
            return parent.recv()

        def docker_proxy_cpu() -> float:
            return sum(proc_cpu(p) for p in dp_pids)

        if args.hold:
            log.info("bench_holding", seconds=args.hold, gitops_pid=gitops_pid,
                     gitops=f"{LO}:{gp_http},{gp_echo}", docker_proxy=f"{LO}:{pub_http},{pub_echo}")
            time.sleep(args.hold)
        paths = {"direct": (ip, HTTP_PORT, ECHO_PORT, lambda: None),
                 "docker-proxy": (LO, pub_http, pub_echo, docker_proxy_cpu),
                 "gitops": (LO, gp_http, gp_echo, gitops_cpu)}
        runs: dict[str, list[dict]] = {}
        for rnd in range(args.rounds):  # interleaved, so drift on a shared machine hits all
            for name in args.only.split(","):
                host, hp, ep, cpu = paths[name]
                log.info("bench_run", path=name, round=rnd + 1)
                runs.setdefault(name, []).append(measure(host, hp, ep, cpu, args))
        results = {name: {k: statistics.median(r[k] for r in rs) for k in rs[0]}
                   for name, rs in runs.items()}
    finally:
        if parent is not None:
            with_suppress(lambda: parent.send("stop"))
        for p in procs:
            p.join(10)
            if p.is_alive():
                p.terminate()
        if ct is not None:
            with_suppress(lambda: ct.remove(force=True))
        if net is not None:
            with_suppress(net.remove)
    report(results, args, loop_kind)


def with_suppress(fn) -> None:
    try:
        fn()
    except Exception as exc:  # noqa: BLE001 - cleanup goes on
        log.warning("bench_cleanup_failed", error=str(exc))


def report(results: dict, args, loop_kind: str) -> None:
    cols = [c for c in ("direct", "docker-proxy", "gitops") if c in results]
    print(f"\ncpus={os.cpu_count()}  python={sys.version.split()[0]}  gitops loop={loop_kind}  "
          f"wrk -t{args.threads} -c{args.http_clients} -d{args.seconds:g}s  "
          f"echo {REQ}B x{args.clients} conns  /index.html {SMALL}B  /big {args.big_mb} MiB  "
          f"median of {args.rounds} round(s)\n")
    head = f"{'metric':<24}" + "".join(f"{c:>14}" for c in cols)
    ratios = [("gitops", "docker-proxy"), ("gitops", "direct")]
    ratios = [r for r in ratios if r[0] in results and r[1] in results]
    head += "".join(f"{'/'.join(('gitops', 'dproxy' if b == 'docker-proxy' else b)):>16}"
                    for _, b in ratios)
    print(head)
    keys = list(dict.fromkeys(k for c in cols for k in results[c]))
    for k in keys:
        fmt = "{:>14.0f}" if any(w in k for w in ("req/s", "errors", "MB/s", "stuck")) \
            else "{:>14.2f}"
        row = f"{k:<24}"
        for c in cols:
            v = results[c].get(k)
            row += fmt.format(v) if v is not None else f"{'-':>14}"
        for a, b in ratios:
            va, vb = results[a].get(k), results[b].get(k)
            row += f"{va / vb:>16.2f}" if va is not None and vb and not \
                any(w in k for w in ("errors", "stuck")) else f"{'-':>16}"
        print(row)


if __name__ == "__main__":
    main()
