"""Running container probes, by the agent (never inside images): run_probe performs one;
ProbeWorker runs due probes on a small pool so a slow probe never blocks the agent loop,
and the next pass reads the verdicts from the ProbeTracker (gitops.agent.probes).

Deliberate differences from Kubernetes: httpGet/tcpSocket `host` may only name the pod IP
(the agent never probes other addresses); gRPC probes are not supported (they fail).
"""

from __future__ import annotations

import errno
import http.client
import json
import socket
import ssl
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import structlog

from gitops.agent.probes import FIELD, KINDS, MESSAGE_MAX, ProbeTracker, resolve_port, timing
from gitops.errors import TransientError

log = structlog.get_logger(component="probes")

# (container id, command, timeout seconds) -> (exit code, output); raises TimeoutError.
Exec = Callable[[str, list[str], float], tuple[int, bytes]]


def _target(action: dict, pod_ip: str, container: dict) -> tuple[str, int]:
    host = action.get("host") or pod_ip
    if not pod_ip:
        raise ValueError("the pod has no IP yet")
    if host != pod_ip:   # only addresses the agent created are ever probed
        raise ValueError(f"probe host {host} refused: only the pod IP {pod_ip} is probed")
    return host, resolve_port(action.get("port", ""), container)


def _dial_error(exc: OSError, host: str, port: int) -> str:
    """An error of connecting as Go's net package words it (the kubelet's messages)."""
    where = f"dial tcp {_hostport(host, port)}"
    if isinstance(exc, TimeoutError):
        return f"{where}: i/o timeout"
    reason = {errno.ECONNREFUSED: "connection refused", errno.EHOSTUNREACH: "no route to host",
              errno.ENETUNREACH: "network is unreachable",
              errno.ECONNRESET: "connection reset by peer"}.get(exc.errno or 0)
    return f"{where}: connect: {reason or exc.strerror or exc}"


def _hostport(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _http_get(action: dict, host: str, port: int, timeout: float) -> tuple[bool, str]:
    """GET, with failures worded as the kubelet's: `Get "http://10.0.0.5:4200/": dial tcp
    10.0.0.5:4200: connect: connection refused`."""
    path = action.get("path") or "/"
    path = path if path.startswith("/") else "/" + path
    scheme = action.get("scheme", "HTTP").lower()
    url = f"{scheme}://{_hostport(host, port)}{path}"
    try:
        return _http_request(action, host, port, path, timeout)
    except TimeoutError:
        return False, (f'Get "{url}": context deadline exceeded (Client.Timeout exceeded '
                       "while awaiting headers)")
    except ConnectionError as exc:
        if isinstance(exc, (ConnectionResetError, http.client.RemoteDisconnected)) and \
                getattr(exc, "_connected", True):
            return False, f'Get "{url}": EOF'
        return False, f'Get "{url}": {_dial_error(exc, host, port)}'
    except OSError as exc:
        return False, f'Get "{url}": {_dial_error(exc, host, port)}'


def _http_request(action: dict, host: str, port: int, path: str,
                  timeout: float) -> tuple[bool, str]:
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
        try:
            conn.connect()
        except ConnectionError as exc:
            exc._connected = False      # type: ignore[attr-defined]  # refused, not reset
            raise
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
            try:
                with socket.create_connection((host, port), timeout=timeout):
                    return True, ""
            except OSError as exc:
                return False, _dial_error(exc, host, port)
        if (action := probe.get("exec")) is not None:
            command = list(action.get("command") or [])
            try:
                code, out = exec_fn(container_id, command, timeout)
            except TimeoutError:
                return False, f"command {json.dumps(' '.join(command))} timed out"
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
