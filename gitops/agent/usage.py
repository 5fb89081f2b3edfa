"""What the node's pods use: CPU (cores) and memory (working set bytes) per container, from
the engine's counters, for the HorizontalPodAutoscaler (the node's metrics-server).

Every `interval` seconds each running container of a pod is read once (Docker's stats,
one shot). CPU is the rate between two readings; a container's first reading gives its
average since it started, so a new pod has a figure from its first sample. Memory is the
working set as the kubelet reports it: usage without inactive file pages.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import structlog

from gitops.agent.runtime import SANDBOX, ContainerInfo
from gitops.errors import GitopsError
from gitops.model.times import parse_rfc3339

log = structlog.get_logger(component="usage")

INTERVAL = 10.0          # seconds between readings (the kubelet's housekeeping period)


@dataclass(frozen=True)
class Reading:
    cpu_ns: int          # cumulative CPU time
    memory: int          # working set bytes
    at: float            # wall clock of the reading


def reading(stats: Mapping, at: float) -> Reading | None:
    """A Docker stats document as a Reading (None when it has no counters: stopped)."""
    cpu = ((stats.get("cpu_stats") or {}).get("cpu_usage") or {}).get("total_usage")
    mem = stats.get("memory_stats") or {}
    if cpu is None or "usage" not in mem:
        return None
    extra = mem.get("stats") or {}
    inactive = extra.get("total_inactive_file", extra.get("inactive_file", 0))
    return Reading(int(cpu), max(0, int(mem["usage"]) - int(inactive)), at)


def cpu_cores(previous: Reading | None, current: Reading, started: float | None) -> float:
    """Cores used between two readings; from the start time on a first reading."""
    if previous is not None and current.at > previous.at and current.cpu_ns >= previous.cpu_ns:
        return (current.cpu_ns - previous.cpu_ns) / 1e9 / (current.at - previous.at)
    if started is not None and current.at > started:
        return current.cpu_ns / 1e9 / (current.at - started)
    return 0.0


class UsageSampler:
    def __init__(self, containers: Callable[[], list[ContainerInfo]],
                 stats: Callable[[str], dict | None], interval: float = INTERVAL,
                 clock: Callable[[], float] = time.time,
                 wanted: Callable[[], set[str] | None] = lambda: None) -> None:
        """wanted: the pod uids worth reading (those an autoscaler reads); None: all.
        Nothing is read from the engine while it is empty."""
        self._containers, self._stats, self._wanted = containers, stats, wanted
        self.interval, self._clock = interval, clock
        self._last: dict[str, Reading] = {}                   # container id -> reading
        self._pods: dict[str, dict[str, dict[str, float]]] = {}
        self._lock = threading.Lock()

    def pod_usage(self, pod_uid: str) -> dict[str, dict[str, float]] | None:
        """{container: {"cpu": cores, "memory": bytes}} of a pod's running containers, as
        of the last sample; None before the first. Thread-safe."""
        with self._lock:
            return self._pods.get(pod_uid)

    def sample(self) -> None:
        pods: dict[str, dict[str, dict[str, float]]] = {}
        last: dict[str, Reading] = {}
        wanted = self._wanted()
        for info in self._containers() if wanted is None or wanted else ():
            if info.state != "running" or not info.pod_uid or info.container in ("", SANDBOX):
                continue
            if wanted is not None and info.pod_uid not in wanted:
                continue
            try:
                raw = self._stats(info.id)
            except GitopsError as exc:
                log.debug("usage_read_failed", container=info.name, error=str(exc))
                continue
            now = self._clock()
            current = reading(raw, now) if raw else None
            if current is None:
                continue
            last[info.id] = current
            cores = cpu_cores(self._last.get(info.id), current, parse_rfc3339(info.started_at))
            pods.setdefault(info.pod_uid, {})[info.container] = {
                "cpu": cores, "memory": float(current.memory)}
        self._last = last
        with self._lock:
            self._pods = pods

    def run(self, stopping: Callable[[], bool]) -> None:
        """Sample every interval until stopping() (the worker thread's body)."""
        while not stopping():
            try:
                self.sample()
            except Exception as exc:   # noqa: BLE001 - the engine away: the next round retries
                log.warning("usage_sample_failed", error=str(exc))
            deadline = time.monotonic() + self.interval
            while not stopping() and time.monotonic() < deadline:
                time.sleep(0.2)
