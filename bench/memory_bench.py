"""Agent resident memory with 100 pods running (agent_rss_mb_100_pods, target <= 120).

    DOCKER_HOST=unix:///run/gitops-docker/docker.sock python bench/memory_bench.py [--pods 100]

Starts a real agent (`gitops up` on a directory holding one Deployment of N busybox pods
that only sleep), waits until every pod is Ready, then samples the agent process's VmRSS
from /proc for a few seconds while its loops keep running. Also prints the RSS with no
pods (right after start-up) and the time the N pods took to converge. Everything the agent
creates carries the label gitops.bench=true and is removed by `gitops down` at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LABEL = "gitops.bench=true"
EMPTY = """\
apiVersion: v1
kind: ConfigMap
metadata: {name: memory-bench}
data: {pods: "0"}
"""
DEPLOY = """\
apiVersion: apps/v1
kind: Deployment
metadata: {{name: sleepers}}
spec:
  replicas: {pods}
  selector: {{matchLabels: {{app: sleepers}}}}
  template:
    metadata: {{labels: {{app: sleepers}}}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
        - name: sleep
          image: gitops/busybox:1
          command: ["sleep", "86400"]
          resources: {{requests: {{cpu: 1m, memory: 1Mi}}}}
"""


def gitops(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "gitops", *args], capture_output=True,
                          text=True, timeout=timeout, cwd=ROOT)


def vm(pid: int, field: str) -> float:
    """A /proc/PID/status memory field (VmRSS, VmHWM) in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise KeyError(field)


def sample_rss(pid: int, seconds: float, step: float = 0.5) -> list[float]:
    out = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        out.append(vm(pid, "VmRSS"))
        time.sleep(step)
    return out


def measure(pods: int = 100, timeout: float = 480, settle: float = 5) -> dict:
    os.environ.setdefault("GITOPS_RUNTIME_LABELS", LABEL)
    with tempfile.TemporaryDirectory(prefix="gitops-membench-") as tmp:
        manifests, data = Path(tmp) / "manifests", str(Path(tmp) / "data")
        manifests.mkdir()
        (manifests / "app.yaml").write_text(EMPTY)
        try:
            up = gitops("up", str(manifests), "--wait", "--timeout", "60", "--data-dir", data,
                        "--interval", "3600")
            if up.returncode != 0:
                raise RuntimeError(f"gitops up failed: {up.stdout}{up.stderr}")
            pid = json.loads((Path(data) / "agent.json").read_text())["pid"]
            idle = max(sample_rss(pid, settle))
            start = time.monotonic()
            (manifests / "app.yaml").write_text(DEPLOY.format(pods=pods))
            synced = gitops("sync", "--wait", "--timeout", str(timeout), "--data-dir", data,
                            timeout=timeout + 30)
            converge = time.monotonic() - start
            if synced.returncode != 0:
                raise RuntimeError(f"{pods} pods did not converge in {timeout:.0f}s: "
                                   f"{synced.stdout[-1500:]}{synced.stderr[-1500:]}")
            got = json.loads(gitops("get", "pods", "-o", "json", "--data-dir", data).stdout)
            ready = sum(any(c["type"] == "Ready" and c["status"] == "True"
                            for c in p["status"].get("conditions", [])) for p in got["items"])
            running = sample_rss(pid, settle)
            return {"pods": pods, "pods_ready": ready, "converge_s": converge,
                    "rss_idle_mb": idle, "rss_mb": max(running),
                    "rss_peak_mb": vm(pid, "VmHWM")}
        finally:
            gitops("down", "--data-dir", data, timeout=300)


def run(quick: bool = False) -> dict:
    """Benchmark interface. The figure is defined at 100 pods, so quick changes nothing."""
    r = measure(100)
    return {"agent_rss_mb_100_pods": r["rss_mb"], "memory_100_pods": r}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pods", type=int, default=100)
    ap.add_argument("--timeout", type=float, default=480)
    args = ap.parse_args()
    r = measure(args.pods, args.timeout)
    print(f"{'metric':<36} {'value':>9}  target")
    print(f"{'pods Ready':<36} {r['pods_ready']:>9}")
    print(f"{'converge s (sync to all Ready)':<36} {r['converge_s']:>9.1f}")
    print(f"{'agent RSS MB, no pods':<36} {r['rss_idle_mb']:>9.1f}")
    print(f"{f'agent RSS MB, {args.pods} pods':<36} {r['rss_mb']:>9.1f}  <= 120 at 100 pods")
    print(f"{'agent peak RSS MB (VmHWM)':<36} {r['rss_peak_mb']:>9.1f}")


if __name__ == "__main__":
    main()
