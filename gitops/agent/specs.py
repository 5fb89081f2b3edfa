"""What the runtime is asked to create for a pod (pure): names, labels, the sandbox, each
container's spec, and the resolv.conf its containers see.

The node agent gathers the inputs (objects the pod reads, the files it writes) and hands
them in; nothing here touches the store, the runtime or the disk, so every rule is
table-tested without Docker.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from gitops.agent.env import Lookup, build_env, expand, service_env
from gitops.agent.netfiles import pod_fqdn
from gitops.agent.plan import container_hash, limits
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
    ContainerSpec,
    Mount,
    RuntimeFailure,
    SandboxSpec,
)
from gitops.agent.security import security
from gitops.agent.serviceaccount import token_mount
from gitops.agent.volumes import container_mounts
from gitops.model.podspec import host_access
from gitops.model.satoken import MOUNT_PATH

RESOLV_CONF = "/etc/resolv.conf"
HOSTS = "/etc/hosts"
TERMINATION_LOG = "/dev/termination-log"     # terminationMessagePath's default


@dataclass(frozen=True)
class NodeContext:
    """What a spec needs to know of the node, as it is now (the daemon fills some of it in
    after the agent is built: the pod subnet once the network exists, DNS once it listens)."""
    instance: str                   # the runtime's: names and labels carry it
    network: str                    # the pod network's name
    allow_host_access: bool = False
    dns_server: str = ""            # cluster DNS address containers use ("": none yet)
    subnet: str = ""                # the pod network's (pod IPs are pinned in it)
    host_resolv: str = ""           # the node's own /etc/resolv.conf and /etc/hosts
    host_hosts: str = ""


def hostname(pod: dict) -> str:
    """spec.hostname or the pod's name; its FQDN with setHostnameAsFQDN and a subdomain
    (at most 64 characters, as Kubernetes allows)."""
    if pod["spec"].get("setHostnameAsFQDN") and (fqdn := pod_fqdn(pod)):
        return fqdn[:64]
    return (pod["spec"].get("hostname") or pod["metadata"]["name"])[:63]


def docker_name(pod: dict, container: str, instance: str) -> str:
    meta = pod["metadata"]
    return (f"gitops_{instance}_{meta['namespace']}_{meta['name']}_"
            f"{container}_{meta['uid'][:8]}")


def labels(pod: dict, container: str, instance: str, ip: str = "") -> dict[str, str]:
    """The labels that make a container ours and name its pod (adoption after a restart
    reads them back); ip only on what holds the pod's network."""
    meta = pod["metadata"]
    return {MANAGED: "true", INSTANCE: instance,
            POD_NAMESPACE: meta["namespace"], POD_NAME: meta["name"],
            POD_UID: meta["uid"], CONTAINER: container, **({POD_IP: ip} if ip else {})}


def admit(pod: dict, allow_host_access: bool) -> None:
    """Pods reaching into the host are refused unless the operator allowed it."""
    if allow_host_access:
        return
    for path, message in host_access(pod.get("spec", {})):
        raise RuntimeFailure(f"spec.{path}: {message}", "CreateContainerConfigError")


def sandbox_spec(pod: dict, ip: str, node: NodeContext) -> SandboxSpec:
    admit(pod, node.allow_host_access)
    return SandboxSpec(name=docker_name(pod, SANDBOX, node.instance), hostname=hostname(pod),
                       network=node.network, labels=labels(pod, SANDBOX, node.instance, ip),
                       image=PAUSE_IMAGE, ip=ip,
                       host_network=bool(pod["spec"].get("hostNetwork")))


def with_pod_ip(pod: dict, ip: str) -> dict:
    """The pod as its containers must see it: status.podIP as pinned for it (the store's
    copy lags a pass behind, and is empty for a new pod)."""
    if ip == pod.get("status", {}).get("podIP"):
        return pod
    return {**pod, "status": {**pod.get("status", {}), "podIP": ip}}


def container_env(pod: dict, container: dict, lookup: Lookup,
                  services: Callable[[str], list[dict]]) -> dict[str, str]:
    """The container's environment; services(namespace) is asked only when the pod wants
    service links (enableServiceLinks, on by default); KUBERNETES_SERVICE_HOST and its
    kin come either way, as the kubelet sets them."""
    if pod["spec"].get("enableServiceLinks", True):
        links = service_env(services(pod["metadata"]["namespace"]))
    else:       # the API's own address is always there (in-cluster clients read it)
        api = lookup("Service", "default", "kubernetes")
        links = service_env([api]) if api is not None else {}
    return build_env(pod, container, lookup, links)


def container_spec(pod: dict, container: dict, node: NodeContext, *, env: dict[str, str],
                   lookup: Lookup, files_root: str, resolv_conf_path: str | None = None,
                   hosts_path: str | None = None, termination_log: str | None = None,
                   sandbox_id: str = "", ip: str = "") -> ContainerSpec:
    """One container of the pod. It joins the sandbox sandbox_id, or, with sandbox_id "",
    holds the pod's network itself at ip. files_root: where the pod's projected volumes
    (ConfigMap, Secret, downward API files) were written; resolv_conf_path, hosts_path:
    the resolv.conf and hosts written for it, if any; termination_log: the file mounted
    at its terminationMessagePath."""
    admit(pod, node.allow_host_access)
    mounts = container_mounts(pod, container, node.instance, files_root, lookup,
                              node.allow_host_access, env)
    if token_volume := token_mount(pod, container):
        mounts.append(Mount("bind", MOUNT_PATH, f"{files_root}/{token_volume}", True))
    if resolv_conf_path:
        mounts.append(Mount("bind", RESOLV_CONF, resolv_conf_path, True))
    if hosts_path:
        mounts.append(Mount("bind", HOSTS, hosts_path, False))
    if termination_log:
        mounts.append(Mount("bind", container.get("terminationMessagePath")
                            or TERMINATION_LOG, termination_log, False))
    sec = security(pod, container)
    command = [expand(a, env) for a in container.get("command") or []] or None
    args = [expand(a, env) for a in container.get("args") or []] or None
    own = not sandbox_id
    nano_cpus, memory = limits(container)
    return ContainerSpec(
        name=docker_name(pod, container["name"], node.instance), image=container["image"],
        labels={**labels(pod, container["name"], node.instance, ip if own else ""),
                CONFIG_HASH: container_hash(container)},
        sandbox_id=sandbox_id, network=node.network if own else "",
        hostname=hostname(pod) if own else "", ip=ip if own else "", entrypoint=command,
        cmd=args if args is not None else ([] if command else None), env=env,
        working_dir=container.get("workingDir"), tty=bool(container.get("tty")),
        stdin=bool(container.get("stdin")), stdin_once=bool(container.get("stdinOnce")),
        mounts=tuple(mounts), nano_cpus=nano_cpus or None, memory=memory or None,
        user=sec.user, read_only=sec.read_only, privileged=sec.privileged,
        groups=sec.groups, cap_add=sec.cap_add, cap_drop=sec.cap_drop,
        security_opt=sec.security_opt)
