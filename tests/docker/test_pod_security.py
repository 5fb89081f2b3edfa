"""securityContext on the real engine: capabilities really dropped and added, no new
privileges, a read-only root, the default seccomp filter, runAsNonRoot refusing a root
image as the kubelet does, and capabilities that reach the host behind the flag."""

from __future__ import annotations

import time
import uuid

import pytest

from gitops.agent.docker import DockerRuntime
from gitops.agent.node import NodeAgent
from gitops.model import ObjectKey
from gitops.model.addresses import pick_subnet
from gitops.store import Registry, SqliteStore

pytestmark = pytest.mark.docker

REPORT = ("grep -E '^(CapEff|CapBnd|NoNewPrivs|Seccomp):' /proc/self/status; id -u; "
          "touch /probe-file 2>/dev/null && echo root-writable || echo root-read-only; "
          "exec sleep 3600")


@pytest.fixture
def node(docker_client, tmp_path):
    instance = uuid.uuid4().hex[:8]
    store = Registry(SqliteStore(tmp_path / "state.db"))
    runtime = DockerRuntime(instance, docker_client)
    agent = NodeAgent(store, runtime, "test-node", f"gitops-{instance}", tmp_path / "pods")
    agent.setup(pick_subnet(instance, runtime.used_subnets()))
    yield agent
    agent.close()
    runtime.cleanup(agent.network)
    store.close()


def pod(node, name, sc=None, pod_sc=None, command=REPORT):
    node.store.create({"apiVersion": "v1", "kind": "Pod",
                       "metadata": {"name": name, "namespace": "default"},
                       "spec": {"nodeName": "test-node", "terminationGracePeriodSeconds": 0,
                                "securityContext": pod_sc or {},
                                "containers": [{"name": "c", "image": "gitops/busybox:1",
                                                "imagePullPolicy": "IfNotPresent",
                                                "command": ["sh", "-c", command],
                                                "securityContext": sc or {}}]}})


def settle(node, names, done, timeout=30.0) -> dict[str, dict]:
    deadline = time.monotonic() + timeout
    while True:
        node.sync_once()
        pods = {n: node.store.get(ObjectKey("Pod", "default", n)) for n in names}
        if all(done(p) for p in pods.values()):
            return pods
        if time.monotonic() > deadline:
            raise AssertionError(f"pods did not settle: {pods}")
        time.sleep(0.2)


def running(p: dict) -> bool:
    return (p.get("status") or {}).get("phase") == "Running"


def waiting_reason(p: dict) -> str:
    statuses = (p.get("status") or {}).get("containerStatuses") or [{}]
    return statuses[0].get("state", {}).get("waiting", {}).get("reason", "")


def report(node, name) -> dict[str, str]:
    """The container's own view of its privileges, from its log."""
    c = next(c for c in node.runtime.list_containers() if c.labels["gitops.pod.name"] == name)
    deadline = time.monotonic() + 10
    while True:
        lines = node.runtime.logs(c.id).splitlines()
        if any(line.startswith("root-") for line in lines) or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    out = {}
    for line in lines:
        key, sep, value = line.partition(":")
        if sep:
            out[key] = value.strip()
        elif line.isdigit():
            out["uid"] = line
        elif line.startswith("root-"):
            out["root"] = line
    return out


def test_capabilities_privilege_escalation_read_only_root_and_seccomp(node):
    pod(node, "locked", sc={"capabilities": {"drop": ["ALL"], "add": ["NET_BIND_SERVICE"]},
                            "allowPrivilegeEscalation": False,
                            "readOnlyRootFilesystem": True,
                            "seccompProfile": {"type": "RuntimeDefault"}})
    pod(node, "dropped", sc={"capabilities": {"drop": ["ALL"]}})
    pod(node, "plain")
    settle(node, ["locked", "dropped", "plain"], running)
    locked, dropped, plain = (report(node, n) for n in ("locked", "dropped", "plain"))
    # drop ALL really drops: nothing effective, nothing left to gain back
    assert dropped["CapEff"] == dropped["CapBnd"] == "0000000000000000", dropped
    assert locked["CapEff"] == locked["CapBnd"] == "0000000000000400", locked  # bind < 1024
    assert plain["CapEff"] != "0000000000000000" and plain["NoNewPrivs"] == "0"
    assert locked["NoNewPrivs"] == "1" and locked["Seccomp"] == "2"      # filter mode
    assert locked["root"] == "root-read-only" and plain["root"] == "root-writable"


def test_run_as_non_root_refuses_a_root_image_and_runs_a_non_root_user(node):
    pod(node, "root-image", pod_sc={"runAsNonRoot": True})
    pod(node, "as-user", pod_sc={"runAsNonRoot": True, "runAsUser": 1000})
    pods = settle(node, ["root-image", "as-user"],
                  lambda p: running(p) or waiting_reason(p) == "CreateContainerConfigError")
    waiting = pods["root-image"]["status"]["containerStatuses"][0]["state"]["waiting"]
    assert waiting["reason"] == "CreateContainerConfigError"
    assert waiting["message"].startswith("container has runAsNonRoot and image will run as "
                                         'root (pod: "root-image_default(')
    assert running(pods["as-user"]) and report(node, "as-user")["uid"] == "1000"
    assert not [c for c in node.runtime.list_containers()
                if c.labels["gitops.pod.name"] == "root-image"]      # nothing was created
    events = [e for e in node.store.list("Event")
              if e["involvedObject"]["name"] == "root-image" and e["reason"] == "Failed"]
    assert events and "image will run as root" in events[0]["message"]


def test_capabilities_that_reach_the_host_need_the_flag(node):
    pod(node, "admin", sc={"capabilities": {"add": ["SYS_ADMIN"]}})
    pods = settle(node, ["admin"], lambda p: waiting_reason(p) == "CreateContainerConfigError")
    message = pods["admin"]["status"]["containerStatuses"][0]["state"]["waiting"]["message"]
    assert "capabilities.add[0]" in message and "--allow-host-access" in message
    node.allow_host_access = True
    settle(node, ["admin"], running)
    assert report(node, "admin")["CapEff"] != "0000000000000000"
