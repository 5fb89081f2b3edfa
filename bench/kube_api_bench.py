"""The Kubernetes API on a real store (no Docker), printed as a table:

- list_ms: GET of N ConfigMaps, as JSON and as a Table (kubectl get)
- kubectl_get_s: the real `kubectl get configmaps` end to end (discovery cached)
- patch_per_s: strategic merge patches, one after another
- watch_latency_ms: a store write to its event arriving on an open watch
- portforward_mb_s: bytes through `kubectl port-forward` to a local TCP server

    python bench/kube_api_bench.py [--objects 1000] [--rounds 5]

Everything stays on 127.0.0.1; every loop is bounded in count and time.
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from gitops.model import ObjectKey  # noqa: E402
from gitops.store import Registry, SqliteStore  # noqa: E402
from tests.kube_support import TOKEN, KubeServer, kubectl_path  # noqa: E402

TABLE = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json"
CMS = "/api/v1/namespaces/default/configmaps"


def timed(fn, rounds: int) -> list[float]:
    out = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return out


def watch_latency(api: KubeServer, rounds: int) -> list[float]:
    rv = api.store.resource_version()
    req = urllib.request.Request(f"{api.url}{CMS}?watch=1&resourceVersion={rv}"
                                 f"&fieldSelector=metadata.name%3Dprobe&timeoutSeconds=60",
                                 headers={"Authorization": f"Bearer {TOKEN}"})
    api.store.create({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "probe"},
                      "data": {"n": "0"}})
    out = []
    with urllib.request.urlopen(req, timeout=60) as resp:
        resp.readline()                           # the ADDED of the probe
        for i in range(rounds):
            obj = api.store.get(ObjectKey("ConfigMap", "default", "probe"))
            obj["data"]["n"] = str(i + 1)
            t0 = time.perf_counter()
            api.store.update(obj)
            resp.readline()
            out.append(time.perf_counter() - t0)
    return out


def sink_server(port: int, stop: threading.Event) -> None:
    with socket.create_server(("127.0.0.1", port)) as srv:
        srv.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = srv.accept()
            except socket.timeout:
                continue
            with conn:
                total = 0
                while chunk := conn.recv(1 << 20):
                    total += len(chunk)
                conn.sendall(str(total).encode())


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def portforward_mb_s(api: KubeServer, tmp: Path, megabytes: int) -> float:
    api.store.create({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "sink"},
                      "spec": {"containers": [{"name": "c", "image": "i"}]}})
    api.store.update_status(ObjectKey("Pod", "default", "sink"),
                            {"phase": "Running", "podIP": "127.0.0.1"})
    port, local, stop = free_port(), free_port(), threading.Event()
    threading.Thread(target=sink_server, args=(port, stop), daemon=True).start()
    proc = subprocess.Popen([kubectl_path(), "--cache-dir", str(tmp / "kcache"),
                             "port-forward", "pod/sink", f"{local}:{port}"],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                            env={**os.environ, "KUBECONFIG": str(api.kubeconfig)})
    try:
        proc.stdout.readline()
        block = os.urandom(1 << 20)
        t0 = time.perf_counter()
        with socket.create_connection(("127.0.0.1", local), timeout=60) as conn:
            for _ in range(megabytes):
                conn.sendall(block)
            conn.shutdown(socket.SHUT_WR)
            got = int(conn.recv(64).decode() or 0)
        elapsed = time.perf_counter() - t0
        assert got == megabytes << 20, got
        return megabytes / elapsed
    finally:
        proc.kill()
        proc.communicate(timeout=10)
        stop.set()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--objects", type=int, default=1000)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--patches", type=int, default=200)
    ap.add_argument("--megabytes", type=int, default=64)
    args = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp_dir:
        tmp = Path(tmp_dir)
        store = Registry(SqliteStore(tmp / "state.db"))
        with KubeServer(store, tmp) as api:
            with store.transaction():
                for i in range(args.objects):
                    store.create({"apiVersion": "v1", "kind": "ConfigMap",
                                  "metadata": {"name": f"cm-{i:05d}", "labels": {"i": str(i)}},
                                  "data": {"k": "v" * 100}})
            for shape, headers in (("json", {}), ("table", {"Accept": TABLE})):
                t = timed(lambda: api.request("GET", CMS, headers=headers), args.rounds)
                rows.append((f"list_ms ({args.objects} objects, {shape})",
                             statistics.median(t) * 1000))
            api.kubectl("get", "cm", "--chunk-size", "0")            # warm discovery cache
            t = timed(lambda: api.kubectl("get", "cm", "--chunk-size", "0"), args.rounds)
            rows.append((f"kubectl_get_s ({args.objects} objects)", statistics.median(t)))
            body = {"metadata": {"labels": {"touched": "yes"}}}
            hdr = {"Content-Type": "application/strategic-merge-patch+json"}
            t0 = time.perf_counter()
            for i in range(args.patches):
                api.request("PATCH", f"{CMS}/cm-{i % args.objects:05d}", body, headers=hdr)
            rows.append(("patch_per_s (strategic merge)",
                         args.patches / (time.perf_counter() - t0)))
            lat = watch_latency(api, 50)
            rows.append(("watch_latency_ms (p50)", statistics.median(lat) * 1000))
            rows.append(("watch_latency_ms (max)", max(lat) * 1000))
            rows.append((f"portforward_mb_s ({args.megabytes} MB)",
                         portforward_mb_s(api, tmp, args.megabytes)))
        store.close()
    width = max(len(r[0]) for r in rows)
    print(f"{'metric'.ljust(width)}  value")
    for name, value in rows:
        print(f"{name.ljust(width)}  {value:.2f}")


if __name__ == "__main__":
    main()
