"""Lifecycle hooks: the handler runner (exec, httpGet, tcpSocket, sleep) and postStart on
a small pool of its own, so a slow hook holds up its container and never a pod worker.

A container is not Running until its postStart hook has completed (as Kubernetes
documents it): until then its status waits in ContainerCreating, its probes do not run,
and the init containers after a sidecar wait. A failed hook kills the container
(FailedPostStartHook); its restart policy brings it back with the usual back-off.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import structlog

from gitops.agent.prober import Exec, run_probe
from gitops.agent.probes import MESSAGE_MAX
from gitops.agent.runtime import ContainerInfo, Runtime
from gitops.model.secrets import mask_text

log = structlog.get_logger(component="agent")

HOOK_TIMEOUT = 120.0     # seconds a postStart hook may take before it counts as failed


def run_hook(handler: dict, pod_ip: str, container: dict, container_id: str,
             exec_fn: Exec, timeout: float) -> tuple[bool, str]:
    """One lifecycle handler to completion: (success, error as the kubelet words it)."""
    if (sleep := handler.get("sleep")) is not None:
        time.sleep(max(0.0, min(float(sleep.get("seconds") or 0), timeout)))
        return True, ""
    if (action := handler.get("exec")) is not None:
        command = [str(a) for a in action.get("command") or []]
        try:
            code, out = exec_fn(container_id, command, timeout)
        except TimeoutError:
            return False, f"command '{' '.join(command)}' timed out"
        text = out[-MESSAGE_MAX:].decode(errors="replace")
        if code == 0:
            return True, text
        return False, f"command '{' '.join(command)}' exited with {code}: {text}"
    return run_probe({**handler, "timeoutSeconds": max(1, int(timeout))}, pod_ip, container,
                     container_id, exec_fn)


def describe(handler: dict) -> str:
    """How the kubelet names a hook in its FailedPostStartHook event."""
    if (action := handler.get("exec")) is not None:
        return f"Exec lifecycle hook ([{' '.join(map(str, action.get('command') or []))}])"
    if (action := handler.get("httpGet")) is not None:
        return f"HTTP lifecycle hook ({action.get('path') or '/'})"
    if "sleep" in handler:
        return "Sleep lifecycle hook"
    return "lifecycle hook"


def pod_ref(pod: dict) -> str:
    """name_namespace(uid): how the kubelet names a pod in its messages."""
    meta = pod["metadata"]
    return f"{meta['name']}_{meta['namespace']}({meta['uid']})"


@dataclass(frozen=True)
class PostStart:
    """A container just started and its postStart handler."""
    pod: dict
    container: dict            # the container's spec (named ports)
    info: ContainerInfo
    pod_ip: str
    secrets: frozenset[str]    # values masked in the hook's output


class PostStartHooks:
    """on_failed(hook, message) is told (from the pool) when a hook failed, after the
    container was killed; wake asks the agent for a pass when a hook is done."""

    def __init__(self, runtime: Runtime, mark_ours: Callable[[str], None],
                 on_failed: Callable[[PostStart, str], None], wake: Callable[[], None],
                 workers: int = 4) -> None:
        self.runtime = runtime
        self.mark_ours = mark_ours
        self.on_failed = on_failed
        self.wake = wake
        self._pending: set[str] = set()            # container ids whose hook runs
        self._lock = threading.Lock()
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="post-start")

    def pending(self, container_id: str) -> bool:
        with self._lock:
            return container_id in self._pending

    def start(self, hook: PostStart) -> None:
        with self._lock:
            self._pending.add(hook.info.id)
        self._pool.submit(self._run, hook)

    def _run(self, hook: PostStart) -> None:
        handler = (hook.container.get("lifecycle") or {}).get("postStart") or {}
        try:
            ok, message = run_hook(handler, hook.pod_ip, hook.container, hook.info.id,
                                   self.runtime.exec, HOOK_TIMEOUT)
            message = mask_text(message, hook.secrets)
            log.info("post_start_hook_ran", pod=hook.info.pod_ref,
                     container=hook.info.container, ok=ok, message=message)
            if not ok:
                self.mark_ours(hook.info.id)
                self.runtime.stop(hook.info.id, 0)
                self.on_failed(hook, f"{describe(handler)} for Container "
                                     f'"{hook.info.container}" in Pod "{pod_ref(hook.pod)}" '
                                     f'failed - error: {message}, message: ""')
        except Exception as exc:     # the engine went away: the next start runs it again
            log.warning("post_start_hook_failed", pod=hook.info.pod_ref,
                        container=hook.info.container, error=str(exc))
        finally:
            with self._lock:
                self._pending.discard(hook.info.id)
            self.wake()

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
