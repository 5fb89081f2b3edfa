"""Graceful container stops, on a small pool so one pod's grace period never stalls the
others: out of Service rotation first, the preStop hook, SIGTERM, SIGKILL at the end of
the grace period, then removal."""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import structlog

from gitops.agent.hooks import run_hook
from gitops.agent.runtime import ContainerInfo, Runtime
from gitops.model.secrets import mask_text

log = structlog.get_logger(component="agent")

ROTATION_WAIT = 5.0  # seconds at most a deleted pod waits to leave Service rotation before SIGTERM


@dataclass(frozen=True)
class PreStop:
    """A lifecycle.preStop handler and what it runs against."""
    hook: dict
    container: dict            # the container's spec (named ports)
    pod_ip: str                # the address the engine gave the pod
    secrets: frozenset[str]    # values masked in the hook's output


class Terminator:
    """in_rotation(ip): whether a Service still sends new connections to ip; wake: asks
    the agent for a pass once a stop is done; mark_ours: told before the agent acts on a
    container (its events are not drift)."""

    def __init__(self, runtime: Runtime, in_rotation: Callable[[str], bool],
                 wake: Callable[[], None], mark_ours: Callable[[str], None],
                 workers: int = 8) -> None:
        self.runtime = runtime
        self.in_rotation = in_rotation
        self.wake = wake
        self.mark_ours = mark_ours
        self._busy: set[str] = set()
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="terminate")

    def busy(self, container_id: str) -> bool:
        """A stop of this container is under way."""
        return container_id in self._busy

    def terminate(self, c: ContainerInfo, grace: float, why: str, remove: bool = True,
                  pre_stop: PreStop | None = None, drain_ip: str = "") -> None:
        """Graceful stop on the pool: wait (for a deleted pod's drain_ip) until no Service
        sends new connections there, the preStop hook, SIGTERM, SIGKILL once `grace`
        seconds (all of it included) have passed, then (unless a probe asked for a
        restart) removal."""
        if c.id in self._busy:
            return
        self._busy.add(c.id)
        self.mark_ours(c.id)
        self._pool.submit(self._stop, c, grace, why, remove, pre_stop, drain_ip)

    def _stop(self, c: ContainerInfo, grace: float, why: str, remove: bool,
              pre_stop: PreStop | None, drain_ip: str) -> None:
        try:
            started = time.monotonic()
            if drain_ip:
                self._await_out_of_rotation(c, drain_ip, min(grace, ROTATION_WAIT))
            if pre_stop is not None:
                ok, message = run_hook(pre_stop.hook, pre_stop.pod_ip, pre_stop.container,
                                       c.id, self.runtime.exec, max(1.0, grace))
                message = mask_text(message, pre_stop.secrets)
                log.info("pre_stop_hook_ran", pod=c.pod_ref, container=c.container,
                         ok=ok, message=message)
            left = max(0.0, grace - (time.monotonic() - started))
            self.runtime.stop(c.id, left)
            if remove:
                self.runtime.remove(c.id)
            log.info("container_removed" if remove else "container_killed",
                     pod=c.pod_ref, container=c.container, why=why)
        except Exception as exc:   # the next pass retries
            log.warning("container_remove_failed", pod=c.pod_ref, container=c.container,
                        error=str(exc))
        finally:
            self._busy.discard(c.id)
            self.wake()

    def _await_out_of_rotation(self, c: ContainerInfo, ip: str, timeout: float) -> None:
        """Endpoints drop a deleted pod at once, but the proxy applies that a moment later;
        SIGTERM before then would refuse connections the proxy still sends there."""
        deadline = time.monotonic() + timeout
        while self.in_rotation(ip):
            if time.monotonic() >= deadline:
                log.warning("pod_still_in_rotation", pod=c.pod_ref, ip=ip, waited=timeout)
                return
            time.sleep(0.05)

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
