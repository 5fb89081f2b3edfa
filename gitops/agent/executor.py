"""The executor (the kubelet's SyncPod): performs one pod's planned actions on the runtime
and notes their outcomes in the books. It decides nothing: plan.compute_pod_actions did,
specs builds what to create, restarts and failures keep the counts."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import structlog

from gitops.agent import plan as P
from gitops.agent import netfiles, podevents, security, specs
from gitops.agent.drift import DriftWatch
from gitops.agent.env import Lookup, uses_pod_ip
from gitops.agent.failures import FailureBook, containers_failed_by
from gitops.agent.files import PodFiles
from gitops.agent.hooks import PostStart, PostStartHooks
from gitops.agent.podevents import PodEvent
from gitops.agent.probes import ProbeTracker
from gitops.agent.restarts import RestartBook
from gitops.agent.runtime import (
    SANDBOX,
    ContainerInfo,
    ContainerSpec,
    Runtime,
    RuntimeFailure,
    RuntimeUnavailable,
)
from gitops.agent.specs import NodeContext
from gitops.agent.status import terminated_state
from gitops.agent.terminator import PreStop, Terminator
from gitops.model import key_of
from gitops.model.addresses import PinnedPodIps
from gitops.model.secrets import values_used_by
from gitops.store.base import Store

log = structlog.get_logger(component="agent")


@dataclass
class _Progress:
    """What the pod's earlier actions of this plan made."""
    sandbox_id: str = ""
    sandbox_ip: str = ""
    pulled: set[str] = field(default_factory=set)
    failed_images: set[str] = field(default_factory=set)
    touched: set[str] = field(default_factory=set)     # containers made or (re)started
    removed: set[str] = field(default_factory=set)
    unsure: bool = False      # something changes later (a stop on the pool): list again


@dataclass(frozen=True)
class Executed:
    """What a plan did to the pod's containers: the pod's listing is brought up to date
    by inspecting `touched` alone (a list call scans every container of the engine),
    unless `relist`."""
    acted: bool = False
    touched: frozenset[str] = frozenset()
    removed: frozenset[str] = frozenset()
    relist: bool = False


class PodExecutor:
    def __init__(self, *, runtime: Runtime, store: Store, lookup: Lookup, files: PodFiles,
                 restarts: RestartBook, failures: FailureBook, ips: PinnedPodIps,
                 probes: ProbeTracker, terminator: Terminator, drift: DriftWatch,
                 hooks: PostStartHooks, event: Callable[[dict, PodEvent], None],
                 clock: Callable[[], float]) -> None:
        self.hooks = hooks
        self.runtime = runtime
        self.store = store
        self.lookup = lookup
        self.files = files
        self.restarts = restarts
        self.failures = failures
        self.ips = ips
        self.probes = probes
        self.terminator = terminator
        self.drift = drift
        self.event = event
        self.clock = clock

    def execute(self, pod: dict, pod_plan: P.PodPlan, containers: list[ContainerInfo],
                node: NodeContext) -> Executed:
        """Perform the plan's actions in order. One that fails is noted on its containers
        (status and a Warning Event) and the rest still run; an engine that does not
        answer stops the pass."""
        sandbox = next((c for c in containers
                        if c.container == SANDBOX and c.state == "running"), None)
        done = _Progress()
        if sandbox is not None:
            done.sandbox_id, done.sandbox_ip = sandbox.id, sandbox.pinned_ip
        by_id = {c.id: c for c in containers}
        for action in pod_plan.actions:
            try:
                self._perform(pod, action, containers, by_id, done, node)
            except RuntimeUnavailable:
                raise
            except Exception as caught:
                done.unsure = True        # a create may have left a container behind
                self._action_failed(pod, action, caught)
        return Executed(bool(pod_plan.actions), frozenset(done.touched),
                        frozenset(done.removed), done.unsure)

    def _perform(self, pod: dict, action: P.PodAction, containers: list[ContainerInfo],
                 by_id: dict[str, ContainerInfo], done: _Progress, node: NodeContext) -> None:
        match action:
            case P.Stop(cid, grace, hook, spec):
                done.unsure = True
                self._stop(pod, by_id[cid], grace, hook, spec or {}, containers)
            case P.Remove(cid, why):
                self.remove(by_id[cid], why)
                done.removed.add(cid)
            case P.RunSandbox():
                done.sandbox_ip = self._pin(pod, containers, node)
                done.sandbox_id = self.runtime.run_sandbox(
                    specs.sandbox_spec(pod, done.sandbox_ip, node))
                done.touched.add(done.sandbox_id)
                log.info("sandbox_started", pod=_name(pod), ip=done.sandbox_ip)
            case P.Pull(image):
                self._pull(pod, image, done)
            case P.RunContainer(container, holds_network):
                if container["image"] in done.failed_images or not (done.sandbox_id
                                                                    or holds_network):
                    return
                self._run(pod, container, holds_network, containers, done, node)
            case P.Kill(cid, name, grace, message):
                done.unsure = True
                if self.terminator.busy(cid):
                    return            # being killed already
                log.warning("container_unhealthy", pod=_name(pod), container=name,
                            message=message)
                self.terminator.terminate(by_id[cid], grace, f"probe failed: {message}",
                                          remove=False)
                self.event(pod, podevents.killed_by_probe(name, message))
            case P.Halt(cid, name, grace, hook, spec):
                done.unsure = True
                self._halt(pod, by_id[cid], grace, hook, spec or {}, containers)
            case P.Restart(cid, name, backoff_reset):
                self._restart(pod, by_id[cid], name, backoff_reset, containers)
                done.touched.add(cid)
            case P.Finalize():
                self.release(pod["metadata"]["uid"])
                self.store.delete(key_of(pod))
                log.info("pod_deleted", pod=_name(pod))

    def _stop(self, pod: dict, c: ContainerInfo, grace: float, hook: dict | None,
              spec: dict, containers: list[ContainerInfo]) -> None:
        # The hook goes where the engine runs the pod; status.podIP (any API writer's to
        # set) only names what the proxy must drain.
        if self.terminator.busy(c.id):
            return            # stopping already: its Killing event is recorded
        pre_stop = (PreStop(hook, spec, P.pod_ip(pod["spec"], containers),
                            frozenset(values_used_by(pod, self.lookup))) if hook else None)
        self.terminator.terminate(c, grace, "pod deleted", pre_stop=pre_stop,
                                  drain_ip=pod.get("status", {}).get("podIP", ""))
        if c.container != SANDBOX:
            self.event(pod, podevents.stopping(c.container))

    def _halt(self, pod: dict, c: ContainerInfo, grace: float, hook: dict | None,
              spec: dict, containers: list[ContainerInfo]) -> None:
        """Stopped for good, and kept: its exit code and message stay in the status."""
        if self.terminator.busy(c.id):
            return
        pre_stop = (PreStop(hook, spec, P.pod_ip(pod["spec"], containers),
                            frozenset(values_used_by(pod, self.lookup))) if hook else None)
        self.terminator.terminate(c, grace, "pod stopped", remove=False, pre_stop=pre_stop)
        self.event(pod, podevents.stopping(c.container))

    def _pull(self, pod: dict, image: str, done: _Progress) -> None:
        self.event(pod, podevents.pulling(image))
        try:
            self.runtime.pull(image)
        except RuntimeFailure as exc:
            failure = self.failures.pull_failed(image, self.clock(), exc.reason, str(exc))
            done.failed_images.add(image)
            log.warning("image_pull_failed", image=image, error=str(exc))
            self.event(pod, podevents.pull_failed(image, failure.message))
            return
        self.failures.pulled(image)
        log.info("image_pulled", image=image)
        done.pulled.add(image)
        self.event(pod, podevents.pulled(image))

    def _run(self, pod: dict, container: dict, holds_network: bool,
             containers: list[ContainerInfo], done: _Progress, node: NodeContext) -> None:
        uid, name = pod["metadata"]["uid"], container["name"]
        self.probes.reset(uid, name)
        if holds_network:
            spec = self._container_spec(pod, container, node, "",
                                        self._pin(pod, containers, node))
        else:
            spec = self._container_spec(pod, container, node, done.sandbox_id, done.sandbox_ip)
        cid = self.runtime.run_container(spec)
        done.touched.add(cid)
        self.failures.container_started(uid, name)
        log.info("container_started", pod=_name(pod), container=name)
        for event in podevents.started(container, container["image"] in done.pulled):
            self.event(pod, event)
        self._post_start(pod, container, cid, spec.labels, spec.ip or done.sandbox_ip)

    def _post_start(self, pod: dict, container: dict, cid: str, labels: Mapping[str, str],
                    pod_ip: str) -> None:
        """Its postStart hook, on the hooks' pool: until it is done the container is not
        Running (as in Kubernetes)."""
        if not (container.get("lifecycle") or {}).get("postStart"):
            return
        info = ContainerInfo(cid, "", dict(labels), "running")
        self.hooks.start(PostStart(pod, container, info, pod_ip,
                                   frozenset(values_used_by(pod, self.lookup))))

    def _restart(self, pod: dict, c: ContainerInfo, name: str, backoff_reset: bool,
                 containers: list[ContainerInfo]) -> None:
        uid = pod["metadata"]["uid"]
        self.probes.reset(uid, name)
        # The run that ended keeps its message in lastState; the next one starts empty.
        message = self.files.termination_message(uid, name)
        count = self.restarts.of(uid).restarted(name, terminated_state(c, message),
                                                backoff_reset)
        self.files.clear_termination_message(uid, name)
        self.drift.mark_ours(c.id)
        self.runtime.start(c.id)
        log.info("container_restarted", pod=_name(pod), container=name, restarts=count)
        for event in podevents.restarted(name):
            self.event(pod, event)
        spec = next((x for x in [*(pod["spec"].get("initContainers") or []),
                                 *pod["spec"].get("containers", [])] if x["name"] == name), {})
        self._post_start(pod, spec, c.id, c.labels, P.pod_ip(pod["spec"], containers))

    def _action_failed(self, pod: dict, action: P.PodAction, caught: Exception) -> None:
        exc = caught if isinstance(caught, RuntimeFailure) else RuntimeFailure(
            _error_text(caught), "CreateContainerConfigError")
        names = containers_failed_by(action, pod)
        self.failures.action_failed(pod["metadata"]["uid"], names, exc.reason, str(exc))
        if isinstance(action, (P.RunContainer, P.RunSandbox)):
            for name in names:
                self.event(pod, podevents.failed(str(exc), name))
        log.warning("pod_action_failed", pod=_name(pod), action=type(action).__name__,
                    reason=exc.reason, error=str(exc))

    # -- what the actions need ------------------------------------------------------------
    def _pin(self, pod: dict, containers: list[ContainerInfo], node: NodeContext) -> str:
        """The address for a pod about to get its sandbox or its one container: the one it
        had, if nobody else took it. "" lets the engine choose (no subnet known yet)."""
        if not node.subnet or pod["spec"].get("hostNetwork"):
            return ""
        return self.ips.pin(node.subnet, pod["metadata"]["uid"],
                            P.previous_ip(pod, containers))

    def _container_spec(self, pod: dict, container: dict, node: NodeContext,
                        sandbox_id: str, ip: str) -> ContainerSpec:
        """sandbox_id "" makes the container hold the pod's network itself, at ip. Its
        projected files and resolv.conf are written first."""
        specs.admit(pod, node.allow_host_access)      # nothing written for a refused pod
        uid = pod["metadata"]["uid"]
        # The pod's address as pinned for it, or the sandbox's as the runtime tells (the
        # store's status lags a pass behind): env, downward API files and /etc/hosts.
        pod_ip = ip
        if not pod_ip and sandbox_id and (uses_pod_ip(pod)
                                          or not pod["spec"].get("hostNetwork")):
            pod_ip = self.runtime.sandbox_ip(sandbox_id)
        if uses_pod_ip(pod):
            pod = specs.with_pod_ip(pod, pod_ip)
        security.verify_non_root(pod, container, self.runtime.image_user(container["image"])
                                 if security.needs_image_user(pod, container) else "")
        env = specs.container_env(pod, container, self.lookup, self._services)
        self.files.write(pod)
        text = netfiles.resolv_conf_text(pod, node.dns_server, node.host_resolv)
        resolv = self.files.write_resolv_conf(uid, text) if text is not None else None
        hosts_text = netfiles.hosts_text(pod, pod_ip, specs.hostname(pod), node.host_hosts)
        hosts = self.files.write_hosts(uid, hosts_text) if hosts_text is not None else None
        log_file = self.files.termination_log(uid, container["name"])
        return specs.container_spec(pod, container, node, env=env, lookup=self.lookup,
                                    files_root=str(self.files.volumes_root(uid)),
                                    resolv_conf_path=str(resolv) if resolv else None,
                                    hosts_path=str(hosts) if hosts else None,
                                    termination_log=str(log_file), sandbox_id=sandbox_id,
                                    ip=ip)

    def _services(self, namespace: str) -> list[dict]:
        """The namespace's Services, and the API's own (KUBERNETES_SERVICE_HOST...) in
        every namespace, as the kubelet gives it."""
        services = self.store.list("Service", namespace)
        if namespace != "default" and (api := self.lookup("Service", "default",
                                                          "kubernetes")) is not None:
            services = [*services, api]
        return services

    # -- removal --------------------------------------------------------------------------
    def remove(self, c: ContainerInfo, why: str) -> None:
        """Force-remove now (the name may be reused in this very pass)."""
        if self.terminator.busy(c.id):
            return
        self.drift.mark_ours(c.id)
        self.runtime.remove(c.id)
        log.info("container_removed", pod=c.pod_ref, container=c.container, why=why)

    def release(self, uid: str) -> None:
        """A pod is gone for good: its emptyDir volumes and projected files go too."""
        self.runtime.remove_pod_volumes(uid)
        self.files.remove(uid)


def _error_text(exc: Exception) -> str:
    return str(exc) or type(exc).__name__


def _name(pod: dict) -> str:
    return f"{pod['metadata']['namespace']}/{pod['metadata']['name']}"
