"""The runtime seam: typed snapshots and specs, and the protocol the Docker module meets."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Protocol

from gitops.errors import GitopsError, TransientError

# Labels on everything the agent creates. Nothing without MANAGED=true is ever touched.
MANAGED = "gitops.managed"
INSTANCE = "gitops.instance"
POD_NAMESPACE = "gitops.pod.namespace"
POD_NAME = "gitops.pod.name"
POD_UID = "gitops.pod.uid"
CONTAINER = "gitops.container"
CONFIG_HASH = "gitops.config-hash"
SANDBOX = "POD"     # CONTAINER label value of a pod's sandbox
POD_IP = "gitops.pod.ip"   # on what holds a pod's network: the address pinned for the pod


class RuntimeUnavailable(TransientError):
    """The engine does not answer (restarting, socket gone): nothing was decided about any
    container, so a pass stops and the next one tries again."""


class RuntimeFailure(GitopsError):
    """The runtime refused or failed an operation; reason is a kubelet-style word. Not a
    TransientError (the engine answered: a probe fails on it) nor a PermanentError (the
    pod loop retries it with back-off, as the kubelet does)."""

    def __init__(self, message: str, reason: str = "RunContainerError") -> None:
        super().__init__(message)
        self.reason = reason


PAUSE_IMAGE = "gitops/pause:1"   # what holds a pod's network when it needs a sandbox


@dataclass(frozen=True)
class ContainerInfo:
    id: str
    name: str
    labels: Mapping[str, str]
    state: str                 # created | running | exited | dead | restarting | paused
    exit_code: int = 0
    started_at: str = ""
    finished_at: str = ""
    oom_killed: bool = False
    error: str = ""
    ip: str = ""               # address on the pod network (of what holds the pod's network)
    image: str = ""
    image_id: str = ""
    nano_cpus: int | None = None   # limits as the engine holds them (None: not known)
    memory: int | None = None

    @property
    def container(self) -> str:
        return self.labels.get(CONTAINER, "")

    @property
    def pod_uid(self) -> str:
        return self.labels.get(POD_UID, "")

    @property
    def pinned_ip(self) -> str:
        return self.labels.get(POD_IP, "")

    @property
    def pod_ref(self) -> str:
        """namespace/name of its pod, for logs."""
        return f"{self.labels.get(POD_NAMESPACE, '')}/{self.labels.get(POD_NAME, '')}"


@dataclass(frozen=True)
class Mount:
    type: str                 # volume | bind | tmpfs
    target: str
    source: str = ""          # volume name or host path
    read_only: bool = False
    labels: tuple[tuple[str, str], ...] = ()   # for volumes the runtime must create


@dataclass(frozen=True)
class SandboxSpec:
    name: str
    hostname: str
    network: str
    labels: Mapping[str, str]
    image: str
    host_network: bool = False
    ip: str = ""              # pinned address ("" lets the engine choose)


@dataclass(frozen=True)
class ContainerSpec:
    """A container joining its pod's sandbox (sandbox_id), or, for a pod of one container,
    holding the pod's network itself (network, hostname, ip)."""
    name: str
    image: str
    labels: Mapping[str, str]
    sandbox_id: str
    network: str = ""
    hostname: str = ""
    ip: str = ""
    entrypoint: list[str] | None = None
    cmd: list[str] | None = None
    env: Mapping[str, str] = field(default_factory=dict)
    working_dir: str | None = None
    tty: bool = False
    stdin: bool = False
    stdin_once: bool = False            # stdin closes when the first attachment ends
    mounts: tuple[Mount, ...] = ()
    nano_cpus: int | None = None        # resources.limits.cpu
    memory: int | None = None           # resources.limits.memory, bytes (no extra swap)
    user: str | None = None             # securityContext runAsUser[:runAsGroup]
    read_only: bool = False             # securityContext.readOnlyRootFilesystem
    privileged: bool = False
    groups: tuple[str, ...] = ()        # fsGroup, supplementalGroups
    cap_add: tuple[str, ...] = ()       # securityContext.capabilities
    cap_drop: tuple[str, ...] = ()
    security_opt: tuple[str, ...] = ()  # no-new-privileges, seccomp


class Runtime(Protocol):
    instance: str

    def list_containers(self, pod_uid: str = "") -> list[ContainerInfo]: ...
    def inspect(self, container_id: str) -> ContainerInfo | None: ...
    def image_present(self, image: str) -> bool: ...
    def image_user(self, image: str) -> str: ...
    def pull(self, image: str) -> None: ...
    def ensure_network(self, name: str, subnet: str, mtu: int = 0) -> tuple[str, str]: ...
    def run_sandbox(self, spec: SandboxSpec) -> str: ...
    def sandbox_ip(self, sandbox_id: str) -> str: ...
    def run_container(self, spec: ContainerSpec) -> str: ...
    def start(self, container_id: str) -> None: ...
    def stop(self, container_id: str, timeout: float) -> None: ...
    def remove(self, container_id: str) -> None: ...
    def logs(self, container_id: str, tail: int = 100, since: float | None = None,
             until: float | None = None) -> str: ...
    def follow_logs(self, container_id: str, tail: int = 100,
                    since: float | None = None) -> Iterator[bytes]: ...
    def exec(self, container_id: str, cmd: list[str], timeout: float) -> tuple[int, bytes]: ...
    def watch_events(self, on_event: Callable[[dict], None], stop: Callable[[], bool]) -> None: ...
    def remove_pod_volumes(self, pod_uid: str) -> None: ...
    def cleanup(self, network: str) -> int: ...
