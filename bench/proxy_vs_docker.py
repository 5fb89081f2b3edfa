"""gitops proxy vs Docker's docker-proxy vs a direct connection, against the same containers.

Two containers (label gitops.bench.proxy=true) on a throwaway bridge network with subnet
10.213.251.0/24:
  web   busybox httpd :8080 serving /index.html (1 KiB) and /big (--big-mb MiB); it answers
        every request with "Connection: close", so wrk opens one connection per request
  ka    a small keep-alive HTTP/1.1 server (Python asyncio, gitops/python:3.11) :8081
        answering every request with 1 KiB
Each is reached three ways:
  direct        the container IP (the limit)
  docker-proxy  a port published on 127.0.0.1; with --iptables=false the engine serves it
                with its userland docker-proxy (checked: the process must exist)
  gitops        gitops.proxy.listeners.Proxy on 127.0.0.1, in its own process (on the
                event loop the agent uses: uvloop when installed), forwarding to the
                container IP

Workloads, all with wrk (Debian's package), each bounded by --seconds:
  conn/req    wrk -t2 -c8 --latency /index.html on web (new connection per request)
  keep-alive  wrk -t2 -c50 --latency / on ka
  bulk        wrk -t1 -c1 /big on web: transfer rate

    python bench/proxy_vs_docker.py [--seconds 5] [--rounds 3] [--big-mb 256] [--loop asyncio]

As a module: run(quick=False) -> dict (see run()). Traffic goes only to 127.0.0.1 and to
the containers this script creates. Containers and the network are removed in `finally`
(and leftovers with the label at the start).
"""

from __future__ import annotations

import argparse
import importlib
import ipaddress
import logging
import math
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
WEB_IMAGE, KA_IMAGE = "gitops/busybox:1", "gitops/python:3.11"
WEB_PORT, KA_PORT = 8080, 8081
SMALL = 1024
PATHS = ("direct", "docker-proxy", "gitops")

KA_SERVER = f"""
import asyncio
BODY = b"a" * {SMALL}
RESP = b"HTTP/1.1 200 OK\\r\\nContent-Length: %d\\r\\n\\r\\n" % len(BODY) + BODY
class Http(asyncio.Protocol):
    def connection_made(self, t):
        self.t, self.buf = t, b""
    def data_received(self, data):
        self.buf += data
        n = self.buf.count(b"\\r\\n\\r\\n")
        if n:
            self.buf = self.buf[self.buf.rfind(b"\\r\\n\\r\\n") + 4:]
            self.t.write(RESP * n)
async def main():
    server = await asyncio.get_running_loop().create_server(Http, "0.0.0.0", {KA_PORT}, backlog=1024)
    await server.serve_forever()
asyncio.run(main())
"""

log = structlog.get_logger(component="bench")


class BenchError(RuntimeError):
    """The benchmark cannot run here (no wrk, no docker-proxy, a container outside the
    subnet...): callers such as bench/run.py get an exception, not an exit."""


# ---------------------------------------------------------------- gitops proxy process

def _proxy_main(conn, routes, factory: str, loop: str, workers: int) -> None:
    mod, _, attr = factory.partition(":")
    proxy_cls = getattr(importlib.import_module(mod), attr)
    import asyncio

    async def main():
        structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
        proxy = proxy_cls()
        conn.send((await proxy.apply(routes), type(asyncio.get_running_loop()).__module__))
        while await asyncio.get_running_loop().run_in_executor(None, conn.recv) == "cpu":
            ru = resource.getrusage(resource.RUSAGE_SELF)
            conn.send(ru.ru_utime + ru.ru_stime)
        await proxy.close()

    os.environ["GITOPS_EVENT_LOOP"] = loop
    os.environ["GITOPS_PROXY_WORKERS"] = str(workers)
    from gitops.proxy.loop import run
    run(main())


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


_TIME = {"us": 1e-3, "ms": 1.0, "s": 1e3}
_SIZE = {"B": 1e-6, "KB": 1e-3, "MB": 1.0, "GB": 1e3}


def _ms(text: str) -> float:
    m = re.fullmatch(r"([\d.]+)(us|ms|s)", text)
    return float(m.group(1)) * _TIME[m.group(2)] if m else float("nan")


def wrk(url: str, threads: int, conns: int, seconds: float) -> dict:
    """One bounded wrk run: rps, p50/p99 (ms), transfer MB/s, errors."""
    cmd = ["wrk", f"-t{threads}", f"-c{conns}", f"-d{seconds:g}s", "--timeout", "5s",
           "--latency", url]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 30).stdout
    res = {"rps": math.nan, "p50": math.nan, "p99": math.nan, "mbps": math.nan, "errors": 0}
    if m := re.search(r"Requests/sec:\s+([\d.]+)", out):
        res["rps"] = float(m.group(1))
    if m := re.search(r"Transfer/sec:\s+([\d.]+)(B|KB|MB|GB)", out):
        res["mbps"] = float(m.group(1)) * _SIZE[m.group(2)] * 1.048576  # wrk's MB are MiB
    for q in ("50", "99"):
        if m := re.search(rf"^\s+{q}%\s+(\S+)", out, re.M):
            res[f"p{q}"] = _ms(m.group(1))
    if m := re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out):
        res["errors"] += sum(map(int, m.groups()))
    if m := re.search(r"Non-2xx or 3xx responses: (\d+)", out):
        res["errors"] += int(m.group(1))
    return res


def measure(web: tuple[str, int], ka: tuple[str, int], cpu, opts: dict) -> dict:
    """web, ka: where each backend is reached on this path; cpu() -> CPU seconds of the
    proxy process so far (None when there is none)."""
    s = opts["seconds"]
    out: dict[str, float] = {}
    c0 = cpu()
    r = wrk(f"http://{web[0]}:{web[1]}/index.html", 2, opts["conn_clients"], s)
    c1 = cpu()
    out.update({"conn_rps": r["rps"], "conn_p50_ms": r["p50"], "conn_p99_ms": r["p99"],
                "conn_errors": r["errors"]})
    if c0 is not None:
        out["conn_cpu_us_per_req"] = (c1 - c0) / max(1.0, r["rps"] * s) * 1e6
    c0 = cpu()
    r = wrk(f"http://{ka[0]}:{ka[1]}/", 2, opts["ka_clients"], s)
    c1 = cpu()
    out.update({"keepalive_rps": r["rps"], "keepalive_p50_ms": r["p50"],
                "keepalive_p99_ms": r["p99"], "keepalive_errors": r["errors"]})
    if c0 is not None:
        out["keepalive_cpu_us_per_req"] = (c1 - c0) / max(1.0, r["rps"] * s) * 1e6
    c0 = cpu()
    r = wrk(f"http://{web[0]}:{web[1]}/big", 1, 1, s)
    c1 = cpu()
    out["bulk_mb_s"] = r["mbps"]
    if c0 is not None:
        out["bulk_cpu_s_per_gb"] = (c1 - c0) / max(1e-9, r["mbps"] * s / 1e3)
    return out


# ---------------------------------------------------------------- docker

def sweep(client) -> None:
    sel = {"label": [f"{k}={v}" for k, v in LABEL.items()]}
    for c in client.containers.list(all=True, filters=sel):
        c.remove(force=True)
    for n in client.networks.list(filters=sel):
        n.remove()


def _cleanup(fn) -> None:
    try:
        fn()
    except Exception as exc:  # noqa: BLE001 - cleanup goes on
        log.warning("bench_cleanup_failed", error=str(exc))


def measure_all(seconds: float = 5.0, rounds: int = 3, big_mb: int = 256,
                conn_clients: int = 8, ka_clients: int = 50, loop: str = "",
                proxy: str = "gitops.proxy.listeners:Proxy",
                only: tuple[str, ...] = PATHS, workers: int = 0) -> tuple[dict[str, dict], str]:
    """Median figures per path over interleaved rounds, and the gitops proxy's loop kind."""
    os.environ.setdefault("DOCKER_HOST", "unix:///run/gitops-docker/docker.sock")
    if shutil.which("wrk") is None:
        raise BenchError("wrk is missing: apt-get install -y wrk")
    import docker

    opts = {"seconds": seconds, "conn_clients": conn_clients, "ka_clients": ka_clients}
    client = docker.from_env(timeout=60)
    sweep(client)
    procs, net, cts, parent, loop_kind = [], None, [], None, ""
    try:
        net = client.networks.create(
            NETWORK, driver="bridge", labels=LABEL,
            ipam=docker.types.IPAMConfig(pool_configs=[
                docker.types.IPAMPool(subnet=SUBNET, gateway=GATEWAY)]))
        pub_web, pub_ka = free_port(), free_port()
        web_script = (f"mkdir -p /www && head -c {SMALL} /dev/zero | tr '\\0' a > /www/index.html"
                      f" && head -c {big_mb << 20} /dev/zero > /www/big"
                      f" && exec httpd -f -p {WEB_PORT} -h /www")
        cts.append(client.containers.run(
            WEB_IMAGE, ["sh", "-c", web_script], detach=True, network=NETWORK, labels=LABEL,
            ports={f"{WEB_PORT}/tcp": (LO, pub_web)}))
        cts.append(client.containers.run(
            KA_IMAGE, ["python3", "-c", KA_SERVER], detach=True, network=NETWORK, labels=LABEL,
            ports={f"{KA_PORT}/tcp": (LO, pub_ka)}))
        ips = []
        for ct in cts:
            ct.reload()
            ip = ct.attrs["NetworkSettings"]["Networks"][NETWORK]["IPAddress"]
            if ipaddress.ip_address(ip) not in ipaddress.ip_network(SUBNET):
                raise BenchError(f"container got {ip}, outside {SUBNET}: refusing to send traffic")
            ips.append(ip)
        web_ip, ka_ip = ips
        wait_tcp(web_ip, WEB_PORT, 20)
        wait_tcp(ka_ip, KA_PORT, 20)
        dp_pids = [find_docker_proxy(p) for p in (pub_web, pub_ka)]
        if None in dp_pids:
            raise BenchError("no docker-proxy process for the published ports "
                             "(is the engine's userland-proxy off?)")
        log.info("bench_ready", web=web_ip, ka=ka_ip, docker_proxy_pids=dp_pids)

        ctx = mp.get_context("spawn")
        parent, child = ctx.Pipe()
        gp_web, gp_ka = free_port(), free_port()
        routes = {(LO, gp_web): [(web_ip, WEB_PORT)], (LO, gp_ka): [(ka_ip, KA_PORT)]}
        procs.append(ctx.Process(target=_proxy_main, args=(child, routes, proxy, loop, workers),
                                 daemon=True))
        procs[-1].start()
        if not parent.poll(30):
            raise BenchError("gitops proxy did not start")
        errors, loop_kind = parent.recv()
        if errors:
            raise BenchError(f"gitops proxy failed to listen: {errors}")

        def gitops_cpu() -> float:
            parent.send("cpu")
            return parent.recv()

        def docker_proxy_cpu() -> float:
            return sum(proc_cpu(p) for p in dp_pids)

        paths = {"direct": ((web_ip, WEB_PORT), (ka_ip, KA_PORT), lambda: None),
                 "docker-proxy": ((LO, pub_web), (LO, pub_ka), docker_proxy_cpu),
                 "gitops": ((LO, gp_web), (LO, gp_ka), gitops_cpu)}
        runs: dict[str, list[dict]] = {}
        for rnd in range(rounds):  # interleaved, so drift on a shared machine hits all
            for name in only:
                web, ka, cpu = paths[name]
                log.info("bench_run", path=name, round=rnd + 1)
                runs.setdefault(name, []).append(measure(web, ka, cpu, opts))
        results = {name: {k: statistics.median(r[k] for r in rs) for k in rs[0]}
                   for name, rs in runs.items()}
    finally:
        if parent is not None:
            _cleanup(lambda: parent.send("stop"))
        for p in procs:
            p.join(10)
            if p.is_alive():
                p.terminate()
        for ct in cts:
            _cleanup(lambda ct=ct: ct.remove(force=True))
        if net is not None:
            _cleanup(net.remove)
    return results, loop_kind


def _ratio(a: float, b: float) -> float:
    return a / b if b and not math.isnan(a) and not math.isnan(b) else math.nan


def run(quick: bool = False, **overrides) -> dict:
    """The figures as a dict (for bench/run.py):

    proxy_rps_ratio_vs_docker_proxy   gitops rps / docker-proxy rps, the lower of the
                                      keep-alive and connection-per-request workloads
    proxy_p99_ratio_vs_docker_proxy   gitops p99 / docker-proxy p99, the higher of the two
                                      (below 1 is better)
    proxy_bulk_ratio_vs_docker_proxy  gitops MB/s / docker-proxy MB/s
    proxy_rps_ratio_vs_direct, proxy_p99_ratio_vs_direct, proxy_bulk_ratio_vs_direct
    proxy_table                       {path: {conn_rps, conn_p50_ms, conn_p99_ms,
                                      keepalive_rps, keepalive_p50_ms, keepalive_p99_ms,
                                      bulk_mb_s, ...}} for direct, docker-proxy, gitops
    proxy_loop                        the gitops proxy's event loop module

    quick: 2 s per workload, one round, a 64 MiB /big. overrides: measure_all() keywords.
    """
    params = dict(seconds=2.0, rounds=1, big_mb=64) if quick else {}
    params.update(overrides)
    table, loop_kind = measure_all(**params)
    out: dict = {"proxy_table": table, "proxy_loop": loop_kind}
    g, d, x = table.get("gitops", {}), table.get("docker-proxy", {}), table.get("direct", {})
    for name, ref in (("docker_proxy", d), ("direct", x)):
        rps = [_ratio(g.get(k, math.nan), ref.get(k, math.nan))
               for k in ("conn_rps", "keepalive_rps")]
        p99 = [_ratio(g.get(k, math.nan), ref.get(k, math.nan))
               for k in ("conn_p99_ms", "keepalive_p99_ms")]
        out[f"proxy_rps_ratio_vs_{name}"] = min(rps)
        out[f"proxy_p99_ratio_vs_{name}"] = max(p99)
        out[f"proxy_bulk_ratio_vs_{name}"] = _ratio(g.get("bulk_mb_s", math.nan),
                                                    ref.get("bulk_mb_s", math.nan))
    return out


ROWS = [("conn_rps", "conn/req req/s", "{:.0f}"), ("conn_p50_ms", "conn/req p50 ms", "{:.2f}"),
        ("conn_p99_ms", "conn/req p99 ms", "{:.2f}"), ("conn_errors", "conn/req errors", "{:.0f}"),
        ("keepalive_rps", "keep-alive req/s", "{:.0f}"),
        ("keepalive_p50_ms", "keep-alive p50 ms", "{:.2f}"),
        ("keepalive_p99_ms", "keep-alive p99 ms", "{:.2f}"),
        ("keepalive_errors", "keep-alive errors", "{:.0f}"),
        ("bulk_mb_s", "bulk MB/s", "{:.0f}"),
        ("conn_cpu_us_per_req", "proxy cpu us/conn req", "{:.0f}"),
        ("keepalive_cpu_us_per_req", "proxy cpu us/ka req", "{:.1f}"),
        ("bulk_cpu_s_per_gb", "proxy cpu s/GB", "{:.2f}")]


def report(figures: dict, header: str) -> None:
    table = figures["proxy_table"]
    cols = [c for c in PATHS if c in table]
    print(f"\n{header}\n")
    ratios = [r for r in (("gitops", "docker-proxy"), ("gitops", "direct"))
              if r[0] in table and r[1] in table]
    head = f"{'metric':<24}" + "".join(f"{c:>14}" for c in cols) + "".join(
        f"{'gitops/' + ('dproxy' if b == 'docker-proxy' else b):>16}" for _, b in ratios)
    print(head)
    for key, label, fmt in ROWS:
        if not any(key in table[c] for c in cols):
            continue
        row = f"{label:<24}"
        for c in cols:
            v = table[c].get(key)
            row += f"{fmt.format(v):>14}" if v is not None else f"{'-':>14}"
        for a, b in ratios:
            va, vb = table[a].get(key), table[b].get(key)
            ok = va is not None and vb and "errors" not in key
            row += f"{va / vb:>16.2f}" if ok else f"{'-':>16}"
        print(row)
    print()
    for k in ("proxy_rps_ratio_vs_docker_proxy", "proxy_p99_ratio_vs_docker_proxy",
              "proxy_bulk_ratio_vs_docker_proxy", "proxy_rps_ratio_vs_direct",
              "proxy_p99_ratio_vs_direct", "proxy_bulk_ratio_vs_direct"):
        print(f"{k:<36}{figures[k]:>8.2f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=5.0, help="time cap per workload")
    ap.add_argument("--rounds", type=int, default=3,
                    help="repeat direct/docker-proxy/gitops this many times; report medians")
    ap.add_argument("--big-mb", type=int, default=256, help="size of /big")
    ap.add_argument("--conn-clients", type=int, default=8,
                    help="wrk -c for conn/req; busybox httpd listens with backlog 9 and forks "
                         "per connection, so more than ~8 measures its SYN drops (1 s retries)")
    ap.add_argument("--ka-clients", type=int, default=50, help="wrk -c for keep-alive")
    ap.add_argument("--loop", default="", choices=["", "asyncio"],
                    help="the gitops proxy's event loop (default: the agent's, uvloop if installed)")
    ap.add_argument("--proxy", default="gitops.proxy.listeners:Proxy", help="module:Class")
    ap.add_argument("--workers", type=int, default=0,
                    help="extra proxy processes (GITOPS_PROXY_WORKERS; default 0)")
    ap.add_argument("--quick", action="store_true", help="2 s per workload, one round")
    ap.add_argument("--only", default=",".join(PATHS), help="which paths to run")
    args = ap.parse_args()
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.INFO))
    overrides = dict(loop=args.loop, proxy=args.proxy, only=tuple(args.only.split(",")),
                     workers=args.workers,
                     conn_clients=args.conn_clients, ka_clients=args.ka_clients)
    if not args.quick:
        overrides.update(seconds=args.seconds, rounds=args.rounds, big_mb=args.big_mb)
    try:
        figures = run(args.quick, **overrides)
    except BenchError as exc:
        raise SystemExit(f"proxy_vs_docker: {exc}") from None
    q = dict(seconds=2.0, rounds=1, big_mb=64) if args.quick else \
        dict(seconds=args.seconds, rounds=args.rounds, big_mb=args.big_mb)
    report(figures, f"cpus={os.cpu_count()}  python={sys.version.split()[0]}  "
                    f"gitops loop={figures['proxy_loop']} workers={args.workers}  "
                    f"{q['seconds']:g}s per workload  "
                    f"conn/req wrk -c{args.conn_clients}  keep-alive wrk -c{args.ka_clients}  "
                    f"/index.html {SMALL}B  /big {q['big_mb']} MiB  median of {q['rounds']} round(s)")


if __name__ == "__main__":
    main()
