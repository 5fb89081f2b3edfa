"""The control plane at scale, on each backend (SQLite, etcd), with simulated nodes
(gitops.agent.simulated, as kwok): N nodes, P pods created unbound, then

- scheduler_pods_per_s_1000_nodes: pods bound per second by the scheduler (its informer
  fed by the store's watch, binds written through the registry);
- api_list_10000_pods_s: `kubectl get pods -A -o json` of them all, through the API
  (api_list_kubectl_only_s: the same kubectl against a replay of the API's answers, its
  own decoding and printing; api_list_server_s: the API's share, the same pages of 500
  fetched by a client that only reads the bytes);
- server_rss_mb_10000_pods: peak RSS of the process holding store, informer and API;
- etcd_failover_s: a 3-member etcd's leader killed (kill -9) to a write accepted by the
  store through a survivor.

Each backend runs in a child process (its own memory). Full: 1,000 nodes, 10,000 pods;
--quick: 100 nodes, 1,000 pods (the keys keep their names). Keys without a suffix are
etcd's, `_sqlite` SQLite's.

    python bench/control_plane_bench.py [--quick]
"""

from __future__ import annotations

import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

FULL = (1000, 10000)
QUICK = (100, 1000)


def pod(i: int) -> dict:
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": f"p-{i:05d}", "namespace": f"ns-{i % 10}",
                         "labels": {"app": f"a{i % 50}"}},
            "spec": {"containers": [{"name": "c", "image": "gitops/pause:1",
                                     "resources": {"requests": {"cpu": "10m",
                                                                "memory": "16Mi"}}}]}}


def _store(backend: str, tmp: Path, etcd_url: str):
    from gitops.store import Registry
    if backend == "etcd":
        from gitops.store.etcd import EtcdStore
        return Registry(EtcdStore(etcd_url, prefix=f"/bench-{uuid.uuid4().hex[:8]}/"))
    from gitops.store.sqlite import SqliteStore
    return Registry(SqliteStore(tmp / "state.db"))


def measure(backend: str, nodes: int, pods: int, etcd_url: str = "") -> dict:
    """In this process: the figures of one backend."""
    from gitops.agent.simulated import SimulatedNodes
    from gitops.scheduler.loop import SchedulerLoop
    from gitops.store.informer import Informer
    from gitops.store.registry import execute_batched
    from tests.kube_support import KubeServer, run_kubectl
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        store = _store(backend, tmp, etcd_url)
        sim = SimulatedNodes(store, nodes, batch=200)
        sim.register()
        informer = Informer(store)
        sched = SchedulerLoop(informer,
                              lambda actions: execute_batched(store, actions, "scheduler"))
        for ns in range(10):                   # pods are admitted into existing namespaces
            store.create({"apiVersion": "v1", "kind": "Namespace",
                          "metadata": {"name": f"ns-{ns}"}})
        for start in range(0, pods, 200):
            with store.transaction():
                for i in range(start, min(pods, start + 200)):
                    store.create(pod(i))
        t0 = time.perf_counter()
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline:
            sched._next_flush = 0               # every pass looks at every pending pod
            sched.run_once()
            if not any(not (p.get("spec") or {}).get("nodeName")
                       for p in informer.list("Pod")):
                break
        scheduling = time.perf_counter() - t0
        bound = sum(1 for p in informer.list("Pod") if p["spec"].get("nodeName"))
        running = 0
        while running < bound and time.monotonic() < deadline:
            running += sim.run_pods()
        with KubeServer(store, tmp) as api:
            lists = []
            for _ in range(3):
                t1 = time.perf_counter()
                got = run_kubectl(api.kubeconfig, "get", "pods", "-A", "-o", "json",
                                  timeout=300)
                lists.append(time.perf_counter() - t1)
                if got.returncode:
                    raise RuntimeError(f"kubectl get pods failed: {got.stderr}")
            listed = len(json.loads(got.stdout)["items"])
            kubectl_only = _kubectl_alone(api, tmp)
            server_only = statistics.median(_server_pages(api) for _ in range(3))
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        store.close()
    return {"nodes": nodes, "pods": pods, "bound": bound, "running": running,
            "listed": listed, "scheduler_pods_per_s": round(bound / scheduling, 1),
            "api_list_s": round(statistics.median(lists), 3),
            "api_list_kubectl_only_s": round(kubectl_only, 3),
            "api_list_server_s": round(server_only, 3), "rss_mb": round(rss, 1)}


def _server_pages(api, limit: int = 500) -> float:
    """Seconds the API takes to answer the pages kubectl asks for (request sent to last
    byte read, summed over the pages; the client's decoding is not counted)."""
    import http.client
    import urllib.parse

    import orjson

    from tests.kube_support import TOKEN
    url = urllib.parse.urlsplit(api.kube_url)
    conn = http.client.HTTPSConnection(url.hostname, url.port, context=api.tls, timeout=300)
    headers = {"Authorization": f"Bearer {TOKEN}", "Accept": "application/json"}
    took, token, pages = 0.0, "", 0
    try:
        while pages == 0 or token:
            query = urllib.parse.urlencode({"limit": limit, **({"continue": token} if token
                                                               else {})})
            t0 = time.perf_counter()
            conn.request("GET", f"/api/v1/pods?{query}", headers=headers)
            resp = conn.getresponse()
            body = resp.read()
            took += time.perf_counter() - t0
            if resp.status != 200:
                raise RuntimeError(f"list pods: {resp.status} {body[:300]!r}")
            token = orjson.loads(body)["metadata"].get("continue", "")
            pages += 1
    finally:
        conn.close()
    return took


def _kubectl_alone(api, tmp: Path) -> float:
    """The same `kubectl get pods -A -o json` against a replay of the API's responses (a
    server that only writes bytes it holds): kubectl's own share of api_list_s, its
    decoding and printing, which no server can make shorter."""
    from tests.kube_support import run_kubectl, write_kubeconfig
    replay = _Replay(api.kube_url, tmp / "ca.crt")
    try:
        (tmp / "replay").mkdir(exist_ok=True)
        kubeconfig = write_kubeconfig(tmp / "replay" / "kubeconfig", replay.url, "-", None)
        times = []
        for i in range(3):                  # the first run records
            replay.replaying = i > 0
            t0 = time.perf_counter()
            got = run_kubectl(kubeconfig, "get", "pods", "-A", "-o", "json", timeout=300)
            if got.returncode:
                raise RuntimeError(f"kubectl against the replay failed: {got.stderr}")
            times.append(time.perf_counter() - t0)
        return statistics.median(times[1:])
    finally:
        replay.close()


class _Replay:
    """Records the API's answers (by method, path and Accept), then serves them again."""

    def __init__(self, upstream: str, ca: Path) -> None:
        import asyncio
        import ssl
        import threading
        self.upstream, self.replaying = upstream, False
        self._answers: dict[tuple, tuple[int, str, bytes]] = {}
        self._tls = ssl.create_default_context(cafile=str(ca))
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        port = asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(30)
        self.url = f"http://127.0.0.1:{port}"

    async def _start(self) -> int:
        import aiohttp
        from aiohttp import web
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._answer)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self._session = aiohttp.ClientSession()
        return site._server.sockets[0].getsockname()[1]

    async def _answer(self, request):
        from aiohttp import web
        from tests.kube_support import TOKEN
        key = (request.method, request.path_qs, request.headers.get("Accept", ""))
        if not (self.replaying and key in self._answers):
            headers = {"Authorization": f"Bearer {TOKEN}",
                       **{k: v for k, v in request.headers.items()
                          if k.lower() in ("accept", "content-type")}}
            async with self._session.request(request.method, self.upstream + request.path_qs,
                                             headers=headers, ssl=self._tls,
                                             data=await request.read()) as resp:
                self._answers[key] = (resp.status, resp.headers.get("Content-Type", ""),
                                      await resp.read())
        status, content_type, body = self._answers[key]
        return web.Response(status=status, body=body, headers={"Content-Type": content_type})

    def close(self) -> None:
        import asyncio

        async def stop() -> None:
            await self._session.close()
            await self._runner.cleanup()
        asyncio.run_coroutine_threadsafe(stop(), self._loop).result(30)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()


def etcd_failover_s() -> float:
    """Kill -9 the etcd leader of 3 members; seconds to the next accepted write."""
    import requests

    from gitops.store.etcd import EtcdStore
    from tests.etcd_support import EtcdCluster, free_port_run
    with tempfile.TemporaryDirectory() as tmp:
        cluster = EtcdCluster(Path(tmp) / "etcd", 3, free_port_run(6)).start()
        try:
            store = EtcdStore(cluster.url, prefix=f"/bench-{uuid.uuid4().hex[:8]}/")
            store.set_state("probe", 0)
            leader = None
            for n in range(3):
                status = requests.post(f"http://{cluster.endpoint(n)}/v3/maintenance/status",
                                       json={}, timeout=5).json()
                if status.get("leader") == status["header"]["member_id"]:
                    leader = n
            t0 = time.perf_counter()
            cluster.kill(leader)
            for i in range(10_000):
                try:
                    store.set_state("probe", i + 1)
                    break
                except Exception:   # noqa: BLE001 - not yet: etcd elects a new leader
                    time.sleep(0.05)
            took = time.perf_counter() - t0
            store.close()
        finally:
            cluster.stop()
    return round(took, 2)


def _in_child(backend: str, nodes: int, pods: int, etcd_url: str) -> dict:
    code = ("import json,sys; sys.path.insert(0, %r); import bench.control_plane_bench as b;"
            "print(json.dumps(b.measure(%r, %d, %d, %r)))" % (str(ROOT), backend, nodes, pods,
                                                              etcd_url))
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=1500, cwd=ROOT)
    if done.returncode:
        raise RuntimeError(f"{backend} measure failed: {done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def run(quick: bool = False) -> dict:
    """Benchmark interface (bench/run.py)."""
    from tests.etcd_support import EtcdCluster, free_port_run
    nodes, pods = QUICK if quick else FULL
    sqlite = _in_child("sqlite", nodes, pods, "")
    with tempfile.TemporaryDirectory() as tmp:
        cluster = EtcdCluster(Path(tmp) / "etcd", 1, free_port_run(2)).start()
        try:
            etcd = _in_child("etcd", nodes, pods, cluster.url)
        finally:
            cluster.stop()
    return {"scheduler_pods_per_s_1000_nodes": etcd["scheduler_pods_per_s"],
            "scheduler_pods_per_s_1000_nodes_sqlite": sqlite["scheduler_pods_per_s"],
            "api_list_10000_pods_s": etcd["api_list_s"],
            "api_list_10000_pods_s_sqlite": sqlite["api_list_s"],
            "server_rss_mb_10000_pods": etcd["rss_mb"],
            "server_rss_mb_10000_pods_sqlite": sqlite["rss_mb"],
            "etcd_failover_s": etcd_failover_s(),
            "control_plane_scale": {"sqlite": sqlite, "etcd": etcd}}


if __name__ == "__main__":
    print(json.dumps(run("--quick" in sys.argv), indent=2))
