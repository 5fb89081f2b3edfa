"""The test kit shipped with gitops, for tests of logic that need neither SQLite, Docker
nor the wall clock (as kopf.testing and controller-runtime's fake client serve theirs):

- memory_store(): the store's registry (the one write path) over an in-memory backend;
- RecordingRuntime: a container runtime (gitops.agent.runtime.Runtime) that records what
  it is asked, keeps its containers in a dict, and can be taken down;
- FakeClock: time that moves only when the test moves it.

Every capability still has tests against the real engine and SQLite (tests/docker,
tests/integration); these are for the pure logic around them.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable, Iterator
from dataclasses import replace

from gitops.agent.runtime import (
    ContainerInfo,
    ContainerSpec,
    RuntimeUnavailable,
    SandboxSpec,
)
from gitops.store.memory import MemoryStore
from gitops.store.registry import Registry

__all__ = ["FakeClock", "RecordingRuntime", "memory_store", "namespace"]


def memory_store() -> Registry:
    """A fresh, empty store, written through the registry as the agent's is (with the
    API server's admission: objects go into namespaces that exist, `default` always)."""
    return Registry(MemoryStore())


def namespace(name: str) -> dict:
    """A Namespace to create before objects in it."""
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}


class FakeClock:
    """A clock (`clock()` is seconds since the epoch) that tests move by hand."""

    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds

    sleep = advance        # where code under test waits, time just passes


class RecordingRuntime:
    """Records each call's name in `calls`; while `down`, every call raises
    RuntimeUnavailable (the engine does not answer) and nothing is recorded. Containers
    run as soon as they are made; a container holding its pod's network gets its pinned
    address, or 10.0.0.2."""
    instance = "feed0001"
    STARTED_AT = "2026-01-01T00:00:00.000000Z"

    def __init__(self) -> None:
        self.down = False
        self.containers: dict[str, ContainerInfo] = {}
        self.calls: list[str] = []
        self.info = {"NCPU": 2, "MemTotal": 2 << 30, "ServerVersion": "20.10"}
        self.made = 0
        self._ids = itertools.count(1)
        self._lock = threading.Lock()      # the node agent's pod workers call at once

    def _call(self, name: str) -> None:
        if self.down:
            raise RuntimeUnavailable("engine at unix:///nowhere does not answer")
        self.calls.append(name)

    def _add(self, spec: SandboxSpec | ContainerSpec, holds_network: bool) -> str:
        with self._lock:
            self.made = next(self._ids)
            cid = f"c{self.made}"
        ip = (spec.ip or "10.0.0.2") if holds_network else ""
        self.containers[cid] = ContainerInfo(cid, spec.name, dict(spec.labels), "running",
                                             started_at=self.STARTED_AT, ip=ip,
                                             image=spec.image)
        return cid

    def _set_state(self, cid: str, state: str) -> None:
        c = self.containers.get(cid)
        if c is not None:
            self.containers[cid] = replace(c, state=state)

    # -- the engine ----------------------------------------------------------------------
    def ping(self) -> dict:
        self._call("ping")
        return dict(self.info)

    def list_containers(self, pod_uid: str = "") -> list[ContainerInfo]:
        self._call("list")
        return [c for c in self.containers.values() if not pod_uid or c.pod_uid == pod_uid]

    def inspect(self, container_id: str) -> ContainerInfo | None:
        self._call("inspect")
        return self.containers.get(container_id)

    def image_present(self, image: str) -> bool:
        self._call("image_present")
        return True

    def image_user(self, image: str) -> str:
        self._call("image_user")
        return ""

    def pull(self, image: str) -> None:
        self._call("pull")

    def ensure_pause_image(self) -> None:
        self._call("ensure_pause_image")

    def ensure_network(self, name: str, subnet: str, mtu: int = 0) -> tuple[str, str]:
        self._call("ensure_network")
        return "10.0.0.1", subnet or "10.0.0.0/24"

    def run_sandbox(self, spec: SandboxSpec) -> str:
        self._call("run_sandbox")
        return self._add(spec, True)

    def sandbox_ip(self, sandbox_id: str) -> str:
        self._call("sandbox_ip")
        c = self.containers.get(sandbox_id)
        return c.ip if c is not None else ""

    def run_container(self, spec: ContainerSpec) -> str:
        self._call("run_container")
        return self._add(spec, not spec.sandbox_id)

    def start(self, container_id: str) -> None:
        self._call("start")
        self._set_state(container_id, "running")

    def stop(self, container_id: str, timeout: float) -> None:
        self._call("stop")
        self._set_state(container_id, "exited")

    def remove(self, container_id: str) -> None:
        self._call("remove")
        self.containers.pop(container_id, None)

    def logs(self, container_id: str, tail: int = 100, since: float | None = None,
             until: float | None = None) -> str:
        self._call("logs")
        return ""

    def follow_logs(self, container_id: str, tail: int = 100,
                    since: float | None = None) -> Iterator[bytes]:
        self._call("follow_logs")
        return iter(())

    def exec(self, container_id: str, cmd: list[str], timeout: float) -> tuple[int, bytes]:
        self._call("exec")
        return 0, b""

    def watch_events(self, on_event: Callable[[dict], None],
                     stop: Callable[[], bool]) -> None:
        self._call("watch_events")

    def remove_pod_volumes(self, pod_uid: str) -> None:
        self._call("remove_pod_volumes")

    def cleanup(self, network: str) -> int:
        self._call("cleanup")
        gone = len(self.containers)
        self.containers.clear()
        return gone
