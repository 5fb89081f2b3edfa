"""A cluster on simulated hosts: the server (`gitops run --advertise-address`) on h1, and
`gitops agent` on the others, each in its host's namespace with its own engine; kubectl
from this machine through the server's advertised address (the bridge reaches it)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from tests.cluster.sim import ROOT, SimHosts
from tests.kube_support import kubectl_path, write_kubeconfig

APP = """\
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: %(replicas)d
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      terminationGracePeriodSeconds: 2
      affinity:
        nodeAffinity:
          requiredDuringSchedulingIgnoredDuringExecution:
            nodeSelectorTerms:
            - matchExpressions:
              - {key: kubernetes.io/hostname, operator: NotIn, values: [h1]}
      topologySpreadConstraints:
      - {maxSkew: 1, topologyKey: kubernetes.io/hostname, whenUnsatisfiable: ScheduleAnyway,
         labelSelector: {matchLabels: {app: web}}}
      containers:
      - name: web
        image: gitops/busybox:1
        imagePullPolicy: IfNotPresent
        command: ["sh", "-c", "echo $(hostname) > /tmp/index.html; exec httpd -f -p 8080 -h /tmp"]
        ports: [{containerPort: 8080}]
        readinessProbe: {tcpSocket: {port: 8080}, periodSeconds: 1}
---
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  type: NodePort
  selector: {app: web}
  ports: [{port: 80, targetPort: 8080}]
"""


@dataclass
class Cluster:
    sim: SimHosts
    work: Path
    hosts: int = 3
    grace: int = 10
    toleration: int = 5
    backend: str = ""           # --pod-network-backend of every node ("": the default)
    procs: dict[str, subprocess.Popen] = field(default_factory=dict)

    @property
    def server_dir(self) -> Path:
        return self.work / "server"

    @property
    def repo(self) -> Path:
        return self.work / "repo"

    def write_app(self, replicas: int) -> None:
        """A push: the server watches the repo directory."""
        self.repo.mkdir(exist_ok=True)
        (self.repo / "app.yaml").write_text(APP % {"replicas": replicas})

    def write_placeholder(self) -> None:
        self.repo.mkdir(exist_ok=True)
        (self.repo / "app.yaml").write_text(
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: placeholder}\n")

    # -- processes ----------------------------------------------------------------------
    def start_hosts(self) -> None:
        """The simulated hosts up, the server on h1 over a placeholder repo, a node agent
        on every other host (not waited on: callers wait their own way)."""
        self.sim.up(self.hosts)
        self.write_placeholder()
        self.start_server()
        for n in range(2, self.hosts + 1):
            self.start_agent(f"h{n}")

    def wait_nodes_ready(self, timeout: float = 90) -> None:
        self.wait(lambda: len(self.nodes()) == self.hosts and
                  all(ready(n) for n in self.nodes().values()),
                  timeout, f"{self.hosts} Ready nodes")

    def _gitops(self, host: str, args: list[str], log: str) -> subprocess.Popen:
        out = open(self.work / log, "ab")
        proc = self.sim.popen(host, [sys.executable, "-m", "gitops", *args], cwd=ROOT,
                              stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        out.close()
        return proc

    def start_server(self) -> None:
        self.procs["h1"] = self._gitops("h1", [
            "run", "--repo", str(self.repo), "--data-dir", str(self.server_dir),
            "--advertise-address", self.sim.addr("h1"), "--node-name", "h1",
            "--interval", "5", "--log-format", "json",
            "--node-monitor-grace-period", str(self.grace),
            "--default-unreachable-toleration-seconds", str(self.toleration),
            *self._backend_args()], "h1.log")
        self._wait(lambda: (self.server_dir / "agent.json").exists() and
                   "server" in json.loads((self.server_dir / "agent.json").read_text()),
                   60, "the server to listen", "h1.log")
        info = json.loads((self.server_dir / "agent.json").read_text())
        write_kubeconfig(self.work / "kubeconfig", info["server"],
                         (self.server_dir / "token").read_text().strip(),
                         (self.server_dir / "ca.crt").read_bytes())
        self.token_file.write_text((self.server_dir / "node-token").read_text())

    @property
    def token_file(self) -> Path:
        return self.work / "node-token"

    def server_url(self) -> str:
        return json.loads((self.server_dir / "agent.json").read_text())["server"]

    def agent_args(self, host: str, token_file: Path | None = None) -> list[str]:
        return ["agent", "--server", self.server_url(), "--token-file",
                str(token_file or self.token_file), "--data-dir", str(self.work / host),
                "--node-name", host, "--log-format", "json", *self._backend_args()]

    def _backend_args(self) -> list[str]:
        return ["--pod-network-backend", self.backend] if self.backend else []

    def start_agent(self, host: str) -> None:
        self.procs[host] = self._gitops(host, self.agent_args(host), f"{host}.log")

    def kill(self, host: str) -> None:
        proc = self.procs.pop(host, None)
        if proc is not None and proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(10)

    def stop_all(self) -> None:
        for host, proc in list(self.procs.items()):
            if proc.poll() is None:
                os.kill(proc.pid, signal.SIGTERM)
        for host, proc in list(self.procs.items()):
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait(10)
        self.procs.clear()

    # -- kubectl ------------------------------------------------------------------------
    def kubectl(self, *args: str, check: bool = True, timeout: float = 60,
                input: str | None = None) -> str:
        done = subprocess.run([kubectl_path(), "--kubeconfig", str(self.work / "kubeconfig"),
                               *args], capture_output=True, text=True, timeout=timeout,
                              input=input)
        if check and done.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)}: {done.stderr}")
        return done.stdout

    def get(self, *args: str) -> dict:
        return json.loads(self.kubectl("get", *args, "-o", "json"))

    def nodes(self) -> dict[str, dict]:
        return {n["metadata"]["name"]: n for n in self.get("nodes")["items"]}

    def pods(self, selector: str = "") -> list[dict]:
        return self.get("pods", *(["-l", selector] if selector else []))["items"]

    # -- waiting ------------------------------------------------------------------------
    def _wait(self, check, timeout: float, what: str, log: str = "") -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if check():
                    return
            except (AssertionError, ValueError, KeyError, OSError):
                pass
            time.sleep(0.3)
        tail = ""
        if log and (self.work / log).exists():
            tail = (self.work / log).read_text()[-3000:]
        raise AssertionError(f"timed out after {timeout}s waiting for {what}\n{tail}")

    def wait(self, check, timeout: float, what: str, log: str = "h1.log") -> None:
        self._wait(check, timeout, what, log)


def ready(node: dict) -> bool:
    return any(c["type"] == "Ready" and c["status"] == "True"
               for c in node.get("status", {}).get("conditions", []))


def pod_ready(pod: dict) -> bool:
    return any(c["type"] == "Ready" and c["status"] == "True"
               for c in pod.get("status", {}).get("conditions", [])) and \
        not pod["metadata"].get("deletionTimestamp")


def address(node: dict) -> str:
    return next(a["address"] for a in node["status"]["addresses"] if a["type"] == "InternalIP")
