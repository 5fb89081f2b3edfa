"""Services end to end on the real engine: ClusterIP from the host and from pods (by IP,
short name and FQDN), only Ready pods behind a Service, dial fall-through, ClientIP
affinity, UDP through a ClusterIP, NodePort on a configured node address, port-forward, a
rolling update that loses no request, and nothing left listening after `down`.

Traffic goes only to loopback and to the addresses the agent created (its VIPs and pods).
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import threading
import time
import urllib.request

import pytest

from tests.conftest import free_port
from tests.e2e.conftest import git, gitops

pytestmark = pytest.mark.docker

NODE_ADDRESS = "127.0.0.2"   # NodePorts on a configured address, not the default

WEB = """\
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
        - name: web
          image: gitops/busybox:1
          command: ["sh", "-c", "echo hello from $HOSTNAME > /www/index.html; exec httpd -f -p 8080 -h /www"]
          ports: [{name: http, containerPort: 8080}]
---
# Matches the selector but never passes readiness: must never answer through the Service.
apiVersion: v1
kind: Pod
metadata: {name: unready, labels: {app: web}}
spec:
  containers:
    - name: web
      image: gitops/busybox:1
      command: ["sh", "-c", "echo hello from unready > /www/index.html; exec httpd -f -p 8080 -h /www"]
      ports: [{name: http, containerPort: 8080}]
      readinessProbe: {exec: {command: ["false"]}, periodSeconds: 1}
---
# Ready (no probe) but nothing listens on its named port 9090: dials to it fail and must
# fall through to a live endpoint.
apiVersion: v1
kind: Pod
metadata: {name: dead, labels: {app: web}}
spec:
  terminationGracePeriodSeconds: 1
  containers:
    - name: web
      image: gitops/busybox:1
      command: ["sleep", "3600"]
      ports: [{name: http, containerPort: 9090}]
---
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  selector: {app: web}
  ports: [{name: http, port: 80, targetPort: http}]
---
apiVersion: v1
kind: Service
metadata: {name: sticky}
spec:
  selector: {app: web}
  sessionAffinity: ClientIP
  ports: [{port: 80, targetPort: http}]
---
apiVersion: v1
kind: Service
metadata: {name: web-np}
spec:
  type: NodePort
  selector: {app: web}
  ports: [{port: 80, targetPort: http, nodePort: NODE_PORT}]
---
# UDP through a ClusterIP: a datagram echo behind a UDP Service port.
apiVersion: v1
kind: Pod
metadata: {name: udp-echo, labels: {app: udp-echo}}
spec:
  terminationGracePeriodSeconds: 1
  containers:
    - name: echo
      image: gitops/python:3.11
      command: ["python3", "-c", "import socket\\ns = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\\ns.bind(('0.0.0.0', 9999))\\nwhile True:\\n    data, peer = s.recvfrom(2048)\\n    s.sendto(b'echo:' + data, peer)\\n"]
      ports: [{name: echo, containerPort: 9999, protocol: UDP}]
---
apiVersion: v1
kind: Service
metadata: {name: udp-echo}
spec:
  selector: {app: udp-echo}
  ports: [{name: echo, port: 5353, targetPort: echo, protocol: UDP}]
---
apiVersion: v1
kind: Pod
metadata: {name: client}
spec:
  containers:
    - name: sh
      image: gitops/busybox:1
      command: ["sleep", "3600"]
"""

ROLL = """\
apiVersion: apps/v1
kind: Deployment
metadata: {name: roll}
spec:
  replicas: 2
  strategy: {type: RollingUpdate, rollingUpdate: {maxSurge: 1, maxUnavailable: 0}}
  selector: {matchLabels: {app: roll}}
  template:
    metadata: {labels: {app: roll}}
    spec:
      terminationGracePeriodSeconds: 3
      containers:
        - name: web
          image: gitops/busybox:1
          env: [{name: VERSION, value: VERSION_VALUE}]
          # Stops serving at once on SIGTERM, as a real server's graceful shutdown does.
          command: ["sh", "-c", "echo $VERSION > /www/index.html; httpd -f -p 8080 -h /www & trap 'kill $!; exit 0' TERM; wait"]
          ports: [{name: http, containerPort: 8080}]
          readinessProbe: {httpGet: {path: /, port: http}, periodSeconds: 1}
---
apiVersion: v1
kind: Service
metadata: {name: roll}
spec:
  selector: {app: roll}
  ports: [{port: 80, targetPort: http}]
"""


def exec_in(client, instance: str, pod: str, cmd: str) -> str:
    [c] = client.containers.list(filters={"label": [f"gitops.instance={instance}",
                                                    f"gitops.pod.name={pod}",
                                                    "gitops.container=sh"]})
    return c.exec_run(["sh", "-c", cmd]).output.decode()


def get_json(data: str, *what: str) -> dict:
    res = gitops("get", *what, "-o", "json", "--data-dir", data)
    assert res.returncode == 0, res.stderr
    return json.loads(res.stdout)


def http_get(host: str, port: int, timeout: float = 5) -> str:
    with urllib.request.urlopen(f"http://{host}:{port}/", timeout=timeout) as resp:
        return resp.read().decode().strip()


def wait_for(check, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if result := check():
                return result
        except OSError:
            pass
        time.sleep(0.3)
    raise AssertionError(f"timed out waiting for {what}")


def lo_addresses() -> str:
    return subprocess.run(["ip", "-o", "addr", "show", "dev", "lo"], capture_output=True,
                          text=True).stdout


def udp_ask(host: str, port: int, data: bytes) -> bytes | None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(1)
        s.sendto(data, (host, port))
        try:
            return s.recvfrom(2048)[0]
        except TimeoutError:
            return None


def refused(host: str, port: int) -> bool:
    try:
        socket.create_connection((host, port), timeout=2).close()
    except OSError:
        return True
    return False


class PortForward:
    """`gitops port-forward` as a user runs it; the local port comes from its first line."""

    def __init__(self, data: str, target: str, ports: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "gitops", "port-forward", target, ports, "--data-dir", data],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=os.environ.copy())
        line = self.proc.stdout.readline()
        m = re.match(r"Forwarding from 127\.0\.0\.1:(\d+) -> (\S+)", line)
        if not m:
            self.close()
            raise AssertionError(f"port-forward said {line!r}: {self.proc.stderr.read()}")
        self.port = int(m.group(1))

    def close(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)


def test_services_from_host_and_pods_nodeport_port_forward_and_down(docker_client, repo,
                                                                     tmp_path):
    from gitops.paths import DataDir
    node_port = free_port(30000, 32767)
    (repo / "app" / "all.yaml").write_text(WEB.replace("NODE_PORT", str(node_port)))
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "services")
    data = str(tmp_path / "data")
    instance = DataDir.at(data).instance
    forwards: list[PortForward] = []
    ip = ""
    try:
        # --wait would wait forever for the unready pod; wait for the Endpoints instead.
        up = gitops("up", f"file://{repo}", "--node-address", NODE_ADDRESS, "--data-dir", data)
        assert up.returncode == 0, up.stdout + up.stderr
        ip = wait_for(lambda: get_json(data, "svc", "web")["spec"].get("clusterIP"), 60,
                      "a ClusterIP")
        assert ip.startswith("10.")

        def endpoints_settled():
            subsets = get_json(data, "endpoints", "web").get("subsets") or []
            ready = [a["targetRef"]["name"] for s in subsets for a in s.get("addresses", [])]
            unready = [a["targetRef"]["name"] for s in subsets
                       for a in s.get("notReadyAddresses", [])]
            return (ready, unready) if len(ready) == 3 and unready == ["unready"] else None
        ready, _ = wait_for(endpoints_settled, 90, "2 web pods and dead Ready, unready not")
        assert "dead" in ready
        webs = sorted(n for n in ready if n.startswith("web-"))
        assert len(webs) == 2

        # From the host, straight to the VIP on lo: both web pods answer, the unready pod
        # never does, and every dial that picked the dead pod fell through (no failure).
        answers = [http_get(ip, 80) for _ in range(30)]
        assert {a.split()[-1] for a in answers} == set(webs), answers

        # ClientIP affinity: one client IP, one pod, even past the dead endpoint.
        svc_ip = get_json(data, "svc", "sticky")["spec"]["clusterIP"]
        sticky = {http_get(svc_ip, 80) for _ in range(12)}
        assert len(sticky) == 1 and sticky.pop().split()[-1] in webs

        # From a pod: names through cluster DNS, the env links, and HTTP by FQDN/short name.
        resolv = exec_in(docker_client, instance, "client", "cat /etc/resolv.conf")
        assert "search default.svc.cluster.local svc.cluster.local cluster.local" in resolv
        assert ip in exec_in(docker_client, instance, "client",
                             "nslookup web.default.svc.cluster.local")
        assert ip in exec_in(docker_client, instance, "client", "nslookup web")
        env = exec_in(docker_client, instance, "client",
                      "echo $WEB_SERVICE_HOST:$WEB_SERVICE_PORT")
        assert env.strip() == f"{ip}:80"
        for name in (ip, "web", "web.default.svc.cluster.local"):
            def ask(name=name):
                reply = exec_in(docker_client, instance, "client",
                                f"printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 3 {name} 80")
                return reply if "hello from web-" in reply else None
            assert "200 OK" in wait_for(ask, 15, f"HTTP to {name} from a pod")

        # UDP: a datagram to the ClusterIP comes back from the pod behind it.
        udp_ip = get_json(data, "svc", "udp-echo")["spec"]["clusterIP"]
        assert wait_for(lambda: udp_ask(udp_ip, 5353, b"ping"), 60,
                        "a UDP answer through the ClusterIP") == b"echo:ping"

        # NodePort on the configured node address (and not on the default one).
        assert http_get(NODE_ADDRESS, node_port).split()[-1] in webs
        assert refused("127.0.0.1", node_port)

        # port-forward to the Service (by port number) and to one pod (by port name).
        forwards.append(PortForward(data, "svc/web", ":80"))
        assert {http_get("127.0.0.1", forwards[-1].port).split()[-1]
                for _ in range(6)} == set(webs)
        forwards.append(PortForward(data, f"pod/{webs[0]}", ":http"))
        assert http_get("127.0.0.1", forwards[-1].port) == f"hello from {webs[0]}"
    finally:
        for fwd in forwards:
            fwd.close()
        gitops("down", "--data-dir", data)
    # Nothing of it is left: the VIPs, the NodePort listener.
    assert ip and ip not in lo_addresses()
    assert refused(NODE_ADDRESS, node_port)


def test_rolling_update_behind_a_service_loses_no_request(docker_client, repo, tmp_path):
    (repo / "app" / "all.yaml").write_text(ROLL.replace("VERSION_VALUE", "v1"))
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "v1")
    data = str(tmp_path / "data")
    try:
        up = gitops("up", f"file://{repo}", "--wait", "--timeout", "90", "--data-dir", data)
        assert up.returncode == 0, up.stdout + up.stderr
        ip = get_json(data, "svc", "roll")["spec"]["clusterIP"]
        wait_for(lambda: http_get(ip, 80) == "v1", 30, "v1 through the Service")

        seen: dict[str, int] = {}
        failures: list[str] = []
        stop = threading.Event()

        def load() -> None:   # bounded: at most 4000 requests and 150 s
            deadline = time.monotonic() + 150
            for _ in range(4000):
                if stop.is_set() or time.monotonic() > deadline:
                    return
                try:
                    body = http_get(ip, 80)
                    seen[body] = seen.get(body, 0) + 1
                except OSError as exc:
                    failures.append(repr(exc))
                time.sleep(0.01)

        loader = threading.Thread(target=load, daemon=True)
        loader.start()
        time.sleep(1)
        (repo / "app" / "all.yaml").write_text(ROLL.replace("VERSION_VALUE", "v2"))
        git(repo, "commit", "-q", "-am", "v2")
        synced = gitops("sync", "--data-dir", data)
        assert synced.returncode == 0, synced.stdout + synced.stderr

        def rolled_out():
            pods = get_json(data, "pods", "-l", "app=roll")["items"]
            status = get_json(data, "deploy", "roll").get("status", {})
            return len(pods) == 2 and status.get("updatedReplicas") == 2 and \
                status.get("availableReplicas") == 2
        wait_for(rolled_out, 120, "the rollout to finish and old pods to be gone")
        time.sleep(1)   # a little v2-only traffic after the last old pod is gone
        stop.set()
        loader.join(30)
        assert not loader.is_alive()
        assert failures == [], failures[:5]
        assert set(seen) == {"v1", "v2"}, seen
        assert sum(seen.values()) > 50
    finally:
        gitops("down", "--data-dir", data)
