"""Issue 17, done when: a repo with an age-encrypted Secret deploys end to end on the real
engine and the pod reads the clear value; the clear value and the key are found neither in
the agent's log, nor in its data dir, nor in `ps`; a revision encrypted for another key, or
an agent without a key, is refused whole while what runs keeps running."""

from __future__ import annotations

import json
import re
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

from gitops.paths import DataDir
from tests.conftest import free_port
from tests.e2e.conftest import git, gitops
from tests.sops_support import KEY, OTHER_RECIPIENT, RECIPIENT, encrypt, needs_sops, write_key

pytestmark = pytest.mark.docker

VALUE = "Clear-Pw-e2e-50713"
NEXT = "Next-Pw-e2e-88140"
SECRET = """\
apiVersion: v1
kind: Secret
metadata:
  name: db
type: Opaque
stringData:
  password: {password}
"""
APP = """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: reader
spec:
  replicas: 1
  selector:
    matchLabels: {{app: reader}}
  template:
    metadata:
      labels: {{app: reader}}
    spec:
      containers:
        - name: web
          image: gitops/busybox:1
          imagePullPolicy: IfNotPresent
          command:
            - sh
            - -c
            - mkdir -p /www; echo "$PASSWORD" > /www/index.html; exec httpd -f -p 8080 -h /www
          env:
            - name: PASSWORD
              valueFrom: {{secretKeyRef: {{name: db, key: password}}}}
            - {{name: REVISION, value: "{revision}"}}
          ports: [{{name: http, containerPort: 8080}}]
---
apiVersion: v1
kind: Service
metadata:
  name: reader
spec:
  type: NodePort
  selector: {{app: reader}}
  ports: [{{name: http, port: 80, targetPort: http, nodePort: {node_port}}}]
"""


def fetch(port: int, tries: int = 40) -> str:
    for _ in range(tries):      # bounded: the NodePort may take a moment after --wait
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as resp:
                return resp.read().decode().strip()
        except OSError:
            time.sleep(0.25)
    raise AssertionError(f"nothing answers on 127.0.0.1:{port}")


def commit(repo: Path, secret: str, revision: str, port: int) -> None:
    (repo / "app" / "secret.enc.yaml").write_text(secret)
    (repo / "app" / "app.yaml").write_text(APP.format(revision=revision, node_port=port))
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", revision)


def found_in_files(root: Path, *needles: str) -> list[str]:
    """Files under `root` (the data dir: store, WAL, logs, agent.json, pod files...) holding
    any of `needles`."""
    hits = []
    for path in root.rglob("*"):
        if path.is_file() and not path.is_symlink():
            data = path.read_bytes()
            hits += [f"{path}: {n}" for n in needles if n.encode() in data]
    return hits


def test_an_encrypted_secret_deploys_and_its_clear_value_and_key_leak_nowhere(
        docker_client, repo, tmp_path):
    needs_sops()
    key = write_key(tmp_path / "key.txt", KEY)
    port = free_port(30000, 32767)
    commit(repo, encrypt(SECRET.format(password=VALUE), RECIPIENT), "one", port)
    data = tmp_path / "data"
    bare = tmp_path / "data-without-key"
    try:
        up = gitops("up", f"file://{repo}", "--data-dir", str(data), "--interval", "300",
                    "--decryption-key-file", str(key), "--wait", "--timeout", "120")
        assert up.returncode == 0, up.stdout + up.stderr
        assert fetch(port) == VALUE                      # the pod read the clear value

        agent_pid = DataDir.at(data).read_agent()["pid"]
        ps = subprocess.run(["ps", "-eww", "-o", "pid,args"], capture_output=True,
                            text=True).stdout
        assert str(key) in ps                             # the path, which is no secret
        assert VALUE not in ps and KEY not in ps
        cmdline = Path(f"/proc/{agent_pid}/cmdline").read_bytes()
        assert KEY.encode() not in cmdline and VALUE.encode() not in cmdline
        secret = json.loads(gitops("get", "secret", "db", "-o", "json", "--data-dir",
                                   str(data)).stdout)
        assert secret["data"]["password"] == "***"

        # A revision encrypted for a key the agent lacks: refused whole, the pod stays.
        commit(repo, encrypt(SECRET.format(password=NEXT), OTHER_RECIPIENT), "two", port)
        synced = gitops("sync", "--data-dir", str(data))
        assert synced.returncode == 1
        assert re.search(r"app/secret\.enc\.yaml:\d+: .*none of the agent's keys",
                         synced.stdout), synced.stdout
        deploy = json.loads(gitops("get", "deploy", "reader", "-o", "json", "--data-dir",
                                   str(data)).stdout)
        env = deploy["spec"]["template"]["spec"]["containers"][0]["env"]
        assert {"name": "REVISION", "value": "one"} in env     # nothing of "two" applied
        assert fetch(port) == VALUE

        # An agent without a key: the same repo is refused whole, nothing is created.
        no_key = gitops("up", f"file://{repo}", "--data-dir", str(bare), "--interval", "300",
                        "--wait", "--timeout", "30")
        assert no_key.returncode == 1
        assert re.search(r"app/secret\.enc\.yaml:\d+: .*no decryption key", no_key.stderr), \
            no_key.stderr
        pods = json.loads(gitops("get", "pods", "-o", "json", "--data-dir", str(bare)).stdout)
        assert pods["items"] == []

        # Nowhere in what the agents wrote: logs, store (+ WAL), agent.json, pod files.
        for root in (data, bare):
            assert found_in_files(root, VALUE, NEXT, KEY) == []
        assert KEY not in (data / "agent.json").read_text()
    finally:
        for root in (data, bare):
            gitops("down", "--data-dir", str(root))
