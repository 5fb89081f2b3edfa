"""pod_status: the Pod's status as Kubernetes would show it, from runtime facts (pure)."""

from __future__ import annotations

import copy
from collections.abc import Collection, Mapping

from gitops.agent.plan import (
    DEADLINE_MESSAGE,
    DEADLINE_REASON,
    is_sidecar,
    network_holder,
    pod_ip,
    should_restart,
)
from gitops.agent.probes import ProbeResults
from gitops.agent.runtime import SANDBOX, ContainerInfo
from gitops.model.secrets import mask_text
from gitops.model.version import kube_version


def terminated_state(c: ContainerInfo, message: str = "") -> dict:
    """message: what the container wrote to its terminationMessagePath (or the end of its
    log, per terminationMessagePolicy); the engine's error otherwise."""
    reason = "OOMKilled" if c.oom_killed else ("Completed" if c.exit_code == 0 else "Error")
    out = {"exitCode": c.exit_code, "reason": reason, "startedAt": c.started_at or None,
           "finishedAt": c.finished_at or None, "containerID": f"docker://{c.id}"}
    if message or c.error:
        out["message"] = message or c.error
    return {k: v for k, v in out.items() if v is not None}


def container_state(c: ContainerInfo | None, waiting: tuple[str, str] | None,
                    message: str = "", starting: bool = False) -> dict:
    """starting: its postStart hook is still running, so it is not Running yet."""
    if c is not None and c.state == "running" and not starting:
        return {"running": {"startedAt": c.started_at}}
    if waiting is not None:
        reason, text = waiting
        return {"waiting": {"reason": reason, **({"message": text} if text else {})}}
    if c is None or starting:
        return {"waiting": {"reason": "ContainerCreating"}}
    if c.state in ("exited", "dead") or (c.state == "created" and c.error):
        return {"terminated": terminated_state(c, message)}
    return {"waiting": {"reason": "ContainerCreating"}}


def pod_status(pod: dict, containers: list[ContainerInfo],
               waiting: Mapping[str, tuple[str, str]], restarts: Mapping[str, int],
               last_states: Mapping[str, dict], host_ip: str, now: str = "",
               probes: Mapping[str, ProbeResults] | None = None, *,
               messages: Mapping[str, str] | None = None,
               starting: Collection[str] = (), deadline_exceeded: bool = False) -> dict:
    """messages: termination messages of finished containers; starting: containers whose
    postStart hook runs; deadline_exceeded: activeDeadlineSeconds passed (Failed)."""
    spec = pod.get("spec", {})
    by_name = {c.container: c for c in containers if c.container != SANDBOX}
    holder = network_holder(spec, containers)

    def entry(container: dict, init: bool) -> dict:
        name = container["name"]
        c = by_name.get(name)
        hooked = name in starting
        state = container_state(c, waiting.get(name), (messages or {}).get(name, ""), hooked)
        probed = not init or is_sidecar(container)
        done = init and not probed and state.get("terminated", {}).get("exitCode", 1) == 0
        running = "running" in state
        probe = (probes or {}).get(name, ProbeResults()) if probed else ProbeResults()
        out = {"name": name, "image": container.get("image", ""),
               "imageID": c.image_id if c else "",
               "ready": done or (running and probed and probe.ready),
               "started": running and probe.started,
               "restartCount": restarts.get(name, 0), "state": state,
               "lastState": last_states.get(name, {})}
        if c is not None:
            out["containerID"] = f"docker://{c.id}"
        return out

    policy = spec.get("restartPolicy", "Always")
    statuses = [entry(c, False) for c in spec.get("containers", [])]
    inits = spec.get("initContainers") or []
    init_statuses = [entry(c, True) for c in inits]
    side = [s for c, s in zip(inits, init_statuses) if is_sidecar(c)]
    initialized = (all(s["ready"] if not is_sidecar(c) else s["started"]
                       for c, s in zip(inits, init_statuses))
                   or any(c in by_name for c in (x["name"] for x in statuses)))
    if initialized:
        phase = _phase(policy, statuses)
        if phase in ("Succeeded", "Failed") and any("running" in s["state"] for s in side):
            phase = "Running"          # a finished Job's sidecars are still stopping
    else:
        failed = policy == "Never" and any(
            s["state"].get("terminated", {}).get("exitCode", 0) != 0
            for c, s in zip(inits, init_statuses) if not is_sidecar(c))
        phase = "Failed" if failed else "Pending"
    if deadline_exceeded:
        phase = "Failed"
    ready = initialized and bool(statuses) and all(s["ready"] for s in statuses) \
        and all(s["ready"] for s in side) and phase == "Running"
    previous = pod.get("status", {})
    status = {
        "phase": phase,
        "conditions": _with_transitions(previous.get("conditions") or [], [
            {"type": "PodScheduled", "status": "True"},
            {"type": "Initialized", "status": str(initialized)},
            {"type": "ContainersReady", "status": str(ready)},
            {"type": "Ready", "status": str(ready)},
        ], now),
        "hostIP": host_ip,
        "podIP": pod_ip(spec, containers),
        # When the node took the pod on (activeDeadlineSeconds counts from it).
        "startTime": previous.get("startTime") or (holder.started_at if holder else None)
        or now or None,
        "initContainerStatuses": init_statuses or None,
        "containerStatuses": statuses,
        # Set by the API server on create; a node's status write (a PUT of the whole
        # status, over the API in a cluster) must not drop it.
        "qosClass": previous.get("qosClass"),
    }
    if deadline_exceeded:
        status["reason"], status["message"] = DEADLINE_REASON, DEADLINE_MESSAGE
    if status["podIP"]:
        status["podIPs"] = [{"ip": status["podIP"]}]
    return {k: v for k, v in status.items() if v not in (None, "")}


def _with_transitions(before: list[dict], conditions: list[dict], now: str) -> list[dict]:
    """lastTransitionTime changes only when a condition's status does (minReadySeconds
    and rollouts count from it)."""
    if not now:
        return conditions
    old = {c.get("type"): c for c in before}
    for cond in conditions:
        prev = old.get(cond["type"])
        same = prev is not None and prev.get("status") == cond["status"]
        cond["lastTransitionTime"] = prev.get("lastTransitionTime", now) if same else now
    return conditions


def _phase(policy: str, statuses: list[dict]) -> str:
    states = [s["state"] for s in statuses]
    if not states or any("waiting" in st for st in states):
        # A container waiting to be restarted keeps the pod Running, as in Kubernetes.
        if any("waiting" in st and st["waiting"]["reason"] == "CrashLoopBackOff"
               for st in states):
            return "Running"
        return "Pending"
    if any("running" in st for st in states):
        return "Running"
    codes = [st["terminated"]["exitCode"] for st in states]
    if any(should_restart(policy, code) for code in codes):
        return "Running"
    return "Succeeded" if all(code == 0 for code in codes) else "Failed"


def _state_messages(status: dict):
    """(state dict, key) of every container state in a pod status: current and last."""
    for cs in [*(status.get("initContainerStatuses") or []),
               *(status.get("containerStatuses") or [])]:
        for states in (cs.get("state"), cs.get("lastState")):
            for detail in (states or {}).values():
                if isinstance(detail, dict) and detail.get("message"):
                    yield detail


def has_messages(status: dict) -> bool:
    return next(_state_messages(status), None) is not None


def mask_messages(status: dict, secrets: set[str]) -> dict:
    """The status with secret values masked in container state messages (an engine error
    can quote a command line that $(VAR) expansion filled with a Secret's value)."""
    status = copy.deepcopy(status)
    for detail in _state_messages(status):
        detail["message"] = mask_text(detail["message"], secrets)
    return status


def runtime_down_status(status: dict, now: str) -> dict:
    """A pod's status once the engine stopped answering: nothing can be said to serve,
    so it is not Ready (as Kubernetes marks the pods of a NotReady node) and its Service
    endpoints drop it. Phase and container states stay as last seen."""
    out = {**status, "containerStatuses": [{**c, "ready": False}
                                           for c in status.get("containerStatuses") or []]}
    down = {"ContainersReady", "Ready"}
    out["conditions"] = [
        {**c, "status": "False", "reason": "NodeNotReady", "lastTransitionTime": now}
        if c.get("type") in down and c.get("status") != "False" else c
        for c in status.get("conditions") or []]
    return out


def node_ready_condition(ready: bool, message: str, now: str) -> dict:
    return {"type": "Ready", "status": str(ready),
            "reason": "KubeletReady" if ready else "KubeletNotReady",
            "message": message, "lastHeartbeatTime": now, "lastTransitionTime": now}


def _arch(info: dict) -> str:
    arch = info.get("Architecture", "")
    return {"x86_64": "amd64", "aarch64": "arm64"}.get(arch, arch)


def node_labels(info: dict, node_name: str) -> dict[str, str]:
    """The kubelet's own labels on its Node (charts select on them), from the engine's
    info."""
    arch = _arch(info)
    return {"kubernetes.io/hostname": node_name,
            "kubernetes.io/os": info.get("OSType") or "linux",
            **({"kubernetes.io/arch": arch} if arch else {})}


def node_status(info: dict, node_name: str, host_ip: str, now: str,
                kubelet_port: int = 0) -> dict:
    """The Node's status as the agent posts it when it registers: capacity (all of it
    allocatable), Ready, addresses and the engine's facts."""
    capacity = {"cpu": str(info.get("NCPU", 1)),
                "memory": f"{int(info.get('MemTotal', 0)) // 1024}Ki",
                "pods": "110"}
    return {"capacity": capacity,
            "conditions": [node_ready_condition(True, "the agent is posting ready status",
                                                now)],
            "addresses": [{"type": "InternalIP", "address": host_ip},
                          {"type": "Hostname", "address": node_name}],
            "nodeInfo": {"kubeletVersion": kube_version()["gitVersion"],
                         "kubeProxyVersion": kube_version()["gitVersion"],
                         # The engine's id stands for the machine's (one engine per host).
                         "machineID": str(info.get("ID", "")).replace(":", "")[:32],
                         "systemUUID": str(info.get("ID", "")), "bootID": "",
                         "containerRuntimeVersion": f"docker://{info.get('ServerVersion', '')}",
                         "operatingSystem": info.get("OSType", "linux"),
                         "architecture": _arch(info),
                         "kernelVersion": info.get("KernelVersion", ""),
                         "osImage": info.get("OperatingSystem", "")},
            "allocatable": dict(capacity),      # what the scheduler may place
            # Where the server reaches this node's logs/exec/port-forward (a cluster's).
            **({"daemonEndpoints": {"kubeletEndpoint": {"Port": kubelet_port}}}
               if kubelet_port else {})}
