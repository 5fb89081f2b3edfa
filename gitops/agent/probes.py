"""Container probes with Kubernetes semantics: the state machine (pure, injected clock).

ProbeTracker decides when each probe is due and what its results add up to;
gitops.agent.prober performs them (the I/O).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field

KINDS = ("startup", "liveness", "readiness")
FIELD = {"startup": "startupProbe", "liveness": "livenessProbe", "readiness": "readinessProbe"}
TITLE = {"startup": "Startup", "liveness": "Liveness", "readiness": "Readiness"}
MESSAGE_MAX = 1024


@dataclass(frozen=True)
class Timing:
    initial_delay: float = 0.0
    period: float = 10.0
    timeout: float = 1.0
    success_threshold: int = 1
    failure_threshold: int = 3


def timing(probe: dict, kind: str) -> Timing:
    """Kubernetes defaults; zero or missing means default, as the API server defaults them."""
    return Timing(
        initial_delay=float(probe.get("initialDelaySeconds") or 0),
        period=float(probe.get("periodSeconds") or 10),
        timeout=float(probe.get("timeoutSeconds") or 1),
        # Liveness and startup must use 1 (the API server rejects anything else).
        success_threshold=int(probe.get("successThreshold") or 1) if kind == "readiness" else 1,
        failure_threshold=int(probe.get("failureThreshold") or 3))


@dataclass
class ProbeState:
    """One probe of one container run (pod uid, container name, kind)."""
    next_at: float                 # not due before this (start + initial delay, then period)
    successes: int = 0             # consecutive
    failures: int = 0              # consecutive
    in_flight: bool = False        # claimed by due(), not yet recorded
    message: str = ""


@dataclass
class _Container:
    started_at: float
    states: dict[str, ProbeState]
    timings: dict[str, Timing]
    started: bool                  # startup probe succeeded (or there is none)
    ready: bool                    # readiness verdict (True when there is no readiness probe)
    failure: str = ""              # why the container must be killed; sticky until reset
    failed_probe: str = ""         # liveness | startup: whose terminationGracePeriodSeconds


@dataclass(frozen=True)
class ProbeResults:
    started: bool = True
    live: bool = True              # False: kill the container (liveness or startup failed)
    ready: bool = True
    failure: str = ""              # e.g. "Liveness probe failed: HTTP probe failed ..."
    failed_probe: str = ""         # liveness | startup (the kill may use its grace period)
    messages: dict[str, str] = field(default_factory=dict)   # kind -> last message


class ProbeTracker:
    """Thread-safe: the agent loop asks due()/results(); pool threads call record()."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self.clock = clock
        self._c: dict[tuple[str, str], _Container] = {}
        self._lock = threading.RLock()

    def _register(self, pod_uid: str, container: dict, started_at: float) -> _Container:
        key = (pod_uid, container["name"])
        c = self._c.get(key)
        timings = {kind: timing(p, kind) for kind in KINDS if (p := container.get(FIELD[kind]))}
        if c is None or c.started_at != started_at:   # new or restarted container: start over
            states = {kind: ProbeState(next_at=started_at + t.initial_delay)
                      for kind, t in timings.items()}
            c = self._c[key] = _Container(started_at, states, timings,
                                          started="startup" not in states,
                                          ready="readiness" not in states)
        return c

    def due(self, pod_uid: str, container: dict, container_started_at: float,
            kind: str) -> bool:
        """True at most once per period: the caller must run the probe and record() it."""
        with self._lock:
            c = self._register(pod_uid, container, container_started_at)
            st = c.states.get(kind)
            if st is None or st.in_flight or c.failure:
                return False
            if kind == "startup" and c.started:       # runs until its first success only
                return False
            if kind != "startup" and not c.started:   # ...and gates the other two till then
                return False
            now = self.clock()
            if now < st.next_at:
                return False
            st.in_flight = True
            st.next_at = now + c.timings[kind].period
            return True

    def record(self, pod_uid: str, container_name: str, kind: str, success: bool,
               message: str, started_at: float | None = None) -> None:
        """A probe's outcome. Results nobody asked for (reset since, or from an earlier run
        of the container when started_at is given) are dropped."""
        with self._lock:
            c = self._c.get((pod_uid, container_name))
            st = c.states.get(kind) if c else None
            if st is None or not st.in_flight or (started_at is not None
                                                  and started_at != c.started_at):
                return
            st.in_flight = False
            st.message = message
            st.successes, st.failures = ((st.successes + 1, 0) if success
                                         else (0, st.failures + 1))
            t = c.timings[kind]
            if kind == "startup" and success:
                c.started = True
            elif kind == "readiness" and st.successes >= t.success_threshold:
                c.ready = True
            elif kind == "readiness" and st.failures >= t.failure_threshold:
                c.ready = False
            elif kind != "readiness" and st.failures >= t.failure_threshold:
                c.failure, c.failed_probe = f"{TITLE[kind]} probe failed: {message}", kind

    def results(self, pod_uid: str, container_name: str,
                container: dict | None = None) -> ProbeResults:
        """Verdicts for a running container. One not seen by due() yet (just started) is
        judged by its spec when given: not started/ready while a probe must pass first."""
        with self._lock:
            c = self._c.get((pod_uid, container_name))
            if c is None:
                spec = container or {}
                started = not spec.get(FIELD["startup"])
                return ProbeResults(started=started,
                                    ready=started and not spec.get(FIELD["readiness"]))
            return ProbeResults(started=c.started, live=not c.failure,
                                ready=c.started and c.ready, failure=c.failure,
                                failed_probe=c.failed_probe,
                                messages={k: s.message for k, s in c.states.items()})

    def abandon(self, pod_uid: str, container_name: str, kind: str) -> None:
        """A probe that could not run at all (the engine did not answer): it counts neither
        way and is due again next period."""
        with self._lock:
            c = self._c.get((pod_uid, container_name))
            st = c.states.get(kind) if c else None
            if st is not None:
                st.in_flight = False

    def reset(self, pod_uid: str, container_name: str) -> None:
        """The container (re)starts: the next due() starts its probes over."""
        with self._lock:
            self._c.pop((pod_uid, container_name), None)

    def forget(self, pod_uid: str) -> None:
        with self._lock:
            for key in [k for k in self._c if k[0] == pod_uid]:
                del self._c[key]


def resolve_port(port: int | str, container: dict) -> int:
    """A number, or the name of one of the container's ports (a numeric string works too,
    as in the kubelet)."""
    if isinstance(port, str):
        named = next((p.get("containerPort") for p in container.get("ports") or []
                      if p.get("name") == port), None)
        if named is None and not port.isdigit():
            raise ValueError(f"port {port!r} is not a named port of the container")
        port = named if named is not None else int(port)
    if not 0 < int(port) < 65536:
        raise ValueError(f"port {port} is out of range")
    return int(port)


