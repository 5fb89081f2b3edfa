"""Pod spec fields on the real engine, as the kubelet honours them: native sidecars,
postStart hooks, /etc/hosts (hostAliases, the pod's FQDN), dnsConfig per dnsPolicy,
terminationMessagePath, activeDeadlineSeconds, and Killing events as stopping starts."""

from __future__ import annotations

import json
import time
import uuid

import pytest

from gitops.agent.docker import DockerRuntime
from gitops.agent.node import NodeAgent
from gitops.agent.runtime import CONTAINER, POD_NAME
from gitops.model import ObjectKey
from gitops.model.addresses import pick_subnet
from gitops.store import Registry, SqliteStore

pytestmark = pytest.mark.docker
BUSYBOX = "gitops/busybox:1"


@pytest.fixture
def node(docker_client, tmp_path):
    instance = uuid.uuid4().hex[:8]
    store = Registry(SqliteStore(tmp_path / "state.db"))
    runtime = DockerRuntime(instance, docker_client)
    agent = NodeAgent(store, runtime, "test-node", f"gitops-{instance}", tmp_path / "pods")
    agent.setup(pick_subnet(instance, runtime.used_subnets()))
    agent.dns_server = agent.host_ip          # as the daemon sets it once DNS listens
    yield agent
    agent.close()
    runtime.cleanup(agent.network)
    store.close()


def c(name: str, command: str, **fields) -> dict:
    return {"name": name, "image": BUSYBOX, "imagePullPolicy": "IfNotPresent",
            "command": ["sh", "-c", command], **fields}


def make(node, name: str, containers: list[dict], **spec) -> dict:
    return node.store.create({"apiVersion": "v1", "kind": "Pod",
                              "metadata": {"name": name, "namespace": "default"},
                              "spec": {"nodeName": "test-node",
                                       "terminationGracePeriodSeconds": 1,
                                       "containers": containers, **spec}})


def get(node, name: str) -> dict | None:
    return node.store.get(ObjectKey("Pod", "default", name))


def until(node, what, timeout: float = 30.0, step: float = 0.2):
    """Passes until what() is truthy; its value."""
    deadline = time.monotonic() + timeout
    while True:
        node.sync_once()
        value = what()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"not reached within {timeout}s: {what.__doc__ or what}")
        time.sleep(step)


def status_of(pod: dict, name: str) -> dict:
    st = pod.get("status") or {}
    return next((s for s in [*(st.get("initContainerStatuses") or []),
                             *(st.get("containerStatuses") or [])] if s["name"] == name), {})


def container(node, pod: str, name: str):
    return next((x for x in node.runtime.list_containers()
                 if x.labels.get(POD_NAME) == pod and x.container == name), None)


def run_in(node, pod: str, name: str, command: str) -> str:
    cid = container(node, pod, name).id
    return node.runtime.client.containers.get(cid).exec_run(
        ["sh", "-c", command]).output.decode()


def events(node, pod: str, reason: str) -> list[dict]:
    return [e for e in node.store.list("Event")
            if e["involvedObject"]["name"] == pod and e["reason"] == reason]


# -- native sidecars ------------------------------------------------------------------------
def test_sidecars_start_in_order_keep_running_restart_and_stop_after_the_app(node,
                                                                              docker_client):
    shared = [{"name": "shared", "mountPath": "/shared"}]
    make(node, "side", [c("app", "test -f /shared/side-up && test -f /shared/init-ran "
                                 "&& exec sleep 3600", volumeMounts=shared)],
         volumes=[{"name": "shared", "emptyDir": {}}],
         initContainers=[
             # a sidecar that takes a second to be started (its startup probe)
             c("side", "sleep 1; touch /shared/side-up; trap 'exit 0' TERM; "
                       "while true; do sleep 0.2; done",
               restartPolicy="Always", volumeMounts=shared,
               startupProbe={"exec": {"command": ["test", "-f", "/shared/side-up"]},
                             "periodSeconds": 1}),
             # runs only once the sidecar has started
             c("init", "test -f /shared/side-up && touch /shared/init-ran",
               volumeMounts=shared)])
    pod = until(node, lambda: (p := get(node, "side")) and p["status"].get("phase") ==
                "Running" and all(s["ready"] for s in p["status"]["containerStatuses"]) and p)
    side, init, app = (status_of(pod, n) for n in ("side", "init", "app"))
    assert "running" in side["state"] and side["started"] and side["ready"]
    assert init["state"]["terminated"]["exitCode"] == 0      # it found the sidecar up
    assert "running" in app["state"] and app["restartCount"] == 0
    assert {c["type"]: c["status"] for c in pod["status"]["conditions"]}["Initialized"] \
        == "True"

    docker_client.containers.get(container(node, "side", "side").id).kill()  # restarted
    pod = until(node, lambda: (p := get(node, "side")) and status_of(p, "side").get(
        "restartCount") == 1 and "running" in status_of(p, "side")["state"] and p)
    assert status_of(pod, "app")["restartCount"] == 0

    # deleted: the app stops first, the sidecar after it
    uid = pod["metadata"]["uid"]
    since = time.time()
    node.store.request_delete(ObjectKey("Pod", "default", "side"))
    until(node, lambda: get(node, "side") is None)
    died = [json.loads(line) for line in docker_client.api.events(
        since=since, until=time.time(), filters={"event": "die",
                                                 "label": f"gitops.pod.uid={uid}"})]
    order = [e["Actor"]["Attributes"][CONTAINER] for e in died]
    assert order.index("app") < order.index("side"), order


def test_a_job_pod_with_a_sidecar_completes_when_its_app_does(node):
    make(node, "job", [c("work", "sleep 1; exit 0")], restartPolicy="Never",
         initContainers=[c("proxy", "trap 'exit 0' TERM; while true; do sleep 0.2; done",
                           restartPolicy="Always")])
    pod = until(node, lambda: (p := get(node, "job")) and
                p["status"].get("phase") == "Succeeded" and p, timeout=40)
    assert "terminated" in status_of(pod, "proxy")["state"]
    assert status_of(pod, "work")["state"]["terminated"]["exitCode"] == 0
    assert events(node, "job", "Killing")          # the sidecar was stopped, and said so


# -- postStart ------------------------------------------------------------------------------
def test_post_start_runs_before_the_container_counts_as_running(node):
    hook = {"exec": {"command": ["sh", "-c", "sleep 2; echo hooked > /tmp/hooked"]}}
    make(node, "hooked", [c("app", "exec sleep 3600", lifecycle={"postStart": hook})])
    pod = until(node, lambda: (p := get(node, "hooked")) and
                status_of(p, "app").get("containerID") and p)
    assert status_of(pod, "app")["state"] == {"waiting": {"reason": "ContainerCreating"}}
    assert pod["status"]["phase"] == "Pending"
    until(node, lambda: (p := get(node, "hooked")) and p["status"].get("phase") == "Running")
    assert run_in(node, "hooked", "app", "cat /tmp/hooked").strip() == "hooked"


def test_a_failing_post_start_hook_kills_the_container_with_an_event(node):
    make(node, "badhook", [
        c("exec", "exec sleep 3600",
          lifecycle={"postStart": {"exec": {"command": ["sh", "-c", "exit 3"]}}}),
        c("http", "exec sleep 3600",
          lifecycle={"postStart": {"httpGet": {"path": "/ready", "port": 8099}}})])
    until(node, lambda: len({e["involvedObject"].get("fieldPath") for e in
                             events(node, "badhook", "FailedPostStartHook")}) == 2)
    messages = {e["involvedObject"]["fieldPath"]: e["message"]
                for e in events(node, "badhook", "FailedPostStartHook")}
    assert messages["spec.containers{exec}"].startswith(
        "Exec lifecycle hook ([sh -c exit 3]) for Container \"exec\" in Pod "
        '"badhook_default(')
    assert 'HTTP lifecycle hook (/ready) for Container "http"' in \
        messages["spec.containers{http}"] and "connection refused" in \
        messages["spec.containers{http}"]
    until(node, lambda: (p := get(node, "badhook")) and
          status_of(p, "exec").get("restartCount", 0) >= 1)


# -- /etc/hosts and /etc/resolv.conf --------------------------------------------------------
def test_hosts_file_has_the_pod_fqdn_and_host_aliases(node):
    make(node, "db-0", [c("db", "exec sleep 3600")], hostname="db-0", subdomain="db",
         hostAliases=[{"ip": "10.1.2.3", "hostnames": ["foo.local", "bar.local"]}])
    make(node, "plain", [c("app", "exec sleep 3600"), c("side", "exec sleep 3600")],
         hostAliases=[{"ip": "10.9.9.9", "hostnames": ["cache"]}])
    pods = until(node, lambda: all((p := get(node, n)) and p["status"].get("phase") ==
                                   "Running" for n in ("db-0", "plain")) and
                 {n: get(node, n) for n in ("db-0", "plain")})
    hosts = run_in(node, "db-0", "db", "cat /etc/hosts")
    ip = pods["db-0"]["status"]["podIP"]
    assert f"{ip}\tdb-0.db.default.svc.cluster.local\tdb-0" in hosts
    assert "10.1.2.3\tfoo.local\tbar.local" in hosts and "127.0.0.1\tlocalhost" in hosts
    assert run_in(node, "db-0", "db", "hostname -f").strip() == \
        "db-0.db.default.svc.cluster.local"
    for name in ("app", "side"):                   # every container of a sandboxed pod
        text = run_in(node, "plain", name, "cat /etc/hosts")
        assert "10.9.9.9\tcache" in text and \
            f"{pods['plain']['status']['podIP']}\tplain" in text


def test_dns_config_is_merged_per_dns_policy(node):
    config = {"nameservers": ["10.7.7.7"], "searches": ["corp.example"],
              "options": [{"name": "ndots", "value": "2"}, {"name": "edns0"}]}
    make(node, "first", [c("a", "exec sleep 3600")], dnsConfig=config)
    make(node, "none", [c("a", "exec sleep 3600")], dnsPolicy="None", dnsConfig=config)
    make(node, "default", [c("a", "exec sleep 3600")], dnsPolicy="Default", dnsConfig=config)
    until(node, lambda: all((p := get(node, n)) and p["status"].get("phase") == "Running"
                            for n in ("first", "none", "default")))
    first = run_in(node, "first", "a", "cat /etc/resolv.conf").splitlines()
    assert first == [f"nameserver {node.host_ip}", "nameserver 10.7.7.7",
                     "search default.svc.cluster.local svc.cluster.local cluster.local "
                     "corp.example", "options ndots:2 edns0"]
    assert run_in(node, "none", "a", "cat /etc/resolv.conf").splitlines() == [
        "nameserver 10.7.7.7", "search corp.example", "options ndots:2 edns0"]
    default = run_in(node, "default", "a", "cat /etc/resolv.conf").splitlines()
    assert default[:2] == ["nameserver 127.0.0.11", "nameserver 10.7.7.7"]
    assert "options ndots:2 edns0" in default and node.host_ip not in " ".join(default)


# -- termination messages and deadlines ----------------------------------------------------
def test_termination_messages_reach_the_terminated_state(node):
    make(node, "msgs", [
        c("file", "echo 'bye from file' > /dev/termination-log; exit 1"),
        c("custom", "echo custom > /tmp/why; exit 0", terminationMessagePath="/tmp/why"),
        c("logs", "echo 'boom in log'; exit 2",
          terminationMessagePolicy="FallbackToLogsOnError"),
        c("user", "echo as-user > /dev/termination-log",
          securityContext={"runAsUser": 1000})], restartPolicy="Never")
    pod = until(node, lambda: (p := get(node, "msgs")) and p["status"].get("phase") ==
                "Failed" and all("terminated" in s["state"]
                                 for s in p["status"]["containerStatuses"]) and p)
    said = {s["name"]: s["state"]["terminated"].get("message")
            for s in pod["status"]["containerStatuses"]}
    assert said == {"file": "bye from file\n", "custom": "custom\n", "logs": "boom in log\n",
                    "user": "as-user\n"}


def test_a_restarted_container_starts_with_an_empty_message(node):
    make(node, "again", [c("app", "test -f /tmp/x || { echo first > /dev/termination-log; "
                                  "exit 1; }; sleep 3600")], restartPolicy="OnFailure")
    pod = until(node, lambda: (p := get(node, "again")) and
                status_of(p, "app").get("restartCount") == 1 and p)
    assert status_of(pod, "app")["lastState"]["terminated"]["message"] == "first\n"


def test_active_deadline_seconds_fails_the_pod_and_stops_its_containers(node):
    make(node, "late", [c("app", "trap 'exit 0' TERM; while true; do sleep 0.2; done")],
         activeDeadlineSeconds=2)
    pod = until(node, lambda: (p := get(node, "late")) and p["status"].get("phase") ==
                "Failed" and "terminated" in status_of(p, "app")["state"] and p, timeout=30)
    assert pod["status"]["reason"] == "DeadlineExceeded"
    assert pod["status"]["message"] == \
        "Pod was active on the node longer than the specified deadline"
    assert events(node, "late", "DeadlineExceeded")
    for _ in range(3):                           # it stays down: nothing restarts it
        node.sync_once()
    assert container(node, "late", "app").state == "exited"


def test_killing_is_recorded_as_stopping_starts(node):
    make(node, "slow", [c("app", "trap '' TERM; while true; do sleep 0.2; done")],
         terminationGracePeriodSeconds=20)
    until(node, lambda: (p := get(node, "slow")) and p["status"].get("phase") == "Running")
    node.store.request_delete(ObjectKey("Pod", "default", "slow"))
    node.sync_once()
    killing = until(node, lambda: events(node, "slow", "Killing"), timeout=5)
    assert killing[0]["message"] == "Stopping container app"
    assert killing[0]["involvedObject"]["fieldPath"] == "spec.containers{app}"
    assert container(node, "slow", "app").state == "running"   # still in its grace period
    for _ in range(3):                           # one event per stop, not one per pass
        node.sync_once()
    assert sum(e.get("count", 1) for e in events(node, "slow", "Killing")) == 1
