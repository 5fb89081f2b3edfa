"""The node agent loop: pods bound to this node ⟷ containers on the runtime.

Each pass reads the store and the runtime, asks plan.compute_pod_actions what to do per
pod, has the executor perform it, and writes pod status back. The pieces it wires:
specs (what to create, pure), restarts and failures (the books a pod's status is built
from), drift (what someone else did to our containers), the terminator (graceful stops
on a pool, so one pod's grace period never stalls the others) and the prober.
"""

from __future__ import annotations

import threading
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

import structlog

from gitops.agent import plan as P
from gitops.agent import podevents
from gitops.agent.drift import DriftRecord, DriftWatch, drift_records, orphan_record
from gitops.agent.executor import PodExecutor
from gitops.agent.failures import FailureBook
from gitops.agent.files import PodFiles
from gitops.agent.podevents import PodEvent
from gitops.agent.prober import ProbeWorker
from gitops.agent.probes import ProbeResults, ProbeTracker
from gitops.agent.restarts import RestartBook
from gitops.agent.runtime import ContainerInfo, Runtime, RuntimeFailure, RuntimeUnavailable
from gitops.agent.specs import NodeContext
from gitops.agent.status import (
    has_messages,
    mask_messages,
    node_labels,
    node_ready_condition,
    node_status,
    pod_status,
    runtime_down_status,
)
from gitops.agent.terminator import Terminator
from gitops.model import ObjectKey, key_of
from gitops.model.addresses import PinnedPodIps
from gitops.model.events import EventSpec
from gitops.model.secrets import mask_text, values_used_by
from gitops.model.times import parse_ts, rfc3339
from gitops.store.base import NotFound, Store
from gitops.store.events import EventRecorder

log = structlog.get_logger(component="agent")


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
        self.host_ip = ""         # the pod network's gateway on this host
        self.node_ip = ""         # the node's address for other hosts (a cluster's node)
        self.kubelet_port = 0     # its endpoint for the server (logs, exec, port-forward)
        self.subnet = ""          # the pod network's, once set up: pod IPs are pinned in it
        self.wake: Callable[[], None] | None = None   # asks the loop for a pass soon
        # Whether the Service proxy or DNS still sends new traffic to a pod IP (set by the
        # daemon). A deleted pod is signalled only once it is out of rotation.
        self.in_rotation: Callable[[str], bool] | None = None
        # Runtime drift records go there (set by the daemon).
        self.on_drift: Callable[[DriftRecord], None] | None = None
        # Probes run on their own pool; a pass reads the verdicts (never waits for them).
        self.probes = ProbeTracker(clock)
        self._prober = ProbeWorker(self.probes, runtime.exec, workers=8,
                                   wake=self._wake_soon)
        self.events = EventRecorder(store, clock, host=node_name)    # kubelet-style Events
        self._held_events: list[EventSpec] | None = None   # a pass's, recorded at its end
        self._runtime_down_since: float | None = None
        self._restarts = RestartBook()
        self._failures = FailureBook()
        self._ips = PinnedPodIps()
        self._drift = DriftWatch(clock)
        self._files = PodFiles(self.state_dir, self._lookup)
        self._terminator = Terminator(runtime, self._routes_to, self._wake_soon,
                                      self._drift.mark_ours)
        self._executor = PodExecutor(
            runtime=runtime, store=store, lookup=self._lookup, files=self._files,
            restarts=self._restarts, failures=self._failures, ips=self._ips,
            probes=self.probes, terminator=self._terminator, drift=self._drift,
            event=self._event, clock=clock)

    # -- setup ------------------------------------------------------------------------
    def setup(self, subnet: str) -> None:
        self.runtime.ensure_pause_image()
        self.host_ip, self.subnet = self.runtime.ensure_network(self.network, subnet)
        self.register_node()

    def register_node(self) -> None:
        info = self.runtime.ping()
        labels = node_labels(info, self.node_name)
        key = ObjectKey("Node", "", self.node_name)
        existing = self.store.get(key)
        if existing is None:
            self.store.create({"apiVersion": "v1", "kind": "Node",
                               "metadata": {"name": self.node_name, "labels": labels},
                               "spec": {}})
        elif missing := {k: v for k, v in labels.items()       # labels added later are kept
                         if k not in (existing["metadata"].get("labels") or {})}:
            existing["metadata"]["labels"] = {**(existing["metadata"].get("labels") or {}),
                                              **missing}
            self.store.update(existing)
        self.store.update_status(key, node_status(info, self.node_name, self.address,
                                                  rfc3339(self.clock()), self.kubelet_port))

    @property
    def address(self) -> str:
        """The node's InternalIP and its pods' hostIP."""
        return self.node_ip or self.host_ip

    @property
    def runtime_up(self) -> bool:
        return self._runtime_down_since is None

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
        events = self._drift.take_settled()
        pods = self._own_pods()
        by_uid: dict[str, list[ContainerInfo]] = defaultdict(list)
        for c in self.runtime.list_containers():
            by_uid[c.pod_uid].append(c)
        known = {p["metadata"]["uid"] for p in pods}
        self._ips.reset((ip, p["metadata"]["uid"]) for p in pods
                        for ip in P.held_ips(p, by_uid.get(p["metadata"]["uid"], [])))
        for uid, orphans in by_uid.items():
            if uid not in known:
                for c in orphans:
                    self._executor.remove(c, "orphan: its pod is gone")
                    self._report(orphan_record(c))
                self._executor.release(uid)
        written: set[str] = set()
        waiting: dict[str, dict[str, tuple[str, str]]] = {}    # this pass's plans', per pod
        for pod in pods:
            uid = pod["metadata"]["uid"]
            try:
                if self._sync_pod(pod, by_uid, waiting):
                    written.add(uid)
            except RuntimeUnavailable:
                raise
            except Exception as exc:      # one bad pod never stops the pass for the others
                self._pod_failed(pod, exc)
        for pod in pods:
            uid = pod["metadata"]["uid"]
            if uid not in written and not pod["metadata"].get("deletionTimestamp"):
                try:
                    self._write_status(pod, by_uid.get(uid, []), waiting.get(uid, {}))
                except RuntimeUnavailable:
                    raise
                except Exception:
                    log.exception("pod_status_failed", pod=_name(pod))
        if events:
            for record in drift_records(events, pods, by_uid):
                self._report(record)
        self._forget(known)

    def _sync_pod(self, pod: dict, by_uid: dict[str, list[ContainerInfo]],
                  waiting: dict[str, dict[str, tuple[str, str]]]) -> bool:
        """Plan and act for one pod; True when its status was written."""
        uid = pod["metadata"]["uid"]
        deleting = bool(pod["metadata"].get("deletionTimestamp"))
        book = self._restarts.seed(pod)
        unhealthy = {}
        if by_uid.get(uid) and not deleting:
            self._files.refresh(pod)
            unhealthy = self._probe(pod, by_uid[uid])
        pod_plan = P.compute_pod_actions(
            pod, by_uid.get(uid, []), self._images(pod), self._failures.pulls,
            book.backoff_counts(), self.clock(), unhealthy)
        waiting[uid] = pod_plan.waiting
        written = False
        if self._executor.execute(pod, pod_plan, by_uid.get(uid, []), self._context()):
            # Its status at once: a pod started early in a long pass (a scale-up of
            # many) shows Running without waiting for the others to start.
            by_uid[uid] = self.runtime.list_containers(pod_uid=uid)
            if not deleting:
                self._write_status(pod, by_uid[uid], pod_plan.waiting)
                written = True
        for event in podevents.waiting(pod, pod_plan.waiting):
            self._event(pod, event)
        self._failures.pod_synced(uid)
        return written

    def _context(self) -> NodeContext:
        """The node as specs see it now (the daemon sets DNS and the subnet later)."""
        return NodeContext(instance=self.runtime.instance, network=self.network,
                           allow_host_access=self.allow_host_access,
                           dns_server=self.dns_server, subnet=self.subnet)

    def _pod_failed(self, pod: dict, exc: Exception) -> None:
        """An error nobody planned for lands on the pod (status and a Warning event), as
        the kubelet's CreateContainerConfigError does; the next pass tries again."""
        uid, message = pod["metadata"]["uid"], str(exc) or type(exc).__name__
        log.warning("pod_sync_failed", pod=_name(pod), error=message,
                    error_type=type(exc).__name__)
        self._failures.pod_failed(uid, "CreateContainerConfigError", message)
        try:
            self._event(pod, podevents.failed(message))
        except Exception:             # a pod too broken to name in an Event: the log has it
            log.debug("pod_event_failed", pod=_name(pod))

    def _write_status(self, pod: dict, containers: list[ContainerInfo],
                      plan_waiting: dict[str, tuple[str, str]]) -> None:
        uid = pod["metadata"]["uid"]
        pod_waiting = self._failures.waiting(pod, plan_waiting)
        probes = {c["name"]: self.probes.results(uid, c["name"], c)
                  for c in pod["spec"].get("containers", [])}
        book = self._restarts.of(uid)
        status = pod_status(pod, containers, pod_waiting, book.counts, book.last_states,
                            self.address, rfc3339(self.clock()), probes)
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
        return self._restarts.previous_run_since(uid, name, started_at)

    def _forget(self, known: set[str]) -> None:
        for uid in self._restarts.forget(known):
            self.probes.forget(uid)
        self._failures.forget(known)

    def _images(self, pod: dict) -> dict[str, bool]:
        out = {}
        spec = pod.get("spec", {})
        for c in [*(spec.get("initContainers") or []), *spec.get("containers", [])]:
            try:
                out[c["image"]] = self.runtime.image_present(c["image"])
            except RuntimeFailure:
                out[c["image"]] = False
        return out

    def _probe(self, pod: dict, containers: list[ContainerInfo]) -> dict[str, ProbeResults]:
        """Start due probes (on the pool) and return containers whose liveness or startup
        probe has failed."""
        uid = pod["metadata"]["uid"]
        pod_ip = P.pod_ip(pod["spec"], containers)
        running = {c.container: c for c in containers if c.state == "running"}
        unhealthy = {}
        for spec in pod["spec"].get("containers", []):
            info = running.get(spec["name"])
            if info is None or self._terminator.busy(info.id):
                continue
            self._prober.run_due(uid, pod_ip, spec, info.id, parse_ts(info.started_at, 0.0),
                                 redact=lambda text, pod=pod: mask_text(
                                     text, self._secret_values(pod)))
            result = self.probes.results(uid, spec["name"], spec)
            if not result.live:
                unhealthy[spec["name"]] = result
            if (event := podevents.unhealthy(spec["name"], result)) is not None:
                self._event(pod, event)
        return unhealthy

    # -- events and drift -------------------------------------------------------------
    def _event(self, pod: dict, event: PodEvent) -> None:
        """An Event on the pod, from the kubelet (Secret values are masked on record)."""
        spec = podevents.spec_for(pod, event)
        if self._held_events is not None:
            self._held_events.append(spec)
        else:
            self.events.record(spec)

    def on_runtime_event(self, event: dict) -> bool:
        """From the Docker events thread: keep events on our containers we did not cause.
        True when the event calls for a pass."""
        seen = self._drift.observe(event)
        if seen.kept and self.wake:   # report once the burst (kill, die, destroy) has settled
            timer = threading.Timer(self._drift.settle + 0.05, self.wake)
            timer.daemon = True
            timer.start()
        return seen.wakes

    def _report(self, record: DriftRecord | None) -> None:
        if record is not None and self.on_drift is not None:
            self.on_drift(record)

    # -- what the parts ask of the node -----------------------------------------------
    def _lookup(self, kind: str, ns: str, name: str) -> dict | None:
        return self.store.get(ObjectKey(kind, ns, name))

    def _secret_values(self, pod: dict) -> set[str]:
        """Values of the Secrets the pod reads: its probe output, hook output and status
        messages never carry them (its processes may print them)."""
        return values_used_by(pod, self._lookup)

    def _wake_soon(self) -> None:
        if self.wake:
            self.wake()

    def _routes_to(self, ip: str) -> bool:
        return self.in_rotation is not None and self.in_rotation(ip)

    def close(self) -> None:
        self._prober.close()
        self._terminator.close()


def _name(pod: dict) -> str:
    return f"{pod['metadata']['namespace']}/{pod['metadata']['name']}"
