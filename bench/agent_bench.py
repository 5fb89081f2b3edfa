"""Agent timings on the real engine, printed as a table:

- push_to_ready_s: commit + `gitops sync` (what a webhook triggers) to the new pods Ready
- pod_start_overhead_ratio_vs_docker_run: pod Running vs `docker run -d` of the same image
  (also printed: a pod of two containers, which needs a sandbox, and that path's floor)
- restart_after_kill_s: a container killed behind the agent's back to its replacement running

    DOCKER_HOST=unix:///run/gitops-docker/docker.sock python bench/agent_bench.py [--rounds 5]

`run(quick)` returns those three figures (medians) plus the raw timings, for bench/run.py.
Traffic stays on this machine; every loop is bounded in count and time.
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import docker

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from gitops.paths import DataDir  # noqa: E402

LABEL = "gitops.bench=true"
DEPLOY = """\
apiVersion: apps/v1
kind: Deployment
metadata: {{name: bench}}
spec:
  replicas: 2
  selector: {{matchLabels: {{app: bench}}}}
  template:
    metadata: {{labels: {{app: bench}}}}
    spec:
      terminationGracePeriodSeconds: 2      # httpd as PID 1 ignores SIGTERM
      containers:
        - name: app
          image: gitops/busybox:1
          command: ["sh", "-c", "echo {version} > /www/index.html; exec httpd -f -p 8080 -h /www"]
"""


def sh(*args: str, cwd: Path | None = None) -> str:
    return subprocess.run(args, cwd=cwd, check=True, capture_output=True, text=True).stdout


def gitops(*args: str) -> str:
    return sh(sys.executable, "-m", "gitops", *args)


def wait(predicate, timeout: float, step: float = 0.02) -> float:
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if predicate():
            return time.monotonic() - start
        time.sleep(step)
    raise TimeoutError("condition not met")


def pods(data: str) -> list[dict]:
    """Read the agent's store directly: polling through the CLI would measure Python start-up."""
    db = sqlite3.connect(f"file:{Path(data) / 'state.db'}?mode=ro", uri=True, timeout=5)
    try:
        rows = db.execute("SELECT body FROM objects WHERE kind='Pod'").fetchall()
    finally:
        db.close()
    return [json.loads(r[0]) for r in rows]


def ready_at_version(data: str, version: str, client, instance: str) -> bool:
    live = [p for p in pods(data) if not p["metadata"].get("deletionTimestamp")]
    if len(live) != 2 or not all(
            any(c["type"] == "Ready" and c["status"] == "True" for c in p["status"].get(
                "conditions", [])) for p in live):
        return False
    hashes = {p["metadata"]["labels"].get("pod-template-hash") for p in live}
    return len(hashes) == 1 and version in json.dumps(live)


def bench_push(repo: Path, data: str, rounds: int) -> list[float]:
    out = []
    for i in range(rounds):
        version = f"v{i + 2}"
        (repo / "deploy.yaml").write_text(DEPLOY.format(version=version))
        start = time.monotonic()
        sh("git", "commit", "-qam", version, cwd=repo)
        gitops("sync", "--data-dir", data)
        wait(lambda: ready_at_version(data, version, None, ""), 60, 0.05)
        out.append(time.monotonic() - start)
    return out


def bench_kill(client, instance: str) -> list[float]:
    """Kill each app container once: a first restart is immediate in the kubelet's curve
    (the next ones back off 10 s, 20 s, ...)."""
    out = []
    for target in client.containers.list(filters={"label": [
            f"gitops.instance={instance}", "gitops.container=app"]}):
        target.kill()
        start = time.monotonic()

        def back() -> bool:
            target.reload()
            return target.status == "running"
        wait(back, 30, 0.005)
        out.append(time.monotonic() - start)
    return out


def bench_docker_run(client, rounds: int, network: str | None) -> list[float]:
    """`docker run -d` of the same image, with no network or on a bridge network (a pod
    always has one: that is the fair comparison)."""
    out = []
    for _ in range(rounds):
        start = time.monotonic()
        c = client.containers.run("gitops/busybox:1", ["sleep", "60"], detach=True,
                                  labels={"gitops.bench": "true"},
                                  **({"network": network} if network else
                                     {"network_mode": "none"}))
        out.append(time.monotonic() - start)
        c.remove(force=True)
    return out


def bench_sandbox_pair(client, network: str) -> float:
    """The engine's own floor for a pod of several containers: a sandbox on the network, a
    container joining it, started as the agent does (the container created while the
    sandbox starts) but with no agent at all. (A pod of one container has no sandbox:
    its floor is `docker run` on the bridge network.)"""
    api = client.api
    start = time.monotonic()
    sandbox = api.create_container("gitops/pause:1", labels={"gitops.bench": "true"},
                                   host_config=api.create_host_config(network_mode=network))
    starting = threading.Thread(target=api.start, args=(sandbox["Id"],))
    starting.start()
    app = api.create_container(
        "gitops/busybox:1", ["sleep", "60"], labels={"gitops.bench": "true"},
        host_config=api.create_host_config(network_mode=f"container:{sandbox['Id']}"))
    starting.join()
    api.start(app["Id"])
    took = time.monotonic() - start
    for cid in (app["Id"], sandbox["Id"]):
        api.remove_container(cid, force=True)
    return took


def bench_pod_start(repo: Path, data: str, rounds: int) -> list[float]:
    """From the extra pod of a scale-up appearing in the store to it Running: what the
    scheduler and node agent add on top of the engine (a `docker run` is one create and
    one start; so is this pod of one container, which holds its own network)."""
    out = []
    for i in range(rounds):
        text = DEPLOY.format(version="v1").replace("replicas: 2", "replicas: 3")
        (repo / "deploy.yaml").write_text(text)
        sh("git", "commit", "-qam", f"scale {i}", cwd=repo)
        known = {p["metadata"]["uid"] for p in pods(data)}
        sync = subprocess.Popen([sys.executable, "-m", "gitops", "sync", "--data-dir", data],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            new: list[dict] = []

            def appeared() -> bool:
                new[:] = [p for p in pods(data) if p["metadata"]["uid"] not in known]
                return bool(new)
            wait(appeared, 30, 0.002)
            start = time.monotonic()
            uid = new[0]["metadata"]["uid"]
            # that pod itself Running (a terminating pod of an earlier step may still be)
            wait(lambda: any(p["metadata"]["uid"] == uid and p["status"].get("phase")
                             == "Running" for p in pods(data)), 60, 0.002)
            out.append(time.monotonic() - start)
        finally:
            sync.wait(timeout=60)
        (repo / "deploy.yaml").write_text(DEPLOY.format(version="v1"))
        sh("git", "commit", "-qam", f"unscale {i}", cwd=repo)
        gitops("sync", "--data-dir", data)
        wait(lambda: len(pods(data)) == 2, 60, 0.1)
    return out


SIDECAR_POD = """\
apiVersion: v1
kind: Pod
metadata: {{name: {name}}}
spec:
  terminationGracePeriodSeconds: 1
  containers:
    - {{name: app, image: gitops/busybox:1, command: [sleep, "3600"]}}
    - {{name: side, image: gitops/busybox:1, command: [sleep, "3600"]}}
"""


def bench_sidecar_pod_start(repo: Path, data: str, round_no: int) -> float:
    """A pod of two containers (a sandbox, then both joining it) from appearing in the
    store to Running; then it is pruned from git again."""
    name = f"pair-{round_no}"
    (repo / "pair.yaml").write_text(SIDECAR_POD.format(name=name))
    sh("git", "add", "pair.yaml", cwd=repo)
    sh("git", "commit", "-qm", f"add {name}", cwd=repo)
    sync = subprocess.Popen([sys.executable, "-m", "gitops", "sync", "--data-dir", data],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        def mine() -> list[dict]:
            return [p for p in pods(data) if p["metadata"]["name"] == name]
        wait(lambda: bool(mine()), 30, 0.002)
        start = time.monotonic()
        wait(lambda: any(p.get("status", {}).get("phase") == "Running" for p in mine()), 60,
             0.002)
        took = time.monotonic() - start
    finally:
        sync.wait(timeout=60)
    sh("git", "rm", "-q", "pair.yaml", cwd=repo)
    sh("git", "commit", "-qm", f"remove {name}", cwd=repo)
    gitops("sync", "--data-dir", data)
    wait(lambda: not mine(), 60, 0.1)
    return took


def measure(rounds: int) -> dict[str, list[float]]:
    """Raw timings (seconds) of every round, on a throwaway agent and repo."""
    os.environ.setdefault("GITOPS_RUNTIME_LABELS", LABEL)
    client = docker.from_env()
    with tempfile.TemporaryDirectory() as tmp:
        repo, data = Path(tmp) / "repo", str(Path(tmp) / "data")
        repo.mkdir()
        sh("git", "init", "-q", "-b", "main", cwd=repo)
        sh("git", "config", "user.email", "b@example.invalid", cwd=repo)
        sh("git", "config", "user.name", "bench", cwd=repo)
        (repo / "deploy.yaml").write_text(DEPLOY.format(version="v1"))
        sh("git", "add", "-A", cwd=repo)
        sh("git", "commit", "-qm", "v1", cwd=repo)
        instance = DataDir.at(data).instance
        try:
            gitops("up", f"file://{repo}", "--wait", "--timeout", "60", "--data-dir", data,
                   "--interval", "3600")
            push = bench_push(repo, data, rounds)
            sh("git", "-C", str(repo), "reset", "-q", "--hard", "HEAD")
            (repo / "deploy.yaml").write_text(DEPLOY.format(version="v1"))
            sh("git", "commit", "-qam", "back to v1", cwd=repo)
            gitops("sync", "--data-dir", data)
            wait(lambda: ready_at_version(data, "v1", None, ""), 60, 0.1)
            # Round by round, side by side: the engine's speed drifts over a run, and a
            # ratio must compare the two under the same conditions.
            pod_start, docker_run, docker_run_net, floor, sidecar = [], [], [], [], []
            for i in range(rounds):
                pod_start += bench_pod_start(repo, data, 1)
                docker_run += bench_docker_run(client, 1, None)
                docker_run_net += bench_docker_run(client, 1, f"gitops-{instance}")
                floor.append(bench_sandbox_pair(client, f"gitops-{instance}"))
                sidecar.append(bench_sidecar_pod_start(repo, data, i))
            kill = bench_kill(client, instance)
        finally:
            subprocess.run([sys.executable, "-m", "gitops", "down", "--data-dir", data],
                           capture_output=True)
    return {"push": push, "pod_start": pod_start, "docker_run": docker_run,
            "docker_run_net": docker_run_net, "floor": floor, "sidecar": sidecar, "kill": kill}


def run(quick: bool = False) -> dict:
    raw = measure(2 if quick else 5)
    med = statistics.median
    return {"push_to_ready_s": round(med(raw["push"]), 3),
            "pod_start_overhead_ratio_vs_docker_run": round(
                med(raw["pod_start"]) / med(raw["docker_run_net"]), 3),
            "restart_after_kill_s": round(med(raw["kill"]), 3),
            "pod_start_s": round(med(raw["pod_start"]), 3),
            "docker_run_bridge_s": round(med(raw["docker_run_net"]), 3),
            "docker_run_no_network_s": round(med(raw["docker_run"]), 3),
            "pod_start_engine_floor_s": round(med(raw["floor"]), 3),
            "pod_start_with_sidecar_s": round(med(raw["sidecar"]), 3)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    raw = measure(args.rounds)
    med = statistics.median
    push, pod_start, kill = raw["push"], raw["pod_start"], raw["kill"]
    docker_run, docker_run_net = raw["docker_run"], raw["docker_run_net"]
    rows = [("push_to_ready_s", med(push), "<= 3"),
            ("pod_start_s (agent, scale-up to Running)", med(pod_start), ""),
            ("docker_run_s (same image, no network)", med(docker_run), ""),
            ("docker_run_s (same image, bridge network)", med(docker_run_net), ""),
            ("pod_start_overhead_ratio_vs_docker_run", med(pod_start) / med(docker_run_net),
             "<= 1.5"),
            ("  (against docker run with no network)", med(pod_start) / med(docker_run), ""),
            ("pod of two containers (sandboxed), to Running", med(raw["sidecar"]), ""),
            ("  engine floor: sandbox + one container, no agent", med(raw["floor"]), ""),
            ("  floor / docker run (bridge network)", med(raw["floor"]) / med(docker_run_net),
             ""),
            ("restart_after_kill_s", med(kill), "<= 1")]
    print(f"{'metric':<44} {'median':>9}  target")
    for name, value, target in rows:
        print(f"{name:<44} {value:>9.3f}  {target}")


if __name__ == "__main__":
    main()
