"""The HA control plane on simulated hosts (scripts/sim-hosts.sh, prefix `ha`): servers on
h1 and h2 over a 3-member etcd on the hosts' bridge, a node agent on h3 given both
servers. Tests run in order on one cluster:

- kill -9 the leading server: the other leads, its API answers, a push made meanwhile is
  applied exactly once, and the node agent fails over: its pods keep their containers,
  its Lease is renewed and its pods' status reaches the API through the survivor;
- restart every process at once (both servers, every etcd member, the node agent, kill -9
  together, then start again): the same state comes back, with the same containers (none
  duplicated, none orphaned).

Bounded in time; `sim-hosts.sh down` and `etcd.sh stop` run first (what a crashed run
left) and in a finally.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.cluster.sim import ROOT, SimHosts, require_sim
from tests.e2e.conftest import git
from tests.etcd_support import EtcdCluster, free_port_run, need_etcd
from tests.kube_support import kubectl_path, write_kubeconfig

pytestmark = pytest.mark.cluster

PREFIX = "ha"
FAST = ["--leader-elect-lease-duration", "6", "--leader-elect-renew-deadline", "4",
        "--leader-elect-retry-period", "1"]
SERVERS = ("h1", "h2")
NODE = "h3"
APP = """\
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      nodeSelector: {kubernetes.io/hostname: h3}
      terminationGracePeriodSeconds: 2
      containers:
      - name: web
        image: gitops/busybox:1
        imagePullPolicy: IfNotPresent
        command: ["sh", "-c", "echo ok > /tmp/index.html; exec httpd -f -p 8080 -h /tmp"]
        readinessProbe: {tcpSocket: {port: 8080}, periodSeconds: 1}
"""


def configmap(name: str) -> str:
    return f"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\ndata:\n  k: v\n"


@dataclass
class HACluster:
    sim: SimHosts
    work: Path
    etcd: EtcdCluster | None = None
    procs: dict[str, subprocess.Popen] = field(default_factory=dict)     # node agents
    servers: dict[str, int] = field(default_factory=dict)                # host -> pid
    printed: str = ""               # what `gitops up` printed for the second server

    @property
    def repo(self) -> Path:
        return self.work / "repo"

    def data(self, host: str) -> Path:
        return self.work / host

    def push(self, name: str, text: str) -> str:
        (self.repo / f"{name}.yaml").write_text(text)
        git(self.repo, "add", "-A")
        git(self.repo, "commit", "-q", "-m", f"add {name}")
        return subprocess.run(["git", "-C", str(self.repo), "rev-parse", "HEAD"],
                              capture_output=True, text=True, check=True).stdout.strip()

    # -- processes ----------------------------------------------------------------------
    def _gitops(self, host: str, args: list[str]) -> None:
        out = open(self.work / f"{host}.log", "ab")
        self.procs[host] = self.sim.popen(host, [sys.executable, "-m", "gitops", *args],
                                          cwd=ROOT, stdout=out, stderr=subprocess.STDOUT,
                                          start_new_session=True)
        out.close()

    def start_server(self, host: str) -> str:
        """`gitops up` on the host, as the README has it; what it printed."""
        assert self.etcd is not None
        done = self.sim.exec(host, sys.executable, "-m", "gitops", "up", f"file://{self.repo}",
                             "--datastore", self.etcd.url, "--advertise-address",
                             self.sim.addr(host), "--data-dir", str(self.data(host)),
                             "--node-name", host, "--interval", "1", *FAST, timeout=180)
        log = self.data(host) / "agent.log"
        assert done.returncode == 0, done.stdout + done.stderr + (
            log.read_text()[-3000:] if log.exists() else "")
        self.servers[host] = json.loads((self.data(host) / "agent.json").read_text())["pid"]
        d = self.data(host)
        write_kubeconfig(self.work / f"{host}.kubeconfig", self.server_url(host),
                         (d / "token").read_text().strip(), (d / "ca.crt").read_bytes())
        return done.stdout

    def server_url(self, host: str) -> str:
        return f"https://{self.sim.addr(host)}:6443"

    def kill_server(self, host: str) -> None:
        pid = self.servers.pop(host, 0)
        if pid:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                return
            self.wait(lambda: not Path(f"/proc/{pid}").exists(), 10, f"{host} to die")

    def start_node(self) -> None:
        self._gitops(NODE, [
            "agent", "--server", ",".join(self.server_url(h) for h in SERVERS),
            "--token-file", str(self.data("h1") / "node-token"),
            "--data-dir", str(self.data(NODE)), "--node-name", NODE, "--log-format", "json"])

    def stop_all(self) -> None:
        for host in list(self.servers):
            self.sim.exec(host, sys.executable, "-m", "gitops", "down", "--data-dir",
                          str(self.data(host)), timeout=120)
            self.kill_server(host)
        for proc in self.procs.values():
            if proc.poll() is None:
                os.kill(proc.pid, signal.SIGTERM)
        for proc in self.procs.values():
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait(10)
        self.procs.clear()

    # -- reading the cluster --------------------------------------------------------------
    def kubectl(self, via: str, *args: str, check: bool = True, timeout: float = 30) -> str:
        done = subprocess.run([kubectl_path(), "--kubeconfig",
                               str(self.work / f"{via}.kubeconfig"), "--request-timeout",
                               "10s", *args], capture_output=True, text=True,
                              timeout=timeout)
        if check and done.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} via {via}: {done.stderr}")
        return done.stdout

    def get(self, via: str, *args: str) -> dict:
        return json.loads(self.kubectl(via, "get", *args, "-o", "json"))

    def holders(self, via: str) -> dict[str, str]:
        return {o["metadata"]["name"]: o["spec"].get("holderIdentity", "")
                for o in self.get(via, "leases", "-n", "kube-system")["items"]}

    def identity(self, host: str) -> str:
        from gitops.paths import DataDir
        return f"{host_name(self.sim, host)}_{DataDir.at(self.data(host)).instance}"

    def web(self, via: str) -> list[dict]:
        return [p for p in self.get(via, "pods", "-l", "app=web")["items"]
                if not p["metadata"].get("deletionTimestamp")]

    def containers(self, host: str) -> dict[str, str]:
        """The engine's containers gitops made on host: name -> id."""
        done = self.sim.exec(host, "docker", "ps", "-a", "--filter", "label=gitops.managed=true",
                             "--format", "{{.Names}} {{.ID}}")
        assert done.returncode == 0, done.stderr
        return dict(line.split() for line in done.stdout.splitlines() if line.strip())

    def history(self, host: str) -> list[dict]:
        done = self.sim.exec(host, sys.executable, "-m", "gitops", "history", "-o", "json",
                             "--data-dir", str(self.data(host)))
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout)

    def wait(self, check, timeout: float, what: str, log: str = "") -> object:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                got = check()
                if got:
                    return got
            except (AssertionError, ValueError, KeyError, OSError,
                    subprocess.TimeoutExpired):
                pass
            time.sleep(0.5)
        tail = ""
        path = self.data(log) / "agent.log" if log in SERVERS else self.work / f"{log}.log"
        if log and path.exists():
            tail = path.read_text()[-3000:]
        raise AssertionError(f"timed out after {timeout}s waiting for {what}\n{tail}")


def host_name(sim: SimHosts, host: str) -> str:
    return sim.exec(host, "hostname").stdout.strip()


def ready(obj: dict) -> bool:
    return any(c["type"] == "Ready" and c["status"] == "True"
               for c in obj.get("status", {}).get("conditions", []))


def gateway(sim: SimHosts) -> str:
    """The machine's own address on the hosts' segment (sim-hosts.sh gives it .254)."""
    subnet = Path(f"/run/gitops-sim/{sim.prefix}/subnet").read_text().strip()
    return subnet.rsplit(".", 1)[0] + ".254"


@pytest.fixture(scope="module")
def ha(tmp_path_factory):
    require_sim()
    need_etcd()
    sim = SimHosts(prefix=PREFIX)
    work = tmp_path_factory.mktemp("ha")
    work.chmod(0o700)
    etcd_dir = Path(f"/var/lib/gitops-ha-etcd-{PREFIX}")
    c = HACluster(sim, work)
    sim.run("down", timeout=120)                      # what a crashed run left
    subprocess.run([str(ROOT / "scripts" / "etcd.sh"), "stop", str(etcd_dir)], timeout=60)
    try:
        sim.up(3)
        c.etcd = EtcdCluster(etcd_dir, 3, free_port_run(6), host=gateway(sim)).start()
        c.repo.mkdir()
        git(c.repo, "init", "-q", "-b", "main")
        git(c.repo, "config", "user.email", "test@example.invalid")
        git(c.repo, "config", "user.name", "test")
        c.push("web", APP)
        c.start_server("h1")
        c.wait(lambda: all(v == c.identity("h1") for v in c.holders("h1").values())
               and len(c.holders("h1")) >= 3, 120, "h1 to lead", "h1")
        c.printed = c.start_server("h2")
        c.start_node()
        c.wait(lambda: ready(c.get("h2", "node", NODE)), 120, "node h3 Ready", NODE)
        c.wait(lambda: len([p for p in c.web("h2") if ready(p)]) == 2, 180,
               "web Ready on h3", NODE)
        yield c
    finally:
        c.stop_all()
        sim.down()
        if c.etcd is not None:
            c.etcd.stop()


def test_the_second_server_adopts_the_cluster_secrets_and_its_join_lists_both(ha):
    for name in ("ca.crt", "token", "node-token", "sa.key"):
        assert (ha.data("h1") / name).read_bytes() == (ha.data("h2") / name).read_bytes()
    join = f"--server {ha.server_url('h2')},{ha.server_url('h1')} "
    assert "nodes join with: gitops agent " + join in ha.printed, ha.printed
    # a kubeconfig of either server is good on the other (one CA, one token)
    assert ha.kubectl("h1", "get", "node", NODE) and ha.kubectl("h2", "get", "node", NODE)


def test_kill_9_the_leader_the_node_fails_over_and_a_push_lands_once(ha):
    before = ha.containers(NODE)
    pods = {p["metadata"]["name"] for p in ha.web("h2")}
    assert len(before) >= 2 and all(any(p in n for n in before) for p in pods)
    lease = ha.get("h2", "lease", "-n", "kube-node-lease", NODE)["spec"]["renewTime"]
    ha.wait(lambda: ha.server_url("h2") in (ha.data("h1") / "peers.json").read_text(), 30,
            "h1 to know h2 (its peers.json)", "h1")
    revision = ha.push("two", configmap("two"))       # pushed, then the leader dies
    ha.kill_server("h1")

    ha.wait(lambda: all(v == ha.identity("h2") for k, v in ha.holders("h2").items()
                        if k.startswith("gitops-")), 60, "h2 to take every Lease", "h2")
    ha.wait(lambda: ha.get("h2", "configmap", "two"), 60, "the push applied by h2", "h2")
    applied = [e for e in ha.history("h2") if e.get("revision") == revision
               and e.get("result") == "synced"]
    assert len(applied) == 1, applied                           # exactly once

    # h1's data dir still leads its clients to the cluster: its kubeconfig names h2 now
    config = subprocess.run([sys.executable, "-m", "gitops", "kubeconfig", "--data-dir",
                             str(ha.data("h1"))], capture_output=True, text=True, cwd=ROOT)
    assert config.returncode == 0, config.stderr
    assert ha.server_url("h2") in config.stdout
    (ha.work / "h1-after.kubeconfig").write_text(config.stdout)
    assert ha.kubectl("h1-after", "get", "node", NODE)

    # The node agent used h1 (first in its list): now h2 gets its Lease renewals...
    ha.wait(lambda: ha.get("h2", "lease", "-n", "kube-node-lease", NODE)["spec"][
        "renewTime"] != lease, 60, "h3's Lease renewed through h2", NODE)
    assert ready(ha.get("h2", "node", NODE))
    # ...its pods kept their containers...
    assert {p["metadata"]["name"] for p in ha.web("h2")} == pods
    assert ha.containers(NODE) == before
    # ...and their status: a container killed behind its back is restarted and reported.
    victim = sorted(pods)[0]
    name = next(n for n in before if victim in n and "pause" not in n)
    assert ha.sim.exec(NODE, "docker", "kill", name).returncode == 0

    def restarted() -> bool:
        pod = ha.get("h2", "pod", victim)
        return any(s.get("restartCount", 0) >= 1
                   for s in pod["status"].get("containerStatuses", []))
    ha.wait(restarted, 90, "the restart reported through h2", NODE)
    ha.wait(lambda: all(ready(p) for p in ha.web("h2")), 90, "web Ready again", NODE)
    ha.start_server("h1")           # back for the next test


def test_restart_every_process_at_once_comes_back_the_same(ha):
    ha.wait(lambda: all(ready(p) for p in ha.web("h2")) and len(ha.web("h2")) == 2, 90,
            "web Ready", NODE)
    objects = sorted(o["metadata"]["name"] for o in ha.get("h2", "configmaps")["items"])
    pods = sorted(p["metadata"]["uid"] for p in ha.web("h2"))
    before = {h: ha.containers(h) for h in (*SERVERS, NODE)}
    assert before[NODE]

    assert ha.etcd is not None
    pids = [*ha.servers.values(), *(p.pid for p in ha.procs.values())]
    pids += [int((ha.etcd.dir / f"m{n}.pid").read_text()) for n in range(3)]
    for pid in pids:                    # every process, kill -9, together
        os.kill(pid, signal.SIGKILL)
    for proc in ha.procs.values():
        proc.wait(10)
    ha.procs.clear()
    ha.servers.clear()
    ha.wait(lambda: not any(Path(f"/proc/{p}").exists() for p in pids), 20, "all dead")

    for member in range(3):
        ha.etcd.start_member(member)
    ha.start_node()                     # before its servers: it waits for them
    for host in SERVERS:
        ha.start_server(host)
    ha.wait(lambda: ready(ha.get("h1", "node", NODE)), 120, "node h3 Ready", NODE)
    ha.wait(lambda: len(ha.web("h1")) == 2 and all(ready(p) for p in ha.web("h1")), 120,
            "web Ready after the restart", NODE)
    assert sorted(p["metadata"]["uid"] for p in ha.web("h1")) == pods     # the same pods
    assert sorted(o["metadata"]["name"] for o in ha.get("h1", "configmaps")["items"]) == \
        objects
    # The same containers: adopted, none made again, none left over.
    ha.wait(lambda: {h: ha.containers(h) for h in (*SERVERS, NODE)} == before, 60,
            "the engines' containers to be as before", NODE)
