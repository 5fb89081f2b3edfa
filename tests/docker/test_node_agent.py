"""The node agent against the real Docker engine: pods become containers and back."""

from __future__ import annotations

import ipaddress
import time
import urllib.request
import uuid

import pytest
from structlog.testing import capture_logs

from gitops.agent.docker import DockerRuntime
from gitops.agent.node import NodeAgent
from gitops.agent.runtime import CONTAINER, POD_NAME, SANDBOX
from gitops.agent.volumes import pvc_volume_name
from gitops.model import ObjectKey
from gitops.model.addresses import pick_subnet
from gitops.store import Registry, SqliteStore

pytestmark = pytest.mark.docker


@pytest.fixture
def agent(docker_client, tmp_path):
    instance = uuid.uuid4().hex[:8]    # unique: other test runs may share the engine
    store = Registry(SqliteStore(tmp_path / "state.db"))
    runtime = DockerRuntime(instance, docker_client)
    node = NodeAgent(store, runtime, "test-node", f"gitops-{instance}", tmp_path / "pods")
    node.setup(pick_subnet(instance, runtime.used_subnets()))
    yield node
    node.close()
    runtime.cleanup(node.network)
    store.close()


def make_pod(store, name, containers, policy="Always", grace=1):
    return store.create({"apiVersion": "v1", "kind": "Pod",
                         "metadata": {"name": name, "namespace": "default"},
                         "spec": {"nodeName": "test-node", "restartPolicy": policy,
                                  "terminationGracePeriodSeconds": grace,
                                  "containers": containers}})


def converge(agent, name, until, timeout=20.0):
    key = ObjectKey("Pod", "default", name)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        agent.sync_once()
        pod = agent.store.get(key)
        if until(pod):
            return pod
        time.sleep(0.2)
    raise AssertionError(f"pod {name} did not converge: {agent.store.get(key)}")


def fetch(url: str, timeout: float = 10.0) -> str:
    """GET url; a container without a readiness probe is Ready once it runs, which may
    be a moment before its server listens (as in Kubernetes): refused is retried."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return urllib.request.urlopen(url, timeout=5).read().decode()
        except OSError as exc:
            if "refused" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.1)


HTTPD = {"name": "web", "image": "gitops/busybox:1", "imagePullPolicy": "IfNotPresent",
         "command": ["sh", "-c", "hostname > /www/index.html; echo \"$GREETING\" >> /www/index.html;"
                     " echo \"$POD_IP\" >> /www/index.html; exec httpd -f -p 8080 -h /www"],
         "env": [{"name": "GREETING", "value": "hi-$(POD)"},
                 {"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                 {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}}]}
SIDECAR = {"name": "side", "image": "gitops/busybox:1", "command": ["sleep", "3600"]}


def test_pod_runs_reachable_in_shared_namespace_and_is_removed(agent):
    make_pod(agent.store, "web", [HTTPD, SIDECAR])
    pod = converge(agent, "web", lambda p: p["status"].get("phase") == "Running"
                   and all(c["ready"] for c in p["status"]["containerStatuses"]))
    ip = pod["status"]["podIP"]
    assert ip and pod["status"]["hostIP"]
    body = fetch(f"http://{ip}:8080/")
    # hostname is the pod name; $(POD) is defined later; status.podIP is set at first start
    assert body.split() == ["web", "hi-$(POD)", ip]
    # containers share the sandbox's network namespace: the sidecar reaches httpd on localhost
    side = next(c for c in agent.runtime.list_containers() if c.container == "side")
    out = agent.runtime.client.containers.get(side.id).exec_run(
        ["sh", "-c", "echo 'GET / HTTP/1.0\r\n\r\n' | nc 127.0.0.1 8080"]).output.decode()
    assert "200 OK" in out and "web" in out
    labels = [c.labels for c in agent.runtime.list_containers()]
    assert {lab[CONTAINER] for lab in labels} == {SANDBOX, "web", "side"}
    assert all(lab["gitops.managed"] == "true" and lab["gitops.pod.name"] == "web"
               for lab in labels)

    agent.store.request_delete(ObjectKey("Pod", "default", "web"))
    deadline = time.monotonic() + 20
    while agent.store.get(ObjectKey("Pod", "default", "web")) and time.monotonic() < deadline:
        agent.sync_once()
        time.sleep(0.2)
    assert agent.store.get(ObjectKey("Pod", "default", "web")) is None
    assert agent.runtime.list_containers() == []


def test_a_pod_of_one_container_holds_its_network_and_keeps_its_ip_across_restarts(agent):
    make_pod(agent.store, "solo", [HTTPD])
    pod = converge(agent, "solo", lambda p: p["status"].get("phase") == "Running"
                   and all(c["ready"] for c in p["status"]["containerStatuses"]))
    ip = pod["status"]["podIP"]
    # no sandbox: one container, on the pod network at an address from the pinned half
    only, = agent.runtime.list_containers()
    assert only.container == "web" and only.ip == ip == only.pinned_ip
    assert ipaddress.ip_address(ip) in list(ipaddress.ip_network(agent.subnet).subnets(1))[1]
    body = fetch(f"http://{ip}:8080/")
    assert body.split() == ["solo", "hi-$(POD)", ip]     # hostname, env, status.podIP
    agent.runtime.client.containers.get(only.id).kill()   # behind the agent's back
    pod = converge(agent, "solo", lambda p: p["status"]["containerStatuses"][0]
                   ["restartCount"] == 1 and p["status"]["containerStatuses"][0]["ready"])
    assert pod["status"]["podIP"] == ip
    assert fetch(f"http://{ip}:8080/").split() \
        == ["solo", "hi-$(POD)", ip]


def test_missing_image_shows_pull_error_and_agent_keeps_going(agent):
    missing = {"name": "app", "image": "127.0.0.1:1/missing/image:1"}   # loopback only
    make_pod(agent.store, "broken", [missing])
    make_pod(agent.store, "fine", [SIDECAR])
    pod = converge(agent, "broken", lambda p: "ErrImagePull" in str(p.get("status"))
                   or "ImagePullBackOff" in str(p.get("status")))
    waiting = pod["status"]["containerStatuses"][0]["state"]["waiting"]
    assert waiting["reason"] in ("ErrImagePull", "ImagePullBackOff")
    assert "127.0.0.1:1/missing/image:1" in waiting["message"]
    converge(agent, "fine", lambda p: p["status"].get("phase") == "Running")


def test_crashing_container_restarts_with_backoff_and_keeps_last_state(agent):
    crash = {"name": "app", "image": "gitops/busybox:1", "command": ["sh", "-c", "exit 3"]}
    make_pod(agent.store, "crash", [crash])
    pod = converge(agent, "crash", lambda p: any(
        c.get("restartCount", 0) >= 1 and "waiting" in c["state"]
        for c in p.get("status", {}).get("containerStatuses", [])), timeout=30)
    cs = pod["status"]["containerStatuses"][0]
    assert cs["state"]["waiting"]["reason"] == "CrashLoopBackOff"
    assert cs["lastState"]["terminated"]["exitCode"] == 3
    assert pod["status"]["phase"] == "Running"
    # the kubelet's curve, not Docker's 100 ms one: the next restart waits 10 s
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        agent.sync_once()
        time.sleep(0.25)
    pod = agent.store.get(ObjectKey("Pod", "default", "crash"))
    assert pod["status"]["containerStatuses"][0]["restartCount"] == 1


def test_never_restart_pod_succeeds(agent):
    job = {"name": "job", "image": "gitops/busybox:1", "command": ["true"]}
    make_pod(agent.store, "once", [job], policy="Never")
    pod = converge(agent, "once", lambda p: p.get("status", {}).get("phase") == "Succeeded")
    assert pod["status"]["containerStatuses"][0]["state"]["terminated"]["reason"] == "Completed"


def test_agent_restart_adopts_running_containers(agent):
    make_pod(agent.store, "keep", [SIDECAR])
    make_pod(agent.store, "pair", [SIDECAR, {**SIDECAR, "name": "other"}])
    converge(agent, "keep", lambda p: p["status"].get("phase") == "Running")
    converge(agent, "pair", lambda p: p["status"].get("phase") == "Running")
    before = {c.id for c in agent.runtime.list_containers()}
    ip = agent.store.get(ObjectKey("Pod", "default", "keep"))["status"]["podIP"]
    fresh = NodeAgent(agent.store, agent.runtime, agent.node_name, agent.network,
                      agent.state_dir)
    fresh.host_ip, fresh.subnet = agent.host_ip, agent.subnet
    fresh.sync_once()
    assert {c.id for c in agent.runtime.list_containers()} == before
    # a container whose spec hash no longer matches the pod is replaced, the rest kept
    # (the API refuses such a change to a pod's spec: the backend takes it directly, as
    # from a store an older version wrote)
    for name in ("keep", "pair"):
        pod = agent.store.get(ObjectKey("Pod", "default", name))
        pod["spec"]["containers"][0]["command"] = ["sleep", "3601"]
        agent.store.backend.update(pod)
    fresh.sync_once()
    fresh.close()
    pair = {c.container: c for c in agent.runtime.list_containers()
            if c.labels[POD_NAME] == "pair"}
    assert pair[SANDBOX].id in before and pair["other"].id in before
    assert pair["side"].id not in before
    # the lone container replaced keeps the pod's address
    after = {c.container: c for c in agent.runtime.list_containers()
             if c.labels[POD_NAME] == "keep"}
    assert set(after) == {"side"} and after["side"].id not in before
    assert after["side"].ip == ip and after["side"].pinned_ip == ip
    replaced = agent.runtime.client.api.inspect_container(after["side"].id)
    assert replaced["Config"]["Entrypoint"] == ["sleep", "3601"]


def test_killed_container_is_restarted(agent):
    make_pod(agent.store, "victim", [SIDECAR])
    converge(agent, "victim", lambda p: p["status"].get("phase") == "Running")
    side = next(c for c in agent.runtime.list_containers() if c.container == "side")
    agent.runtime.client.containers.get(side.id).kill()
    pod = converge(agent, "victim", lambda p: p["status"]["containerStatuses"][0][
        "restartCount"] == 1 and p["status"]["containerStatuses"][0]["ready"])
    assert pod["status"]["containerStatuses"][0]["lastState"]["terminated"]["exitCode"] == 137


def test_paused_or_updated_container_is_replaced(agent):
    limited = {**SIDECAR, "resources": {"limits": {"memory": "64Mi"}}}
    make_pod(agent.store, "tamper", [limited])
    converge(agent, "tamper", lambda p: p["status"].get("phase") == "Running")
    client = agent.runtime.client

    def side():
        return next(c for c in agent.runtime.list_containers() if c.container == "side")
    first = side()
    client.api.pause(first.id)                                   # `docker pause`
    converge(agent, "tamper", lambda p: side().id != first.id and side().state == "running")
    second = side()
    client.api.update_container(second.id, mem_limit="128m", memswap_limit="128m")
    converge(agent, "tamper", lambda p: side().id != second.id and side().state == "running")
    assert client.api.inspect_container(side().id)["HostConfig"]["Memory"] == 64 * 2**20


def test_volumes_empty_dir_pvc_configmap_secret(agent):
    store = agent.store
    store.create({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cfg"},
                  "data": {"greeting": "hello"}})
    store.create({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "sec"},
                  "data": {"password": "czNjcjN0"}})
    store.create({"apiVersion": "v1", "kind": "PersistentVolumeClaim",
                  "metadata": {"name": "data"},
                  "spec": {"resources": {"requests": {"storage": "1Gi"}}}})
    volumes = [{"name": "scratch", "emptyDir": {}},
               {"name": "data", "persistentVolumeClaim": {"claimName": "data"}},
               {"name": "cfg", "configMap": {"name": "cfg"}},
               {"name": "sec", "secret": {"secretName": "sec", "defaultMode": 0o400}}]
    writer = {"name": "writer", "image": "gitops/busybox:1", "command": ["sh", "-c",
              "echo shared > /scratch/x; [ -f /data/kept ] || echo first > /data/kept; "
              "sleep 3600"],
              "volumeMounts": [{"name": "scratch", "mountPath": "/scratch"},
                               {"name": "data", "mountPath": "/data"},
                               {"name": "cfg", "mountPath": "/etc/cfg"},
                               {"name": "sec", "mountPath": "/etc/sec"}]}
    reader = {"name": "reader", "image": "gitops/busybox:1", "command": ["sleep", "3600"],
              "volumeMounts": [{"name": "scratch", "mountPath": "/shared"}]}
    pod = store.create({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "vols"},
                        "spec": {"nodeName": "test-node", "terminationGracePeriodSeconds": 1,
                                 "volumes": volumes, "containers": [writer, reader]}})
    with capture_logs() as logs:
        converge(agent, "vols", lambda p: p["status"].get("phase") == "Running"
                 and all(c["ready"] for c in p["status"]["containerStatuses"]))
    assert "s3cr3t" not in repr(logs) and "czNjcjN0" not in repr(logs)

    def sh(container: str, cmd: str) -> str:
        info = next(c for c in agent.runtime.list_containers() if c.container == container)
        res = agent.runtime.client.containers.get(info.id).exec_run(["sh", "-c", cmd])
        return res.output.decode().strip()

    deadline = time.monotonic() + 10
    while sh("reader", "cat /shared/x 2>/dev/null") != "shared" and time.monotonic() < deadline:
        time.sleep(0.2)
    assert sh("reader", "cat /shared/x") == "shared"          # emptyDir shared in the pod
    assert sh("writer", "cat /etc/cfg/greeting") == "hello"
    assert sh("writer", "cat /etc/sec/password") == "s3cr3t"
    assert sh("writer", "stat -L -c %a /etc/sec/password") == "400"
    assert "Read-only" in sh("writer", "touch /etc/cfg/new 2>&1 || true") or \
        "read-only" in sh("writer", "touch /etc/cfg/new 2>&1 || true").lower()

    # a ConfigMap change reaches the running container in place
    cm = store.get(ObjectKey("ConfigMap", "default", "cfg"))
    cm["data"]["greeting"] = "bonjour"
    store.update(cm)
    agent.sync_once()
    assert sh("writer", "cat /etc/cfg/greeting") == "bonjour"

    # the pod goes: its emptyDir goes with it, the claim's data stays for the next pod
    store.request_delete(ObjectKey("Pod", "default", "vols"))
    deadline = time.monotonic() + 20
    while store.get(ObjectKey("Pod", "default", "vols")) and time.monotonic() < deadline:
        agent.sync_once()
        time.sleep(0.2)
    client = agent.runtime.client
    names = {v.name for v in client.volumes.list(
        filters={"label": f"gitops.instance={agent.runtime.instance}"})}
    assert not any(pod["metadata"]["uid"][:13] in n for n in names)
    assert pvc_volume_name(agent.runtime.instance, "default", "data") in names
    assert not (agent.state_dir / pod["metadata"]["uid"]).exists()
    again = {"name": "check", "image": "gitops/busybox:1", "command": ["sleep", "3600"],
             "volumeMounts": [{"name": "data", "mountPath": "/data"}]}
    store.create({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "again"},
                  "spec": {"nodeName": "test-node", "terminationGracePeriodSeconds": 1,
                           "volumes": [volumes[1]], "containers": [again]}})
    converge(agent, "again", lambda p: p["status"].get("phase") == "Running")
    assert sh("check", "cat /data/kept") == "first"
    agent.runtime.cleanup(agent.network)            # what `down` does: the claim survives
    assert pvc_volume_name(agent.runtime.instance, "default", "data") in {
        v.name for v in client.volumes.list(
            filters={"label": f"gitops.instance={agent.runtime.instance}"})}
    assert agent.runtime.remove_volumes() >= 1      # `down --volumes`


def test_limits_user_readonly_rootfs_and_oom(agent):
    limited = {"name": "app", "image": "gitops/busybox:1", "command": ["sleep", "3600"],
               "resources": {"limits": {"cpu": "500m", "memory": "32Mi"}},
               "securityContext": {"runAsUser": 65534, "runAsGroup": 65534,
                                   "readOnlyRootFilesystem": True}}
    make_pod(agent.store, "limited", [limited])
    converge(agent, "limited", lambda p: p["status"].get("phase") == "Running")
    info = next(c for c in agent.runtime.list_containers() if c.container == "app")
    raw = agent.runtime.client.api.inspect_container(info.id)
    assert raw["HostConfig"]["NanoCpus"] == 500_000_000
    assert raw["HostConfig"]["Memory"] == 32 * 2**20
    assert raw["Config"]["User"] == "65534:65534" and raw["HostConfig"]["ReadonlyRootfs"]
    out = agent.runtime.client.containers.get(info.id).exec_run(["sh", "-c", "id -u; touch /x"])
    # stdout and stderr arrive in either order
    assert "65534" in out.output.decode().split() and out.exit_code != 0
    assert "Read-only file system" in out.output.decode()

    hog = {"name": "hog", "image": "gitops/busybox:1",
           "command": ["sh", "-c", "x=$(head -c 200000000 /dev/zero | tr '\\0' a); sleep 5"],
           "resources": {"limits": {"memory": "16Mi"}}}
    make_pod(agent.store, "hog", [hog], policy="Never")
    pod = converge(agent, "hog", lambda p: p.get("status", {}).get("phase") == "Failed",
                   timeout=30)
    assert pod["status"]["containerStatuses"][0]["state"]["terminated"]["reason"] == "OOMKilled"


def test_host_access_is_refused_without_the_flag(agent):
    sneaky = {"name": "app", "image": "gitops/busybox:1", "command": ["sleep", "3600"]}
    agent.store.create({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "sneaky"},
                        "spec": {"nodeName": "test-node", "containers": [sneaky],
                                 "volumes": [{"name": "root", "hostPath": {"path": "/"}}]}})
    pod = converge(agent, "sneaky", lambda p: "CreateContainerConfigError" in str(p.get("status")))
    waiting = pod["status"]["containerStatuses"][0]["state"]["waiting"]
    assert "hostPath" in waiting["message"] and "--allow-host-access" in waiting["message"]
    assert agent.runtime.list_containers() == []


def _exec(agent, container: str, cmd: str) -> str:
    info = next(c for c in agent.runtime.list_containers()
                if c.container == container and c.state == "running")
    return agent.runtime.client.containers.get(info.id).exec_run(
        ["sh", "-c", cmd]).output.decode().strip()


def test_liveness_failure_restarts_and_readiness_drives_ready(agent):
    probed = {"name": "web", "image": "gitops/busybox:1",
              "command": ["sh", "-c", "echo ok > /www/healthz; exec httpd -f -p 8080 -h /www"],
              "ports": [{"name": "http", "containerPort": 8080}],
              "livenessProbe": {"httpGet": {"path": "/healthz", "port": "http"},
                                "periodSeconds": 1, "failureThreshold": 2},
              "readinessProbe": {"exec": {"command": ["test", "-f", "/tmp/ready"]},
                                 "periodSeconds": 1}}
    make_pod(agent.store, "probed", [probed])

    def ready(p):
        return {"type": "Ready", "status": "True"} in [
            {k: c[k] for k in ("type", "status")} for c in p["status"].get("conditions", [])]
    pod = converge(agent, "probed", lambda p: p["status"].get("phase") == "Running")
    assert not ready(pod) and not pod["status"]["containerStatuses"][0]["ready"]
    _exec(agent, "web", "touch /tmp/ready")
    converge(agent, "probed", ready)
    _exec(agent, "web", "rm /tmp/ready")
    converge(agent, "probed", lambda p: not ready(p))

    _exec(agent, "web", "rm /www/healthz")           # liveness now fails (404)
    pod = converge(agent, "probed", lambda p: p["status"]["containerStatuses"][0][
        "restartCount"] >= 1, timeout=30)
    assert "terminated" in pod["status"]["containerStatuses"][0]["lastState"]
    # restarted: the file is back and the container is live again
    converge(agent, "probed", lambda p: "running" in p["status"]["containerStatuses"][0]["state"])


def test_startup_probe_gates_readiness_and_liveness_then_a_failure_restarts(agent):
    gated = {"name": "slow", "image": "gitops/busybox:1", "command": ["sleep", "3600"],
             "startupProbe": {"exec": {"command": ["test", "-f", "/tmp/started"]},
                              "periodSeconds": 1, "failureThreshold": 30},
             # would kill the container at once if it ran before the startup probe passed
             "livenessProbe": {"exec": {"command": ["test", "-f", "/tmp/started"]},
                               "periodSeconds": 1, "failureThreshold": 1}}
    make_pod(agent.store, "gated", [gated])
    pod = converge(agent, "gated", lambda p: p["status"].get("phase") == "Running")
    for _ in range(8):                                  # a few probe periods
        agent.sync_once()
        time.sleep(0.25)
    pod = agent.store.get(ObjectKey("Pod", "default", "gated"))
    status = pod["status"]["containerStatuses"][0]
    assert status["started"] is False and status["ready"] is False
    assert status["restartCount"] == 0                  # liveness held back
    _exec(agent, "slow", "touch /tmp/started")
    pod = converge(agent, "gated", lambda p: p["status"]["containerStatuses"][0]["started"]
                   and p["status"]["containerStatuses"][0]["ready"])
    _exec(agent, "slow", "rm /tmp/started")             # now liveness runs, and fails
    converge(agent, "gated", lambda p: p["status"]["containerStatuses"][0][
        "restartCount"] >= 1, timeout=30)


def test_graceful_termination_runs_pre_stop_then_sigterm(agent):
    store = agent.store
    store.create({"apiVersion": "v1", "kind": "PersistentVolumeClaim",
                  "metadata": {"name": "term"}, "spec": {}})
    vol = [{"name": "term", "persistentVolumeClaim": {"claimName": "term"}}]
    trapper = {"name": "app", "image": "gitops/busybox:1",
               "command": ["sh", "-c", "trap 'echo got-term > /data/term; exit 0' TERM; "
                           "while true; do sleep 0.1; done"],
               "lifecycle": {"preStop": {"exec": {"command": [
                   "sh", "-c", "[ ! -f /data/term ] && echo pre-stop > /data/pre"]}}},
               "volumeMounts": [{"name": "term", "mountPath": "/data"}]}
    store.create({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "trapper"},
                  "spec": {"nodeName": "test-node", "terminationGracePeriodSeconds": 10,
                           "volumes": vol, "containers": [trapper]}})
    converge(agent, "trapper", lambda p: p["status"].get("phase") == "Running")
    app = next(c for c in agent.runtime.list_containers() if c.container == "app")
    since = time.time() - 1
    store.request_delete(ObjectKey("Pod", "default", "trapper"))
    started = time.monotonic()
    while store.get(ObjectKey("Pod", "default", "trapper")) and time.monotonic() - started < 20:
        agent.sync_once()
        time.sleep(0.1)
    assert store.get(ObjectKey("Pod", "default", "trapper")) is None
    events = agent.runtime.client.api.events(since=since, until=time.time(), decode=True,
                                             filters={"container": app.id})
    seen = [(e["Action"], e["Actor"]["Attributes"].get("signal")
             or e["Actor"]["Attributes"].get("exitCode")) for e in events
            if e["Action"] in ("kill", "die")]
    assert seen == [("kill", "15"), ("die", "0")]   # it exited on SIGTERM: no SIGKILL
    reader = {"name": "check", "image": "gitops/busybox:1", "command": ["sleep", "3600"],
              "volumeMounts": [{"name": "term", "mountPath": "/data"}]}
    store.create({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "reader"},
                  "spec": {"nodeName": "test-node", "terminationGracePeriodSeconds": 1,
                           "volumes": vol, "containers": [reader]}})
    converge(agent, "reader", lambda p: p["status"].get("phase") == "Running")
    assert _exec(agent, "check", "cat /data/term") == "got-term"
    assert _exec(agent, "check", "cat /data/pre") == "pre-stop"   # the hook ran first
    agent.runtime.cleanup(agent.network)
    agent.runtime.remove_volumes()


def test_sigkill_follows_sigterm_once_the_grace_period_is_over(agent):
    stubborn = {"name": "app", "image": "gitops/busybox:1",
                "command": ["sh", "-c", "trap '' TERM; while true; do sleep 0.1; done"]}
    make_pod(agent.store, "stubborn", [stubborn], grace=2)
    converge(agent, "stubborn", lambda p: p["status"].get("phase") == "Running")
    app = next(c for c in agent.runtime.list_containers() if c.container == "app")
    since = time.time() - 1
    agent.store.request_delete(ObjectKey("Pod", "default", "stubborn"))
    deadline = time.monotonic() + 30
    while agent.store.get(ObjectKey("Pod", "default", "stubborn")) and \
            time.monotonic() < deadline:
        agent.sync_once()
        time.sleep(0.2)
    assert agent.store.get(ObjectKey("Pod", "default", "stubborn")) is None
    events = agent.runtime.client.api.events(since=since, until=time.time(), decode=True,
                                             filters={"container": app.id})
    seen = [(e["Action"], e["Actor"]["Attributes"].get("signal")
             or e["Actor"]["Attributes"].get("exitCode")) for e in events
            if e["Action"] in ("kill", "die")]
    assert seen == [("kill", "15"), ("kill", "9"), ("die", "137")]


def test_orphans_are_removed_and_unlabelled_containers_untouched(agent):
    client = agent.runtime.client
    labels = {"gitops.managed": "true", "gitops.instance": agent.runtime.instance,
              "gitops.pod.uid": "no-such-pod", "gitops.pod.namespace": "default",
              "gitops.pod.name": "ghost", "gitops.container": "app", "gitops.test": "true"}
    orphan = client.containers.run("gitops/busybox:1", ["sleep", "60"], detach=True,
                                   labels=labels, network_mode="none")
    stranger = client.containers.run("gitops/busybox:1", ["sleep", "60"], detach=True,
                                     labels={"gitops.test": "true"}, network_mode="none")
    drift = []
    agent.on_drift = drift.append
    try:
        agent.sync_once()
        ids = {c.id for c in client.containers.list(all=True, sparse=True)}  # no inspects
        assert orphan.id not in ids and stranger.id in ids
        [record] = drift                         # extraneous runtime drift, pruned
        assert (record["type"], record["action"], record["container"]) == (
            "extraneous", "pruned", "app")
        assert record["pod"]["metadata"]["name"] == "ghost"
    finally:
        agent.on_drift = None
        stranger.remove(force=True)


def test_env_sources_files_working_dir_and_init_containers_in_order(agent):
    from gitops.model.pods import pod_display_status
    store = agent.store
    store.create({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "app"},
                  "data": {"mode": "fast", "motd": "hello there", "other": "x"}})
    store.create({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "creds"},
                  "data": {"user": "YWRtaW4=", "token": "dDBrM24="}})       # admin, t0k3n
    init = [{"name": "first", "image": "gitops/busybox:1", "workingDir": "/work",
             "command": ["sh", "-c", "pwd > /work/order"],
             "volumeMounts": [{"name": "work", "mountPath": "/work"}]},
            {"name": "second", "image": "gitops/busybox:1",
             "command": ["sh", "-c", "echo second >> /work/order"],
             "volumeMounts": [{"name": "work", "mountPath": "/work"}]}]
    app = {"name": "app", "image": "gitops/busybox:1", "workingDir": "/work",
           "command": ["sleep", "3600"],
           "env": [{"name": "MODE", "valueFrom": {"configMapKeyRef": {"name": "app",
                                                                      "key": "mode"}}},
                   {"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "creds",
                                                                    "key": "token"}}},
                   {"name": "NS", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
                   {"name": "LABEL", "value": "$(NS)-$(MODE)-$$(NS)"},
                   {"name": "MISSING", "valueFrom": {"configMapKeyRef": {
                       "name": "app", "key": "nope", "optional": True}}}],
           "envFrom": [{"configMapRef": {"name": "app"}, "prefix": "CFG_"},
                       {"secretRef": {"name": "creds"}, "prefix": "S_"}],
           "volumeMounts": [{"name": "work", "mountPath": "/work"},
                            {"name": "cfg", "mountPath": "/etc/cfg"},
                            {"name": "info", "mountPath": "/etc/info"}]}
    volumes = [{"name": "work", "emptyDir": {}},
               {"name": "cfg", "configMap": {"name": "app", "items": [
                   {"key": "motd", "path": "text/motd.txt", "mode": 0o600}]}},
               {"name": "info", "downwardAPI": {"items": [
                   {"path": "labels", "fieldRef": {"fieldPath": "metadata.labels['tier']"}},
                   {"path": "name", "fieldRef": {"fieldPath": "metadata.name"}}]}}]
    store.create({"apiVersion": "v1", "kind": "Pod",
                  "metadata": {"name": "full", "labels": {"tier": "back"}},
                  "spec": {"nodeName": "test-node", "terminationGracePeriodSeconds": 1,
                           "initContainers": init, "containers": [app],
                           "volumes": volumes}})
    with capture_logs() as logs:
        pod = converge(agent, "full", lambda p: p["status"].get("phase") == "Running"
                       and p["status"]["containerStatuses"][0]["ready"])
    assert "t0k3n" not in repr(logs) and "dDBrM24=" not in repr(logs)
    assert [s["state"]["terminated"]["reason"] for s in pod["status"]["initContainerStatuses"]
            ] == ["Completed", "Completed"]

    def sh(cmd: str) -> str:
        info = next(c for c in agent.runtime.list_containers() if c.container == "app")
        return agent.runtime.client.containers.get(info.id).exec_run(
            ["sh", "-c", cmd]).output.decode().strip()
    assert sh("cat order").split() == ["/work", "second"]      # in order, in workingDir
    env = dict(line.split("=", 1) for line in sh("env").splitlines() if "=" in line)
    assert (env["MODE"], env["TOKEN"], env["NS"]) == ("fast", "t0k3n", "default")
    assert env["LABEL"] == "default-fast-$(NS)"                 # $(VAR) expanded, $$ escapes
    assert (env["CFG_motd"], env["CFG_other"], env["S_user"]) == ("hello there", "x", "admin")
    assert "MISSING" not in env
    assert sh("cat /etc/cfg/text/motd.txt") == "hello there"
    assert sh("ls /etc/cfg") == "text"                         # only the listed item
    assert sh("stat -L -c %a /etc/cfg/text/motd.txt") == "600"
    assert sh("cat /etc/info/labels; echo; cat /etc/info/name").split() == ["back", "full"]

    # a failing init container is retried with back-off and blocks the app container
    failing = [{"name": "migrate", "image": "gitops/busybox:1", "command": ["sh", "-c", "exit 1"]}]
    store.create({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "blocked"},
                  "spec": {"nodeName": "test-node", "terminationGracePeriodSeconds": 1,
                           "initContainers": failing, "containers": [SIDECAR]}})
    pod = converge(agent, "blocked", lambda p: any(
        s.get("restartCount", 0) >= 1 and "waiting" in s["state"]
        for s in p.get("status", {}).get("initContainerStatuses") or []), timeout=30)
    assert pod_display_status(pod) == "Init:CrashLoopBackOff"
    assert pod["status"]["phase"] == "Pending"
    assert pod["status"]["initContainerStatuses"][0]["lastState"]["terminated"]["exitCode"] == 1
    uid = pod["metadata"]["uid"]
    assert not [c for c in agent.runtime.list_containers()
                if c.pod_uid == uid and c.container == "side"]   # never started
