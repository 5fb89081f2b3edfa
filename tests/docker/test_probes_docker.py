"""run_probe against a real busybox httpd. Traffic goes only to that container's own IP on a
throwaway network the test creates (and removes)."""

from __future__ import annotations

import secrets
import socket
import threading
import time

import docker
import pytest
from docker.utils.socket import frames_iter

from gitops.agent.prober import Exec, run_probe
from gitops.model.addresses import pick_subnet

pytestmark = pytest.mark.docker

LABELS = {"gitops.test": "true"}
WEB = {"name": "web", "ports": [{"name": "http", "containerPort": 8080}]}


def docker_exec(client: docker.DockerClient) -> Exec:
    """Prototype of DockerRuntime.exec: the output socket is read on a thread; on timeout
    the socket is shut down so neither the thread nor the connection lingers."""
    def run(container_id: str, cmd: list[str], timeout: float) -> tuple[int, bytes]:
        exec_id = client.api.exec_create(container_id, cmd, stdout=True, stderr=True)["Id"]
        sock = client.api.exec_start(exec_id, socket=True)
        chunks: list[bytes] = []

        def read() -> None:
            try:
                chunks.extend(data for _, data in frames_iter(sock, tty=False))
            except (OSError, ValueError):   # the socket was shut down: timed out
                pass
        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        reader.join(timeout)
        raw = getattr(sock, "_sock", sock)   # SocketIO.close() leaves the socket open
        timed_out = reader.is_alive()
        if timed_out:
            raw.shutdown(socket.SHUT_RDWR)   # wakes the reader
        sock.close()
        raw.close()
        if timed_out:
            raise TimeoutError(f"command timed out after {timeout:g}s")
        for _ in range(20):   # the exit code can lag the end of the stream a little
            info = client.api.exec_inspect(exec_id)
            if not info["Running"]:
                return info["ExitCode"], b"".join(chunks)
            time.sleep(0.05)
        return -1, b"".join(chunks)
    return run


@pytest.fixture
def web(docker_client):
    """A busybox httpd on its own network in 10.213.250.0/24: (container id, its IP)."""
    used = [cfg["Subnet"] for n in docker_client.networks.list()
            for cfg in (n.attrs.get("IPAM", {}).get("Config") or []) if cfg.get("Subnet")]
    suffix = secrets.token_hex(4)
    subnet = pick_subnet(suffix, used, pool="10.213.250.0/24", prefix=28)
    net = container = None
    try:
        net = docker_client.networks.create(
            f"gitops-probetest-{suffix}", driver="bridge", labels=LABELS,
            ipam=docker.types.IPAMConfig(pool_configs=[docker.types.IPAMPool(subnet=subnet)]))
        container = docker_client.containers.run(
            "gitops/busybox:1",
            ["sh", "-c", ("mkdir -p /www && echo hello > /www/index.html && "
                          "exec httpd -f -p 8080 -h /www")],
            detach=True, labels=LABELS, network=net.name, name=f"gitops-probetest-{suffix}")
        container.reload()
        ip = container.attrs["NetworkSettings"]["Networks"][net.name]["IPAddress"]
        deadline = time.monotonic() + 10
        while not run_probe({"tcpSocket": {"port": 8080}}, ip, WEB, container.id, None)[0]:
            assert time.monotonic() < deadline, "httpd did not come up"
            time.sleep(0.1)
        yield container.id, ip
    finally:
        if container is not None:
            container.remove(force=True)
        if net is not None:
            net.remove()


def test_http_get(web, docker_client):
    cid, ip = web
    ok = run_probe({"httpGet": {"path": "/index.html", "port": "http",
                                "httpHeaders": [{"name": "X-Probe", "value": "1"}]}},
                   ip, WEB, cid, docker_exec(docker_client))
    assert ok == (True, "")
    ok, message = run_probe({"httpGet": {"path": "/missing", "port": 8080}}, ip, WEB, cid,
                            docker_exec(docker_client))
    assert not ok and message.startswith("HTTP probe failed with statuscode: 404")


def test_tcp_socket(web, docker_client):
    cid, ip = web
    assert run_probe({"tcpSocket": {"port": "http"}}, ip, WEB, cid, None) == (True, "")
    ok, message = run_probe({"tcpSocket": {"port": 8081}}, ip, WEB, cid, None)
    assert (ok, message) == (False, f"dial tcp {ip}:8081: connect: connection refused")


def test_failures_read_like_the_kubelets(web, docker_client):
    """What `kubectl describe` users search for: Go's wording, URL and address included."""
    cid, ip = web
    ok, message = run_probe({"httpGet": {"path": "/healthz", "port": 8081}}, ip, WEB, cid,
                            None)
    assert (ok, message) == (
        False, f'Get "http://{ip}:8081/healthz": dial tcp {ip}:8081: connect: '
               "connection refused")


def test_exec(web, docker_client):
    cid, ip = web
    run = docker_exec(docker_client)
    assert run_probe({"exec": {"command": ["cat", "/www/index.html"]}}, ip, WEB, cid, run) \
        == (True, "hello")
    ok, message = run_probe({"exec": {"command": ["sh", "-c", "echo sick >&2; exit 2"]}},
                            ip, WEB, cid, run)
    assert (ok, message) == (False, "sick")
    ok, message = run_probe({"exec": {"command": ["/no/such/binary"]}}, ip, WEB, cid, run)
    assert not ok


def test_exec_timeout_returns_before_the_command_ends(web, docker_client):
    cid, ip = web
    ok, message = run_probe({"exec": {"command": ["sleep", "60"]}, "timeoutSeconds": 1},
                            ip, WEB, cid, docker_exec(docker_client))
    assert (ok, message) == (False, 'command "sleep 60" timed out')
    # The verdict came on the timeout, not when the command ended: it still runs.
    running = [" ".join(p) for p in docker_client.api.top(cid)["Processes"]]
    assert any("sleep 60" in p for p in running), running
    # The client stays usable: the timed-out exec left no stuck connection behind.
    assert run_probe({"exec": {"command": ["true"]}}, ip, WEB, cid,
                     docker_exec(docker_client)) == (True, "")
