"""The node agent loop: pods bound to this node ⟷ containers on the runtime.

Each pass reads the store and the runtime, asks plan.compute_pod_actions what to do per
pod, performs it, and writes pod status back. Slow terminations run on a small pool so
one pod's grace period never stalls the others.
"""

from __future__ import annotations

import shutil
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import structlog

from gitops.agent import plan as P
from gitops.agent.env import build_env, expand, service_env, uses_pod_ip
from gitops.agent.files import write_file_set
from gitops.agent.prober import ProbeWorker, run_probe
from gitops.agent.probes import ProbeTracker
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
    ContainerInfo,
    ContainerSpec,
    Mount,
    Runtime,
    RuntimeFailure,
    RuntimeUnavailable,
    SandboxSpec,
)
from gitops.agent.status import (
    has_messages,
    mask_messages,
    node_ready_condition,
    pod_status,
    runtime_down_status,
    terminated_state,
)
from gitops.agent.volumes import container_mounts, file_sets
from gitops.model import ObjectKey, key_of
from gitops.model.addresses import choose_pod_ip
from gitops.model.dns import resolv_conf
from gitops.model.events import NORMAL, WARNING, event_for
from gitops.model.podspec import host_access
from gitops.model.secrets import mask_text, values_used_by
from gitops.model.times import parse_ts, rfc3339
from gitops.model.version import kube_version
from gitops.model.volumepaths import is_safe_uid
from gitops.store.base import NotFound, Store
from gitops.store.events import EventRecorder

log = structlog.get_logger(component="agent")


EVENT_SETTLE = 0.5   # seconds: one `docker rm -f` is kill, die, destroy; report it once
ROTATION_WAIT = 5.0  # seconds at most a deleted pod waits to leave Service rotation before SIGTERM


class NodeAgent:
    def __init__(self, store: Store, runtime: Runtime, node_name: str, network: str,
                 state_dir: Path, clock: Callable[[], float] = time.time,
                 allow_host_access: bool = False) -> None:
        self.allow_host_access = allow_host_access
        self.dns_server = ""      # cluster DNS address containers use, once it listens
        self.store = store
        self.runtime = runtime
        self.state_dir = state_dir.resolve()     # per-pod files (projected volumes)
        self.node_name = node_name
        self.network = network
        self.clock = clock
        self.host_ip = ""
        self.subnet = ""          # the pod network's, once set up: pod IPs are pinned in it
        self._ip_owner: dict[str, str] = {}    # pod IP -> uid of the pod holding it
        self._pull_failures: dict[str, P.PullFailure] = {}
        self._restarts: dict[str, dict[str, int]] = {}         # pod uid -> name -> count
        self._backoff_base: dict[str, dict[str, int]] = {}     # count at the last reset
        self._last_states: dict[str, dict[str, dict]] = {}     # pod uid -> name -> lastState
        # pod uid -> name -> when the previous run began (the finish of the run before it):
        # Docker's StartedAt comes after a fast process's first output, so logs of a run
        # are cut at finish times. Kept in memory only; see previous_run_since().
        self._previous_since: dict[str, dict[str, float]] = {}
        self._errors: dict[tuple[str, str], tuple[str, str]] = {}
        self._waiting: dict[str, dict[str, tuple[str, str]]] = {}   # this pass's, per pod
        self._pod_errors: dict[str, tuple[str, str]] = {}   # uid -> why its last pass failed
        self._terminating: set[str] = set()
        self._pool = ThreadPoolExecutor(max_workers=8, thread_name_prefix="terminate")
        self.wake: Callable[[], None] | None = None   # asks the loop for a pass soon
        # Whether the Service proxy or DNS still sends new traffic to a pod IP (set by the
        # daemon). A deleted pod is signalled only once it is out of rotation.
        self.in_rotation: Callable[[str], bool] | None = None
        # Probes run on their own pool; a pass reads the verdicts (never waits for them).
        self.probes = ProbeTracker(clock)
        self._prober = ProbeWorker(self.probes, runtime.exec, workers=8,
                                   wake=lambda: self.wake and self.wake())
        # Runtime drift: container ids this agent is acting on (so their events are ours),
        # and events on our containers that someone else caused, waiting to be reported.
        self.on_drift: Callable[[dict], None] | None = None
        self._ours: dict[str, float] = {}
        self._external: list[dict] = []
        self._events_lock = threading.Lock()
        self._runtime_down_since: float | None = None
        self.events = EventRecorder(store, clock, host=node_name)    # kubelet-style Events
        self._held_events: list | None = None     # a pass's Events, recorded at its end

    # -- setup ------------------------------------------------------------------------
    def setup(self, subnet: str) -> None:
        self.runtime.ensure_pause_image()
        self.host_ip, self.subnet = self.runtime.ensure_network(self.network, subnet)
        self.register_node()

    def register_node(self) -> None:
        info = self.runtime.ping()
        arch = {"x86_64": "amd64", "aarch64": "arm64"}.get(info.get("Architecture", ""),
                                                          info.get("Architecture", ""))
        # The kubelet's own labels (charts select on them); labels added later are kept.
        labels = {"kubernetes.io/hostname": self.node_name,
                  "kubernetes.io/os": info.get("OSType") or "linux",
                  **({"kubernetes.io/arch": arch} if arch else {})}
        node = {"apiVersion": "v1", "kind": "Node",
                "metadata": {"name": self.node_name, "labels": labels}, "spec": {}}
        status = {"capacity": {"cpu": str(info.get("NCPU", 1)),
                               "memory": f"{int(info.get('MemTotal', 0)) // 1024}Ki",
                               "pods": "110"},
                  "conditions": [node_ready_condition(True, "the agent is posting ready status",
                                                      rfc3339(self.clock()))],
                  "addresses": [{"type": "InternalIP", "address": self.host_ip},
                                {"type": "Hostname", "address": self.node_name}],
                  "nodeInfo": {"kubeletVersion": kube_version()["gitVersion"],
                               "containerRuntimeVersion":
                               f"docker://{info.get('ServerVersion', '')}",
                               "operatingSystem": info.get("OSType", "linux"),
                               "architecture": arch,
                               "kernelVersion": info.get("KernelVersion", ""),
                               "osImage": info.get("OperatingSystem", "")}}
        status["allocatable"] = dict(status["capacity"])    # what the scheduler may place
        key = ObjectKey("Node", "", self.node_name)
        existing = self.store.get(key)
        if existing is None:
            self.store.create(node)
        elif missing := {k: v for k, v in labels.items()
                         if k not in (existing["metadata"].get("labels") or {})}:
            existing["metadata"]["labels"] = {**(existing["metadata"].get("labels") or {}),
                                              **missing}
            self.store.update(existing)
        self.store.update_status(key, status)

    # -- one pass ---------------------------------------------------------------------
    def sync_once(self) -> None:
        """One pass; while the engine does not answer, passes wait for it (pod status is
        left as last seen) and the first pass after it is back reconciles everything."""
        try:
            self._sync_pass()
        except RuntimeUnavailable as exc:
            if self._runtime_down_since is None:
                self._runtime_down_since = time.monotonic()
                log.warning("runtime_unavailable", error=str(exc))
                self._runtime_lost(str(exc))
            return
        if self._runtime_down_since is not None:
            log.info("runtime_available_again",
                     after_s=round(time.monotonic() - self._runtime_down_since, 1))
            self._runtime_down_since = None
            self._set_node_ready(True, "the agent is posting ready status")

    def _runtime_lost(self, error: str) -> None:
        """The Node goes NotReady (the scheduler places nothing there) and its pods stop
        being Ready, so no Service sends traffic to containers nobody can vouch for."""
        self._set_node_ready(False, f"container runtime is down: {error}")
        now = rfc3339(self.clock())
        for pod in self._own_pods():
            if not pod.get("status"):
                continue
            try:
                self.store.update_status(key_of(pod), runtime_down_status(pod["status"], now))
            except NotFound:
                pass

    def _own_pods(self) -> list[dict]:
        return [p for p in self.store.list("Pod")
                if p.get("spec", {}).get("nodeName") == self.node_name]

    def _set_node_ready(self, ready: bool, message: str) -> None:
        key = ObjectKey("Node", "", self.node_name)
        node = self.store.get(key)
        if node is None:
            return
        status = node.get("status", {})
        others = [c for c in status.get("conditions") or [] if c.get("type") != "Ready"]
        condition = node_ready_condition(ready, message, rfc3339(self.clock()))
        self.store.update_status(key, {**status, "conditions": [condition, *others]})

    def _sync_pass(self) -> None:
        """Kubelet Events of the pass are recorded after the pod statuses: a started pod
        shows Running without waiting for its Pulled, Created and Started."""
        self._held_events = []
        try:
            self._reconcile_pods()
        finally:
            held, self._held_events = self._held_events, None
            for spec in held:
                self.events.record(spec)

    def _reconcile_pods(self) -> None:
        events = self._take_external_events()
        pods = self._own_pods()
        by_uid = defaultdict(list)
        for c in self.runtime.list_containers():
            by_uid[c.pod_uid].append(c)
        known = {p["metadata"]["uid"] for p in pods}
        self._index_ips(pods, by_uid)
        for uid, orphans in by_uid.items():
            if uid not in known:
                for c in orphans:
                    self._remove(c, "orphan: its pod is gone")
                    self._report_orphan(c)
                self._release_pod(uid)
        written: set[str] = set()
        self._waiting = {}
        for pod in pods:
            uid = pod["metadata"]["uid"]
            try:
                if self._sync_pod(pod, by_uid):
                    written.add(uid)
            except RuntimeUnavailable:
                raise
            except Exception as exc:      # one bad pod never stops the pass for the others
                self._pod_failed(pod, exc)
        for pod in pods:
            uid = pod["metadata"]["uid"]
            if uid not in written and not pod["metadata"].get("deletionTimestamp"):
                try:
                    self._write_status(pod, by_uid.get(uid, []), self._waiting.get(uid, {}))
                except RuntimeUnavailable:
                    raise
                except Exception:
                    log.exception("pod_status_failed", pod=_name(pod))
        self._report_runtime_drift(events, pods, by_uid)
        self._forget(known)

    def _sync_pod(self, pod: dict, by_uid: dict[str, list[ContainerInfo]]) -> bool:
        """Plan and act for one pod; True when its status was written."""
        uid = pod["metadata"]["uid"]
        self._seed_counters(pod)
        unhealthy = {}
        if by_uid.get(uid) and not pod["metadata"].get("deletionTimestamp"):
            self._refresh_files(pod)
            unhealthy = self._probe(pod, by_uid[uid])
        pod_plan = P.compute_pod_actions(
            pod, by_uid.get(uid, []), self._images(pod), self._pull_failures,
            P.backoff_restarts(self._restarts[uid], self._backoff_base.get(uid, {})),
            self.clock(), unhealthy)
        self._waiting[uid] = pod_plan.waiting
        written = False
        if self._execute(pod, pod_plan, by_uid.get(uid, [])):
            # Its status at once: a pod started early in a long pass (a scale-up of
            # many) shows Running without waiting for the others to start.
            by_uid[uid] = self.runtime.list_containers(pod_uid=uid)
            if not pod["metadata"].get("deletionTimestamp"):
                self._write_status(pod, by_uid[uid], pod_plan.waiting)
                written = True
        self._waiting_events(pod, pod_plan.waiting)
        self._pod_errors.pop(uid, None)
        return written

    def _pod_failed(self, pod: dict, exc: Exception) -> None:
        """An error nobody planned for lands on the pod (status and a Warning event), as
        the kubelet's CreateContainerConfigError does; the next pass tries again."""
        uid, message = pod["metadata"]["uid"], _error_text(exc)
        log.warning("pod_sync_failed", pod=_name(pod), error=message,
                    error_type=type(exc).__name__)
        self._pod_errors[uid] = ("CreateContainerConfigError", message)
        try:
            self._event(pod, "Failed", f"Error: {message}", warning=True)
        except Exception:             # a pod too broken to name in an Event: the log has it
            log.debug("pod_event_failed", pod=_name(pod))

    def _index_ips(self, pods: list[dict], by_uid: dict[str, list[ContainerInfo]]) -> None:
        """Who holds which address: a running holder its own, and a pod that may run again
        its pinned one (a finished pod's is free again, as Kubernetes frees it)."""
        self._ip_owner = {}
        for pod in pods:
            uid = pod["metadata"]["uid"]
            done = pod.get("status", {}).get("phase") in ("Succeeded", "Failed")
            for c in by_uid.get(uid, []):
                if c.state == "running" and c.ip:
                    self._ip_owner[c.ip] = uid
                if c.pinned_ip and not done:
                    self._ip_owner[c.pinned_ip] = uid

    def _pin_ip(self, pod: dict, containers: list[ContainerInfo]) -> str:
        """The address for a pod about to get its sandbox or its one container: the one it
        had, if nobody else took it. "" lets the engine choose (no subnet known yet)."""
        if not self.subnet or pod["spec"].get("hostNetwork"):
            return ""
        uid = pod["metadata"]["uid"]
        previous = (next((c.pinned_ip for c in containers if c.pinned_ip), "")
                    or pod.get("status", {}).get("podIP", ""))
        ip = choose_pod_ip(self.subnet, previous,
                           [ip for ip, owner in self._ip_owner.items() if owner != uid])
        if ip:
            self._ip_owner[ip] = uid
        return ip

    def _write_status(self, pod: dict, containers: list[ContainerInfo],
                      plan_waiting: dict[str, tuple[str, str]]) -> None:
        uid = pod["metadata"]["uid"]
        failed = self._pod_errors.get(uid)
        pod_waiting = {**({c["name"]: failed for c in [*(pod["spec"].get("initContainers") or []),
                                                        *pod["spec"].get("containers", [])]}
                          if failed else {}),
                       **plan_waiting,
                       **{name: err for (u, name), err in self._errors.items() if u == uid}}
        probes = {c["name"]: self.probes.results(uid, c["name"], c)
                  for c in pod["spec"].get("containers", [])}
        status = pod_status(pod, containers, pod_waiting, self._restarts[uid],
                            self._last_states.get(uid, {}), self.host_ip,
                            rfc3339(self.clock()), probes)
        if has_messages(status):        # an engine error may quote a $(SECRET) expansion
            status = mask_messages(status, self._secret_values(pod))
        try:
            self.store.update_status(key_of(pod), status)
        except NotFound:
            pass

    def previous_run_since(self, uid: str, name: str, started_at: str) -> float | None:
        """Where the logs of a container's previous run begin (None: at the start): just
        after the run before it finished, or, after an agent restart forgot that, a second
        before the previous run started."""
        known = self._previous_since.get(uid, {}).get(name)
        if known is not None:
            return known + 0.000001 if known else None
        start = parse_ts(started_at, 0.0)
        return start - 1.0 if start > 1.0 else None

    def _seed_counters(self, pod: dict) -> None:
        """Restart counts live in the pod's status, so they survive an agent restart."""
        uid = pod["metadata"]["uid"]
        if uid in self._restarts:
            return
        statuses = pod.get("status", {}).get("containerStatuses") or []
        self._restarts[uid] = {s["name"]: s.get("restartCount", 0) for s in statuses}
        self._last_states[uid] = {s["name"]: s.get("lastState") or {} for s in statuses}

    def _forget(self, known: set[str]) -> None:
        for uid in list(self._restarts):
            if uid not in known:
                self.probes.forget(uid)
        for table in (self._restarts, self._last_states, self._previous_since,
                      self._backoff_base):
            for uid in list(table):
                if uid not in known:
                    del table[uid]
        for err in list(self._errors):
            if err[0] not in known:
                del self._errors[err]
        for uid in list(self._pod_errors):
            if uid not in known:
                del self._pod_errors[uid]

    def _images(self, pod: dict) -> dict[str, bool]:
        out = {}
        spec = pod.get("spec", {})
        for c in [*(spec.get("initContainers") or []), *spec.get("containers", [])]:
            try:
                out[c["image"]] = self.runtime.image_present(c["image"])
            except RuntimeFailure:
                out[c["image"]] = False
        return out

    # -- executing a plan ---------------------------------------------------------------
    def _execute(self, pod: dict, pod_plan: P.PodPlan, containers: list[ContainerInfo]) -> bool:
        uid = pod["metadata"]["uid"]
        sandbox = next((c for c in containers
                        if c.container == SANDBOX and c.state == "running"), None)
        sandbox_id, sandbox_ip = (sandbox.id, sandbox.pinned_ip) if sandbox else ("", "")
        failed_images: set[str] = set()
        pulled: set[str] = set()
        by_id = {c.id: c for c in containers}
        for action in pod_plan.actions:
            try:
                match action:
                    case P.Stop(cid, grace, hook, spec):
                        # The hook goes where the engine runs the pod; status.podIP (any
                        # API writer's to set) only names what the proxy must drain.
                        self._terminate(by_id[cid], grace, "pod deleted",
                                        pre_stop=(hook, spec, P.pod_ip(pod["spec"], containers),
                                                  self._secret_values(pod)) if hook else None,
                                        drain_ip=pod.get("status", {}).get("podIP", ""))
                        if by_id[cid].container != SANDBOX:
                            self._event(pod, "Killing", "Stopping container "
                                        f"{by_id[cid].container}", by_id[cid].container)
                    case P.Remove(cid, why):
                        self._remove(by_id[cid], why)
                    case P.RunSandbox():
                        sandbox_ip = self._pin_ip(pod, containers)
                        sandbox_id = self.runtime.run_sandbox(self._sandbox_spec(pod,
                                                                                 sandbox_ip))
                        log.info("sandbox_started", pod=_name(pod), ip=sandbox_ip)
                    case P.Pull(image):
                        self._event(pod, "Pulling", f'Pulling image "{image}"')
                        self._pull(image, failed_images)
                        if image in failed_images:
                            self._event(pod, "Failed", f'Failed to pull image "{image}": '
                                        f"{self._pull_failures[image].message}", warning=True)
                        else:
                            pulled.add(image)
                            self._event(pod, "Pulled", f'Successfully pulled image "{image}"')
                    case P.RunContainer(container, holds_network):
                        if container["image"] in failed_images or not (sandbox_id
                                                                       or holds_network):
                            continue
                        self.probes.reset(uid, container["name"])
                        if holds_network:
                            spec = self._container_spec(pod, container, "",
                                                        self._pin_ip(pod, containers))
                        else:
                            spec = self._container_spec(pod, container, sandbox_id, sandbox_ip)
                        self.runtime.run_container(spec)
                        self._errors.pop((uid, container["name"]), None)
                        log.info("container_started", pod=_name(pod),
                                 container=container["name"])
                        cname = container["name"]
                        if container["image"] not in pulled:
                            self._event(pod, "Pulled", f'Container image "{container["image"]}"'
                                        " already present on machine", cname)
                        self._event(pod, "Created", f"Created container {cname}", cname)
                        self._event(pod, "Started", f"Started container {cname}", cname)
                    case P.Kill(cid, name, grace, message):
                        log.warning("container_unhealthy", pod=_name(pod), container=name,
                                    message=message)
                        self._terminate(by_id[cid], grace, f"probe failed: {message}",
                                        remove=False)
                        probe = message.split(" ", 1)[0].lower()
                        self._event(pod, "Killing", f"Container {name} failed {probe} probe, "
                                    "will be restarted", name)
                    case P.Restart(cid, name, backoff_reset):
                        if backoff_reset:
                            self._backoff_base.setdefault(uid, {})[name] = \
                                self._restarts[uid].get(name, 0)
                        self.probes.reset(uid, name)
                        before = self._last_states[uid].get(name, {}).get("terminated", {})
                        self._previous_since.setdefault(uid, {})[name] = \
                            parse_ts(before.get("finishedAt"), 0.0)
                        self._last_states[uid][name] = {"terminated": terminated_state(by_id[cid])}
                        self._restarts[uid][name] = self._restarts[uid].get(name, 0) + 1
                        self._mark_ours(cid)
                        self.runtime.start(cid)
                        log.info("container_restarted", pod=_name(pod), container=name,
                                 restarts=self._restarts[uid][name])
                        self._event(pod, "Created", f"Created container {name}", name)
                        self._event(pod, "Started", f"Started container {name}", name)
                    case P.Finalize():
                        self._release_pod(uid)
                        self.store.delete(key_of(pod))
                        log.info("pod_deleted", pod=_name(pod))
            except RuntimeUnavailable:
                raise
            except Exception as caught:
                exc = caught if isinstance(caught, RuntimeFailure) else RuntimeFailure(
                    _error_text(caught), "CreateContainerConfigError")
                if isinstance(action, P.RunContainer):
                    names = [action.container["name"]]
                elif isinstance(action, P.RunSandbox):   # the whole pod is stuck
                    names = [c["name"] for c in pod["spec"].get("containers", [])]
                else:
                    names = [getattr(action, "name", "")]
                for name in filter(None, names):
                    self._errors[(uid, name)] = (exc.reason, str(exc))
                    if isinstance(action, (P.RunContainer, P.RunSandbox)):
                        self._event(pod, "Failed", f"Error: {exc}", name, warning=True)
                log.warning("pod_action_failed", pod=_name(pod), action=type(action).__name__,
                            reason=exc.reason, error=str(exc))
        return bool(pod_plan.actions)

    def _pull(self, image: str, failed: set[str]) -> None:
        try:
            self.runtime.pull(image)
            self._pull_failures.pop(image, None)
            log.info("image_pulled", image=image)
        except RuntimeFailure as exc:
            prev = self._pull_failures.get(image)
            self._pull_failures[image] = P.PullFailure(
                self.clock(), (prev.attempts if prev else 0) + 1, exc.reason, str(exc))
            failed.add(image)
            log.warning("image_pull_failed", image=image, error=str(exc))

    def _remove(self, c: ContainerInfo, why: str) -> None:
        """Force-remove now (the name may be reused in this very pass)."""
        if c.id in self._terminating:
            return
        self._mark_ours(c.id)
        self.runtime.remove(c.id)
        log.info("container_removed", pod=_pod_of(c), container=c.container, why=why)

    def _terminate(self, c: ContainerInfo, grace: float, why: str, remove: bool = True,
                   pre_stop: tuple[dict, dict, str, set[str]] | None = None,
                   drain_ip: str = "") -> None:
        """Graceful stop on the pool: wait (for a deleted pod's drain_ip) until no Service
        sends new connections there, the preStop hook, SIGTERM, SIGKILL once `grace`
        seconds (all of it included) have passed, then (unless a probe asked for a
        restart) removal."""
        if c.id in self._terminating:
            return
        self._terminating.add(c.id)
        self._mark_ours(c.id)

        def work() -> None:
            try:
                started = time.monotonic()
                if drain_ip:
                    self._await_out_of_rotation(c, drain_ip, min(grace, ROTATION_WAIT))
                if pre_stop is not None:
                    hook, spec, pod_ip, secrets = pre_stop
                    ok, message = run_probe({**hook, "timeoutSeconds": max(1, int(grace))},
                                            pod_ip, spec, c.id, self.runtime.exec)
                    message = mask_text(message, secrets)
                    log.info("pre_stop_hook_ran", pod=_pod_of(c), container=c.container,
                             ok=ok, message=message)
                left = max(0.0, grace - (time.monotonic() - started))
                self.runtime.stop(c.id, left)
                if remove:
                    self.runtime.remove(c.id)
                log.info("container_removed" if remove else "container_killed",
                         pod=_pod_of(c), container=c.container, why=why)
            except Exception as exc:   # the next pass retries
                log.warning("container_remove_failed", pod=_pod_of(c), container=c.container,
                            error=str(exc))
            finally:
                self._terminating.discard(c.id)
                if self.wake:
                    self.wake()
        self._pool.submit(work)

    def _await_out_of_rotation(self, c: ContainerInfo, ip: str, timeout: float) -> None:
        """Endpoints drop a deleted pod at once, but the proxy applies that a moment later;
        SIGTERM before then would refuse connections the proxy still sends there."""
        check = self.in_rotation
        if check is None:
            return
        deadline = time.monotonic() + timeout
        while check(ip):
            if time.monotonic() >= deadline:
                log.warning("pod_still_in_rotation", pod=_pod_of(c), ip=ip, waited=timeout)
                return
            time.sleep(0.05)

    def _probe(self, pod: dict, containers: list[ContainerInfo]) -> dict:
        """Start due probes (on the pool) and return containers whose liveness or startup
        probe has failed."""
        uid = pod["metadata"]["uid"]
        pod_ip = P.pod_ip(pod["spec"], containers)
        running = {c.container: c for c in containers if c.state == "running"}
        unhealthy = {}
        for spec in pod["spec"].get("containers", []):
            info = running.get(spec["name"])
            if info is None or info.id in self._terminating:
                continue
            self._prober.run_due(uid, pod_ip, spec, info.id, parse_ts(info.started_at, 0.0),
                                 redact=lambda text, pod=pod: mask_text(
                                     text, self._secret_values(pod)))
            result = self.probes.results(uid, spec["name"], spec)
            if not result.live:
                unhealthy[spec["name"]] = result
                self._event(pod, "Unhealthy", result.failure, spec["name"], warning=True)
            elif not result.ready and result.messages.get("readiness"):
                self._event(pod, "Unhealthy", "Readiness probe failed: "
                            f"{result.messages['readiness']}", spec["name"], warning=True)
        return unhealthy

    # -- events -----------------------------------------------------------------------
    def _event(self, pod: dict, reason: str, message: str, container: str = "",
               warning: bool = False) -> None:
        """An Event on the pod, from the kubelet (Secret values are masked on record)."""
        inits = {c["name"] for c in pod["spec"].get("initContainers") or []}
        field = (f"spec.{'initContainers' if container in inits else 'containers'}"
                 f"{{{container}}}") if container else ""
        spec = event_for(pod, reason, message, WARNING if warning else NORMAL, "kubelet", field)
        if self._held_events is not None:
            self._held_events.append(spec)
        else:
            self.events.record(spec)

    def _waiting_events(self, pod: dict, waiting: dict[str, tuple[str, str]]) -> None:
        """Back-off is an event on every pass it holds a container (counted, coalesced)."""
        meta = pod["metadata"]
        images = {c["name"]: c.get("image", "") for c in
                  [*(pod["spec"].get("initContainers") or []), *pod["spec"]["containers"]]}
        for name, (reason, message) in waiting.items():
            if reason == "CrashLoopBackOff":
                self._event(pod, "BackOff", f"Back-off restarting failed container {name} in "
                            f"pod {meta['name']}_{meta['namespace']}({meta['uid']})", name,
                            warning=True)
            elif reason == "ImagePullBackOff":
                self._event(pod, "BackOff", f'Back-off pulling image "{images.get(name)}"',
                            name)
            elif reason == "ErrImageNeverPull":
                self._event(pod, reason, message, name, warning=True)

    # -- pod volumes ------------------------------------------------------------------
    def _lookup(self, kind: str, ns: str, name: str) -> dict | None:
        return self.store.get(ObjectKey(kind, ns, name))

    def _secret_values(self, pod: dict) -> set[str]:
        """Values of the Secrets the pod reads: its probe output, hook output and status
        messages never carry them (its processes may print them)."""
        return values_used_by(pod, self._lookup)

    def _pod_dir(self, uid: str) -> Path:
        """Where a pod's files live; a uid that is not a plain name never becomes a path."""
        if not is_safe_uid(uid):
            raise RuntimeFailure(f"pod uid {uid[:80]!r} is not usable as a directory name",
                                 "CreateContainerConfigError")
        return self.state_dir / uid

    def _files_root(self, uid: str) -> Path:
        return self._pod_dir(uid) / "volumes"

    def _write_files(self, pod: dict) -> None:
        root = self._files_root(pod["metadata"]["uid"])
        for fs in file_sets(pod, self._lookup):
            if write_file_set(root, fs):
                log.info("volume_files_updated", pod=_name(pod), volume=fs.volume)

    def _refresh_files(self, pod: dict) -> None:
        """ConfigMap/Secret changes reach running containers in place, as in Kubernetes;
        a source that disappeared leaves the last files where they are."""
        try:
            self._write_files(pod)
        except Exception as exc:      # running containers keep the files they have
            log.debug("volume_files_not_refreshed", pod=_name(pod), error=_error_text(exc))

    def _resolv_conf(self, pod: dict) -> Path | None:
        """The pod's /etc/resolv.conf per dnsPolicy: ClusterFirst (default) points at the
        cluster DNS with the Kubernetes search path; Default keeps Docker's; None uses
        dnsConfig alone."""
        spec = pod["spec"]
        policy = spec.get("dnsPolicy", "ClusterFirst")
        config = spec.get("dnsConfig") or {}
        if policy == "Default" or (spec.get("hostNetwork")
                                   and policy != "ClusterFirstWithHostNet"):
            return None
        if policy == "None":
            lines = [f"nameserver {ns}" for ns in config.get("nameservers") or []]
            if config.get("searches"):
                lines.append("search " + " ".join(config["searches"]))
            text = "\n".join(lines) + "\n"
        elif self.dns_server:
            text = resolv_conf([self.dns_server, *(config.get("nameservers") or [])],
                               pod["metadata"]["namespace"])
        else:
            return None
        path = self._pod_dir(pod["metadata"]["uid"]) / "resolv.conf"
        path.parent.mkdir(parents=True, exist_ok=True)
        if not path.exists() or path.read_text() != text:
            path.write_text(text)
            path.chmod(0o644)       # the agent's umask is 077; any container user reads it
        return path

    def _release_pod(self, uid: str) -> None:
        """A pod is gone for good: its emptyDir volumes and projected files go too."""
        self.runtime.remove_pod_volumes(uid)
        if is_safe_uid(uid):
            shutil.rmtree(self.state_dir / uid, ignore_errors=True)

    # -- runtime drift ----------------------------------------------------------------
    _EXTERNAL_ACTIONS = {"kill", "stop", "destroy", "pause", "rename", "update"}

    def _mark_ours(self, container_id: str) -> None:
        with self._events_lock:
            now = self.clock()
            self._ours[container_id] = now
            if len(self._ours) > 1000:
                self._ours = {k: t for k, t in self._ours.items() if now - t < 120}

    # A container's state changed: a pass has something to do. Not create, attach or the
    # exec_* of every exec probe, which would each cost a pass listing every container.
    _WAKING_ACTIONS = {"start", "die", "oom", "destroy", "stop", "kill", "pause", "unpause",
                       "restart", "rename", "update"}

    def on_runtime_event(self, event: dict) -> bool:
        """From the Docker events thread: keep events on our containers we did not cause.
        True when the event calls for a pass."""
        action = str(event.get("Action", "")).split(":")[0]
        cid = event.get("Actor", {}).get("ID") or event.get("id", "")
        wakes = action in self._WAKING_ACTIONS
        if action not in self._EXTERNAL_ACTIONS:
            return wakes
        with self._events_lock:
            if cid in self._ours:
                return wakes
            attrs = event.get("Actor", {}).get("Attributes", {}) or {}
            self._external.append({"id": cid, "action": action, "attrs": attrs,
                                   "seen": self.clock()})
        if self.wake:   # report once the burst (kill, die, destroy) has settled
            timer = threading.Timer(EVENT_SETTLE + 0.05, self.wake)
            timer.daemon = True
            timer.start()
        return wakes

    def _take_external_events(self) -> list[dict]:
        """Events seen so far; this pass corrects what they broke, then reports them."""
        now = self.clock()
        with self._events_lock:
            settled = [e for e in self._external if now - e["seen"] >= EVENT_SETTLE]
            self._external = [e for e in self._external if now - e["seen"] < EVENT_SETTLE]
        events = settled
        last: dict[tuple[str, str], dict] = {}
        for ev in events:    # kill+die+destroy of one `docker rm -f` make one record
            attrs = ev["attrs"]
            last[(attrs.get(POD_UID, ""), attrs.get(CONTAINER, ""))] = ev
        return list(last.values())

    def _report_orphan(self, c: ContainerInfo) -> None:
        """A container of ours whose pod does not exist (the pods this agent deletes lose
        their containers first): extraneous runtime drift, pruned."""
        if self.on_drift is None or c.container == SANDBOX:
            return
        labels = c.labels
        pod = {"apiVersion": "v1", "kind": "Pod",
               "metadata": {"namespace": labels.get(POD_NAMESPACE, ""),
                            "name": labels.get(POD_NAME, ""), "uid": labels.get(POD_UID, "")}}
        self.on_drift({"pod": pod, "container": c.container, "container_id": c.id,
                       "type": "extraneous",
                       "fields": [{"path": f"status.containerStatuses[{c.container}].state",
                                   "desired": None, "live": c.state}],
                       "actor": "unknown", "action": "pruned"})

    def _report_runtime_drift(self, events: list[dict], pods: list[dict], by_uid: dict) -> None:
        if not events or self.on_drift is None:
            return
        pods_by_uid = {p["metadata"]["uid"]: p for p in pods}
        for ev in events:
            attrs = ev["attrs"]
            uid, cname = attrs.get(POD_UID, ""), attrs.get(CONTAINER, "")
            pod = pods_by_uid.get(uid)
            running = any(c.container == cname and c.state == "running"
                          for c in by_uid.get(uid, []))
            actor = "docker " + {"destroy": "rm", "kill": "kill"}.get(ev["action"], ev["action"])
            if attrs.get("signal"):
                actor += f" (signal {attrs['signal']})"
            live = {"kill": "killed", "stop": "stopped", "destroy": "removed",
                    "pause": "paused", "rename": f"renamed to {attrs.get('name', '?')}",
                    "update": "updated"}[ev["action"]]
            self.on_drift({
                "pod": pod, "container": cname, "container_id": ev["id"],
                "type": "missing" if ev["action"] == "destroy" else "modified",
                "fields": [{"path": f"status.containerStatuses[{cname}].state",
                            "desired": "running", "live": live}],
                "actor": actor,
                "action": "corrected" if running or pod is None else "reported"})

    # -- specs ------------------------------------------------------------------------
    def _labels(self, pod: dict, container: str, ip: str = "") -> dict[str, str]:
        meta = pod["metadata"]
        return {MANAGED: "true", INSTANCE: self.runtime.instance,
                POD_NAMESPACE: meta["namespace"], POD_NAME: meta["name"],
                POD_UID: meta["uid"], CONTAINER: container, **({POD_IP: ip} if ip else {})}

    def _docker_name(self, pod: dict, container: str) -> str:
        meta = pod["metadata"]
        return (f"gitops_{self.runtime.instance}_{meta['namespace']}_{meta['name']}_"
                f"{container}_{meta['uid'][:8]}")

    def _admit(self, pod: dict) -> None:
        """Pods reaching into the host are refused unless the operator allowed it."""
        if self.allow_host_access:
            return
        for path, message in host_access(pod.get("spec", {})):
            raise RuntimeFailure(f"spec.{path}: {message}", "CreateContainerConfigError")

    def _sandbox_spec(self, pod: dict, ip: str) -> SandboxSpec:
        self._admit(pod)
        return SandboxSpec(name=self._docker_name(pod, SANDBOX), hostname=_hostname(pod),
                           network=self.network, labels=self._labels(pod, SANDBOX, ip),
                           image=PAUSE_IMAGE, ip=ip,
                           host_network=bool(pod["spec"].get("hostNetwork")))

    def _with_pod_ip(self, pod: dict, sandbox_id: str, ip: str) -> dict:
        """The pod as its containers must see it: status.podIP as pinned for it. The
        store's copy lags a pass behind (empty for a new pod), so when env or files read
        it, the pinned address is used, or the sandbox's as the runtime tells."""
        if not uses_pod_ip(pod):
            return pod
        if not ip and sandbox_id:
            ip = self.runtime.sandbox_ip(sandbox_id)
        if ip == pod.get("status", {}).get("podIP"):
            return pod
        return {**pod, "status": {**pod.get("status", {}), "podIP": ip}}

    def _container_spec(self, pod: dict, container: dict, sandbox_id: str,
                        ip: str) -> ContainerSpec:
        """sandbox_id "" makes the container hold the pod's network itself, at ip."""
        self._admit(pod)
        pod = self._with_pod_ip(pod, sandbox_id, ip)
        links = {}
        if pod["spec"].get("enableServiceLinks", True):
            links = service_env(self.store.list("Service", pod["metadata"]["namespace"]))
        env = build_env(pod, container, self._lookup, links)
        self._write_files(pod)
        mounts = container_mounts(pod, container, self.runtime.instance,
                                  str(self._files_root(pod["metadata"]["uid"])), self._lookup,
                                  self.allow_host_access, env)
        if resolv := self._resolv_conf(pod):
            mounts.append(Mount("bind", "/etc/resolv.conf", str(resolv), True))
        sc = {**(pod["spec"].get("securityContext") or {}),
              **(container.get("securityContext") or {})}
        user = None
        if sc.get("runAsUser") is not None:
            user = str(sc["runAsUser"]) + (f":{sc['runAsGroup']}"
                                           if sc.get("runAsGroup") is not None else "")
        command = [expand(a, env) for a in container.get("command") or []] or None
        args = [expand(a, env) for a in container.get("args") or []] or None
        own = not sandbox_id
        labels = {**self._labels(pod, container["name"], ip if own else ""),
                  CONFIG_HASH: P.container_hash(container)}
        return ContainerSpec(
            name=self._docker_name(pod, container["name"]), image=container["image"],
            labels=labels, sandbox_id=sandbox_id, network=self.network if own else "",
            hostname=_hostname(pod) if own else "", ip=ip if own else "", entrypoint=command,
            cmd=args if args is not None else ([] if command else None), env=env,
            working_dir=container.get("workingDir"), tty=bool(container.get("tty")),
            stdin=bool(container.get("stdin")), stdin_once=bool(container.get("stdinOnce")),
            mounts=tuple(mounts),
            nano_cpus=P.limits(container)[0] or None, memory=P.limits(container)[1] or None,
            user=user, read_only=bool(sc.get("readOnlyRootFilesystem")),
            privileged=bool(sc.get("privileged")))

    def close(self) -> None:
        self._prober.close()
        self._pool.shutdown(wait=False, cancel_futures=True)


def _error_text(exc: Exception) -> str:
    return str(exc) or type(exc).__name__


def _pod_of(c: ContainerInfo) -> str:
    return f"{c.labels.get(POD_NAMESPACE, '')}/{c.labels.get(POD_NAME, '')}"


def _hostname(pod: dict) -> str:
    return (pod["spec"].get("hostname") or pod["metadata"]["name"])[:63]


def _name(pod: dict) -> str:
    return f"{pod['metadata']['namespace']}/{pod['metadata']['name']}"
