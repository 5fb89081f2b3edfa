"""The pod network through the vxlan tunnel (--pod-network-backend vxlan), on three
simulated hosts: each node's gitops.vx with its MAC on its Node, a pod on h2 reaching a
pod IP on h3 through it, a removed node's entries removed, and `gitops down` removing the
device. Tests run in order on one cluster."""

from __future__ import annotations

import json
import sys

import pytest

from gitops.agent import podnet
from tests.cluster.harness import Cluster, address, pod_ready, ready
from tests.cluster.sim import SimHosts, require_sim

pytestmark = pytest.mark.cluster
DEVICE = podnet.DEVICE

SERVER = """
apiVersion: v1
kind: Pod
metadata: {name: server, labels: {app: server}}
spec:
  nodeSelector: {kubernetes.io/hostname: h3}
  terminationGracePeriodSeconds: 1
  containers:
  - name: web
    image: gitops/busybox:1
    imagePullPolicy: IfNotPresent
    command: ["sh", "-c",
              "echo through-the-tunnel > /tmp/index.html; exec httpd -f -p 8080 -h /tmp"]
    readinessProbe: {tcpSocket: {port: 8080}, periodSeconds: 1}
"""

CLIENT = """
apiVersion: v1
kind: Pod
metadata: {name: client}
spec:
  nodeSelector: {kubernetes.io/hostname: h2}
  restartPolicy: Never
  containers:
  - name: c
    image: gitops/busybox:1
    imagePullPolicy: IfNotPresent
    command: ["sh", "-c", "printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 10 %(ip)s 8080 | tail -n 1"]
"""


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    require_sim()
    sim = SimHosts()
    work = tmp_path_factory.mktemp("tunnel")
    work.chmod(0o700)
    c = Cluster(sim, work, backend="vxlan")
    try:
        c.start_hosts()
        c.wait_nodes_ready()
        yield c
    finally:
        c.stop_all()
        sim.down()


def _ip_json(c: Cluster, host: str, *args: str) -> list[dict]:
    done = c.sim.exec(host, *args)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout or "[]")


def _device(c: Cluster, host: str) -> dict:
    return _ip_json(c, host, "ip", "-d", "-j", "link", "show", DEVICE)[0]


def _entries(c: Cluster, host: str, cidr: str) -> tuple[list, list, list]:
    """h's route to cidr (ours), its neighbour for cidr's .0, and fdb entries."""
    gw = podnet.gateway(cidr)
    routes = [r for r in _ip_json(c, host, "ip", "-4", "-j", "route", "show", "proto", "213")
              if r["dst"] == cidr]
    neigh = [n for n in _ip_json(c, host, "ip", "-4", "-j", "neigh", "show", "dev", DEVICE)
             if n["dst"] == gw]
    fdb = [f for f in _ip_json(c, host, "bridge", "-j", "fdb", "show", "dev", DEVICE)
           if f.get("dst")]
    return routes, neigh, fdb


def test_every_node_has_its_device_and_publishes_its_mac(cluster):
    def published() -> bool:
        return all(podnet.backend_data(n)[0] for n in cluster.nodes().values())
    cluster.wait(published, 30, "every node's tunnel MAC on its Node")
    for name, node in cluster.nodes().items():
        dev = _device(cluster, name)
        info = dev["linkinfo"]["info_data"]
        assert dev["linkinfo"]["info_kind"] == "vxlan"
        assert (info["id"], info["port"], info["learning"]) == (4242, 8472, False)
        assert info["local"] == address(node)
        assert dev["mtu"] == 1500 - 50          # the veth's MTU less the tunnel's headers
        assert podnet.backend_data(node) == (dev["address"], 4242)
        addrs = _ip_json(cluster, name, "ip", "-4", "-j", "addr", "show", "dev", DEVICE)
        assert [a["local"] for a in addrs[0]["addr_info"]] == [
            podnet.gateway(node["spec"]["podCIDR"])]


def test_a_pod_on_h2_reaches_a_pod_ip_on_h3_through_the_tunnel(cluster):
    nodes = cluster.nodes()
    h3_cidr = nodes["h3"]["spec"]["podCIDR"]
    h3_mac = podnet.backend_data(nodes["h3"])[0]
    cluster.wait(lambda: all(_entries(cluster, "h2", h3_cidr)), 30, "h2's entries for h3")
    routes, neigh, fdb = _entries(cluster, "h2", h3_cidr)
    assert routes[0]["dev"] == DEVICE and routes[0]["gateway"] == podnet.gateway(h3_cidr)
    assert "onlink" in routes[0]["flags"]
    assert neigh[0]["lladdr"] == h3_mac and "PERMANENT" in neigh[0]["state"]
    assert {f["mac"]: f["dst"] for f in fdb}[h3_mac] == cluster.sim.addr("h3")

    cluster.kubectl("apply", "-f", "-", input=SERVER)
    cluster.wait(lambda: pod_ready(cluster.get("pod", "server")), 60, "the server pod Ready",
                 "h3.log")
    ip = cluster.get("pod", "server")["status"]["podIP"]
    # The pods' MTU is the tunnel's, so none of their packets is too big for it.
    assert cluster.kubectl("exec", "server", "--", "cat", "/sys/class/net/eth0/mtu").strip() \
        == str(1500 - 50)
    got = _ip_json(cluster, "h2", "ip", "-j", "route", "get", ip)
    assert got[0]["dev"] == DEVICE
    sent_before = _device_stats(cluster, "h2")
    cluster.kubectl("apply", "-f", "-", input=CLIENT % {"ip": ip})
    cluster.wait(lambda: cluster.get("pod", "client")["status"].get("phase") in (
        "Succeeded", "Failed"), 60, "the client pod to finish", "h2.log")
    assert cluster.get("pod", "client")["status"]["phase"] == "Succeeded", \
        cluster.kubectl("logs", "client", check=False)
    assert cluster.kubectl("logs", "client").strip() == "through-the-tunnel"
    assert _device_stats(cluster, "h2") > sent_before       # it went through gitops.vx
    cluster.kubectl("delete", "pod", "client", "server", "--wait=false")


def _device_stats(c: Cluster, host: str) -> int:
    dev = _ip_json(c, host, "ip", "-s", "-j", "link", "show", DEVICE)[0]
    return dev["stats64"]["tx"]["packets"]


def test_a_removed_node_leaves_no_entries_on_the_others(cluster):
    h3 = cluster.nodes()["h3"]
    cidr, mac = h3["spec"]["podCIDR"], podnet.backend_data(h3)[0]
    assert all(_entries(cluster, "h2", cidr)) and all(_entries(cluster, "h1", cidr))
    cluster.kill("h3")
    cluster.kubectl("delete", "node", "h3")

    def gone(host: str) -> bool:
        routes, neigh, fdb = _entries(cluster, host, cidr)
        return not routes and not neigh and mac not in {f["mac"] for f in fdb}
    cluster.wait(lambda: gone("h2"), 30, "h2's entries for h3 removed", "h2.log")
    cluster.wait(lambda: gone("h1"), 30, "h1's entries for h3 removed", "h1.log")
    # h1's are still there for h2.
    assert all(_entries(cluster, "h1", cluster.nodes()["h2"]["spec"]["podCIDR"]))


def test_down_on_a_node_removes_its_device_and_routes(cluster):
    assert _device(cluster, "h2")
    done = cluster.sim.exec("h2", sys.executable, "-m", "gitops", "down", "--data-dir",
                            str(cluster.work / "h2"), timeout=120)
    assert done.returncode == 0, done.stderr
    cluster.procs.pop("h2").wait(30)
    assert cluster.sim.exec("h2", "ip", "link", "show", DEVICE).returncode != 0
    assert _ip_json(cluster, "h2", "ip", "-4", "-j", "route", "show", "proto", "213") == []
