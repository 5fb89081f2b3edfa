"""The kubelet's Events on a pod, worded as Kubernetes words them (pure)."""

from __future__ import annotations

from dataclasses import dataclass

from gitops.agent.plan import DEADLINE_MESSAGE, DEADLINE_REASON
from gitops.agent.probes import ProbeResults
from gitops.model.events import NORMAL, WARNING, EventSpec, event_for

COMPONENT = "kubelet"


@dataclass(frozen=True)
class PodEvent:
    reason: str
    message: str
    container: str = ""        # the container it is about ("": the pod)
    warning: bool = False


def spec_for(pod: dict, event: PodEvent) -> EventSpec:
    """The Event to record, its fieldPath naming the container (Secret values are masked
    when it is recorded)."""
    name = event.container
    inits = {c["name"] for c in pod["spec"].get("initContainers") or []}
    field = (f"spec.{'initContainers' if name in inits else 'containers'}{{{name}}}"
             if name else "")
    return event_for(pod, event.reason, event.message, WARNING if event.warning else NORMAL,
                     COMPONENT, field)


def failed(message: str, container: str = "") -> PodEvent:
    return PodEvent("Failed", f"Error: {message}", container, warning=True)


def pulling(image: str) -> PodEvent:
    return PodEvent("Pulling", f'Pulling image "{image}"')


def pulled(image: str) -> PodEvent:
    return PodEvent("Pulled", f'Successfully pulled image "{image}"')


def pull_failed(image: str, message: str) -> PodEvent:
    return PodEvent("Failed", f'Failed to pull image "{image}": {message}', warning=True)


def started(container: dict, pulled_now: bool) -> list[PodEvent]:
    """A new container runs (its image said present unless this pass pulled it)."""
    name = container["name"]
    present = [] if pulled_now else [
        PodEvent("Pulled", f'Container image "{container["image"]}" already present on '
                 "machine", name)]
    return [*present, *restarted(name)]


def restarted(name: str) -> list[PodEvent]:
    return [PodEvent("Created", f"Created container {name}", name),
            PodEvent("Started", f"Started container {name}", name)]


def stopping(name: str) -> PodEvent:
    return PodEvent("Killing", f"Stopping container {name}", name)


def post_start_failed(name: str, message: str) -> PodEvent:
    return PodEvent("FailedPostStartHook", message, name, warning=True)


def deadline_exceeded() -> PodEvent:
    return PodEvent(DEADLINE_REASON, DEADLINE_MESSAGE, warning=True)


def killed_by_probe(name: str, message: str) -> PodEvent:
    """message: the probe's failure, which starts with the probe's kind."""
    probe = message.split(" ", 1)[0].lower()
    return PodEvent("Killing", f"Container {name} failed {probe} probe, will be restarted",
                    name)


def unhealthy(name: str, result: ProbeResults) -> PodEvent | None:
    """A failed liveness or startup probe, else a failed readiness probe; None if none."""
    if not result.live:
        return PodEvent("Unhealthy", result.failure, name, warning=True)
    if not result.ready and result.messages.get("readiness"):
        return PodEvent("Unhealthy", f"Readiness probe failed: {result.messages['readiness']}",
                        name, warning=True)
    return None


def waiting(pod: dict, reasons: dict[str, tuple[str, str]]) -> list[PodEvent]:
    """Back-off is an event on every pass it holds a container (counted, coalesced)."""
    meta, spec = pod["metadata"], pod["spec"]
    images = {c["name"]: c.get("image", "")
              for c in [*(spec.get("initContainers") or []), *spec["containers"]]}
    out = []
    for name, (reason, message) in reasons.items():
        if reason == "CrashLoopBackOff":
            out.append(PodEvent("BackOff", f"Back-off restarting failed container {name} in "
                                f"pod {meta['name']}_{meta['namespace']}({meta['uid']})",
                                name, warning=True))
        elif reason == "ImagePullBackOff":
            out.append(PodEvent("BackOff", f'Back-off pulling image "{images.get(name)}"',
                                name))
        elif reason == "ErrImageNeverPull":
            out.append(PodEvent(reason, message, name, warning=True))
    return out
