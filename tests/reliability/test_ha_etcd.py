"""Chaos on the HA control plane: servers sharing a 3-member etcd (scripts/etcd.sh), each
with its own data dir and API port, leader election timings shortened by flags.

- kill -9 the leading server: another takes every Lease, the survivors' API answers all
  along, and a git push made during the failover is applied exactly once;
- one etcd member killed: nothing is interrupted; two killed: writes fail with a clear 5xx,
  reads go on, and everything recovers when they return with nothing lost.
Every wait is bounded; servers and etcd are stopped in `finally`/fixtures, even on failure.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import time
from pathlib import Path

import pytest
import requests

from tests.e2e.conftest import git, gitops
from tests.etcd_support import EtcdCluster, start_cluster
from tests.kube_support import run_kubectl

pytestmark = pytest.mark.docker

FAST = ["--leader-elect-lease-duration", "4", "--leader-elect-renew-deadline", "3",
        "--leader-elect-retry-period", "0.5"]
LEASES = ("gitops-sync", "gitops-controller-manager", "gitops-scheduler")


def configmap(name: str) -> str:
    return f"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\ndata:\n  k: v\n"


def push(repo: Path, name: str) -> str:
    (repo / f"{name}.yaml").write_text(configmap(name))
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", f"add {name}")
    return (repo / ".git").exists() and _head(repo)


def _head(repo: Path) -> str:
    import subprocess
    return subprocess.run(["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True,
                          text=True, check=True).stdout.strip()


class Server:
    def __init__(self, tmp: Path, name: str, etcd: EtcdCluster) -> None:
        from gitops.paths import DataDir
        self.data = str(tmp / name)
        self.etcd = etcd
        self.identity = f"{socket.gethostname()}_{DataDir.at(self.data).instance}"
        self.kubeconfig = tmp / f"{name}.kubeconfig"

    def up(self, repo: Path, wait: bool = True, extra: tuple[str, ...] = ()) -> None:
        args = ["up", f"file://{repo}", "--datastore", self.etcd.url, "--data-dir", self.data,
                "--interval", "1", *FAST, *extra]
        done = gitops(*args, *(["--wait", "--timeout", "90"] if wait else []))
        assert done.returncode == 0, done.stdout + done.stderr
        config = gitops("kubeconfig", "--data-dir", self.data)
        assert config.returncode == 0, config.stderr
        self.kubeconfig.write_text(config.stdout)

    def kubectl(self, *args: str, timeout: float = 60, input: str | None = None):
        return run_kubectl(self.kubeconfig, *args, timeout=timeout, input=input)

    def create(self, name: str, timeout: float = 60):
        return self.kubectl("create", "-f", "-", input=configmap(name), timeout=timeout)

    def kill(self) -> None:
        pid = json.loads((Path(self.data) / "agent.json").read_text())["pid"]
        os.kill(pid, signal.SIGKILL)

    def down(self) -> None:
        gitops("down", "--data-dir", self.data)

    def log_lines(self, *events: str) -> list[str]:
        """This server's log records of these events (a failure's context)."""
        from gitops.paths import DataDir
        text = DataDir.at(self.data).log_file.read_text(errors="replace")
        return [line for line in text.splitlines() if any(f'"{e}"' in line for e in events)]

    def blocked_watchers(self) -> list[str]:
        """Writes that waited out their wait for the watch while a store watcher was
        running: a watcher waiting for a lock the writer held (a cycle, 10 s per write)."""
        return [line for line in self.log_lines("etcd_watch_lagging")
                if json.loads(line).get("in_watcher")]

    def holders(self) -> dict[str, str]:
        got = self.kubectl("get", "leases", "-n", "kube-system", "-o", "json")
        assert got.returncode == 0, got.stderr
        return {o["metadata"]["name"]: o["spec"]["holderIdentity"]
                for o in json.loads(got.stdout)["items"]}


def wait_for(what: str, check, timeout: float):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = check()
        if got:
            return got
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


@pytest.fixture
def etcd3(tmp_path):
    cluster = start_cluster(tmp_path, 3)
    yield cluster
    cluster.stop()


def test_kill_9_the_leader_another_leads_and_a_push_lands_exactly_once(
        docker_client, repo, tmp_path, etcd3):
    push(repo, "one")
    a, b = Server(tmp_path, "a", etcd3), Server(tmp_path, "b", etcd3)
    try:
        a.up(repo)
        b.up(repo)
        holders = wait_for("a to hold every Lease", lambda: (
            h := b.holders()) and all(h.get(n) == a.identity for n in LEASES) and h, 30)
        assert set(holders) >= set(LEASES)
        revision = push(repo, "two")            # pushed, then the leader dies at once
        a.kill()

        def two_applied_by_b():
            got = b.kubectl("get", "configmaps", "-o", "json")
            assert got.returncode == 0, got.stderr     # the survivor's API answers all along
            names = {o["metadata"]["name"] for o in json.loads(got.stdout)["items"]}
            return "two" in names and b.holders().get("gitops-sync") == b.identity
        wait_for("b to lead and apply the push", two_applied_by_b, 60)
        assert all(v == b.identity for k, v in b.holders().items() if k in LEASES) or \
            wait_for("b to hold every Lease", lambda: all(
                b.holders().get(n) == b.identity for n in LEASES), 30)
        history = json.loads(gitops("history", "-o", "json", "--data-dir", b.data).stdout)
        applied = [e for e in history if e.get("revision") == revision
                   and e.get("result") == "synced"]
        assert len(applied) == 1, history                  # applied exactly once
        two = json.loads(b.kubectl("get", "configmap", "two", "-o", "json").stdout)
        assert two["metadata"]["generation"] == 1
        assert a.blocked_watchers() + b.blocked_watchers() == []
    finally:
        a.down()
        b.down()


def _etcd_leader(etcd: EtcdCluster) -> int:
    for n in range(etcd.members):
        try:
            status = requests.post(f"http://{etcd.endpoint(n)}/v3/maintenance/status",
                                   json={}, timeout=2).json()
        except requests.RequestException:
            continue
        if status.get("leader") == status["header"]["member_id"]:
            return n
    raise AssertionError("no etcd leader")


def test_etcd_members_down_one_is_harmless_two_stop_writes_with_a_5xx_then_recover(
        docker_client, repo, tmp_path, etcd3):
    push(repo, "one")
    server = Server(tmp_path, "s", etcd3)
    try:
        server.up(repo)
        follower = next(n for n in range(3) if n != _etcd_leader(etcd3))
        etcd3.kill(follower)
        made = server.create("while-one-down")
        assert made.returncode == 0, made.stderr          # no interruption
        assert server.kubectl("get", "configmap", "while-one-down").returncode == 0

        other = next(n for n in range(3) if n != follower)
        etcd3.kill(other)                                # quorum lost
        refused = server.create("no-quorum", timeout=90)
        assert refused.returncode != 0
        assert "ServiceUnavailable" in refused.stderr or "503" in refused.stderr, \
            refused.stderr
        read = server.kubectl("get", "configmap", "while-one-down", timeout=90)
        assert read.returncode == 0, read.stderr          # reads as etcd allows

        etcd3.start_member(follower)
        etcd3.start_member(other)
        wait_for("writes to come back", lambda: server.create("after").returncode == 0, 90)
        got = server.kubectl("get", "configmaps", "-o", "json")
        names = {o["metadata"]["name"] for o in json.loads(got.stdout)["items"]}
        assert {"one", "while-one-down", "after"} <= names and "no-quorum" not in names
        assert server.blocked_watchers() == []
    finally:
        server.down()


def test_servers_share_secrets_a_follower_forwards_sync_and_clients_fail_over(
        docker_client, repo, tmp_path, etcd3):
    """`gitops sync` on the server not leading sync is run by the leader, once; the
    servers trust one token and CA; a client of a dead server's data dir reaches the other
    (DATA_DIR/peers.json)."""
    push(repo, "one")
    a, b = Server(tmp_path, "a", etcd3), Server(tmp_path, "b", etcd3)
    try:
        a.up(repo)
        b.up(repo, wait=False)
        for name in ("token", "ca.crt", "sa.key", "node-token"):
            assert (Path(a.data) / name).read_bytes() == (Path(b.data) / name).read_bytes()
        wait_for("a to lead sync", lambda: b.holders().get("gitops-sync") == a.identity, 30)
        revision = push(repo, "two")
        done = gitops("sync", "--data-dir", b.data)          # b follows: a syncs
        assert done.returncode == 0, done.stdout + done.stderr
        assert revision[:7] in done.stdout, done.stdout
        def applied() -> list[dict]:        # history is in the store: either server's
            history = json.loads(gitops("history", "-o", "json", "--data-dir", a.data).stdout)
            return [e for e in history if e.get("revision") == revision
                    and e.get("result") == "synced"]
        # Once, and recorded by the server that applied it. Usually a's pass has finished
        # when the answer comes; a leader slowed past its Lease (seen under CI load) is
        # followed by b, which answers "unchanged" while a's pass ends: wait for its record.
        wait_for("the pushed revision in history", applied, 30)
        assert len(applied()) == 1, (done.stdout, a.log_lines("sync_completed"),
                                     b.log_lines("sync_completed"))
        assert b.kubectl("get", "configmap", "two").returncode == 0
        wait_for("b to know a as its peer", lambda: json.loads(
            (Path(b.data) / "peers.json").read_text())["peers"], 15)
        wait_for("a to know b as its peer", lambda: json.loads(
            (Path(a.data) / "peers.json").read_text())["peers"], 15)
        a.kill()
        status = gitops("status", "-o", "json", "--data-dir", a.data)   # answered by b
        assert status.returncode in (0, 1), status.stderr
        assert json.loads(status.stdout)["applied_revision"] == revision
        assert a.blocked_watchers() + b.blocked_watchers() == []
    finally:
        a.down()
        b.down()


def test_a_webhook_on_the_follower_is_applied_by_the_leader(docker_client, repo, tmp_path,
                                                            etcd3):
    import hashlib
    import hmac
    push(repo, "one")
    secret = tmp_path / "hook-secret"
    secret.write_text("topsecret\n")
    quiet = ("--interval", "3600", "--webhook-secret-file", str(secret))   # no polling
    a, b = Server(tmp_path, "a", etcd3), Server(tmp_path, "b", etcd3)
    try:
        a.up(repo, extra=quiet)
        b.up(repo, wait=False, extra=quiet)
        wait_for("a to lead sync", lambda: b.holders().get("gitops-sync") == a.identity, 30)
        push(repo, "hooked")
        body = json.dumps({"ref": "refs/heads/main",
                           "repository": {"clone_url": f"file://{repo}"}}).encode()
        url = json.loads((Path(b.data) / "agent.json").read_text())["url"]
        answer = requests.post(f"{url}/hooks/github", data=body, timeout=10, headers={
            "X-GitHub-Event": "push", "Content-Type": "application/json",
            "X-Hub-Signature-256": "sha256=" + hmac.new(b"topsecret", body,
                                                        hashlib.sha256).hexdigest()})
        assert answer.status_code == 202, answer.text
        wait_for("the leader to apply the push b received", lambda: b.kubectl(
            "get", "configmap", "hooked").returncode == 0, 60)
        assert a.blocked_watchers() + b.blocked_watchers() == []
    finally:
        a.down()
        b.down()
