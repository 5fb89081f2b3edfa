"""The agent on a Docker engine that is down at start-up and later restarted.

A PRIVATE dockerd (own socket, data root, exec root, pidfile; no iptables, no default
bridge) is started for this test only, so the shared engine is never touched. The agent
must wait for it, converge, survive its restart and converge again, never crashing.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import pytest

from gitops.model.addresses import pick_subnet
from gitops.paths import DataDir
from tests.conftest import DEAD_PROXY

pytestmark = pytest.mark.docker

IMAGES = ("gitops/pause:1", "gitops/busybox:1")
MANIFEST = """\
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
        - name: httpd
          image: gitops/busybox:1
          command: ["sh", "-c", "echo up > /www/index.html; exec httpd -f -p 8080 -h /www"]
          readinessProbe: {tcpSocket: {port: 8080}, periodSeconds: 1}
"""


class PrivateEngine:
    """A dockerd of our own under one short temp dir (unix socket paths are limited)."""

    def __init__(self) -> None:
        self.base = Path(tempfile.mkdtemp(prefix="gd-", dir="/tmp"))
        self.host = f"unix://{self.base}/d.sock"
        self.proc: subprocess.Popen | None = None
        tag = self.base.name.replace("gd-", "").replace("_", "")
        self.args = ["dockerd", "--host", self.host, "--data-root", str(self.base / "root"),
                     "--exec-root", str(self.base / "exec"),
                     "--pidfile", str(self.base / "d.pid"),
                     "--iptables=false", "--ip6tables=false", "--ip-masq=false",
                     "--bridge=none", "--containerd-namespace", f"gitops-test-{tag}",
                     "--containerd-plugins-namespace", f"gitops-test-{tag}-plugins",
                     "--registry-mirror", DEAD_PROXY]

    def client(self):
        import docker
        return docker.DockerClient(base_url=self.host, timeout=30)

    def start(self) -> None:
        with open(self.base / "dockerd.log", "ab") as log:
            # no registry is ever tried: a pull fails at once on a dead local port
            env = {**os.environ, "HTTP_PROXY": DEAD_PROXY, "HTTPS_PROXY": DEAD_PROXY,
                   "NO_PROXY": ""}
            self.proc = subprocess.Popen(self.args, stdout=log, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, env=env)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                self.client().ping()
                return
            except Exception:  # noqa: BLE001 - not up yet
                if self.proc.poll() is not None:
                    break
                time.sleep(0.3)
        tail = (self.base / "dockerd.log").read_text(errors="replace")[-2000:]
        raise AssertionError(f"private dockerd did not come up:\n{tail}")

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=40)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)

    def remove(self) -> None:
        """Everything it made goes: containers and networks first (their bridge
        interfaces live on the host), then the engine, then its directories."""
        if self.proc is not None and self.proc.poll() is None:
            try:
                client = self.client()
                for c in client.containers.list(all=True):
                    c.remove(force=True, v=True)
                for net in client.networks.list():
                    if net.name not in ("none", "host", "bridge"):
                        net.remove()
            except Exception:  # noqa: BLE001 - best effort; the engine goes anyway
                pass
        self.stop()
        for line in reversed(Path("/proc/mounts").read_text().splitlines()):
            target = line.split()[1]
            if target.startswith(str(self.base)):
                subprocess.run(["umount", "-l", target], capture_output=True)
        shutil.rmtree(self.base, ignore_errors=True)


@pytest.fixture
def engine(docker_client):
    if not shutil.which("dockerd") or os.geteuid() != 0:
        pytest.skip("needs dockerd and root to start a private engine")
    eng = PrivateEngine()
    try:
        eng.start()
        private = eng.client()
        for image in IMAGES:     # nothing can be pulled: copy the shared engine's images
            private.images.load(b"".join(docker_client.images.get(image).save(named=image)))
            assert private.images.get(image).tags, image     # never a pull: it must be here
        yield eng
    finally:
        eng.remove()


def _subnet(docker_client, instance: str) -> str:
    """A /24 no engine and no host route uses (the private engine cannot see the shared
    engine's networks, so its automatic choice could collide with theirs)."""
    used = [cfg["Subnet"] for net in docker_client.networks.list()
            for cfg in (net.attrs.get("IPAM", {}).get("Config") or []) if cfg.get("Subnet")]
    routes = subprocess.run(["ip", "-4", "route"], capture_output=True, text=True).stdout
    used += [line.split()[0] for line in routes.splitlines()
             if line and line.split()[0][0].isdigit() and "/" in line.split()[0]]
    return pick_subnet(instance, used, pool="10.215.0.0/16")


def _objects(data: Path, kind: str) -> list[dict]:
    """Read the agent's store directly (no API round trip while the engine is down)."""
    if not (data / "state.db").exists():
        return []
    db = sqlite3.connect(f"file:{data / 'state.db'}?mode=ro", uri=True, timeout=5)
    try:
        rows = db.execute("SELECT body FROM objects WHERE kind=?", (kind,)).fetchall()
    except sqlite3.OperationalError:
        return []
    finally:
        db.close()
    return [json.loads(r[0]) for r in rows]


def _is_ready(obj: dict) -> bool:
    return any(c["type"] == "Ready" and c["status"] == "True"
               for c in obj.get("status", {}).get("conditions", []))


def _ready_pods(data: Path) -> list[dict]:
    return [p for p in _objects(data, "Pod")
            if not p["metadata"].get("deletionTimestamp") and _is_ready(p)]


def _node_ready(data: Path) -> bool:
    nodes = _objects(data, "Node")
    return bool(nodes) and all(_is_ready(n) for n in nodes)


def _wait(what: str, predicate, agent: subprocess.Popen, log: Path, timeout: float = 90):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert agent.poll() is None, \
            f"agent exited ({agent.returncode}):\n{log.read_text()[-3000:]}"
        if value := predicate():
            return value
        time.sleep(0.3)
    raise AssertionError(f"timed out waiting for {what}:\n{log.read_text()[-3000:]}")


def _events(log: Path) -> list[dict]:
    out = []
    for line in log.read_text(errors="replace").splitlines():
        try:
            out.append(json.loads(line))
        except ValueError:
            pass
    return out


def test_agent_waits_for_the_engine_survives_its_restart_and_reconverges(
        docker_client, engine, tmp_path):
    repo, data = tmp_path / "repo", tmp_path / "data"
    repo.mkdir()
    (repo / "web.yaml").write_text(MANIFEST)
    instance = DataDir.at(data).instance
    env = {**os.environ, "DOCKER_HOST": engine.host}
    log = tmp_path / "agent.log"

    engine.stop()                       # the agent starts while the engine is down
    with open(log, "ab") as out:
        agent = subprocess.Popen(
            [sys.executable, "-m", "gitops", "run", "--repo", str(repo), "--data-dir",
             str(data), "--interval", "3600", "--log-format", "json",
             "--pod-subnet", _subnet(docker_client, instance)],
            stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env)
    private = None
    try:
        _wait("the agent to notice the engine is down",
              lambda: any(e.get("event") == "runtime_unavailable_waiting"
                          for e in _events(log)), agent, log, 30)
        engine.start()
        private = engine.client()
        first = _wait("two Ready pods", lambda: len(_ready_pods(data)) == 2 and _ready_pods(data),
                      agent, log)
        label = f"gitops.instance={instance}"
        before = {c.id for c in private.containers.list(filters={"label": label})}
        assert len(before) == 2                  # a pod of one container is that container
        ips = {p["metadata"]["name"]: p["status"]["podIP"] for p in first}

        engine.stop()                   # every container stops with the engine
        _wait("the agent to notice the engine is gone",
              lambda: any(e.get("event") == "runtime_unavailable" for e in _events(log)),
              agent, log, 30)
        # Nobody can vouch for the pods: not Ready (out of the endpoints), node NotReady.
        _wait("the pods to stop being Ready", lambda: not _ready_pods(data), agent, log, 30)
        assert not _node_ready(data)
        restarted = datetime.now(timezone.utc)
        engine.start()
        private = engine.client()

        def reconverged():
            # Ready as seen on containers started again: a status written before the
            # restart still reads Ready until the pass that restarted them writes its own.
            ready = _ready_pods(data)
            running = private.containers.list(filters={"label": label})
            ids = {c.id for c in running}
            statuses = [s for p in ready for s in p["status"].get("containerStatuses", [])]
            since = [datetime.fromisoformat(s["state"]["running"]["startedAt"]) >= restarted
                     for s in statuses if "running" in s["state"]]
            reported = {s.get("containerID", "").removeprefix("docker://") for s in statuses}
            return (len(ready) == 2 and len(running) == 2 and reported <= ids
                    and len(since) == 2 and all(since)
                    and all(c.status == "running" for c in running) and ready)
        again = _wait("the pods to run again on the restarted engine", reconverged, agent, log)
        assert agent.poll() is None                          # it never crashed
        # The same pods, restarted, at the same addresses (pinned: Endpoints do not move).
        assert {p["metadata"]["name"]: p["status"]["podIP"] for p in again} == ips
        events = _events(log)
        kinds = [e.get("event") for e in events]
        assert kinds.count("runtime_unavailable") == 1      # said so once per outage
        assert kinds.index("runtime_available_again") > kinds.index("runtime_unavailable")
        assert _node_ready(data)
        assert not [e for e in events if e.get("event") == "loop_pass_failed"
                    and e.get("loop") == "node-agent"]
    finally:
        if agent.poll() is None:
            agent.send_signal(signal.SIGTERM)
            try:
                agent.wait(timeout=30)
            except subprocess.TimeoutExpired:
                agent.kill()
        subprocess.run([sys.executable, "-m", "gitops", "down", "--data-dir", str(data)],
                       capture_output=True, env=env, timeout=60)
