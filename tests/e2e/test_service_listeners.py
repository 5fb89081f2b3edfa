"""Service listeners on the real engine: a node port another process holds makes the
Service Degraded with the reason, a Warning event, and `up --wait` fail naming it (and
Healthy once the port is free); a Service without a ready endpoint refuses connections
(ECONNREFUSED) and accepts once its pod is Ready.

Traffic goes only to loopback and to the VIPs the agent created.
"""

from __future__ import annotations

import json
import random
import socket
import time

import pytest

from tests.e2e.conftest import git, gitops

pytestmark = pytest.mark.docker

MANIFESTS = """\
apiVersion: v1
kind: Service
metadata: {name: held}
spec:
  type: NodePort
  selector: {app: web}
  ports: [{name: http, port: 80, targetPort: 8080, nodePort: %(port)d}]
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
        - name: web
          image: gitops/busybox:1
          imagePullPolicy: IfNotPresent
          command: ["sh", "-c", "echo ready > /tmp/index.html; exec httpd -f -p 8080 -h /tmp"]
          # not ready until the test says so
          readinessProbe: {exec: {command: ["test", "-f", "/tmp/go"]}, periodSeconds: 1}
---
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  selector: {app: web}
  ports: [{port: 5000, targetPort: 8080}]
"""


def _hold_a_node_port() -> socket.socket:
    """A listening socket on 127.0.0.1 in the node port range (another process's)."""
    for _ in range(200):
        port = random.randint(30000, 32767)
        try:
            return socket.create_server(("127.0.0.1", port))
        except OSError:
            continue
    raise AssertionError("no free port in the node port range")


def _health(data: str) -> dict:
    st = json.loads(gitops("status", "-o", "json", "--data-dir", data).stdout)
    return {(o["kind"], o["name"]): (o["health"], o.get("message", ""))
            for o in st["objects"]}


def _until(check, timeout: float = 60.0):
    deadline = time.monotonic() + timeout
    while not (value := check()) and time.monotonic() < deadline:
        time.sleep(0.5)
    return value


def _connect(addr: tuple[str, int]) -> bytes:
    with socket.create_connection(addr, timeout=5) as conn:
        conn.sendall(b"GET /index.html HTTP/1.0\r\n\r\n")
        out = b""
        while chunk := conn.recv(4096):
            out += chunk
    return out


def test_held_node_port_and_refusal_without_ready_endpoints(docker_client, repo, tmp_path):
    from gitops.paths import DataDir
    holder = _hold_a_node_port()
    port = holder.getsockname()[1]
    (repo / "app" / "svc.yaml").write_text(MANIFESTS % {"port": port})
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "services")
    data = str(tmp_path / "data")
    instance = DataDir.at(data).instance
    try:
        up = gitops("up", f"file://{repo}", "--wait", "--timeout", "30", "--data-dir", data)
        out = up.stdout + up.stderr
        assert up.returncode == 1, out
        assert "held" in out and f"127.0.0.1:{port}" in out and "in use" in out, out
        health, message = _health(data)[("Service", "held")]
        assert health == "Degraded" and f"cannot listen on 127.0.0.1:{port}" in message
        events = gitops("events", "--for", "svc/held", "--data-dir", data).stdout
        assert "FailedToBind" in events and "Warning" in events, events

        # no ready endpoint: refused, not accepted and reset
        svc = json.loads(gitops("get", "svc", "web", "-o", "json", "--data-dir", data).stdout)
        vip = (svc["spec"]["clusterIP"], 5000)
        assert _until(lambda: _health(data)[("Deployment", "web")][0] != "Missing")
        for _ in range(3):
            with pytest.raises(ConnectionRefusedError):
                socket.create_connection(vip, timeout=5).close()
        [web] = docker_client.containers.list(filters={"label": [
            f"gitops.instance={instance}", "gitops.container=web"]})
        web.exec_run(["touch", "/tmp/go"])

        def answers() -> bool:
            try:
                return b"ready" in _connect(vip)
            except ConnectionRefusedError:
                return False
        assert _until(answers, 30), "the Service never accepted once its pod was Ready"

        # the port freed: the Service listens and is Healthy again
        holder.close()
        assert _until(lambda: _health(data)[("Service", "held")][0] == "Healthy", 40)
        assert b"ready" in _connect(("127.0.0.1", port))
    finally:
        holder.close()
        gitops("down", "--data-dir", data)
