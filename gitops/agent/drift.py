"""Runtime drift: what someone else did to our containers (`docker kill`, `docker rm`,
`docker pause`...), as drift records the daemon logs.

The Docker events thread feeds DriftWatch; the agent marks the containers it acts on, so
only the events it did not cause are kept. A pass corrects what they broke, then turns
them into records (drift_records), once their burst has settled.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypedDict

from gitops.agent.runtime import CONTAINER, POD_NAME, POD_NAMESPACE, POD_UID, SANDBOX, ContainerInfo

EVENT_SETTLE = 0.5   # seconds: one `docker rm -f` is kill, die, destroy; report it once

# What someone else may do to a container that the agent must report.
EXTERNAL_ACTIONS = frozenset({"kill", "stop", "destroy", "pause", "rename", "update"})
# A container's state changed: a pass has something to do. Not create, attach or the
# exec_* of every exec probe, which would each cost a pass listing every container.
WAKING_ACTIONS = frozenset({"start", "die", "oom", "destroy", "stop", "kill", "pause",
                            "unpause", "restart", "rename", "update"})
_OURS_KEPT = 1000      # marks kept before the old ones (2 minutes) are dropped
_OURS_TTL = 120.0


class DriftRecord(TypedDict):
    """What the daemon's on_drift callback receives."""
    pod: dict | None           # the pod (a stub of labels for an orphan); None: gone
    container: str
    container_id: str
    type: str                  # modified | missing | extraneous
    fields: list[dict[str, Any]]
    actor: str
    action: str                # corrected | reported | pruned


@dataclass(frozen=True)
class ExternalEvent:
    """A runtime event on one of our containers that the agent did not cause."""
    id: str
    action: str
    attrs: Mapping[str, str]
    seen: float

    @property
    def pod_uid(self) -> str:
        return self.attrs.get(POD_UID, "")

    @property
    def container(self) -> str:
        return self.attrs.get(CONTAINER, "")


@dataclass(frozen=True)
class Observed:
    wakes: bool          # the event calls for a pass
    kept: bool           # it is someone else's doing, kept for the drift report


class DriftWatch:
    """Thread-safe: the events thread observes, the agent's pass marks and takes."""

    def __init__(self, clock: Callable[[], float], settle: float = EVENT_SETTLE) -> None:
        self.clock = clock
        self.settle = settle
        self._ours: dict[str, float] = {}          # container id -> when the agent acted
        self._external: list[ExternalEvent] = []
        self._lock = threading.Lock()

    def mark_ours(self, container_id: str) -> None:
        """The agent is about to act on this container: its events are not drift."""
        with self._lock:
            now = self.clock()
            self._ours[container_id] = now
            if len(self._ours) > _OURS_KEPT:
                self._ours = {k: t for k, t in self._ours.items() if now - t < _OURS_TTL}

    def observe(self, event: dict) -> Observed:
        """One event from the Docker events stream."""
        action = str(event.get("Action", "")).split(":")[0]
        cid = event.get("Actor", {}).get("ID") or event.get("id", "")
        wakes = action in WAKING_ACTIONS
        if action not in EXTERNAL_ACTIONS:
            return Observed(wakes, False)
        with self._lock:
            if cid in self._ours:
                return Observed(wakes, False)
            attrs = event.get("Actor", {}).get("Attributes", {}) or {}
            self._external.append(ExternalEvent(cid, action, attrs, self.clock()))
        return Observed(wakes, True)

    def pending(self) -> list[ExternalEvent]:
        """Events kept and not taken yet."""
        with self._lock:
            return list(self._external)

    def take_settled(self) -> list[ExternalEvent]:
        """The events whose burst has settled, one per container (the last: kill, die and
        destroy of one `docker rm -f` make one record); the rest wait for a later pass."""
        now = self.clock()
        with self._lock:
            settled = [e for e in self._external if now - e.seen >= self.settle]
            self._external = [e for e in self._external if now - e.seen < self.settle]
        last: dict[tuple[str, str], ExternalEvent] = {}
        for ev in settled:
            last[(ev.pod_uid, ev.container)] = ev
        return list(last.values())


def orphan_record(c: ContainerInfo) -> DriftRecord | None:
    """A container of ours whose pod does not exist (the pods this agent deletes lose
    their containers first): extraneous runtime drift, pruned. None for a sandbox."""
    if c.container == SANDBOX:
        return None
    labels = c.labels
    pod = {"apiVersion": "v1", "kind": "Pod",
           "metadata": {"namespace": labels.get(POD_NAMESPACE, ""),
                        "name": labels.get(POD_NAME, ""), "uid": labels.get(POD_UID, "")}}
    return DriftRecord(pod=pod, container=c.container, container_id=c.id, type="extraneous",
                       fields=[{"path": f"status.containerStatuses[{c.container}].state",
                                "desired": None, "live": c.state}],
                       actor="unknown", action="pruned")


_ACTOR_VERB = {"destroy": "rm", "kill": "kill"}
_LIVE = {"kill": "killed", "stop": "stopped", "destroy": "removed", "pause": "paused",
         "update": "updated"}


def drift_records(events: list[ExternalEvent], pods: list[dict],
                  containers: Mapping[str, list[ContainerInfo]]) -> list[DriftRecord]:
    """One record per event, after the pass that corrected it: corrected when the
    container runs again (or its pod is gone), else reported. containers: by pod uid."""
    pods_by_uid = {p["metadata"]["uid"]: p for p in pods}
    out = []
    for ev in events:
        uid, cname = ev.pod_uid, ev.container
        pod = pods_by_uid.get(uid)
        running = any(c.container == cname and c.state == "running"
                      for c in containers.get(uid, []))
        actor = "docker " + _ACTOR_VERB.get(ev.action, ev.action)
        if ev.attrs.get("signal"):
            actor += f" (signal {ev.attrs['signal']})"
        live = (f"renamed to {ev.attrs.get('name', '?')}" if ev.action == "rename"
                else _LIVE[ev.action])
        out.append(DriftRecord(
            pod=pod, container=cname, container_id=ev.id,
            type="missing" if ev.action == "destroy" else "modified",
            fields=[{"path": f"status.containerStatuses[{cname}].state",
                     "desired": "running", "live": live}],
            actor=actor, action="corrected" if running or pod is None else "reported"))
    return out
