"""A cluster of three simulated hosts (scripts/sim-hosts.sh; needs root), printed as a table:

- cluster_push_to_ready_s: a 6-replica Deployment written to the repo (the server watches
  the directory) to all six pods Ready, spread over the three hosts (median of rounds)
- cross_node_proxy_rps_ratio_vs_direct: from host h2, requests/s through a ClusterIP whose
  endpoints all run on h3, against dialling the pod on h3 directly (one connection per
  request, the same bounded load loop for both, in alternating slices)
- node_loss_to_replaced_s: h3's agent killed and its link cut, grace period 10 s and
  toleration 5 s, to every replica Ready on the other hosts

    python bench/cluster_bench.py [--quick]

Traffic stays inside the simulated hosts' namespaces; every loop is bounded.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import ssl
import statistics
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tests.cluster.harness import Cluster, ready  # noqa: E402
from tests.cluster.sim import SimHosts, usable  # noqa: E402

DEPLOY = """\
apiVersion: apps/v1
kind: Deployment
metadata: {name: %(name)s}
spec:
  replicas: %(replicas)d
  selector: {matchLabels: {app: %(name)s}}
  template:
    metadata: {labels: {app: %(name)s}}
    spec:
      terminationGracePeriodSeconds: 1
      %(placement)s
      containers:
      - name: web
        image: gitops/busybox:1
        imagePullPolicy: IfNotPresent
        command: ["sh", "-c", "echo ok > /tmp/index.html; exec httpd -f -p 8080 -h /tmp"]
---
apiVersion: v1
kind: Service
metadata: {name: %(name)s}
spec:
  selector: {app: %(name)s}
  ports: [{port: 80, targetPort: 8080}]
"""
SPREAD = ("topologySpreadConstraints: [{maxSkew: 1, topologyKey: kubernetes.io/hostname, "
          "whenUnsatisfiable: DoNotSchedule, labelSelector: {matchLabels: {app: %s}}}]")
ON_H3 = "nodeSelector: {kubernetes.io/hostname: h3}"

# Run inside h2's namespace: N threads, each a bounded loop of one-request connections.
LOAD = r"""
import socket, sys, threading, time
host, port, seconds, threads = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), 8
counts = [0] * threads
def worker(i):
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        try:
            with socket.create_connection((host, port), timeout=5) as s:
                s.sendall(b"GET /index.html HTTP/1.0\r\n\r\n")
                while s.recv(65536):
                    pass
            counts[i] += 1
        except OSError:
            time.sleep(0.01)
ts = [threading.Thread(target=worker, args=(i,)) for i in range(threads)]
[t.start() for t in ts]; [t.join() for t in ts]
print(sum(counts) / seconds)
"""


class Api:
    """The server's API from this machine, with the admin token (polling is cheap)."""

    def __init__(self, c: Cluster) -> None:
        self.url = c.server_url()
        self.token = (c.server_dir / "token").read_text().strip()
        self.tls = ssl.create_default_context(cafile=str(c.server_dir / "ca.crt"))

    def get(self, path: str) -> dict:
        req = urllib.request.Request(self.url + path,
                                     headers={"Authorization": f"Bearer {self.token}"})
        with urllib.request.urlopen(req, timeout=10, context=self.tls) as resp:
            return json.loads(resp.read())

    def watch(self, path: str, rv: str) -> http.client.HTTPResponse:
        """A watch stream (one JSON event per line), as kubectl and informers use."""
        url = urllib.parse.urlsplit(self.url)
        conn = http.client.HTTPSConnection(url.hostname, url.port, timeout=120,
                                           context=self.tls)
        sep = "&" if "?" in path else "?"
        conn.request("GET", f"{path}{sep}watch=1&resourceVersion={rv}",
                     headers={"Authorization": f"Bearer {self.token}"})
        resp = conn.getresponse()
        if resp.status != 200:
            raise RuntimeError(f"watch {path}: {resp.status} {resp.read()[:200]!r}")
        return resp

    def ready_pods(self, app: str) -> list[dict]:
        pods = self.get(f"/api/v1/namespaces/default/pods?labelSelector=app%3D{app}")["items"]
        return [p for p in pods if not p["metadata"].get("deletionTimestamp") and any(
            c["type"] == "Ready" and c["status"] == "True"
            for c in p.get("status", {}).get("conditions", []))]


def _wait(check, timeout: float, what: str) -> float:
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if check():
            return time.monotonic() - start
        time.sleep(0.05)
    raise RuntimeError(f"timed out after {timeout}s waiting for {what}")


def _write(c: Cluster, apps: dict[str, str]) -> None:
    text = "---\n".join(apps.values()) or "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n"
    tmp = c.repo / ".app.yaml.tmp"
    tmp.write_text(text)
    os.replace(tmp, c.repo / "app.yaml")


def _ready(pod: dict) -> bool:
    return not pod["metadata"].get("deletionTimestamp") and any(
        c["type"] == "Ready" and c["status"] == "True"
        for c in pod.get("status", {}).get("conditions", []))


def _watch_ready(stream, count: int, timeout: float) -> None:
    """Until `count` pods of the watched set are Ready (watch events, no polling)."""
    ready: set[str] = set()
    deadline = time.monotonic() + timeout
    while len(ready) < count:
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out after {timeout}s: {len(ready)} of {count} Ready")
        line = stream.readline()
        if not line:
            raise RuntimeError("the watch ended")
        event = json.loads(line)
        pod = event.get("object") or {}
        name = pod.get("metadata", {}).get("name", "")
        if event.get("type") != "DELETED" and _ready(pod):
            ready.add(name)
        else:
            ready.discard(name)


def push_to_ready(c: Cluster, api: Api, rounds: int) -> list[float]:
    """Each round: write the change, then follow a watch on its pods (what kubectl
    rollout status does) until all six are Ready."""
    times = []
    for i in range(rounds):
        name = f"push{i}"
        apps = {name: DEPLOY % {"name": name, "replicas": 6, "placement": SPREAD % name}}
        path = f"/api/v1/namespaces/default/pods?labelSelector=app%3D{name}"
        stream = api.watch(path, api.get(path)["metadata"]["resourceVersion"])
        try:
            start = time.monotonic()
            _write(c, apps)
            _watch_ready(stream, 6, 120)
            times.append(time.monotonic() - start)
        finally:
            stream.close()
        hosts = {p["spec"]["nodeName"] for p in api.ready_pods(name)}
        if hosts != {"h1", "h2", "h3"}:
            raise RuntimeError(f"{name} ran on {sorted(hosts)}, not on all three hosts")
        _write(c, {})
        _wait(lambda: not api.get(f"/api/v1/namespaces/default/pods?labelSelector=app%3D"
                                  f"{name}")["items"], 60, f"{name} gone")
    return times


def _load(c: Cluster, host: str, port: int, seconds: float) -> float:
    done = c.sim.exec("h2", sys.executable, "-c", LOAD, host, str(port), str(seconds),
                      timeout=seconds + 60)
    if done.returncode != 0:
        raise RuntimeError(f"load loop failed: {done.stderr}")
    return float(done.stdout.strip())


def cross_node_ratio(c: Cluster, api: Api, pairs: int, seconds: float) -> dict:
    """Paired slices, direct and through the ClusterIP in turn (ABBA order), so the rest of
    the machine's load, which drifts over seconds, weighs on both alike."""
    _write(c, {"far": DEPLOY % {"name": "far", "replicas": 1, "placement": ON_H3}})
    _wait(lambda: len(api.ready_pods("far")) == 1, 120, "far Ready")
    pod_ip = api.ready_pods("far")[0]["status"]["podIP"]
    vip = api.get("/api/v1/namespaces/default/services/far")["spec"]["clusterIP"]
    _wait(lambda: _load(c, vip, 80, 0.5) > 0, 60, "the ClusterIP to answer on h2")
    direct, proxied = [], []
    for i in range(pairs):
        order = ((direct, pod_ip, 8080), (proxied, vip, 80))
        for out, host, port in (order if i % 2 == 0 else order[::-1]):
            out.append(_load(c, host, port, seconds))
    _write(c, {})
    d, p = statistics.mean(direct), statistics.mean(proxied)
    return {"direct_rps": round(d, 1), "clusterip_rps": round(p, 1),
            "ratio": p / d if d else float("nan"),
            "pairs": [round(b / a, 2) if a else None for a, b in zip(direct, proxied)]}


def node_loss(c: Cluster, api: Api) -> float:
    name = "moved"
    _write(c, {name: DEPLOY % {"name": name, "replicas": 6, "placement": ""}})
    _wait(lambda: len(api.ready_pods(name)) == 6 and any(
        p["spec"]["nodeName"] == "h3" for p in api.ready_pods(name)), 120, f"{name} Ready")
    start = time.monotonic()
    c.kill("h3")
    c.sim.exec("h3", "ip", "link", "set", "eth0", "down")
    _wait(lambda: len([p for p in api.ready_pods(name) if p["spec"]["nodeName"] != "h3"]) == 6,
          c.grace + c.toleration + 60, "replacements Ready")
    return time.monotonic() - start


def run(quick: bool = False) -> dict:
    reason = usable()
    if reason:
        raise RuntimeError(f"cluster bench cannot run here: {reason}")
    with tempfile.TemporaryDirectory(prefix="gitops-cluster-bench-") as tmp:
        work = Path(tmp)
        work.chmod(0o700)
        sim = SimHosts(prefix="b" + os.urandom(3).hex())
        c = Cluster(sim, work, grace=10, toleration=5)
        try:
            c.start_hosts()
            api = Api(c)
            _wait(lambda: len([n for n in api.get("/api/v1/nodes")["items"]
                               if ready(n)]) == 3, 120, "three Ready nodes")
            pushes = push_to_ready(c, api, 1 if quick else 3)
            proxy = cross_node_ratio(c, api, 4 if quick else 6, 1.0 if quick else 2.0)
            loss = node_loss(c, api)
        finally:
            c.stop_all()
            sim.down()
    return {"cluster_push_to_ready_s": statistics.median(pushes),
            "cross_node_proxy_rps_ratio_vs_direct": proxy["ratio"],
            "node_loss_to_replaced_s": loss,
            "cluster_push_rounds_s": [round(t, 2) for t in pushes],
            "cross_node_direct_rps": proxy["direct_rps"],
            "cross_node_clusterip_rps": proxy["clusterip_rps"],
            "cross_node_pair_ratios": proxy["pairs"]}


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    result = run(ap.parse_args().quick)
    for key, value in result.items():
        print(f"{key:42} {value}")
