"""ClusterIP Services and cluster DNS, from the host and from inside pods."""

from __future__ import annotations

import json
import time
import urllib.request

import pytest

from tests.e2e.conftest import git, gitops

pytestmark = pytest.mark.docker

MANIFESTS = """\
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
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  selector: {app: web}
  ports: [{name: http, port: 80, targetPort: http}]
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


def exec_in(client, instance: str, pod: str, cmd: str) -> str:
    [c] = client.containers.list(filters={"label": [f"gitops.instance={instance}",
                                                    f"gitops.pod.name={pod}",
                                                    "gitops.container=sh"]})
    return c.exec_run(["sh", "-c", cmd]).output.decode()


def test_cluster_ip_and_dns_from_host_and_pods(docker_client, repo, tmp_path):
    from gitops.paths import DataDir
    (repo / "app" / "all.yaml").write_text(MANIFESTS)
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "services")
    data = str(tmp_path / "data")
    instance = DataDir.at(data).instance
    try:
        up = gitops("up", f"file://{repo}", "--wait", "--timeout", "90", "--data-dir", data)
        assert up.returncode == 0, up.stdout + up.stderr
        svc = json.loads(gitops("get", "svc", "web", "-o", "json", "--data-dir", data).stdout)
        ip = svc["spec"]["clusterIP"]
        assert ip.startswith("10.")
        # from the host, straight to the VIP on lo
        seen = set()
        for _ in range(20):
            with urllib.request.urlopen(f"http://{ip}:80/", timeout=5) as resp:
                seen.add(resp.read().decode().split()[-1])
            if len(seen) == 2:
                break
        assert len(seen) == 2
        # from a pod: by name through cluster DNS, and by the service env variables
        resolv = exec_in(docker_client, instance, "client", "cat /etc/resolv.conf")
        assert "search default.svc.cluster.local svc.cluster.local cluster.local" in resolv
        lookup = exec_in(docker_client, instance, "client",
                         "nslookup web.default.svc.cluster.local")
        assert ip in lookup
        short = exec_in(docker_client, instance, "client", "nslookup web")
        assert ip in short
        env = exec_in(docker_client, instance, "client", "echo $WEB_SERVICE_HOST:$WEB_SERVICE_PORT")
        assert env.strip() == f"{ip}:80"
        deadline = time.monotonic() + 10
        reply = ""
        while "hello from" not in reply and time.monotonic() < deadline:
            reply = exec_in(docker_client, instance, "client",
                            f"printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 3 {ip} 80")
        assert "200 OK" in reply and "hello from web-" in reply
    finally:
        gitops("down", "--data-dir", data)
    out = subprocess_ip_addr()
    assert ip not in out


def subprocess_ip_addr() -> str:
    import subprocess
    return subprocess.run(["ip", "-o", "addr", "show", "dev", "lo"], capture_output=True,
                          text=True).stdout
