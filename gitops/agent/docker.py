"""The only module that imports docker: a Runtime on the Docker Engine API."""

from __future__ import annotations

import functools
import io
import ipaddress
import os
import shutil
import socket
import tarfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import replace

import docker
import docker.errors
import requests.exceptions
import structlog
from docker.utils.socket import frames_iter

from gitops.agent.runtime import (
    INSTANCE,
    MANAGED,
    PAUSE_IMAGE,
    POD_UID,
    ContainerInfo,
    ContainerSpec,
    Mount,
    RuntimeFailure,
    RuntimeUnavailable,
    SandboxSpec,
)
from gitops.agent.volumes import PVC_NAME, PVC_NAMESPACE, VOLUME_KIND, VOLUME_POD_UID
from gitops.errors import TransientError
from gitops.model.addresses import dynamic_range

log = structlog.get_logger(component="docker")



def extra_labels() -> dict[str, str]:
    """GITOPS_RUNTIME_LABELS=k=v,k2=v2 adds labels to everything created (tests use it to
    sweep up after a crashed run)."""
    raw = os.environ.get("GITOPS_RUNTIME_LABELS", "")
    return dict(item.split("=", 1) for item in raw.split(",") if "=" in item)


# The engine's API version when it cannot be asked at start-up (Docker 20.10's; newer
# engines still serve it).
FALLBACK_API_VERSION = "1.41"
# Connections kept to the engine: the pod workers, probes, terminations and log streams
# use it at once (past the pool, requests opens and drops a connection per call).
MAX_CONNECTIONS = 32
# What a request to an engine that is restarting or gone raises.
_UNREACHABLE = (requests.exceptions.ConnectionError, requests.exceptions.Timeout,
                ConnectionError)


def _engine_call(method: Callable) -> Callable:
    """Turn 'the engine does not answer' into RuntimeUnavailable, so callers wait and retry
    instead of treating it as a verdict on a container."""
    @functools.wraps(method)
    def call(self, *args, **kwargs):
        try:
            return method(self, *args, **kwargs)
        except _UNREACHABLE as exc:
            raise RuntimeUnavailable(f"docker engine at {self.host} does not answer: {exc}",
                                     retry_after=2) from exc
    return call


def connect(host: str, timeout: float = 60) -> docker.DockerClient:
    """A client for `host`; one made while the engine is down still works once it is up."""
    try:
        client = docker.DockerClient(base_url=host, timeout=timeout,
                                     max_pool_size=MAX_CONNECTIONS)
    except docker.errors.DockerException as exc:
        # info, not warning: the agent says so itself while it waits, and the CLI's
        # own error names the engine.
        log.info("docker_unavailable_at_start", docker_host=host, error=str(exc))
        client = docker.DockerClient(base_url=host, timeout=timeout,
                                     version=FALLBACK_API_VERSION,
                                     max_pool_size=MAX_CONNECTIONS)
    if host.startswith("unix://"):
        # No proxy stands between us and a local socket, yet requests looks for one in
        # the environment on every call: a third of a Docker call's CPU time.
        client.api.trust_env = False
    return client


# Where scripts/start-docker.sh runs the project's own engine.
PROJECT_SOCKET = "/run/gitops-docker/docker.sock"


def docker_host(recorded: str = "") -> str:
    """DOCKER_HOST if set; else an engine recorded for this data dir; else the default
    socket; else the project's own engine."""
    if env := os.environ.get("DOCKER_HOST"):
        return env
    for candidate in (recorded, "unix:///var/run/docker.sock", f"unix://{PROJECT_SOCKET}"):
        if candidate and os.path.exists(candidate.removeprefix("unix://")):
            return candidate
    return "unix:///var/run/docker.sock"


class DockerRuntime:
    def __init__(self, instance: str, client: docker.DockerClient | None = None,
                 host: str = "") -> None:
        self.instance = instance
        self.host = host or docker_host()
        self.client = client or connect(self.host)
        self._labels = [f"{MANAGED}=true", f"{INSTANCE}={instance}"]
        self._extra = extra_labels()
        self._inspected: dict[str, ContainerInfo] = {}
        self._images_seen: dict[str, float] = {}
        self._events_live = False
        # Sandboxes still starting: their network set-up (the slow part of a pod start)
        # overlaps the creation of the containers that will join them.
        self._starting: dict[str, Future] = {}
        self._starter = ThreadPoolExecutor(max_workers=4, thread_name_prefix="sandbox-start")
        self._inspector = ThreadPoolExecutor(max_workers=4, thread_name_prefix="inspect")

    # -- inventory --------------------------------------------------------------------
    def list_containers(self, pod_uid: str = "") -> list[ContainerInfo]:
        """Every container of this instance (of one pod with pod_uid). While the events
        stream runs, inspections are cached and each container event drops its entry, so
        a pass over hundreds of pods costs one list call instead of one inspect each."""
        api = self.client.api
        self._settle_sandboxes()
        labels = [*self._labels, f"{POD_UID}={pod_uid}"] if pod_uid else self._labels
        listed = api.containers(all=True, filters={"label": labels})
        known: dict[str, ContainerInfo] = {}
        for summary in listed:
            info = self._inspected.get(summary["Id"]) if self._events_live else None
            if info is not None and info.state == summary.get("State"):
                known[summary["Id"]] = info
        stale = [s["Id"] for s in listed if s["Id"] not in known]
        # A new pod's sandbox and container, or every container after a restart: the
        # inspections overlap (the engine answers them in parallel).
        inspected = (self._inspector.map(self._inspect, stale) if len(stale) > 1
                     else map(self._inspect, stale))
        for cid, info in zip(stale, inspected):
            if info is None:
                continue    # removed between list and inspect
            known[cid] = info
            if self._events_live:
                self._inspected[cid] = info
        out = [known[s["Id"]] for s in listed if s["Id"] in known]
        if not pod_uid and len(self._inspected) > 2 * len(listed) + 100:
            alive = {c["Id"] for c in listed}
            self._inspected = {k: v for k, v in self._inspected.items() if k in alive}
        return out

    def inspect(self, container_id: str) -> ContainerInfo | None:
        """One container as it is now (None: gone); cheaper than a list, which scans
        every container of the engine."""
        info = self._inspect(container_id)
        if info is not None and self._events_live:
            self._inspected[container_id] = info
        return info

    def _inspect(self, cid: str) -> ContainerInfo | None:
        try:
            return _info(self.client.api.inspect_container(cid))
        except docker.errors.NotFound:
            return None

    def ping(self) -> dict:
        return self.client.info()

    # -- images -----------------------------------------------------------------------
    def image_present(self, image: str) -> bool:
        """Positive answers are remembered briefly: every pass asks for every pod."""
        if time.monotonic() - self._images_seen.get(image, -1e9) < 30:
            return True
        try:
            self.client.api.inspect_image(image)
            self._images_seen[image] = time.monotonic()
            return True
        except docker.errors.ImageNotFound:
            return False
        except docker.errors.APIError as exc:   # e.g. invalid reference format
            raise RuntimeFailure(str(exc.explanation or exc), "InvalidImageName") from exc

    def image_user(self, image: str) -> str:
        """The image's USER ("" : root), for runAsNonRoot."""
        try:
            return (self.client.api.inspect_image(image).get("Config") or {}).get("User") or ""
        except docker.errors.ImageNotFound:
            return ""

    def pull(self, image: str) -> None:
        repo, _, tag = image.rpartition(":") if ":" in image.rsplit("/", 1)[-1] else (image, "", "")
        try:
            self.client.images.pull(repo, tag=tag or "latest")
        except docker.errors.APIError as exc:
            # Say where it is missing: on a cluster, each host's engine needs its images.
            raise RuntimeFailure(f"image {image} is not on this node's engine and pulling "
                                 f"it failed: {exc.explanation or exc}", "ErrImagePull") from exc

    def ensure_pause_image(self) -> None:
        """The sandbox image; built from the host's static busybox when it is missing."""
        if self.image_present(PAUSE_IMAGE):
            return
        busybox = shutil.which("busybox")
        if not busybox:
            raise RuntimeFailure(f"image {PAUSE_IMAGE} is missing and no busybox to build it: "
                                 "run scripts/build-images.sh", "SandboxImageMissing")
        context = io.BytesIO()
        with tarfile.open(fileobj=context, mode="w") as tar:
            tar.add(busybox, arcname="busybox")
            dockerfile = (b"FROM scratch\nCOPY busybox /busybox\n"
                          b'ENTRYPOINT ["/busybox", "sleep", "2147483647"]\n')
            info = tarfile.TarInfo("Dockerfile")
            info.size = len(dockerfile)
            tar.addfile(info, io.BytesIO(dockerfile))
        context.seek(0)
        self.client.images.build(fileobj=context, custom_context=True, tag=PAUSE_IMAGE, rm=True)
        log.info("pause_image_built", image=PAUSE_IMAGE)

    # -- networks ---------------------------------------------------------------------
    def ensure_network(self, name: str, subnet: str, mtu: int = 0) -> tuple[str, str]:
        """Create the pod network with an explicit subnet (Docker allocates only from its
        lower half; pod IPs are pinned from the upper one); return (gateway, subnet) of
        the network as it is (one made earlier keeps its own). mtu: the pods' interfaces'
        (0: Docker's default), lower under a tunnel."""
        for net in self.client.networks.list(names=[name]):
            if net.name == name:
                config = net.attrs["IPAM"]["Config"][0]
                return config.get("Gateway", ""), config.get("Subnet", subnet)
        gateway = _first_host(subnet)
        ipam = docker.types.IPAMConfig(pool_configs=[
            docker.types.IPAMPool(subnet=subnet, gateway=gateway,
                                  iprange=dynamic_range(subnet))])
        try:
            self.client.networks.create(name, driver="bridge", ipam=ipam, labels={
                **self._extra, MANAGED: "true", INSTANCE: self.instance},
                options={"com.docker.network.driver.mtu": str(mtu)} if mtu else None)
        except docker.errors.APIError as exc:
            raise RuntimeFailure(f"network {name} ({subnet}): {exc.explanation or exc}",
                                 "NetworkNotReady") from exc
        log.info("network_created", network=name, subnet=subnet, mtu=mtu or None)
        return gateway, subnet

    def used_subnets(self) -> list[str]:
        return [cfg["Subnet"] for net in self.client.networks.list()
                for cfg in (net.attrs.get("IPAM", {}).get("Config") or []) if cfg.get("Subnet")]

    # -- containers -------------------------------------------------------------------
    def run_sandbox(self, spec: SandboxSpec) -> str:
        """Create the sandbox and start it in the background: run_container creates its
        containers meanwhile and waits for the start before starting them."""
        try:
            c = self.client.api.create_container(
                spec.image, name=spec.name,
                hostname=None if spec.host_network else spec.hostname,
                labels={**self._extra, **spec.labels},
                host_config=self.client.api.create_host_config(
                    network_mode="host" if spec.host_network else spec.network,
                    restart_policy={"Name": "no"}),
                networking_config=self._pinned(spec.network, spec.ip))
        except docker.errors.APIError as exc:
            raise RuntimeFailure(f"sandbox: {exc.explanation or exc}",
                                 "CreatePodSandboxError") from exc
        cid = c["Id"]
        self._starting[cid] = self._starter.submit(self.client.api.start, cid)
        return cid

    def _await_sandbox(self, cid: str) -> None:
        """Its start has finished. Pods start side by side, so another pod's worker may
        be waiting on the same start: the entry goes only once the start is over."""
        future = self._starting.get(cid)
        if future is None:
            return
        try:
            future.result()
        except docker.errors.APIError as exc:
            raise RuntimeFailure(f"sandbox: {exc.explanation or exc}",
                                 "CreatePodSandboxError") from exc
        finally:
            self._starting.pop(cid, None)

    def sandbox_ip(self, sandbox_id: str) -> str:
        """The pod's address, once its sandbox has started."""
        self._await_sandbox(sandbox_id)
        try:
            return _info(self.client.api.inspect_container(sandbox_id)).ip
        except docker.errors.NotFound:
            return ""

    def _settle_sandboxes(self) -> None:
        """Every background start finished before anyone looks: a sandbox seen half
        started would be taken for a dead one."""
        for cid in list(self._starting):
            try:
                self._await_sandbox(cid)
            except RuntimeFailure as exc:
                log.warning("sandbox_start_failed", container=cid[:12], error=str(exc))

    def run_container(self, spec: ContainerSpec) -> str:
        try:
            mounts = [replace(m, source=self._ensure_volume(m.source, dict(m.labels)))
                      if m.type == "volume" else m for m in spec.mounts]
            api = self.client.api     # the low-level call: no inspect after the create
            own = not spec.sandbox_id     # a pod of one container: it holds the network
            host = api.create_host_config(
                network_mode=spec.network if own else f"container:{spec.sandbox_id}",
                restart_policy={"Name": "no"},
                mounts=[_mount(m) for m in mounts], nano_cpus=spec.nano_cpus,
                mem_limit=spec.memory, memswap_limit=spec.memory, read_only=spec.read_only,
                privileged=spec.privileged, group_add=list(spec.groups) or None,
                cap_add=list(spec.cap_add) or None, cap_drop=list(spec.cap_drop) or None,
                security_opt=list(spec.security_opt) or None)
            config = api.create_container_config(
                spec.image, spec.cmd, hostname=spec.hostname if own else None, user=spec.user,
                detach=True, stdin_open=spec.stdin, tty=spec.tty, environment=dict(spec.env),
                labels={**self._extra, **spec.labels}, entrypoint=spec.entrypoint,
                working_dir=spec.working_dir, host_config=host,
                networking_config=self._pinned(spec.network, spec.ip) if own else None)
            config["StdinOnce"] = spec.stdin_once    # the SDK ties it to attaching at once
            cid = api.create_container_from_config(config, spec.name)["Id"]
        except docker.errors.APIError as exc:
            raise RuntimeFailure(f"create: {exc.explanation or exc}",
                                 "CreateContainerError") from exc
        self._await_sandbox(spec.sandbox_id)
        self.start(cid)
        return cid

    def _pinned(self, network: str, ip: str) -> dict | None:
        if not ip:
            return None
        api = self.client.api
        return api.create_networking_config({network: api.create_endpoint_config(
            ipv4_address=ip)})

    def start(self, container_id: str) -> None:
        try:
            self.client.api.start(container_id)
        except docker.errors.APIError as exc:
            # The container stays behind as 'created' with the error; back-off retries it.
            raise RuntimeFailure(f"start: {exc.explanation or exc}", "RunContainerError") from exc

    def stop(self, container_id: str, timeout: float) -> None:
        try:
            self.client.api.stop(container_id, timeout=int(timeout))
        except docker.errors.NotFound:
            pass

    def remove(self, container_id: str) -> None:
        try:
            self.client.api.remove_container(container_id, force=True, v=True)
        except docker.errors.NotFound:
            pass
        except docker.errors.APIError as exc:
            if "already in progress" not in str(exc):
                raise

    def logs(self, container_id: str, tail: int = 100, since: float | None = None,
             until: float | None = None) -> str:
        """Output between two times (the agent restarts the same container, so runs are
        told apart by their start and finish times)."""
        try:
            raw = self.client.api.logs(container_id, tail=tail, since=since, until=until)
        except docker.errors.NotFound:
            return ""
        except docker.errors.APIError as exc:
            raise TransientError(f"reading logs: {exc.explanation or exc}") from exc
        return raw.decode(errors="replace")

    def follow_logs(self, container_id: str, tail: int = 100, since: float | None = None):
        """A closable stream of output until the container stops."""
        return self.client.api.logs(container_id, tail=tail, since=since, stream=True,
                                    follow=True)

    @_engine_call
    def stats(self, container_id: str) -> dict | None:
        """One reading of a container's counters (no wait for a second sample: the
        caller keeps the previous one). None when the container is gone."""
        try:
            return self.client.api.stats(container_id, stream=False, one_shot=True)
        except docker.errors.NotFound:
            return None
        except docker.errors.APIError as exc:
            raise TransientError(f"reading stats: {exc.explanation or exc}") from exc

    def exec(self, container_id: str, cmd: list[str], timeout: float) -> tuple[int, bytes]:
        """Run cmd in a container (probes, hooks): (exit code, output). On timeout the
        stream is cut and TimeoutError raised; the process itself runs on in the container."""
        api = self.client.api
        try:
            exec_id = api.exec_create(container_id, cmd, stdout=True, stderr=True)["Id"]
            sock = api.exec_start(exec_id, socket=True)
        except docker.errors.APIError as exc:
            raise RuntimeFailure(f"exec: {exc.explanation or exc}", "ExecError") from exc
        chunks: list[bytes] = []

        def read() -> None:
            try:
                chunks.extend(data for _, data in frames_iter(sock, tty=False))
            except (OSError, ValueError):   # shut down below: timed out
                pass
        reader = threading.Thread(target=read, daemon=True, name="exec-read")
        reader.start()
        reader.join(timeout)
        raw = getattr(sock, "_sock", sock)   # SocketIO.close() leaves the socket open
        timed_out = reader.is_alive()
        if timed_out:
            raw.shutdown(socket.SHUT_RDWR)   # wakes the reader
        sock.close()
        raw.close()
        if timed_out:
            raise TimeoutError(f"command timed out after {timeout:g}s")
        for _ in range(20):   # the exit code can lag the end of the stream a little
            info = api.exec_inspect(exec_id)
            if not info["Running"]:
                return info["ExitCode"], b"".join(chunks)
            time.sleep(0.05)
        return -1, b"".join(chunks)

    # -- interactive exec (kubectl exec) ------------------------------------------------
    def exec_session(self, container_id: str, cmd: list[str], stdin: bool,
                     tty: bool) -> "ExecSession":
        api = self.client.api
        try:
            exec_id = api.exec_create(container_id, cmd, stdout=True, stderr=True,
                                      stdin=stdin, tty=tty)["Id"]
            sock = api.exec_start(exec_id, socket=True, tty=tty)
        except docker.errors.APIError as exc:
            raise RuntimeFailure(f"exec: {exc.explanation or exc}", "ExecError") from exc
        return ExecSession(api, exec_id, sock, tty)

    def attach_session(self, container_id: str, stdin: bool) -> "AttachSession":
        """The container's own process (kubectl attach): its output from now on, and its
        stdin when it was started with one open."""
        api = self.client.api
        try:
            tty = bool(api.inspect_container(container_id)["Config"].get("Tty"))
            sock = api.attach_socket(container_id, params={
                "stdin": int(stdin), "stdout": 1, "stderr": 1, "stream": 1})
        except docker.errors.APIError as exc:
            raise RuntimeFailure(f"attach: {exc.explanation or exc}", "AttachError") from exc
        return AttachSession(api, container_id, sock, tty)

    def watch_events(self, on_event: Callable[[dict], None], stop: Callable[[], bool]) -> None:
        """Deliver container events of this instance until stop(); windows never overlap.
        Survives the engine going away: it waits (1 s, doubling to 5 s) and resumes."""
        since = time.time()
        backoff = 0.0
        while not stop():
            until = time.time() + 1.0
            try:
                for event in self.client.api.events(
                        since=since, until=until, decode=True,
                        filters={"type": "container", "label": self._labels}):
                    self._inspected.pop(event.get("id", ""), None)
                    on_event(event)
                self._events_live = True
                if backoff:
                    log.info("docker_events_resumed", docker_host=self.host)
                backoff = 0.0
            except Exception as exc:   # noqa: BLE001 - this thread must outlive any error
                # Events may have been missed: no cached inspection can be trusted.
                self._events_live = False
                self._inspected.clear()
                if not backoff:
                    log.warning("docker_events_failed", docker_host=self.host, error=str(exc))
                backoff = min(5.0, backoff * 2 or 1.0)
                time.sleep(backoff)
                # Events of the outage are not replayed; the next resync looks at everything.
                until = time.time()
            since = until
        self._events_live = False
        self._inspected.clear()

    def _ensure_volume(self, name: str, labels: dict[str, str]) -> str:
        """The volume to mount for `name`: an existing one only when its labels name this
        very claim (or emptyDir) of this agent; else a new one. Returns its name."""
        wanted = {MANAGED: "true", INSTANCE: self.instance, **labels}
        try:
            found = self.client.volumes.get(name)
        except docker.errors.NotFound:
            found = self._adoptable(wanted)
        if found is not None:
            have = found.attrs.get("Labels") or {}
            if any(have.get(k) != v for k, v in wanted.items()):
                raise RuntimeFailure(
                    f'volume "{found.name}" exists but belongs to '
                    f'{_volume_owner(have)}: refusing to share it', "CreateContainerConfigError")
            return found.name
        self.client.volumes.create(name, labels={**self._extra, **wanted})
        log.info("volume_created", volume=name, kind=labels.get(VOLUME_KIND, ""))
        return name

    def _adoptable(self, wanted: dict[str, str]):
        """A claim's volume made under an earlier naming scheme, found by its labels."""
        if wanted.get(VOLUME_KIND) != "pvc":
            return None
        vols = self.client.volumes.list(filters={"label": [f"{k}={v}"
                                                            for k, v in wanted.items()]})
        return vols[0] if len(vols) == 1 else None

    def remove_pod_volumes(self, pod_uid: str) -> None:
        """emptyDir volumes live and die with their pod."""
        for vol in self.client.volumes.list(filters={"label": [
                *self._labels, f"{VOLUME_POD_UID}={pod_uid}"]}):
            try:
                vol.remove(force=True)
            except docker.errors.APIError as exc:
                log.warning("volume_remove_failed", volume=vol.name, error=str(exc))

    def cleanup(self, network: str) -> int:
        """Remove every container of this instance, its emptyDir volumes, then its network.
        Claims' volumes stay (remove_volumes is the explicit way)."""
        removed = 0
        for c in self.client.api.containers(all=True, filters={"label": self._labels}):
            self.remove(c["Id"])
            removed += 1
        for vol in self.client.volumes.list(filters={"label": [
                *self._labels, f"{VOLUME_KIND}=emptyDir"]}):
            vol.remove(force=True)
        for net in self.client.networks.list(filters={"label": self._labels}):
            try:
                net.remove()
            except docker.errors.NotFound:
                pass
        log.info("runtime_cleaned_up", containers=removed, network=network)
        return removed


    def remove_volumes(self) -> int:
        """Only on explicit request (`down --volumes`): claims' data outlives everything else."""
        removed = 0
        for vol in self.client.volumes.list(filters={"label": self._labels}):
            vol.remove(force=True)
            removed += 1
        return removed


for _name in ("list_containers", "inspect", "ping", "image_present", "image_user", "pull",
              "ensure_pause_image", "ensure_network", "used_subnets", "run_sandbox", "sandbox_ip", "run_container",
              "start", "stop", "remove", "logs", "follow_logs", "exec", "remove_pod_volumes",
              "cleanup", "remove_volumes"):
    setattr(DockerRuntime, _name, _engine_call(getattr(DockerRuntime, _name)))


def _volume_owner(labels: dict[str, str]) -> str:
    if labels.get(PVC_NAME):
        return f'claim {labels.get(PVC_NAMESPACE, "")}/{labels[PVC_NAME]}' + (
            "" if labels.get(MANAGED) == "true" else " (not managed by gitops)")
    if labels.get(VOLUME_POD_UID):
        return f"an emptyDir of pod {labels[VOLUME_POD_UID]}"
    return "something else (not a gitops volume of this agent)"


def _mount(m: Mount) -> docker.types.Mount:
    if m.type == "tmpfs":
        return docker.types.Mount(m.target, None, type="tmpfs")
    return docker.types.Mount(m.target, m.source, type=m.type, read_only=m.read_only)


def _info(raw: dict) -> ContainerInfo:
    state = raw.get("State", {})
    nets = raw.get("NetworkSettings", {}).get("Networks") or {}
    ip = next((n.get("IPAddress", "") for n in nets.values() if n.get("IPAddress")), "")
    return ContainerInfo(
        id=raw["Id"], name=raw.get("Name", "").lstrip("/"),
        labels=raw.get("Config", {}).get("Labels") or {}, state=state.get("Status", ""),
        exit_code=state.get("ExitCode", 0), started_at=_ts(state.get("StartedAt")),
        finished_at=_ts(state.get("FinishedAt")), oom_killed=bool(state.get("OOMKilled")),
        error=state.get("Error", ""), ip=ip, image=raw.get("Config", {}).get("Image", ""),
        image_id=raw.get("Image", ""),
        nano_cpus=int((raw.get("HostConfig") or {}).get("NanoCpus") or 0),
        memory=int((raw.get("HostConfig") or {}).get("Memory") or 0))


def _ts(value: str | None) -> str:
    """Docker's zero time means 'never'. Nanoseconds become microseconds: still RFC 3339
    for Kubernetes clients, and precise enough to tell two runs' logs apart."""
    if not value or value.startswith("0001-"):
        return ""
    head, _, frac = value.rstrip("Z").partition(".")
    return f"{head}.{frac[:6].ljust(6, '0')}Z" if frac else f"{head}Z"


def _first_host(subnet: str) -> str:
    return str(next(ipaddress.ip_network(subnet, strict=False).hosts()))


class ExecSession:
    """One running `docker exec` with its hijacked connection; every call blocks."""

    def __init__(self, api, exec_id: str, sock, tty: bool) -> None:
        self._api = api
        self.exec_id = exec_id
        self._sock = sock
        self._raw = getattr(sock, "_sock", sock)     # SocketIO wraps the real socket
        self.tty = tty

    def output(self):
        """(1 stdout | 2 stderr, bytes) until the command's output ends."""
        try:
            for stream, data in frames_iter(self._sock, tty=self.tty):
                yield (1 if self.tty else stream), data
        except (OSError, ValueError):
            return

    def write(self, data: bytes) -> None:
        self._raw.sendall(data)

    def close_stdin(self) -> None:
        try:
            self._raw.shutdown(socket.SHUT_WR)
        except OSError:
            pass

    def resize(self, width: int, height: int) -> None:
        try:
            self._api.exec_resize(self.exec_id, height=height, width=width)
        except docker.errors.APIError:
            pass                       # the process may be gone already

    def exit_code(self) -> int:
        for _ in range(40):            # the exit code can lag the end of the stream
            info = self._api.exec_inspect(self.exec_id)
            if not info["Running"]:
                return int(info["ExitCode"] if info["ExitCode"] is not None else -1)
            time.sleep(0.05)
        return -1

    def close(self) -> None:
        for closer in (lambda: self._raw.shutdown(socket.SHUT_RDWR), self._sock.close,
                       self._raw.close):
            try:
                closer()
            except OSError:
                pass


class AttachSession(ExecSession):
    """An attachment to a container's process: resized as the container, and no exit code
    of its own to report (the process may outlive the attachment)."""

    def resize(self, width: int, height: int) -> None:
        try:
            self._api.resize(self.exec_id, height=height, width=width)
        except docker.errors.APIError:
            pass

    def exit_code(self) -> int:
        return 0
