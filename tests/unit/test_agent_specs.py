"""What the node agent asks the runtime to create for a pod (pure, no Docker)."""

from __future__ import annotations

import pytest

from gitops.agent import netfiles, security, specs
from gitops.agent.plan import container_hash
from gitops.agent.runtime import (
    CONFIG_HASH,
    CONTAINER,
    INSTANCE,
    MANAGED,
    PAUSE_IMAGE,
    POD_IP,
    POD_NAME,
    POD_NAMESPACE,
    POD_UID,
    SANDBOX,
    Mount,
    RuntimeFailure,
)

NODE = specs.NodeContext(instance="feed0001", network="gitops-feed0001")
HOST_OK = specs.NodeContext(instance="feed0001", network="gitops-feed0001",
                            allow_host_access=True)
UID = "0123456789abcdef"


def pod(spec: dict | None = None, name: str = "web", **status) -> dict:
    return {"metadata": {"name": name, "namespace": "shop", "uid": UID},
            "spec": {"containers": [{"name": "app", "image": "img:1"}], **(spec or {})},
            **({"status": status} if status else {})}


def nothing(kind: str, ns: str, name: str) -> None:
    return None


def no_services(namespace: str) -> list[dict]:
    raise AssertionError("service links were not asked for")


def build(p: dict, container: dict | None = None, node: specs.NodeContext = NODE,
          **kw) -> specs.ContainerSpec:
    container = container or p["spec"]["containers"][0]
    env = kw.pop("env", {"HOSTNAME": p["metadata"]["name"]})
    return specs.container_spec(p, container, node, env=env, lookup=nothing,
                                files_root="/state/pods/x/volumes", **kw)


# -- names and labels --------------------------------------------------------------------
@pytest.mark.parametrize("spec, name, hostname", [
    ({}, "web", "web"),
    ({"hostname": "db-0"}, "web", "db-0"),
    ({}, "x" * 80, "x" * 63),                      # a hostname is at most 63 characters
])
def test_hostname(spec, name, hostname):
    assert specs.hostname(pod(spec, name=name)) == hostname


def test_docker_name_carries_instance_namespace_pod_container_and_uid_prefix():
    assert specs.docker_name(pod(), "app", "feed0001") == "gitops_feed0001_shop_web_app_01234567"


@pytest.mark.parametrize("ip, extra", [("", {}), ("10.0.0.130", {POD_IP: "10.0.0.130"})])
def test_labels(ip, extra):
    assert specs.labels(pod(), "app", "feed0001", ip) == {
        MANAGED: "true", INSTANCE: "feed0001", POD_NAMESPACE: "shop", POD_NAME: "web",
        POD_UID: UID, CONTAINER: "app", **extra}


# -- admission ---------------------------------------------------------------------------
@pytest.mark.parametrize("spec, refused", [
    ({}, ""),
    ({"hostNetwork": True}, "spec.hostNetwork"),
    ({"hostPID": True}, "spec.hostPID"),
    ({"volumes": [{"name": "h", "hostPath": {"path": "/"}}]}, "spec.volumes[0].hostPath"),
    ({"containers": [{"name": "app", "image": "i", "securityContext": {"privileged": True}}]},
     "spec.containers[0].securityContext.privileged"),
])
def test_admit_refuses_host_access_unless_allowed(spec, refused):
    specs.admit(pod(spec), allow_host_access=True)
    if not refused:
        specs.admit(pod(spec), allow_host_access=False)
        return
    with pytest.raises(RuntimeFailure) as caught:
        specs.admit(pod(spec), allow_host_access=False)
    assert str(caught.value).startswith(refused + ":")
    assert caught.value.reason == "CreateContainerConfigError"


# -- the sandbox -------------------------------------------------------------------------
@pytest.mark.parametrize("spec, ip, host_network", [
    ({"containers": [{"name": "a", "image": "i"}, {"name": "b", "image": "i"}]},
     "10.0.0.129", False),
    ({"hostNetwork": True}, "", True),
])
def test_sandbox_spec(spec, ip, host_network):
    p = pod(spec)
    out = specs.sandbox_spec(p, ip, HOST_OK)
    assert out.name == "gitops_feed0001_shop_web_POD_01234567"
    assert out.image == PAUSE_IMAGE and out.network == "gitops-feed0001"
    assert out.hostname == "web" and out.ip == ip and out.host_network is host_network
    assert out.labels == specs.labels(p, SANDBOX, "feed0001", ip)


def test_a_sandbox_for_host_access_is_refused_by_default():
    with pytest.raises(RuntimeFailure):
        specs.sandbox_spec(pod({"hostNetwork": True}), "", NODE)


# -- status.podIP as containers see it ---------------------------------------------------
def test_with_pod_ip_keeps_the_pod_when_the_address_is_known():
    p = pod(podIP="10.0.0.130")
    assert specs.with_pod_ip(p, "10.0.0.130") is p


def test_with_pod_ip_sets_the_pinned_address_on_a_copy():
    p = pod(phase="Pending")
    seen = specs.with_pod_ip(p, "10.0.0.130")
    assert seen["status"] == {"phase": "Pending", "podIP": "10.0.0.130"}
    assert p["status"] == {"phase": "Pending"}


# -- resolv.conf -------------------------------------------------------------------------
SEARCH = "search shop.svc.cluster.local svc.cluster.local cluster.local\noptions ndots:5\n"


@pytest.mark.parametrize("spec, dns, text", [
    ({}, "10.0.0.1", "nameserver 10.0.0.1\n" + SEARCH),
    ({"dnsPolicy": "ClusterFirst"}, "", None),                # no cluster DNS yet: Docker's
    ({"dnsConfig": {"nameservers": ["1.1.1.1"]}}, "10.0.0.1",
     "nameserver 10.0.0.1\nnameserver 1.1.1.1\n" + SEARCH),
    ({"dnsPolicy": "Default"}, "10.0.0.1", None),
    ({"hostNetwork": True}, "10.0.0.1", None),
    ({"hostNetwork": True, "dnsPolicy": "ClusterFirstWithHostNet"}, "10.0.0.1",
     "nameserver 10.0.0.1\n" + SEARCH),
    ({"dnsPolicy": "None", "dnsConfig": {"nameservers": ["9.9.9.9"], "searches": ["a", "b"]}},
     "10.0.0.1", "nameserver 9.9.9.9\nsearch a b\n"),
    ({"dnsPolicy": "None"}, "", "\n"),                        # written, even if empty
])
def test_resolv_conf_text(spec, dns, text):
    assert netfiles.resolv_conf_text(pod(spec), dns) == text


# -- environment -------------------------------------------------------------------------
SERVICE = {"metadata": {"name": "db"}, "spec": {"clusterIP": "10.96.0.9",
                                                "ports": [{"port": 5432}]}}


@pytest.mark.parametrize("links, expected", [
    (None, {"DB_SERVICE_HOST": "10.96.0.9", "DB_SERVICE_PORT": "5432"}),
    (True, {"DB_SERVICE_HOST": "10.96.0.9", "DB_SERVICE_PORT": "5432"}),
    (False, {}),
])
def test_container_env_has_service_links_unless_disabled(links, expected):
    p = pod({} if links is None else {"enableServiceLinks": links})
    asked = []

    def services(namespace: str) -> list[dict]:
        asked.append(namespace)
        return [SERVICE]
    env = specs.container_env(p, p["spec"]["containers"][0], nothing, services)
    assert asked == (["shop"] if expected else [])
    assert {k: v for k, v in env.items() if k.startswith("DB_SERVICE_")} == expected
    assert env["HOSTNAME"] == "web"


@pytest.mark.parametrize("context, user", [
    ({}, None),
    ({"runAsUser": 1000}, "1000"),
    ({"runAsUser": 0, "runAsGroup": 0}, "0:0"),
    ({"runAsGroup": 5}, None),                       # a group alone is not the engine's
])
def test_run_as(context, user):
    assert security.run_as(context) == user


# -- container specs ---------------------------------------------------------------------
def test_a_container_holding_the_pod_network():
    p = pod()
    out = build(p, ip="10.0.0.130")
    assert out.name == "gitops_feed0001_shop_web_app_01234567" and out.image == "img:1"
    assert not out.sandbox_id and out.network == "gitops-feed0001"
    assert out.hostname == "web" and out.ip == "10.0.0.130"
    assert out.labels == {**specs.labels(p, "app", "feed0001", "10.0.0.130"),
                          CONFIG_HASH: container_hash(p["spec"]["containers"][0])}


def test_a_container_joining_a_sandbox_gets_no_network_of_its_own():
    out = build(pod(), sandbox_id="sandbox-1", ip="10.0.0.130")
    assert out.sandbox_id == "sandbox-1"
    assert (out.network, out.hostname, out.ip) == ("", "", "")
    assert POD_IP not in out.labels


@pytest.mark.parametrize("container, entrypoint, cmd", [
    ({}, None, None),                                           # the image's own
    ({"command": ["sh", "-c"]}, ["sh", "-c"], []),              # no args: none of the image's
    ({"args": ["--port", "$(PORT)"]}, None, ["--port", "8080"]),
    ({"command": ["echo", "$(PORT)", "$$(PORT)", "$(NOPE)"], "args": ["x"]},
     ["echo", "8080", "$(PORT)", "$(NOPE)"], ["x"]),
])
def test_command_and_args_expand_the_environment(container, entrypoint, cmd):
    c = {"name": "app", "image": "img:1", **container}
    out = build(pod({"containers": [c]}), c, env={"PORT": "8080"})
    assert out.entrypoint == entrypoint and out.cmd == cmd
    assert out.env == {"PORT": "8080"}


@pytest.mark.parametrize("pod_sc, container_sc, user, read_only", [
    ({}, {}, None, False),
    ({"runAsUser": 1000}, {}, "1000", False),
    ({"runAsUser": 1000, "runAsGroup": 3}, {"runAsUser": 2000}, "2000:3", False),
    ({}, {"readOnlyRootFilesystem": True}, None, True),
])
def test_security_context_container_over_pod(pod_sc, container_sc, user, read_only):
    c = {"name": "app", "image": "img:1", "securityContext": container_sc}
    out = build(pod({"securityContext": pod_sc, "containers": [c]}), c)
    assert (out.user, out.read_only, out.privileged) == (user, read_only, False)


def test_privileged_only_where_host_access_is_allowed():
    c = {"name": "app", "image": "img:1", "securityContext": {"privileged": True}}
    p = pod({"containers": [c]})
    with pytest.raises(RuntimeFailure):
        build(p, c)
    assert build(p, c, node=HOST_OK).privileged


@pytest.mark.parametrize("limits, nano_cpus, memory", [
    ({}, None, None),
    ({"cpu": "500m"}, 500_000_000, None),
    ({"cpu": "2", "memory": "64Mi"}, 2_000_000_000, 64 << 20),
])
def test_limits(limits, nano_cpus, memory):
    c = {"name": "app", "image": "img:1", "resources": {"limits": limits}}
    out = build(pod({"containers": [c]}), c)
    assert (out.nano_cpus, out.memory) == (nano_cpus, memory)


@pytest.mark.parametrize("container, expected", [
    ({}, (False, False, False, None)),
    ({"tty": True, "stdin": True, "stdinOnce": True, "workingDir": "/srv"},
     (True, True, True, "/srv")),
])
def test_terminal_and_working_dir(container, expected):
    c = {"name": "app", "image": "img:1", **container}
    out = build(pod({"containers": [c]}), c)
    assert (out.tty, out.stdin, out.stdin_once, out.working_dir) == expected


def test_mounts_projected_files_then_resolv_conf():
    c = {"name": "app", "image": "img:1",
         "volumeMounts": [{"name": "conf", "mountPath": "/etc/app"},
                          {"name": "scratch", "mountPath": "/tmp/s"}]}
    p = pod({"containers": [c], "volumes": [{"name": "conf", "configMap": {"name": "c"}},
                                            {"name": "scratch", "emptyDir": {}}]})
    out = build(p, c, resolv_conf_path="/state/pods/x/resolv.conf")
    conf, scratch, resolv = out.mounts
    assert conf == Mount("bind", "/etc/app", "/state/pods/x/volumes/conf", True)
    assert scratch.type == "volume" and scratch.target == "/tmp/s"
    assert resolv == Mount("bind", "/etc/resolv.conf", "/state/pods/x/resolv.conf", True)
    assert build(p, c).mounts == (conf, scratch)        # no resolv.conf: Docker's


def test_a_mount_of_an_undefined_volume_is_a_config_error():
    c = {"name": "app", "image": "img:1", "volumeMounts": [{"name": "gone", "mountPath": "/x"}]}
    with pytest.raises(RuntimeFailure) as caught:
        build(pod({"containers": [c]}), c)
    assert caught.value.reason == "CreateContainerConfigError"
