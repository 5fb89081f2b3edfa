"""Bulk starts on the real engine, against what a single-host user would run instead:

- bulk_start_100_pods_ratio_vs_parallel_docker_run: a Deployment scaled 0 -> 100 on a
  running agent, from `gitops sync` to 100 pods Ready, divided by 100 `docker run -d` of
  the same image and command on a bridge network, issued with the agent's own
  concurrency (gitops.agent.node.POD_WORKERS) and waited on until all run; both in one
  run, round by round (target <= 1.5)
- up_vs_compose_ratio_20_services: `gitops up --wait` of 20 one-pod Deployments (agent
  start included) against Debian's `docker-compose up -d` of the same 20 containers,
  each timed until all 20 run, alternating in one run (target <= 1.2)

    DOCKER_HOST=unix:///run/gitops-docker/docker.sock python bench/bulk_bench.py [--rounds 3]

Everything made carries the label gitops.bench=true and is removed at the end (`gitops
down`, `docker-compose down`). No image is pulled; traffic stays on this machine; every
loop is bounded in count and time.
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
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import docker

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from gitops.agent.node import POD_WORKERS  # noqa: E402

LABEL = "gitops.bench=true"
IMAGE = "gitops/busybox:1"
COMMAND = ["sleep", "86400"]
PODS, SERVICES = 100, 20
DEPLOY = """\
apiVersion: apps/v1
kind: Deployment
metadata: {{name: {name}}}
spec:
  replicas: {replicas}
  selector: {{matchLabels: {{app: {name}}}}}
  template:
    metadata: {{labels: {{app: {name}}}}}
    spec:
      terminationGracePeriodSeconds: 0
      containers:
        - name: app
          image: gitops/busybox:1
          imagePullPolicy: IfNotPresent
          command: ["sleep", "86400"]
"""


class StepFailed(RuntimeError):
    pass


def run_cmd(*args: str, cwd: Path | None = None, timeout: float = 300,
            env: dict | None = None) -> str:
    """A command's stdout; on failure its stderr is printed and StepFailed raised."""
    proc = subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=timeout,
                          env=env)
    if proc.returncode != 0:
        print(f"bench step failed: {' '.join(args)} (exit {proc.returncode})\n"
              f"{proc.stderr}{proc.stdout}", file=sys.stderr, flush=True)
        raise StepFailed(f"{args[0]} {args[1] if len(args) > 1 else ''} failed")
    return proc.stdout


def gitops(*args: str, timeout: float = 300) -> str:
    return run_cmd(sys.executable, "-m", "gitops", *args, cwd=ROOT, timeout=timeout)


def ready_pods(data: str) -> int:
    """Ready pods, read from the agent's store (polling through the CLI would measure
    Python start-ups)."""
    db = sqlite3.connect(f"file:{Path(data) / 'state.db'}?mode=ro", uri=True, timeout=5)
    try:
        rows = db.execute("SELECT body FROM objects WHERE kind='Pod'").fetchall()
    finally:
        db.close()
    count = 0
    for (body,) in rows:
        pod = json.loads(body)
        if not pod["metadata"].get("deletionTimestamp") and any(
                c.get("type") == "Ready" and c.get("status") == "True"
                for c in (pod.get("status") or {}).get("conditions") or []):
            count += 1
    return count


def pod_count(data: str) -> int:
    db = sqlite3.connect(f"file:{Path(data) / 'state.db'}?mode=ro", uri=True, timeout=5)
    try:
        return db.execute("SELECT count(*) FROM objects WHERE kind='Pod'").fetchone()[0]
    finally:
        db.close()


def wait(predicate, timeout: float, step: float = 0.05) -> float:
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if predicate():
            return time.monotonic() - start
        time.sleep(step)
    raise StepFailed(f"condition not met within {timeout:.0f}s")


def commit(repo: Path, replicas: int) -> None:
    (repo / "deploy.yaml").write_text(DEPLOY.format(name="bulk", replicas=replicas))
    run_cmd("git", "commit", "-qam", f"{replicas} replicas", cwd=repo)


def bench_bulk_pods(repo: Path, data: str) -> float:
    """0 -> 100 replicas: from `gitops sync` to 100 pods Ready; then back to 0."""
    commit(repo, PODS)
    start = time.monotonic()
    sync = subprocess.Popen([sys.executable, "-m", "gitops", "sync", "--data-dir", data],
                            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        wait(lambda: ready_pods(data) >= PODS, 300, 0.1)
        took = time.monotonic() - start
    finally:
        _, err = sync.communicate(timeout=120)
        if sync.returncode != 0:
            print(f"gitops sync failed:\n{err.decode(errors='replace')}", file=sys.stderr)
    commit(repo, 0)
    gitops("sync", "--data-dir", data)
    wait(lambda: pod_count(data) == 0, 300, 0.2)
    return took


def bench_parallel_docker_run(client: docker.DockerClient, network: str) -> float:
    """100 `docker run -d` (create + start) on a bridge network, POD_WORKERS at a time,
    until every one runs; then removed."""
    api = client.api

    def one(i: int) -> str:
        c = api.create_container(IMAGE, COMMAND, labels={"gitops.bench": "true"},
                                 host_config=api.create_host_config(network_mode=network))
        api.start(c["Id"])
        return c["Id"]
    start = time.monotonic()
    with ThreadPoolExecutor(POD_WORKERS) as pool:
        ids = list(pool.map(one, range(PODS)))
    wait(lambda: all(api.inspect_container(i)["State"]["Running"] for i in ids), 120, 0.05)
    took = time.monotonic() - start
    for i in ids:   # one at a time: removed in parallel, dockerd 20.10 can keep an endpoint
        api.remove_container(i, force=True)
    return took


def compose_file(where: Path) -> Path:
    lines = ["version: '2.4'", "services:"]
    for i in range(SERVICES):
        lines += [f"  svc{i}:", f"    image: {IMAGE}", f"    command: {json.dumps(COMMAND)}",
                  "    labels: {gitops.bench: 'true'}"]
    path = where / "docker-compose.yml"
    path.write_text("\n".join(lines) + "\n")
    return path


def bench_compose(where: Path, client: docker.DockerClient) -> float:
    """`docker-compose up -d` of 20 containers until all run; then `down`."""
    path = compose_file(where)
    project = f"gitopsbench{os.getpid()}"
    args = ("docker-compose", "-p", project, "-f", str(path))
    start = time.monotonic()
    try:
        run_cmd(*args, "up", "-d")

        def running() -> bool:
            return len(client.api.containers(filters={
                "label": f"com.docker.compose.project={project}", "status": "running"})) \
                == SERVICES
        wait(running, 120, 0.05)
        return time.monotonic() - start
    finally:
        subprocess.run([*args, "down", "-t", "0"], capture_output=True, timeout=120)


def bench_up(where: Path) -> float:
    """`gitops up --wait` of 20 one-pod Deployments in a fresh data dir; then `down`."""
    manifests, data = where / "services", str(where / "up-data")
    manifests.mkdir(exist_ok=True)
    (manifests / "services.yaml").write_text("---\n".join(
        DEPLOY.format(name=f"svc{i}", replicas=1) for i in range(SERVICES)))
    start = time.monotonic()
    try:
        gitops("up", str(manifests), "--wait", "--timeout", "120", "--data-dir", data,
               "--interval", "3600")
        return time.monotonic() - start
    finally:
        subprocess.run([sys.executable, "-m", "gitops", "down", "--data-dir", data],
                       capture_output=True, cwd=ROOT, timeout=120)


def remove_network(client: docker.DockerClient, network) -> None:
    """The bench's network, with any container a failed round left on it (never masking
    the round's own error)."""
    for c in client.containers.list(all=True, filters={"label": "gitops.bench=true",
                                                        "network": network.name}):
        c.remove(force=True)
    try:
        network.remove()
    except docker.errors.APIError as exc:
        print(f"could not remove network {network.name}: {exc}", file=sys.stderr)


def measure(rounds: int) -> dict[str, list[float]]:
    """Raw timings (seconds) of every round, on a throwaway agent, repo and network."""
    os.environ.setdefault("GITOPS_RUNTIME_LABELS", LABEL)
    client = docker.from_env(timeout=120, max_pool_size=POD_WORKERS + 4)
    out: dict[str, list[float]] = {"bulk": [], "docker": [], "up": [], "compose": []}
    with tempfile.TemporaryDirectory(prefix="gitops-bulkbench-") as tmp:
        repo, data = Path(tmp) / "repo", str(Path(tmp) / "data")
        repo.mkdir()
        for args in (("init", "-q", "-b", "main"), ("config", "user.email", "b@example.invalid"),
                     ("config", "user.name", "bench")):
            run_cmd("git", *args, cwd=repo)
        (repo / "deploy.yaml").write_text(DEPLOY.format(name="bulk", replicas=0))
        run_cmd("git", "add", "-A", cwd=repo)
        run_cmd("git", "commit", "-qm", "0 replicas", cwd=repo)
        network = client.networks.create(f"gitops-bench-{os.getpid()}", driver="bridge",
                                         labels={"gitops.bench": "true"})
        try:
            gitops("up", f"file://{repo}", "--wait", "--timeout", "60", "--data-dir", data,
                   "--interval", "3600")
            # Side by side, round by round: the engine's speed drifts over a run.
            for _ in range(rounds):
                out["bulk"].append(bench_bulk_pods(repo, data))
                out["docker"].append(bench_parallel_docker_run(client, network.name))
        finally:
            subprocess.run([sys.executable, "-m", "gitops", "down", "--data-dir", data],
                           capture_output=True, cwd=ROOT, timeout=120)
            remove_network(client, network)
        for i in range(rounds + 1):
            # alternating, compose first in odd rounds: neither always runs on a warm engine
            order = (bench_up, bench_compose) if i % 2 == 0 else (bench_compose, bench_up)
            for step in order:
                if step is bench_up:
                    out["up"].append(bench_up(Path(tmp)))
                else:
                    out["compose"].append(bench_compose(Path(tmp), client))
    return out


def figures(raw: dict[str, list[float]]) -> dict:
    med = statistics.median
    return {"bulk_start_100_pods_ratio_vs_parallel_docker_run":
            round(med(raw["bulk"]) / med(raw["docker"]), 3),
            "up_vs_compose_ratio_20_services": round(med(raw["up"]) / med(raw["compose"]), 3),
            "bulk_start_100_pods_s": round(med(raw["bulk"]), 3),
            "parallel_docker_run_100_s": round(med(raw["docker"]), 3),
            "up_wait_20_services_s": round(med(raw["up"]), 3),
            "compose_up_20_services_s": round(med(raw["compose"]), 3),
            "pod_workers": POD_WORKERS}


def run(quick: bool = False) -> dict:
    return figures(measure(1 if quick else 3))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    raw = measure(args.rounds)
    print(json.dumps(raw))
    for key, value in figures(raw).items():
        print(f"{key:<52} {value:>9}")


if __name__ == "__main__":
    main()
