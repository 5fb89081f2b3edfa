"""kill -9 the agent at random points of a sync, repeatedly, on the real engine.

The first kill lands in the agent's very first sync (clone, first apply). Then each round
commits a change (scale, rolling update, a ConfigMap added or removed), starts
a sync and SIGKILLs the agent after a random delay: during the fetch, the store writes,
the controllers' passes or the node agent's container creation; every other round it is
killed once more during the restart's adoption. After the last round the agent must
converge to exactly the desired containers (no duplicates, no orphans), with a store whose
owner references, inventory and applied revision agree with git, and the claim's data
untouched. The seed is printed so a failing sequence can be replayed (CRASH_SEED=...).
"""

from __future__ import annotations

import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.e2e.conftest import git, gitops

pytestmark = pytest.mark.docker

ROUNDS = 3
WEB = """\
apiVersion: apps/v1
kind: Deployment
metadata: {{name: web}}
spec:
  replicas: {replicas}
  selector: {{matchLabels: {{app: web}}}}
  template:
    metadata: {{labels: {{app: web}}}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
        - name: main
          image: gitops/busybox:1
          command: ["sleep", "3600"]
          env: [{{name: VERSION, value: "{version}"}}]
"""
DB = """\
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: data}
spec:
  accessModes: [ReadWriteOnce]
  resources: {requests: {storage: 16Mi}}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: db}
spec:
  replicas: 1
  strategy: {type: Recreate}
  selector: {matchLabels: {app: db}}
  template:
    metadata: {labels: {app: db}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
        - name: db
          image: gitops/busybox:1
          command: ["sh", "-c", "test -f /data/seed || echo seed-4711 > /data/seed; echo start >> /data/starts; exec sleep 3600"]
          volumeMounts: [{name: data, mountPath: /data}]
      volumes: [{name: data, persistentVolumeClaim: {claimName: data}}]
"""
EXTRA_CM = "apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: extra}}\ndata: {{round: \"{n}\"}}\n"


def write(repo: Path, replicas: int, version: str, extra: int | None) -> str:
    (repo / "web.yaml").write_text(WEB.format(replicas=replicas, version=version))
    (repo / "db.yaml").write_text(DB)
    extra_file = repo / "extra.yaml"
    if extra is None:
        extra_file.unlink(missing_ok=True)
    else:
        extra_file.write_text(EXTRA_CM.format(n=extra))
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "--allow-empty", "-m", f"{replicas} {version} {extra}")
    return subprocess.run(["git", "-C", str(repo), "rev-parse", "HEAD"], check=True,
                          capture_output=True, text=True).stdout.strip()


def agent_pid(dd) -> int | None:
    info = dd.read_agent()
    return int(info["pid"]) if info else None


def kill_agent(dd) -> None:
    pid = agent_pid(dd)
    if pid is None:
        return
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 15
    while dd.read_agent() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert dd.read_agent() is None, "the agent survived SIGKILL"


def start_agent(repo: Path, data: str, wait: bool) -> subprocess.CompletedProcess:
    args = ["up", f"file://{repo}", "--data-dir", data, "--interval", "3600"]
    out = gitops(*args, *(["--wait", "--timeout", "150"] if wait else []), timeout=200)
    assert out.returncode == 0, out.stdout + out.stderr
    return out


def store_rows(data: str, kind: str) -> list[dict]:
    db = sqlite3.connect(f"file:{Path(data) / 'state.db'}?mode=ro", uri=True, timeout=10)
    try:
        return [json.loads(b) for (b,) in db.execute(
            "SELECT body FROM objects WHERE kind=?", (kind,)).fetchall()]
    finally:
        db.close()


def containers(docker_client, instance: str) -> list:
    from tests.conftest import _listed
    return _listed(lambda: docker_client.containers.list(
        all=True, filters={"label": f"gitops.instance={instance}"}))


def converged(docker_client, data: str, instance: str, replicas: int, version: str) -> str:
    """'' when the runtime is exactly what the store wants, else what is still off."""
    from gitops.agent.plan import needs_sandbox
    from gitops.agent.runtime import CONTAINER, POD_UID, SANDBOX
    pods = [p for p in store_rows(data, "Pod") if not p["metadata"].get("deletionTimestamp")]
    web = [p for p in pods if p["metadata"]["labels"].get("app") == "web"]
    db = [p for p in pods if p["metadata"]["labels"].get("app") == "db"]
    if len(web) != replicas or len(db) != 1 or len(pods) != replicas + 1:
        return f"pods: {len(web)} web (want {replicas}), {len(db)} db, {len(pods)} in all"
    if any(version not in json.dumps(p["spec"]) for p in web):
        return "a web pod of an old version"
    want = {(p["metadata"]["uid"], name) for p in pods
            for name in [*([SANDBOX] if needs_sandbox(p["spec"]) else []),
                         *(c["name"] for c in p["spec"]["containers"])]}
    got: dict[tuple[str, str], list] = {}
    for c in containers(docker_client, instance):
        got.setdefault((c.labels.get(POD_UID, ""), c.labels.get(CONTAINER, "")), []).append(c)
    if set(got) != want:
        return f"orphans {sorted(set(got) - want)}, missing {sorted(want - set(got))}"
    dup = {k: len(v) for k, v in got.items() if len(v) > 1}
    if dup:
        return f"duplicate containers {dup}"
    stopped = [k for k, v in got.items() if v[0].status != "running"]
    if stopped:
        return f"not running {stopped}"
    if any(p["status"].get("phase") != "Running" for p in pods):
        return "a pod not Running in the store"
    return ""


def check_store(data: str, head: str, extra: bool) -> None:
    """Owner references resolve, one ReplicaSet per Deployment has replicas, the inventory
    and applied revision are git's."""
    by_uid = {}
    for kind in ("Deployment", "ReplicaSet", "Pod"):
        for obj in store_rows(data, kind):
            by_uid[obj["metadata"]["uid"]] = obj
    for obj in by_uid.values():
        for ref in obj["metadata"].get("ownerReferences") or []:
            assert ref["uid"] in by_uid, f"{obj['kind']}/{obj['metadata']['name']} orphaned"
    for deploy in store_rows(data, "Deployment"):
        active = [rs for rs in store_rows(data, "ReplicaSet")
                  if any(r["uid"] == deploy["metadata"]["uid"]
                         for r in rs["metadata"].get("ownerReferences") or [])
                  and rs["spec"].get("replicas", 0) > 0]
        assert len(active) == 1, (deploy["metadata"]["name"], len(active))
    db = sqlite3.connect(f"file:{Path(data) / 'state.db'}?mode=ro", uri=True, timeout=10)
    try:
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        inventory = {(k, n) for k, n in db.execute("SELECT kind, name FROM inventory")}
        applied = json.loads(db.execute(
            "SELECT value FROM state WHERE name='applied_revision'").fetchone()[0])
    finally:
        db.close()
    want = {("Deployment", "web"), ("Deployment", "db"), ("PersistentVolumeClaim", "data")}
    assert inventory == want | ({("ConfigMap", "extra")} if extra else set())
    assert applied == head
    assert bool(store_rows(data, "ConfigMap") and any(
        c["metadata"]["name"] == "extra" for c in store_rows(data, "ConfigMap"))) == extra


def test_kill_9_during_syncs_converges_to_exactly_the_desired_state(docker_client, repo,
                                                                   tmp_path):
    from gitops.agent.volumes import pvc_volume_name
    from gitops.paths import DataDir
    seed = int(os.environ.get("CRASH_SEED", random.randrange(1 << 30)))
    print(f"CRASH_SEED={seed}")
    rnd = random.Random(seed)
    data = str(tmp_path / "data")
    dd = DataDir.at(data)
    head = write(repo, 2, "v0", None)
    replicas, version, extra = 2, "v0", None
    syncs: list[subprocess.Popen] = []
    try:
        # round 0: killed during the very first sync (clone, first apply, first pods)
        start_agent(repo, data, wait=False)
        delay = rnd.uniform(0.0, 3.0)
        time.sleep(delay)
        kill_agent(dd)
        print(f"round 0: first sync killed after {delay:.2f}s")
        start_agent(repo, data, wait=True)
        volume = docker_client.volumes.get(pvc_volume_name(dd.instance, "default", "data"))
        created = volume.attrs["CreatedAt"]
        for n in range(1, ROUNDS + 1):
            replicas = rnd.choice([1, 2, 3, 4])
            version = f"v{n}" if rnd.random() < 0.7 else version
            extra = n if rnd.random() < 0.5 else None
            head = write(repo, replicas, version, extra)
            syncs.append(subprocess.Popen(
                [sys.executable, "-m", "gitops", "sync", "--data-dir", data],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
            delay = rnd.uniform(0.0, 2.5)
            time.sleep(delay)
            kill_agent(dd)
            print(f"round {n}: replicas={replicas} version={version} extra={extra} "
                  f"killed after {delay:.2f}s")
            if n % 2 == 0:                              # killed again while adopting
                start_agent(repo, data, wait=False)
                time.sleep(rnd.uniform(0.2, 2.0))
                kill_agent(dd)
            start_agent(repo, data, wait=False)
        start_agent(repo, data, wait=True)
        deadline, problem = time.monotonic() + 120, "not checked"
        while time.monotonic() < deadline:
            problem = converged(docker_client, data, dd.instance, replicas, version)
            if not problem:
                time.sleep(3)                           # and it stays that way
                problem = converged(docker_client, data, dd.instance, replicas, version)
                if not problem:
                    break
            time.sleep(1)
        assert not problem, f"CRASH_SEED={seed}: {problem}"
        check_store(data, head, extra is not None)
        volume.reload()
        assert volume.attrs["CreatedAt"] == created     # the same claim volume throughout
        [db_container] = [c for c in containers(docker_client, dd.instance)
                          if c.labels.get("gitops.container") == "db"]
        seed_file = db_container.exec_run(["cat", "/data/seed"])
        assert seed_file.exit_code == 0 and seed_file.output.decode().strip() == "seed-4711"
        starts = db_container.exec_run(["cat", "/data/starts"]).output.decode().split()
        assert starts and set(starts) == {"start"}      # appended to, never wiped
    finally:
        for proc in syncs:
            if proc.poll() is None:
                proc.kill()
            proc.wait(10)
        gitops("down", "--data-dir", data, "--volumes")
