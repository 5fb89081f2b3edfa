"""Why an object is not healthy, in words a CI log reader acts on (pure).

`up --wait` calls `explain` for every object still unhealthy at its deadline: a workload is
explained through its pods (found by owner references, as its controller owns them: a
Helm test pod that carries the app's labels is not the Deployment's), a pod through its
conditions and container states. The caller adds the last log lines of crash-looping
containers, since reading logs is I/O.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from gitops.model.meta import controller_of

IMAGE_MISSING, CRASH_LOOP, NOT_READY, UNSCHEDULABLE, FAILED, CONFIG, WAITING = (
    "image-missing", "crash-loop", "readiness-failing", "unschedulable", "failed",
    "config-error", "progressing")
_IMAGE_REASONS = {"ErrImagePull", "ImagePullBackOff", "ErrImageNeverPull", "InvalidImageName"}
_CONFIG_REASONS = {"CreateContainerConfigError", "CreateContainerError", "RunContainerError",
                   "CreatePodSandboxError"}
_WORKLOADS = {"Deployment", "ReplicaSet", "StatefulSet", "DaemonSet", "Job"}


@dataclass(frozen=True)
class Finding:
    reason: str                  # one of the constants above
    message: str
    pod: str = ""
    container: str = ""
    namespace: str = ""
    logs: tuple[str, ...] = field(default=())

    def as_dict(self) -> dict:
        out = {"reason": self.reason, "message": self.message}
        for key in ("pod", "container"):
            if value := getattr(self, key):
                out[key] = value
        if self.logs:
            out["logs"] = list(self.logs)
        return out


def pods_of(obj: dict, pods: list[dict], replicasets: list[dict] = ()) -> list[dict]:
    """The pods a workload owns through owner references (a Deployment's through its
    ReplicaSets, given in `replicasets`); a Pod: itself."""
    meta = obj.get("metadata", {})
    if obj.get("kind") == "Pod":
        return [p for p in pods if p["metadata"].get("name") == meta.get("name")
                and p["metadata"].get("namespace") == meta.get("namespace")]
    if obj.get("kind") not in _WORKLOADS:
        return []
    owners = {meta.get("uid")}
    if obj.get("kind") == "Deployment":
        owners = {rs["metadata"].get("uid") for rs in replicasets
                  if (controller_of(rs) or {}).get("uid") in owners}
    return [p for p in pods if (controller_of(p) or {}).get("uid") in owners - {None}]


def explain_pod(pod: dict) -> list[Finding]:
    meta, spec, st = pod["metadata"], pod.get("spec", {}), pod.get("status", {})
    name, ns = meta.get("name", ""), meta.get("namespace", "")
    conditions = {c.get("type"): c for c in st.get("conditions") or []}
    scheduled = conditions.get("PodScheduled", {})
    if scheduled.get("status") == "False":
        return [Finding(UNSCHEDULABLE, scheduled.get("message") or "no node fits the pod",
                        name, namespace=ns)]
    found: list[Finding] = []
    containers = {c["name"]: c for c in [*(spec.get("initContainers") or []),
                                         *(spec.get("containers") or [])]}
    for cs in [*(st.get("initContainerStatuses") or []), *(st.get("containerStatuses") or [])]:
        cname = cs.get("name", "")
        state = cs.get("state") or {}
        waiting = state.get("waiting") or {}
        reason, msg = waiting.get("reason", ""), waiting.get("message", "")
        if reason in _IMAGE_REASONS:
            found.append(Finding(IMAGE_MISSING, f"image {cs.get('image') or '?'} is not on the "
                                 f"node ({reason}); build it locally, no registry is pulled"
                                 + (f": {msg}" if msg else ""), name, cname, ns))
        elif reason == "CrashLoopBackOff":
            last = (cs.get("lastState") or {}).get("terminated") or {}
            exit_info = (f"last exit code {last.get('exitCode')}"
                         + (f" ({last['reason']})" if last.get("reason") else "")) if last else ""
            found.append(Finding(CRASH_LOOP, f"crash loop, {cs.get('restartCount', 0)} "
                                 f"restart(s)" + (f", {exit_info}" if exit_info else ""),
                                 name, cname, ns))
        elif reason in _CONFIG_REASONS:
            found.append(Finding(CONFIG, f"{reason}" + (f": {msg}" if msg else ""),
                                 name, cname, ns))
        elif "running" in state and not cs.get("ready") and cname in (
                c["name"] for c in spec.get("containers") or []):
            probe = containers.get(cname, {}).get("readinessProbe")
            found.append(Finding(NOT_READY, "running but not ready: readiness probe "
                                 + (describe_probe(probe) if probe else "not passed yet")
                                 + " failing", name, cname, ns))
        elif (term := state.get("terminated")) and term.get("exitCode", 0) != 0 \
                and st.get("phase") == "Failed":
            found.append(Finding(FAILED, f"exited with code {term.get('exitCode')}"
                                 + (f" ({term['reason']})" if term.get("reason") else ""),
                                 name, cname, ns))
    if not found and st.get("phase") == "Failed":
        found.append(Finding(FAILED, "pod failed", name, namespace=ns))
    if not found and st.get("phase", "Pending") == "Pending":
        found.append(Finding(WAITING, "pending: " + _pending_detail(st), name, namespace=ns))
    return found


def _pending_detail(st: dict) -> str:
    for cs in [*(st.get("initContainerStatuses") or []), *(st.get("containerStatuses") or [])]:
        reason = ((cs.get("state") or {}).get("waiting") or {}).get("reason")
        if reason:
            return f"{cs.get('name')}: {reason}"
    return "not started yet"


def describe_probe(probe: dict) -> str:
    if get := probe.get("httpGet"):
        return f"httpGet {get.get('path', '/')} port {get.get('port')}"
    if tcp := probe.get("tcpSocket"):
        return f"tcpSocket port {tcp.get('port')}"
    if ex := probe.get("exec"):
        return "exec " + " ".join(str(a) for a in ex.get("command") or [])
    if grpc := probe.get("grpc"):
        return f"grpc port {grpc.get('port')}"
    return "(no handler)"


def explain(entry: dict, obj: dict | None, pods: list[dict],
            replicasets: list[dict] = ()) -> list[Finding]:
    """Findings for one status entry (kind, name, health, message) that is not Healthy."""
    if obj is None:
        return [Finding(WAITING, f"not created yet ({entry.get('message') or 'missing'})")]
    owned = pods_of(obj, pods, replicasets)
    found = [f for p in owned for f in explain_pod(p)]
    if found:
        return found
    if obj.get("kind") in _WORKLOADS and not owned:
        return [Finding(WAITING, f"{entry.get('health')}: no pods yet"
                        + (f" ({entry['message']})" if entry.get("message") else ""))]
    return [Finding(WAITING, f"{entry.get('health')}: {entry.get('message') or 'waiting'}")]
