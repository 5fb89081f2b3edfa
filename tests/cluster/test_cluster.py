"""Three simulated hosts, one control plane: joining, pods spread over the nodes' engines,
Services and DNS across hosts, NodePort on every host, drain, a node lost (its pods
replaced within the grace period and toleration) and coming back (its stale containers
stopped), and a wrong join token refused. Tests run in order on one cluster."""

from __future__ import annotations

import ipaddress
import json
import socket
import subprocess
import sys
import time

import pytest

from tests.cluster.harness import Cluster, address, pod_ready, ready
from tests.cluster.sim import SimHosts, require_sim
from tests.conftest import free_port
from tests.kube_support import kubectl_path, write_kubeconfig

pytestmark = pytest.mark.cluster
REPLICAS = 4


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    require_sim()
    sim = SimHosts()
    work = tmp_path_factory.mktemp("cluster")
    work.chmod(0o700)
    c = Cluster(sim, work)
    try:
        c.start_hosts()
        c.wait_nodes_ready()
        c.write_app(REPLICAS)       # pushed once every node is there, to spread over them
        yield c
    finally:
        c.stop_all()
        sim.down()


def _web_ready(c: Cluster) -> list[dict]:
    return [p for p in c.pods("app=web") if pod_ready(p)]


def test_nodes_join_with_their_own_pod_cidrs_and_addresses(cluster):
    nodes = cluster.nodes()
    cidrs = {n["spec"]["podCIDR"] for n in nodes.values()}
    assert len(cidrs) == 3 and all(c.startswith("10.42.") for c in cidrs)
    for name, node in nodes.items():
        assert address(node) == cluster.sim.addr(name)
    leases = cluster.get("leases", "-n", "kube-node-lease")["items"]
    assert {lease["metadata"]["name"] for lease in leases} == {"h1", "h2", "h3"}


def test_a_deployment_runs_on_the_other_hosts_engines(cluster):
    cluster.wait(lambda: len(_web_ready(cluster)) == REPLICAS, 90, "web Ready")
    pods = _web_ready(cluster)
    on = {p["spec"]["nodeName"] for p in pods}
    assert on == {"h2", "h3"}
    for pod in pods:        # each runs on its own node's engine, at an IP of its pod CIDR
        host = pod["spec"]["nodeName"]
        names = cluster.sim.exec(host, "docker", "ps", "--format", "{{.Names}}").stdout
        assert pod["metadata"]["name"] in names
        cidr = ipaddress.ip_network(cluster.nodes()[host]["spec"]["podCIDR"])
        assert ipaddress.ip_address(pod["status"]["podIP"]) in cidr


def test_pods_on_joined_nodes_get_tokens_the_server_accepts(cluster):
    """A joined node holds no signing key: it asks the server (TokenRequest, bound to the
    pod) and mounts the answer where in-cluster clients look for it."""
    pod = next(p for p in _web_ready(cluster) if p["spec"]["nodeName"] in ("h2", "h3"))
    name = pod["metadata"]["name"]
    token = cluster.kubectl("exec", name, "--", "cat",
                            "/var/run/secrets/kubernetes.io/serviceaccount/token").strip()
    ca = cluster.kubectl("exec", name, "--", "cat",
                         "/var/run/secrets/kubernetes.io/serviceaccount/ca.crt")
    assert ca.startswith("-----BEGIN CERTIFICATE-----")
    info = json.loads((cluster.server_dir / "agent.json").read_text())
    kubeconfig = write_kubeconfig(cluster.work / "pod-kubeconfig", info["server"], token,
                                  (cluster.server_dir / "ca.crt").read_bytes())
    who = subprocess.run([kubectl_path(), "--kubeconfig", str(kubeconfig), "auth", "whoami",
                          "-o", "json"], capture_output=True, text=True, timeout=60)
    assert who.returncode == 0, who.stderr
    user = json.loads(who.stdout)["status"]["userInfo"]
    assert user["username"] == "system:serviceaccount:default:default"
    assert user["extra"]["authentication.kubernetes.io/pod-name"] == [name]


def test_a_daemon_set_runs_one_pod_on_every_node(cluster):
    cluster.kubectl("apply", "-f", "-", input="""
apiVersion: apps/v1
kind: DaemonSet
metadata: {name: everywhere}
spec:
  selector: {matchLabels: {app: everywhere}}
  template:
    metadata: {labels: {app: everywhere}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - {name: a, image: gitops/busybox:1, imagePullPolicy: IfNotPresent,
         command: ["sleep", "3600"]}
""")
    cluster.wait(lambda: sorted(p["spec"]["nodeName"] for p in cluster.pods("app=everywhere")
                                if pod_ready(p)) == ["h1", "h2", "h3"], 60,
                 "one Ready pod per node")


def test_a_client_on_h1_reaches_the_service_on_h2_and_h3_by_name(cluster):
    cluster.kubectl("apply", "-f", "-", input="""
apiVersion: v1
kind: Pod
metadata: {name: client}
spec:
  nodeSelector: {kubernetes.io/hostname: h1}
  restartPolicy: Never
  containers:
  - name: c
    image: gitops/busybox:1
    imagePullPolicy: IfNotPresent
    command:
    - sh
    - -c
    - for i in $(seq 12); do printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 3 web 80 | tail -n 1; done
""")
    cluster.wait(lambda: cluster.get("pod", "client")["status"].get("phase") == "Succeeded",
                 90, "the client pod to finish")
    answers = set(cluster.kubectl("logs", "client").split())
    web = {p["metadata"]["name"]: p for p in cluster.pods("app=web")}
    hosts = {web[name]["spec"]["nodeName"] for name in answers if name in web}
    assert answers <= set(web) and hosts == {"h2", "h3"}, (answers, [
        (p["metadata"]["name"], p["spec"]["nodeName"], p["status"].get("conditions"))
        for p in web.values()])
    cluster.kubectl("delete", "pod", "client", "--wait=false")


def test_the_node_port_answers_on_every_host(cluster):
    port = cluster.get("service", "web")["spec"]["ports"][0]["nodePort"]
    for host in ("h1", "h2", "h3"):
        body = _http_get(cluster.sim.addr(host), port)
        assert body.split()[-1].startswith("web-"), (host, body)


def test_logs_exec_and_port_forward_reach_a_pod_on_another_host(cluster):
    pod = next(p for p in _web_ready(cluster) if p["spec"]["nodeName"] == "h2")
    name = pod["metadata"]["name"]
    assert cluster.kubectl("exec", name, "--", "cat", "/tmp/index.html").strip() == name
    cluster.kubectl("exec", name, "--", "sh", "-c", "echo marker-$(hostname) > /proc/1/fd/1")
    cluster.wait(lambda: f"marker-{name}" in cluster.kubectl("logs", name), 20, "the log line")
    port = free_port()
    forward = subprocess.Popen(
        [kubectl_path(), "--kubeconfig", str(cluster.work / "kubeconfig"), "port-forward",
         f"pod/{name}", f"{port}:8080"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True)
    try:
        assert forward.stdout.readline().startswith("Forwarding from")
        assert _http_get("127.0.0.1", port).split()[-1] == name
    finally:
        forward.terminate()
        forward.wait(10)


def _http_get(host: str, port: int) -> str:
    with socket.create_connection((host, port), timeout=10) as s:
        s.sendall(b"GET / HTTP/1.0\r\n\r\n")
        body = b""
        while chunk := s.recv(4096):
            body += chunk
    return body.decode()


def test_an_image_missing_on_the_nodes_engine_says_so(cluster):
    cluster.kubectl("run", "absent", "--image", "gitops/absent:1", "--restart", "Never",
                    "--image-pull-policy", "IfNotPresent",
                    "--overrides", '{"spec": {"nodeSelector": {"kubernetes.io/hostname": "h2"}}}')

    def waiting() -> dict:
        statuses = cluster.get("pod", "absent")["status"].get("containerStatuses") or [{}]
        return statuses[0].get("state", {}).get("waiting", {})
    cluster.wait(lambda: waiting().get("reason") in ("ErrImagePull", "ImagePullBackOff"),
                 60, "the pull failure", "h2.log")
    assert "gitops/absent:1 is not on this node's engine" in waiting()["message"]
    cluster.kubectl("delete", "pod", "absent", "--wait=false")


def test_a_wrong_join_token_is_refused_and_nothing_changes(cluster):
    good = cluster.token_file.read_text().strip()
    bad = cluster.work / "bad-token"
    bad.write_text(good.rsplit(":", 1)[0] + ":" + "x" * 43)
    done = cluster.sim.exec("h3", sys.executable, "-m", "gitops",
                            *cluster.agent_args("intruder", bad), timeout=60)
    assert done.returncode == 2 and "refused the join token" in done.stderr, done.stderr
    assert "intruder" not in cluster.nodes()
    assert not (cluster.work / "intruder" / "node-identity.json").exists()


def test_drain_moves_pods_off_a_node_and_uncordon_lets_them_back(cluster):
    cluster.kubectl("drain", "h2", "--ignore-daemonsets", "--delete-emptydir-data",
                    "--timeout", "90s", timeout=120)
    cluster.wait(lambda: len(_web_ready(cluster)) == REPLICAS and
                 {p["spec"]["nodeName"] for p in _web_ready(cluster)} == {"h3"},
                 90, "web to run on h3 alone")
    assert cluster.nodes()["h2"]["spec"].get("unschedulable") is True
    cluster.kubectl("uncordon", "h2")
    assert not cluster.nodes()["h2"]["spec"].get("unschedulable")


STATEFUL = """
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: db}
spec:
  serviceName: db
  replicas: 1
  selector: {matchLabels: {app: db}}
  template:
    metadata: {labels: {app: db}}
    spec:
      terminationGracePeriodSeconds: 1
      affinity:
        nodeAffinity:
          preferredDuringSchedulingIgnoredDuringExecution:
          - weight: 100
            preference:
              matchExpressions: [{key: kubernetes.io/hostname, operator: In, values: [h3]}]
      containers:
      - {name: db, image: gitops/busybox:1, imagePullPolicy: IfNotPresent,
         command: ["sleep", "3600"]}
"""


def test_a_lost_node_is_tainted_and_its_pods_replaced_then_it_comes_back_clean(cluster):
    cluster.kubectl("apply", "-f", "-", input=STATEFUL)
    cluster.wait(lambda: pod_ready(cluster.get("pod", "db-0")), 60, "db-0 Ready")
    assert cluster.get("pod", "db-0")["spec"]["nodeName"] == "h3"
    lost = {p["metadata"]["name"] for p in _web_ready(cluster)
            if p["spec"]["nodeName"] == "h3"}
    assert lost
    cluster.kill("h3")
    cut = cluster.sim.exec("h3", "ip", "link", "set", "eth0", "down")
    assert cut.returncode == 0, cut.stderr
    try:
        limit = cluster.grace + cluster.toleration + 40
        cluster.wait(lambda: len(_web_ready(cluster)) == REPLICAS and
                     all(p["spec"]["nodeName"] == "h2" for p in _web_ready(cluster)),
                     limit, "web replaced on h2")
        node = cluster.nodes()["h3"]
        assert any(c["type"] == "Ready" and c["status"] == "Unknown"
                   for c in node["status"]["conditions"])
        assert {"key": "node.kubernetes.io/unreachable", "effect": "NoExecute"}.items() <= \
            node["spec"]["taints"][0].items()
        h3_cidr = ipaddress.ip_network(cluster.nodes()["h3"]["spec"]["podCIDR"])

        def served_by_h2_alone() -> bool:   # the endpoints controller follows the Ready pods
            endpoints = cluster.get("endpoints", "web")
            ips = {a["ip"] for s in endpoints.get("subsets", []) for a in s.get("addresses", [])}
            return len(ips) == REPLICAS and not any(ipaddress.ip_address(ip) in h3_cidr
                                                    for ip in ips)
        cluster.wait(served_by_h2_alone, 20, "web's endpoints on h2 alone")
        # The StatefulSet's pod is not replaced while the old one may still run.
        db = cluster.get("pod", "db-0")
        assert db["spec"]["nodeName"] == "h3" and db["metadata"].get("deletionTimestamp")
        # Back: the taint goes, and the containers of the pods moved away are stopped.
        up = cluster.sim.exec("h3", "ip", "link", "set", "eth0", "up")
        assert up.returncode == 0, up.stderr
        cluster.start_agent("h3")
        cluster.wait(lambda: ready(cluster.nodes()["h3"]) and
                     not cluster.nodes()["h3"]["spec"].get("taints"), 60, "h3 Ready again")

        def stale_gone() -> bool:       # the containers stopped, then the pods deleted
            names = cluster.sim.exec("h3", "docker", "ps", "-a", "--format", "{{.Names}}").stdout
            return not any(name in names for name in lost) and \
                not any(p["metadata"]["name"] in lost for p in cluster.pods("app=web"))
        cluster.wait(stale_gone, 60, "h3's stale containers and pods removed", "h3.log")
        # Now that the old db-0 is known stopped, the StatefulSet makes it again.
        cluster.wait(lambda: pod_ready(cluster.get("pod", "db-0")), 60, "a new db-0 Ready")
    finally:                            # a failure above must not leave h3 cut off
        if "h3" not in cluster.procs:
            cluster.sim.exec("h3", "ip", "link", "set", "eth0", "up")
            cluster.start_agent("h3")


def test_a_killed_node_agent_adopts_its_containers(cluster):
    cluster.wait(lambda: len(_web_ready(cluster)) == REPLICAS, 60, "web Ready")
    ids = cluster.sim.exec("h2", "docker", "ps", "-q").stdout.split()
    assert ids
    cluster.kill("h2")
    cluster.start_agent("h2")
    cluster.wait(lambda: ready(cluster.nodes()["h2"]), 60, "h2 Ready again", "h2.log")
    cluster.wait(lambda: len(_web_ready(cluster)) == REPLICAS, 60, "web Ready")
    after = cluster.sim.exec("h2", "docker", "ps", "-q").stdout.split()
    assert set(ids) <= set(after)


def test_a_restarted_server_loses_nothing_and_evicts_nobody(cluster):
    cluster.wait(lambda: len(_web_ready(cluster)) == REPLICAS, 60, "web Ready")
    before = {p["metadata"]["name"]: p["spec"]["nodeName"] for p in _web_ready(cluster)}
    proc = cluster.procs.pop("h1")
    proc.terminate()
    proc.wait(60)
    # Down for longer than the grace period: the nodes could not renew their Leases.
    time.sleep(cluster.grace + 2)
    cluster.start_server()
    cluster.wait(lambda: all(ready(n) for n in cluster.nodes().values()), 60, "nodes Ready")
    time.sleep(cluster.toleration + 2)      # an eviction would have happened by now
    after = {p["metadata"]["name"]: p["spec"]["nodeName"] for p in _web_ready(cluster)}
    assert after == before
    assert not any(n["spec"].get("taints") for n in cluster.nodes().values())


def test_down_on_a_node_stops_its_agent_and_removes_its_containers(cluster):
    assert cluster.sim.exec("h2", "docker", "ps", "-q").stdout.split()
    done = cluster.sim.exec("h2", sys.executable, "-m", "gitops", "down", "--data-dir",
                            str(cluster.work / "h2"), timeout=120)
    assert done.returncode == 0, done.stderr
    assert cluster.procs["h2"].wait(30) is not None
    cluster.procs.pop("h2")
    left = cluster.sim.exec("h2", "docker", "ps", "-aq", "--filter", "label=gitops.managed=true")
    assert left.stdout.split() == []
