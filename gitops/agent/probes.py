"""Container probes with Kubernetes semantics, run by the agent (never inside images).

ProbeTracker is the state machine (no I/O, injected clock): when each probe is due and what
its results add up to. run_probe performs one probe. ProbeWorker runs due probes on a small
pool so a slow probe never blocks the agent loop; the next pass reads the verdicts.

Deliberate differences from Kubernetes: httpGet/tcpSocket `host` may only name the pod IP
(the agent never probes other addresses); gRPC probes are not supported (they fail).
"""

from __future__ import annotations

import http.client
import socket
import ssl
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import structlog

from gitops.errors import TransientError

log = structlog.get_logger(component="probes")

# (container id, command, timeout seconds) -> (exit code, output); raises TimeoutError.
Exec = Callable[[str, list[str], float], tuple[int, bytes]]

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


# -- executors (I/O) ---------------------------------------------------------------------
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


def _target(action: dict, pod_ip: str, container: dict) -> tuple[str, int]:
    host = action.get("host") or pod_ip
    if not pod_ip:
        raise ValueError("the pod has no IP yet")
    if host != pod_ip:   # only addresses the agent created are ever probed
        raise ValueError(f"probe host {host} refused: only the pod IP {pod_ip} is probed")
    return host, resolve_port(action.get("port", ""), container)


def _http_get(action: dict, host: str, port: int, timeout: float) -> tuple[bool, str]:
    path = action.get("path") or "/"
    path = path if path.startswith("/") else "/" + path
    headers = {"User-Agent": "kube-probe/gitops", "Accept": "*/*"}
    headers.update({h["name"]: h.get("value", "") for h in action.get("httpHeaders") or []})
    if action.get("scheme", "HTTP").upper() == "HTTPS":
        ctx = ssl.create_default_context()
        ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE   # kubelet skips verify
        conn: http.client.HTTPConnection = http.client.HTTPSConnection(
            host, port, timeout=timeout, context=ctx)
    else:
        conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        conn.request("GET", path, headers=headers)
        resp = conn.getresponse()
        body = resp.read(MESSAGE_MAX).decode(errors="replace")
    finally:
        conn.close()
    # Redirects are not followed (they could lead elsewhere); 3xx counts as success anyway.
    if 200 <= resp.status < 400:
        return True, ""
    return False, f"HTTP probe failed with statuscode: {resp.status}" + (
        f" body: {body.strip()}" if body.strip() else "")


def run_probe(probe: dict, pod_ip: str, container: dict, container_id: str,
              exec_fn: Exec) -> tuple[bool, str]:
    """Run one probe to completion within its timeoutSeconds: (success, message).
    Any error is a failed probe with a message saying why, except TransientError (the
    runtime could not be asked), which is raised: that is no verdict at all."""
    timeout = timing(probe, "readiness").timeout
    try:
        if (action := probe.get("httpGet")) is not None:
            host, port = _target(action, pod_ip, container)
            return _http_get(action, host, port, timeout)
        if (action := probe.get("tcpSocket")) is not None:
            host, port = _target(action, pod_ip, container)
            with socket.create_connection((host, port), timeout=timeout):
                return True, ""
        if (action := probe.get("exec")) is not None:
            code, out = exec_fn(container_id, list(action.get("command") or []), timeout)
            text = out[-MESSAGE_MAX:].decode(errors="replace").strip()
            if code == 0:
                return True, text
            return False, text or f"command exited with code {code}"
        if "grpc" in probe:
            return False, "grpc probes are not supported"
        return False, "probe has no handler (httpGet, tcpSocket or exec)"
    except TransientError:   # the engine did not answer: no verdict on the container
        raise
    except TimeoutError:   # socket.timeout too
        return False, f"probe timed out after {timeout:g}s"
    except Exception as exc:   # noqa: BLE001 - a probe failing is data, not a crash
        return False, f"{type(exc).__name__}: {exc}"


# -- running probes off the agent loop ---------------------------------------------------
class ProbeWorker:
    """Submits due probes to a small pool; results go into the tracker and the agent loop
    is woken when a verdict changes, so it acts on the next pass."""

    def __init__(self, tracker: ProbeTracker, exec_fn: Exec, workers: int = 4,
                 wake: Callable[[], None] | None = None) -> None:
        self.tracker = tracker
        self.exec_fn = exec_fn
        self.wake = wake
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="probe")

    def run_due(self, pod_uid: str, pod_ip: str, container: dict, container_id: str,
                started_at: float, redact: Callable[[str], str] | None = None) -> None:
        """redact: applied to a probe's output before it is kept, logged or shown (the
        caller masks the values of the Secrets the pod reads)."""
        for kind in KINDS:
            if self.tracker.due(pod_uid, container, started_at, kind):
                self._pool.submit(self._run, pod_uid, pod_ip, container, container_id,
                                  started_at, kind, redact)

    def _run(self, pod_uid: str, pod_ip: str, container: dict, container_id: str,
             started_at: float, kind: str, redact: Callable[[str], str] | None = None) -> None:
        name = container["name"]
        try:
            ok, message = run_probe(container[FIELD[kind]], pod_ip, container, container_id,
                                    self.exec_fn)
            if message and redact is not None:
                message = redact(message)
        except TransientError as exc:
            log.debug("probe_not_run", pod_uid=pod_uid, container=name, kind=kind,
                      error=str(exc))
            self.tracker.abandon(pod_uid, name, kind)
            return
        if not ok:
            log.debug("probe_failed", pod_uid=pod_uid, container=name, kind=kind,
                      message=message)
        before = self.tracker.results(pod_uid, name)
        self.tracker.record(pod_uid, name, kind, ok, message, started_at=started_at)
        after = self.tracker.results(pod_uid, name)
        if (before.started, before.live, before.ready) != (after.started, after.live,
                                                           after.ready):
            log.info("probe_verdict_changed", pod_uid=pod_uid, container=name, kind=kind,
                     started=after.started, live=after.live, ready=after.ready,
                     message=message)
            if self.wake:
                self.wake()

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
