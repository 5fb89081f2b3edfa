"""compute_pod_actions: what the runtime must do to make one pod's containers right (pure).

Kubelet semantics: a sandbox per pod holds the network namespace and the app containers
join it. A pod of one container and no init containers needs nothing to share, so that
container holds the network itself: a pod start is then one container start, as a
`docker run` is (the pod's IP is pinned, so a restart keeps it). Restart policy and
back-off are the agent's (Docker's restart policy stays off): first restart at once,
then 10 s doubling to 300 s, reset after 10 minutes of running.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from gitops.admission.defaults import container_without_defaults
from gitops.agent.probes import FIELD, ProbeResults
from gitops.agent.runtime import CONFIG_HASH, SANDBOX, ContainerInfo
from gitops.model import quantity
from gitops.model.meta import is_deleting, stable_hash
from gitops.model.times import parse_ts

BACKOFF_INITIAL = 10.0
BACKOFF_MAX = 300.0
BACKOFF_RESET_AFTER = 600.0
PULL_BACKOFF_INITIAL = 10.0


@dataclass(frozen=True)
class PullFailure:
    at: float
    attempts: int
    reason: str
    message: str


# -- actions ---------------------------------------------------------------------------
@dataclass(frozen=True)
class RunSandbox:
    pass


@dataclass(frozen=True)
class Pull:
    image: str


@dataclass(frozen=True)
class RunContainer:
    container: dict          # the container spec from the pod
    holds_network: bool = False     # no sandbox: this container is the pod's network


@dataclass(frozen=True)
class Restart:
    container_id: str
    name: str
    backoff_reset: bool = False     # it ran 10 minutes: the back-off curve starts over


@dataclass(frozen=True)
class Stop:
    container_id: str
    grace: float
    pre_stop: dict | None = None     # lifecycle.preStop handler, run before SIGTERM
    container: dict | None = None


@dataclass(frozen=True)
class Remove:
    container_id: str
    why: str


@dataclass(frozen=True)
class Kill:
    """A failed liveness/startup probe: stop it; the restart policy brings it back."""
    container_id: str
    name: str
    grace: float
    message: str


@dataclass(frozen=True)
class Halt:
    """Stop a container for good and keep it (its exit code and termination message stay
    in the pod's status): a pod past its activeDeadlineSeconds, or the sidecars of a pod
    whose app containers have finished."""
    container_id: str
    name: str
    grace: float
    pre_stop: dict | None = None
    container: dict | None = None


@dataclass(frozen=True)
class Finalize:
    """Every container of a deleted pod is gone: the pod object can go."""


PodAction = RunSandbox | Pull | RunContainer | Restart | Stop | Remove | Kill | Halt | Finalize

DEADLINE_REASON = "DeadlineExceeded"
DEADLINE_MESSAGE = "Pod was active on the node longer than the specified deadline"


@dataclass
class PodPlan:
    actions: list[PodAction] = field(default_factory=list)
    waiting: dict[str, tuple[str, str]] = field(default_factory=dict)   # name -> reason, msg
    deadline_exceeded: bool = False      # activeDeadlineSeconds passed: the pod has Failed


def container_hash(container: dict) -> str:
    """Whether a running container still matches its spec; the API server's defaults
    (filled in when the pod is stored) change nothing."""
    return stable_hash(container_without_defaults(container), 12)


def pull_policy(container: dict) -> str:
    if policy := container.get("imagePullPolicy"):
        return policy
    image = container.get("image", "")
    tagged = ":" in image.rsplit("/", 1)[-1] or "@" in image
    return "IfNotPresent" if tagged and not image.endswith(":latest") else "Always"


def backoff_restarts(restarts: Mapping[str, int], base: Mapping[str, int]) -> dict[str, int]:
    """Restarts that count for the back-off: those since it was last reset."""
    return {name: count - base.get(name, 0) for name, count in restarts.items()}


def restart_delay(restarts: int, ran_for: float) -> float:
    if restarts == 0 or ran_for >= BACKOFF_RESET_AFTER:
        return 0.0
    return min(BACKOFF_MAX, BACKOFF_INITIAL * 2 ** (restarts - 1))


def should_restart(policy: str, exit_code: int) -> bool:
    return policy == "Always" or (policy == "OnFailure" and exit_code != 0)


def is_sidecar(container: dict) -> bool:
    """A native sidecar: an init container with restartPolicy Always. It starts in order
    with the init containers, then runs beside the app containers, restarted whenever it
    exits, and stops after them."""
    return container.get("restartPolicy") == "Always"


def sidecars(spec: dict) -> list[dict]:
    return [c for c in spec.get("initContainers") or [] if is_sidecar(c)]


def deadline_exceeded(pod: dict, now: float) -> bool:
    """activeDeadlineSeconds counted from status.startTime, as the kubelet counts it."""
    limit = pod.get("spec", {}).get("activeDeadlineSeconds")
    start = pod.get("status", {}).get("startTime")
    if not isinstance(limit, int) or isinstance(limit, bool) or not start:
        return False
    return now - parse_ts(start, now) >= limit


def needs_sandbox(spec: dict) -> bool:
    """Containers to share a network namespace (init containers run before the app and
    need it too); host-network pods keep the sandbox's simpler path."""
    return bool(spec.get("hostNetwork") or spec.get("initContainers")
                or len(spec.get("containers") or []) != 1)


def network_holder(spec: dict, containers: list[ContainerInfo]) -> ContainerInfo | None:
    """What holds the pod's network namespace and IP: its sandbox, or its one container."""
    sandbox = next((c for c in containers if c.container == SANDBOX), None)
    if sandbox is not None or needs_sandbox(spec):
        return sandbox
    name = spec["containers"][0]["name"]
    return next((c for c in containers if c.container == name), None)


def pod_ip(spec: dict, containers: list[ContainerInfo]) -> str:
    """The pod's address: its holder's while it runs; a container of its own between runs
    keeps its pinned one (a sandbox that stopped is replaced, and gets it again)."""
    holder = network_holder(spec, containers)
    if holder is None:
        return ""
    if holder.state == "running":
        return holder.ip
    return holder.pinned_ip if holder.container != SANDBOX else ""


def held_ips(pod: dict, containers: list[ContainerInfo]) -> list[str]:
    """The addresses a pod holds: a running holder its own, and, while the pod may run
    again, its pinned one (a finished pod's is free again, as Kubernetes frees it)."""
    done = pod.get("status", {}).get("phase") in ("Succeeded", "Failed")
    held = []
    for c in containers:
        if c.state == "running" and c.ip:
            held.append(c.ip)
        if c.pinned_ip and not done:
            held.append(c.pinned_ip)
    return held


def previous_ip(pod: dict, containers: list[ContainerInfo]) -> str:
    """The address a pod had: pinned on its containers, else the one in its status."""
    return (next((c.pinned_ip for c in containers if c.pinned_ip), "")
            or pod.get("status", {}).get("podIP", ""))


def compute_pod_actions(pod: dict, containers: list[ContainerInfo],
                        images: Mapping[str, bool], pull_failures: Mapping[str, PullFailure],
                        restarts: Mapping[str, int], now: float,
                        unhealthy: Mapping[str, ProbeResults] | None = None,
                        started: Mapping[str, bool] | None = None) -> PodPlan:
    """restarts: per container, restarts since its back-off was last reset
    (backoff_restarts); unhealthy: running containers whose liveness or startup probe
    has failed; started: running containers not started yet in Kubernetes' sense (a
    startup probe or a postStart hook still to pass) map to False: the init containers
    after a sidecar wait for it."""
    plan = PodPlan()
    sandbox = next((c for c in containers if c.container == SANDBOX), None)
    apps = [c for c in containers if c.container != SANDBOX]
    spec = pod.get("spec", {})

    if is_deleting(pod):
        _terminate(plan, spec, apps, Stop, remove_exited=True)
        if sandbox and not apps:
            plan.actions.append(Remove(sandbox.id, "pod deleted"))
        if not containers:
            plan.actions.append(Finalize())
        return plan
    if deadline_exceeded(pod, now):
        plan.deadline_exceeded = True
        _terminate(plan, spec, apps, Halt)
        return plan

    # A pod started with a sandbox keeps it (one made by an earlier version, say).
    sandboxed = sandbox is not None or needs_sandbox(spec)
    if sandboxed and (sandbox is None or sandbox.state != "running"):
        # A lost sandbox means a lost network namespace: restart the pod's containers in a
        # new one, as the kubelet does.
        for c in containers:
            plan.actions.append(Remove(c.id, "sandbox not running"))
        plan.actions.append(RunSandbox())
        apps = []

    policy = spec.get("restartPolicy", "Always")
    inits = {c["name"]: c for c in spec.get("initContainers") or []}
    wanted = {c["name"]: c for c in spec.get("containers", [])}
    by_name = {c.container: c for c in apps}
    for c in apps:
        if c.container not in wanted and c.container not in inits:
            plan.actions.append(Remove(c.id, "not in pod spec"))
    ctx = _Context(plan, images, pull_failures, restarts, now, unhealthy or {},
                   started or {}, spec)
    if not _initialized(ctx, inits, wanted, by_name, policy):
        return plan
    if _apps_finished(wanted, by_name, policy):
        # A Job's pod: its app containers are done, so are its sidecars (last first).
        _terminate(plan, spec, [c for c in apps if c.container in inits], Halt)
        return plan
    for name, container in inits.items():
        if is_sidecar(container):
            _keep_running(ctx, name, container, by_name.get(name), "Always")
    for name, container in wanted.items():
        _keep_running(ctx, name, container, by_name.get(name), policy,
                      holds_network=not sandboxed)
    return plan


@dataclass(frozen=True)
class _Context:
    plan: PodPlan
    images: Mapping[str, bool]
    pull_failures: Mapping[str, PullFailure]
    restarts: Mapping[str, int]
    now: float
    unhealthy: Mapping[str, ProbeResults]
    started: Mapping[str, bool]
    spec: dict


def _keep_running(ctx: _Context, name: str, container: dict, live: ContainerInfo | None,
                  policy: str, holds_network: bool = False) -> None:
    """Create, restart (per policy and back-off) or kill (a failed liveness probe) one
    container so it runs as the pod asks."""
    current = _current(ctx.plan, live, container)
    if current is None:
        _create(ctx.plan, container, ctx.images, ctx.pull_failures, ctx.now,
                holds_network=holds_network)
    elif current.state in ("exited", "dead", "created"):
        _maybe_restart(ctx.plan, current, policy, ctx.restarts.get(name, 0), ctx.now)
    elif current.state == "running" and name in ctx.unhealthy:
        result = ctx.unhealthy[name]
        probe = container.get(FIELD.get(result.failed_probe, ""), {}) or {}
        grace = probe.get("terminationGracePeriodSeconds",
                          ctx.spec.get("terminationGracePeriodSeconds", 30))
        ctx.plan.actions.append(Kill(current.id, name, float(grace), result.failure))


def _apps_finished(wanted: dict[str, dict], by_name: dict[str, ContainerInfo],
                   policy: str) -> bool:
    """Every app container has run and exited for good (restartPolicy Never/OnFailure)."""
    if policy == "Always" or not wanted:
        return False
    for name in wanted:
        c = by_name.get(name)
        if c is None or c.state not in ("exited", "dead") or should_restart(policy,
                                                                            c.exit_code):
            return False
    return True


def _terminate(plan: PodPlan, spec: dict, live: list[ContainerInfo], action: type,
               remove_exited: bool = False) -> None:
    """Stop (deletion) or halt (deadline, a finished Job's sidecars) a pod's containers:
    app containers first, with their preStop hooks; sidecars once every app container is
    gone, last one first, one at a time. Exited ones are removed when the pod goes."""
    grace = float(spec.get("terminationGracePeriodSeconds", 30))
    specs = {c["name"]: c for c in [*(spec.get("initContainers") or []),
                                    *spec.get("containers", [])]}
    order = [c["name"] for c in sidecars(spec)]
    mains = [c for c in live if c.container not in order]
    sides = sorted((c for c in live if c.container in order),
                   key=lambda c: -order.index(c.container))

    def one(c: ContainerInfo) -> bool:
        """True when it is stopping (still running)."""
        if c.state == "running":
            container = specs.get(c.container) or {}
            hook = (container.get("lifecycle") or {}).get("preStop")
            plan.actions.append(action(c.id, c.container, grace, hook, container)
                                if action is Halt else action(c.id, grace, hook, container))
            return True
        if remove_exited:
            plan.actions.append(Remove(c.id, "pod deleted"))
        return False
    stopping = [c for c in mains if one(c)]
    if stopping or (remove_exited and mains):
        return
    for c in sides:
        if one(c):
            return


def limits(container: dict) -> tuple[int, int]:
    """(nano CPUs, memory bytes) the engine must enforce; 0 means no limit."""
    lim = (container.get("resources") or {}).get("limits") or {}
    return (int(quantity.parse(lim["cpu"]) * 10**9) if "cpu" in lim else 0,
            int(quantity.parse(lim["memory"])) if "memory" in lim else 0)


def _current(plan: PodPlan, current: ContainerInfo | None,
             container: dict) -> ContainerInfo | None:
    """The live copy of a container, unless it no longer is what the pod asks for: its
    spec changed, or someone changed it behind the agent's back (`docker pause`,
    `docker update` of its limits). Then it is replaced."""
    if current is None:
        return None
    why = ""
    if current.labels.get(CONFIG_HASH) != container_hash(container):
        why = "spec changed"
    elif current.state == "paused":
        why = "paused outside the agent"
    elif current.nano_cpus is not None and current.memory is not None \
            and (current.nano_cpus, current.memory) != limits(container):
        why = "resource limits changed outside the agent"
    if why:
        plan.actions.append(Remove(current.id, why))
        return None
    return current


def _initialized(ctx: _Context, inits: dict[str, dict], wanted: dict[str, dict],
                 by_name: dict[str, ContainerInfo], policy: str) -> bool:
    """Init containers one at a time, in order, before any app container: each to
    success, or, for a sidecar, until it has started. Once an app container exists the
    pod counts as initialised (as in the kubelet)."""
    if not inits or any(name in by_name for name in wanted):
        return True
    for name, container in inits.items():
        current = _current(ctx.plan, by_name.get(name), container)
        if current is None:
            _create(ctx.plan, container, ctx.images, ctx.pull_failures, ctx.now)
            return False
        if is_sidecar(container):
            if current.state == "running" and name not in ctx.unhealthy:
                if ctx.started.get(name, True):
                    continue
                return False
            _keep_running(ctx, name, container, current, "Always")
            return False
        if current.state == "exited" and current.exit_code == 0:
            continue
        if current.state in ("exited", "dead", "created"):
            # Init containers are retried unless the pod never restarts anything.
            _maybe_restart(ctx.plan, current, "Never" if policy == "Never" else "OnFailure",
                           ctx.restarts.get(name, 0), ctx.now)
        return False
    return True


def _create(plan: PodPlan, container: dict, images: Mapping[str, bool],
            pull_failures: Mapping[str, PullFailure], now: float,
            holds_network: bool = False) -> None:
    name, image = container["name"], container.get("image", "")
    policy = pull_policy(container)
    present = images.get(image, False)
    if present and policy != "Always":
        plan.actions.append(RunContainer(container, holds_network))
        plan.waiting[name] = ("ContainerCreating", "")
        return
    if policy == "Never":
        plan.waiting[name] = ("ErrImageNeverPull",
                              f'image "{image}" is not present with pull policy of Never')
        return
    failure = pull_failures.get(image)
    if failure is not None:
        wait = min(BACKOFF_MAX, PULL_BACKOFF_INITIAL * 2 ** (failure.attempts - 1))
        if now - failure.at < wait:
            reason = "ErrImagePull" if now - failure.at < 2 else "ImagePullBackOff"
            plan.waiting[name] = (reason, f'Back-off pulling image "{image}": {failure.message}')
            return
    plan.actions.append(Pull(image))
    plan.actions.append(RunContainer(container, holds_network))
    plan.waiting[name] = ("ContainerCreating", "")


def _maybe_restart(plan: PodPlan, c: ContainerInfo, policy: str, restarts: int,
                   now: float) -> None:
    code = c.exit_code if c.state != "created" else 128
    if not should_restart(policy, code):
        return
    finished = parse_ts(c.finished_at, now)
    ran_for = finished - parse_ts(c.started_at, 0.0) if c.started_at else 0.0
    delay = restart_delay(restarts, ran_for)
    if now - finished >= delay:
        plan.actions.append(Restart(c.id, c.container, ran_for >= BACKOFF_RESET_AFTER))
    else:
        plan.waiting[c.container] = (
            "CrashLoopBackOff",
            f"back-off {int(delay)}s restarting failed container={c.container}")
