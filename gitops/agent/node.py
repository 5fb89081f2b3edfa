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
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import structlog

from gitops.agent import plan as P
from gitops.agent import podevents
from gitops.agent.drift import DriftRecord, DriftWatch, drift_records, orphan_record
from gitops.agent.executor import Executed, PodExecutor
from gitops.agent.failures import FailureBook
from gitops.agent.files import PodFiles
from gitops.agent.hooks import PostStart, PostStartHooks
from gitops.agent.messages import TerminationMessages
from gitops.agent.podevents import PodEvent
from gitops.agent.prober import ProbeWorker
from gitops.agent.probes import ProbeResults, ProbeTracker
from gitops.agent.restarts import RestartBook
from gitops.agent.serviceaccount import (ROOT_CA, RequestedTokens, TokenIssuer,
                                         TokenRequester, with_token_volume)
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
from gitops.model.secrets import mask_text, values_used_by
from gitops.model.times import parse_ts, rfc3339
from gitops.store.base import NotFound, Store
from gitops.store.events import EventRecorder

log = structlog.get_logger(component="agent")

# Pods a pass plans and acts on at once (the kubelet's pod workers): independent pods start
# side by side, each pod's own actions stay in order. Bounded: a 2-core engine gains
# nothing past about 4 concurrent starts, and each worker holds a connection to it.
POD_WORKERS = 8
STALE_AFTER = 1.0   # seconds a pod waited for a worker before its sync reads it afresh
FULL_PASS_EVERY = 0.25   # seconds: while pods are being synced, full passes at most this often


class NodeAgent:
    def __init__(self, store: Store, runtime: Runtime, node_name: str, network: str,
                 state_dir: Path, clock: Callable[[], float] = time.time,
                 allow_host_access: bool = False, pod_workers: int = POD_WORKERS) -> None:
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
        self._held = threading.local()      # a pass's or a pod sync's Events, recorded last
        self._busy: dict[str, Future] = {}     # pod uid -> its worker's sync under way
        self._busy_lock = threading.Lock()
        self._seen: set[str] = set()           # pod uids the last full pass saw
        self._last_full_pass = -1e9            # time.monotonic() of the last full pass
        self._wake_timer: threading.Timer | None = None
        self._runtime_down_since: float | None = None
        self._restarts = RestartBook()
        self._failures = FailureBook()
        self._ips = PinnedPodIps()
        self._drift = DriftWatch(clock)
        self._files = PodFiles(self.state_dir, self._lookup)
        self._terminator = Terminator(runtime, self._routes_to, self._wake_soon,
                                      self._drift.mark_ours)
        self._hooks = PostStartHooks(runtime, self._drift.mark_ours, self._post_start_failed,
                                     self._wake_soon)
        self._messages = TerminationMessages(self._files, runtime)
        self._workers = ThreadPoolExecutor(max_workers=max(1, pod_workers),
                                           thread_name_prefix="pod-worker")
        self._executor = PodExecutor(
            runtime=runtime, store=store, lookup=self._lookup, files=self._files,
            restarts=self._restarts, failures=self._failures, ips=self._ips,
            probes=self.probes, terminator=self._terminator, drift=self._drift,
            hooks=self._hooks, event=self._event, clock=clock)
        self._host_resolv = self._host_hosts = ""     # the node's own, read at setup
        self._tokens: TokenIssuer | None = None        # see enable_service_accounts
        self._ca_pem = ""

    # -- setup ------------------------------------------------------------------------
    def setup(self, subnet: str, mtu: int = 0) -> None:
        self._host_resolv = _read("/etc/resolv.conf")
        self._host_hosts = _read("/etc/hosts")
        self.runtime.ensure_pause_image()
        self.host_ip, self.subnet = self.runtime.ensure_network(self.network, subnet, mtu)
        self.register_node()

    def enable_service_accounts(self, ca_pem: str, key: bytes = b"",
                                request: TokenRequester | None = None) -> None:
        """Pods get their ServiceAccount's token and the API's CA, as in Kubernetes: signed
        with key (the server's own node), or asked of the API server (a cluster's node,
        which holds no key). Without this, no token can be made and none is mounted."""
        self._ca_pem = ca_pem
        self._tokens = RequestedTokens(request, self._lookup, self.clock) if request \
            else TokenIssuer(key, self._lookup, self.clock)
        self._files.tokens = self._tokens.token

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
    def sync_once(self, wait: bool = True) -> None:
        """One pass; while the engine does not answer, passes wait for it (pod status is
        left as last seen) and the first pass after it is back reconciles everything.
        wait=False (the agent's loop) returns once every pod is handed to its worker, so
        pods that arrive meanwhile start without waiting for the slowest of this pass."""
        try:
            self._sync_pass(wait)
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

    def _sync_pass(self, wait: bool) -> None:
        """Kubelet Events are recorded after the pod statuses: a started pod shows Running
        without waiting for its Pulled, Created and Started."""
        self._held.events = []
        try:
            self._reconcile_pods(wait)
        finally:
            self._flush_events()

    def _flush_events(self) -> None:
        held, self._held.events = getattr(self._held, "events", None) or [], None
        for spec in held:
            self.events.record(spec)

    def _reconcile_pods(self, wait: bool) -> None:
        # Pods being synced now are left to their workers: taken before the listing, so
        # a pod whose worker ends meanwhile is not judged by containers it was changing.
        with self._busy_lock:
            busy = set(self._busy)
        since = time.monotonic() - self._last_full_pass
        if not wait and busy and since < FULL_PASS_EVERY:
            # A burst of starts: every start and status write asks for a pass, and a full
            # one lists every container of the engine, slowing the starts down. New pods
            # have no container to look at: they go to their workers now, the rest waits
            # for the next full pass.
            self._dispatch_new(busy)
            self._wake_in(FULL_PASS_EVERY - since)
            return
        self._last_full_pass = time.monotonic()
        events = self._drift.take_settled()
        pods = self._own_pods()
        by_uid: dict[str, list[ContainerInfo]] = defaultdict(list)
        for c in self.runtime.list_containers():
            by_uid[c.pod_uid].append(c)
        known = {p["metadata"]["uid"] for p in pods}
        # A pod whose worker is still at it may hold an address its container does not
        # show yet: its pin stays.
        self._ips.reset(((ip, p["metadata"]["uid"]) for p in pods
                         for ip in P.held_ips(p, by_uid.get(p["metadata"]["uid"], []))),
                        keep=busy)
        for uid, orphans in by_uid.items():
            if uid not in known and uid not in busy:
                for c in orphans:
                    self._executor.remove(c, "orphan: its pod is gone")
                    self._report(orphan_record(c))
                self._executor.release(uid)
        self._seen = known
        started = [f for pod in pods if pod["metadata"]["uid"] not in busy
                   and (f := self._dispatch(pod, by_uid)) is not None]
        if events:
            for record in drift_records(events, pods, by_uid):
                self._report(record)
        self._forget(known | busy)
        if wait:
            self._await(started)

    def _dispatch_new(self, busy: set[str]) -> None:
        """Pods no pass has seen yet (created or bound since the last full one) to their
        workers: nothing was ever started for them, so no listing is needed."""
        for pod in self._own_pods():
            uid = pod["metadata"]["uid"]
            if uid not in self._seen and uid not in busy:
                self._seen.add(uid)
                self._dispatch(pod, {})

    def _wake_in(self, delay: float) -> None:
        """A pass after `delay` seconds (one timer at a time): a full pass put off during
        a burst still happens when nothing else asks for one."""
        with self._busy_lock:
            if self._wake_timer is not None or self.wake is None:
                return
            self._wake_timer = threading.Timer(max(0.0, delay), self._timer_fired)
            self._wake_timer.daemon = True
            self._wake_timer.start()

    def _timer_fired(self) -> None:
        with self._busy_lock:
            self._wake_timer = None
        self._wake_soon()

    def _dispatch(self, pod: dict, by_uid: dict[str, list[ContainerInfo]]) -> Future | None:
        """The pod to its worker (the kubelet's pod workers): pods are synced side by side,
        at most POD_WORKERS at once, and one pod by one worker at a time, its actions in
        order. None when its worker is still at an earlier sync (it asks for another pass
        when done)."""
        uid = pod["metadata"]["uid"]
        with self._busy_lock:
            if uid in self._busy:
                return None
            future = self._workers.submit(self._work, pod, by_uid.get(uid, []),
                                          time.monotonic())
            self._busy[uid] = future
        return future

    @staticmethod
    def _await(futures: list[Future]) -> None:
        """Until these syncs are done; an engine that stopped answering stops the pass."""
        unavailable: RuntimeUnavailable | None = None
        for future in futures:
            try:
                future.result()
            except RuntimeUnavailable as exc:
                unavailable = exc
        if unavailable is not None:
            raise unavailable

    def _work(self, pod: dict, containers: list[ContainerInfo], queued_at: float) -> None:
        """One pod's sync on a worker. One bad pod never stops the others: whatever goes
        wrong lands on that pod (status and a Warning event)."""
        uid = pod["metadata"]["uid"]
        self._held.events = []
        acted = False
        try:
            if time.monotonic() - queued_at > STALE_AFTER:   # waited behind a busy pool
                fresh = self.store.get(key_of(pod))
                if fresh is None or fresh["metadata"].get("uid") != uid:
                    return
                # Only its worker makes containers for a pod: none then means none now.
                pod = fresh
                if containers:
                    containers = self.runtime.list_containers(pod_uid=uid)
            try:
                acted = self._sync_pod(pod, containers)
            except RuntimeUnavailable:
                raise
            except Exception as exc:      # one bad pod never stops the others
                self._pod_failed(pod, exc)
                self._write_status_safely(pod, containers, {})
        finally:
            self._flush_events()
            with self._busy_lock:
                self._busy.pop(uid, None)
            if acted:             # what it started may call for more (the next init...)
                self._wake_soon()

    def _sync_pod(self, pod: dict, containers: list[ContainerInfo]) -> bool:
        """Plan and act for one pod, then write its status; True when it acted."""
        if self._tokens is not None:         # the pod as it runs: with its token volume
            pod = with_token_volume(pod, self._lookup)
        uid = pod["metadata"]["uid"]
        deleting = bool(pod["metadata"].get("deletionTimestamp"))
        book = self._restarts.seed(pod)
        unhealthy: dict[str, ProbeResults] = {}
        if containers and not deleting:
            self._files.refresh(pod)
            unhealthy = self._probe(pod, containers)
        now = self.clock()
        pod_plan = P.compute_pod_actions(
            pod, containers, self._images(pod), self._failures.pulls,
            book.backoff_counts(), now, unhealthy, self._started(pod, containers))
        if pod_plan.deadline_exceeded and pod.get("status", {}).get("phase") != "Failed":
            self._event(pod, podevents.deadline_exceeded())
        done = self._executor.execute(pod, pod_plan, containers, self._context())
        if done.acted:
            containers = self._after(uid, containers, done)
        if not deleting:
            self._write_status_safely(pod, containers, pod_plan.waiting)
        for event in podevents.waiting(pod, pod_plan.waiting):
            self._event(pod, event)
        self._failures.pod_synced(uid)
        return done.acted

    def _after(self, uid: str, before: list[ContainerInfo],
               done: Executed) -> list[ContainerInfo]:
        """The pod's containers once its plan ran: what it made or started inspected, what
        it removed dropped (a list call would scan every container of the engine)."""
        if done.relist:
            return self.runtime.list_containers(pod_uid=uid)
        kept = [c for c in before if c.id not in done.removed and c.id not in done.touched]
        fresh = [info for cid in sorted(done.touched)
                 if (info := self.runtime.inspect(cid)) is not None]
        return kept + fresh

    def _write_status_safely(self, pod: dict, containers: list[ContainerInfo],
                             plan_waiting: dict[str, tuple[str, str]]) -> None:
        if pod["metadata"].get("deletionTimestamp"):
            return
        try:
            self._write_status(pod, containers, plan_waiting)
        except RuntimeUnavailable:
            raise
        except Exception:
            log.exception("pod_status_failed", pod=_name(pod))

    def _context(self) -> NodeContext:
        """The node as specs see it now (the daemon sets DNS and the subnet later)."""
        return NodeContext(instance=self.runtime.instance, network=self.network,
                           allow_host_access=self.allow_host_access,
                           dns_server=self.dns_server, subnet=self.subnet,
                           host_resolv=self._host_resolv, host_hosts=self._host_hosts)

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
                  for c in _probed(pod["spec"])}
        book = self._restarts.seed(pod)
        now = self.clock()
        status = pod_status(pod, containers, pod_waiting, book.counts, book.last_states,
                            self.address, rfc3339(now), probes,
                            messages=self._messages.of(pod, containers),
                            starting={c.container for c in containers
                                      if c.state == "running" and self._hooks.pending(c.id)},
                            deadline_exceeded=P.deadline_exceeded(pod, now))
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
        if self._tokens is not None:
            self._tokens.forget(known)
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
        for spec in _probed(pod["spec"]):
            info = running.get(spec["name"])
            if info is None or self._terminator.busy(info.id) or self._hooks.pending(info.id):
                continue          # probes start once postStart is done, as the kubelet's
            self._prober.run_due(uid, pod_ip, spec, info.id, parse_ts(info.started_at, 0.0),
                                 redact=lambda text, pod=pod: mask_text(
                                     text, self._secret_values(pod)))
            result = self.probes.results(uid, spec["name"], spec)
            if not result.live:
                unhealthy[spec["name"]] = result
            if (event := podevents.unhealthy(spec["name"], result)) is not None:
                self._event(pod, event)
        return unhealthy

    def _started(self, pod: dict, containers: list[ContainerInfo]) -> dict[str, bool]:
        """Running containers not started yet in Kubernetes' sense: a startup probe or a
        postStart hook still to pass (init containers after a sidecar wait for it)."""
        uid = pod["metadata"]["uid"]
        specs = {c["name"]: c for c in _probed(pod["spec"])}
        return {c.container: (self.probes.results(uid, c.container, specs[c.container]).started
                              and not self._hooks.pending(c.id))
                for c in containers if c.state == "running" and c.container in specs}

    def _post_start_failed(self, hook: PostStart, message: str) -> None:
        """From the hooks' pool: the container was killed; its restart policy decides."""
        self._event(hook.pod, podevents.post_start_failed(hook.container["name"], message))

    # -- events and drift -------------------------------------------------------------
    def _event(self, pod: dict, event: PodEvent) -> None:
        """An Event on the pod, from the kubelet (Secret values are masked on record)."""
        spec = podevents.spec_for(pod, event)
        held = getattr(self._held, "events", None)
        if held is not None:
            held.append(spec)
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
        found = self.store.get(ObjectKey(kind, ns, name))
        if found is None and kind == "ConfigMap" and name == ROOT_CA and self._ca_pem:
            # Every namespace has the API's CA as kube-root-ca.crt, as in Kubernetes.
            return {"apiVersion": "v1", "kind": "ConfigMap",
                    "metadata": {"name": ROOT_CA, "namespace": ns},
                    "data": {"ca.crt": self._ca_pem}}
        return found

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
        self._workers.shutdown(wait=False, cancel_futures=True)
        self._hooks.close()
        self._prober.close()
        self._terminator.close()


def _probed(spec: dict) -> list[dict]:
    """Containers whose probes run: the app containers and the sidecars."""
    return [*P.sidecars(spec), *spec.get("containers", [])]


def _read(path: str) -> str:
    try:
        return Path(path).read_text(errors="replace")
    except OSError:
        return ""


def _name(pod: dict) -> str:
    return f"{pod['metadata']['namespace']}/{pod['metadata']['name']}"
