"""Composition root: wires store, source, loops, runtime, proxy and API; clean shutdown."""

from __future__ import annotations

import asyncio
import fcntl
import json
import os
import signal
import socket
import threading
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import structlog
from aiohttp import web

from gitops.agent.docker import DockerRuntime
from gitops.agent.node import NodeAgent
from gitops.agent.runtime import RuntimeUnavailable
from gitops.api import metrics
from gitops.api import token as api_token
from gitops.api.kube.api import KubeBackends
from gitops.api.kube.backends import RuntimeStreams
from gitops.api.kube.listen import start_listeners
from gitops.api.server import ApiContext, LogRequest, make_app, object_health, unmanaged_objects
from gitops.api.webhook import add_webhook_routes
from gitops.controllers.manager import ControllerManager
from gitops.errors import GitopsError
from gitops.health import assess
from gitops.loops import LevelLoop, start_polling
from gitops.model import ObjectKey
from gitops.model.addresses import SERVICE_POOL, pick_subnet
from gitops.model.times import parse_ts
from gitops.paths import DataDir
from gitops.private_files import OWNER_ONLY_UMASK, make_private_dir, write_atomic
from gitops.proxy.services import ServiceNetwork
from gitops.source import make_source
from gitops.source.base import DirSource, redact_url
from gitops.source.watch import DirWatcher
from gitops.source.webhook import load_secret
from gitops.store.registry import Registry
from gitops.store.sqlite import SqliteStore
from gitops.sync.drift import DriftRecorder, declaring_object
from gitops.sync.engine import SyncEngine, SyncPolicy

log = structlog.get_logger(component="daemon")


@dataclass
class AgentConfig:
    repo: str
    data_dir: Path
    ref: str = ""
    path: str = ""
    interval: float = 60.0
    node_name: str = ""
    node_address: str = "127.0.0.1"
    api_host: str = "127.0.0.1"
    api_port: int = 0
    pod_subnet: str = ""
    service_cidr: str = ""
    helm_values: tuple[str, ...] = ()
    allow_empty_prune: bool = False
    self_heal: bool = True
    prune: bool = True
    wave_timeout: float = 300.0
    allow_host_access: bool = False
    allow_remote_bases: bool = False
    webhook_secret_file: str = ""
    webhook_secret_env: str = ""
    git_timeout: float = 60.0
    public_metrics: bool = False


class Agent:
    def __init__(self, config: AgentConfig) -> None:
        self.config = config
        self.dd = DataDir.at(config.data_dir)
        self.webhook_secret = load_secret(config.webhook_secret_file or None,
                                          config.webhook_secret_env or None)
        make_private_dir(self.dd.root)      # Secret data, the token, the repo URL: owner only
        self._lock_fd = _lock(self.dd.lock_file)
        self.token = api_token.load_or_create(self.dd.token_file)   # a bad one: refuse now
        self.store = Registry(SqliteStore(self.dd.store))    # every writer's one path
        self.source = make_source(config.repo, self.dd.root, config.ref, config.path,
                                  config.git_timeout)
        # A local directory is watched: edit -> running in about a second.
        self.dir_watcher = (DirWatcher(Path(self.source.url), lambda: self.trigger_sync("watch"))
                            if isinstance(self.source, DirSource)
                            and Path(self.source.url).is_dir() else None)
        self.runtime = DockerRuntime(self.dd.instance)
        self.network = f"gitops-{self.dd.instance}"
        self.node = NodeAgent(self.store, self.runtime, config.node_name or socket.gethostname(),
                              self.network, self.dd.root / "pods",
                              allow_host_access=config.allow_host_access)
        self.drift = DriftRecorder()
        self.policy = SyncPolicy(self_heal=config.self_heal, prune=config.prune,
                                 allow_empty_prune=config.allow_empty_prune,
                                 wave_timeout=config.wave_timeout,
                                 allow_host_access=config.allow_host_access,
                                 helm_values=tuple(config.helm_values),
                                 allow_remote_bases=config.allow_remote_bases)
        self.engine = SyncEngine(self.store, self.source, self.policy, self.drift)
        self.service_cidr = (config.service_cidr or self.store.get_state("service_cidr")
                             or pick_subnet(self.dd.instance, [], SERVICE_POOL, 20))
        self.store.set_state("service_cidr", self.service_cidr)
        self.controllers = ControllerManager(self.store, service_cidr=self.service_cidr)
        self.services = ServiceNetwork(self.dd.instance, self.service_cidr,
                                       config.node_address)
        self.stop = asyncio.Event()
        self._trigger = "startup"
        self._last_result: dict = {}
        self.sync_loop = LevelLoop("sync", self._sync_pass, resync=3600)
        self.controller_loop = LevelLoop("controllers", self.controllers.run_once, resync=5)
        # A short debounce: a scheduled pod is started at once (a pass reads everything,
        # so pokes during a pass still coalesce into the next one).
        self.agent_loop = LevelLoop("node-agent", self.node.sync_once, resync=2,
                                    debounce=0.003)
        self.proxy_dirty = asyncio.Event()
        self.node.wake = self.agent_loop.poke
        self.node.in_rotation = self.services.routes_to   # out of Services before SIGTERM
        self.node.on_drift = self._runtime_drift

    # -- loops ------------------------------------------------------------------------
    def _sync_pass(self) -> None:
        trigger, self._trigger = self._trigger, "interval"
        res = self.engine.sync_once(trigger)
        self._last_result = {"result": res.result, "revision": res.revision,
                             "message": res.message, "errors": [str(e) for e in res.errors]}

    def trigger_sync(self, trigger: str) -> None:
        """Thread-safe: a sync soon, remembering why (webhook, watch, manual...)."""
        self._trigger = trigger
        self.sync_loop.poke()

    def _runtime_drift(self, info: dict) -> None:
        declared, entry = declaring_object(self.store, info["pod"])
        subject = declared or info["pod"] or {}
        meta = subject.get("metadata", {})
        obj = {"apiVersion": subject.get("apiVersion", "v1"), "kind": subject.get("kind", "Pod"),
               "namespace": meta.get("namespace", ""), "name": meta.get("name", ""),
               "uid": meta.get("uid", ""), "file": entry.file if entry else "",
               "line": entry.line if entry else 0,
               "pod": (info["pod"] or {}).get("metadata", {}).get("name", ""),
               "container": info["container"]}
        health = assess(subject or None)
        self.drift.record(
            reconcile_id=uuid.uuid4().hex[:12], trigger="watch",
            source={**self.engine.source_info,
                    "revision": self.store.get_state("fetched_revision"),
                    "applied_revision": self.store.get_state("applied_revision")},
            obj=obj, drift_type=info["type"], origin="runtime", fields=info["fields"],
            actor=info["actor"], health={"status": health.status, "message": health.message},
            policy={"self_heal": self.policy.self_heal, "prune": self.policy.prune},
            action=info["action"])

    def _on_store_change(self, event: str, obj: dict) -> None:
        kind = obj.get("kind")
        if kind == "Event":
            return          # events record what loops did; they never ask for a pass
        self.controller_loop.poke()
        if kind in ("Pod", "Node", "ConfigMap", "Secret"):
            self.agent_loop.poke()
        if kind in ("Service", "Endpoints", "Pod"):
            self._loop.call_soon_threadsafe(self.proxy_dirty.set)

    async def _proxy_loop(self) -> None:
        while not self.stop.is_set():
            self.proxy_dirty.clear()
            try:
                await self.services.apply(self.store.list("Service"),
                                          self.store.list("Endpoints"), self.store.list("Pod"))
            except Exception:   # one bad pass must never stop the loop
                log.exception("loop_pass_failed", loop="services")
                await asyncio.sleep(1.0)
                self.proxy_dirty.set()
            try:
                await asyncio.wait_for(self.proxy_dirty.wait(), timeout=10)
            except asyncio.TimeoutError:
                pass

    def _watch_docker(self) -> None:
        def on_event(event: dict) -> None:
            if self.node.on_runtime_event(event):
                self.agent_loop.poke()
        self.runtime.watch_events(on_event, self.stop.is_set)

    # -- API callbacks ------------------------------------------------------------------
    def status(self) -> dict:
        return {"source": {"repo": redact_url(self.source.url), "ref": self.config.ref,
                           "path": self.config.path},
                "applied_revision": self.store.get_state("applied_revision"),
                "fetched_revision": self.store.get_state("fetched_revision"),
                "pin": self.store.get_state("pin"),
                "suspended": bool(self.store.get_state("suspended")),
                "policy": {"self_heal": self.policy.self_heal, "prune": self.policy.prune},
                "last_sync": self.store.get_state("last_sync"),
                "node": self.node.node_name, "network": self.network,
                "objects": object_health(self.store),
                "unmanaged": unmanaged_objects(self.store)}

    async def sync_now(self, trigger: str = "manual") -> dict:
        self._trigger = trigger
        if not await self.sync_loop.poke_and_wait(timeout=self.policy.wave_timeout + 120):
            raise GitopsError("the sync did not finish in time; see `gitops status`")
        return self._last_result

    async def control(self, verb: str, params: dict) -> dict:
        """Actions behind `gitops sync|rollback|unpin|suspend|resume`."""
        if verb == "suspend":
            self.store.set_state("suspended", True)
            log.info("sync_suspended_by_user")
            return {"suspended": True}
        if verb == "resume":
            self.store.set_state("suspended", False)
            log.info("sync_resumed_by_user")
            return await self.sync_now()
        if verb == "unpin":
            self.store.set_state("pin", None)
            return await self.sync_now()
        if verb == "rollback":
            return await self._rollback(params.get("to", ""))
        return await self.sync_now()

    async def _rollback(self, to: str) -> dict:
        """Pin, sync, and keep the pin only if the pinned revision applied: a sha that does
        not exist or does not apply leaves the previous pin (and what runs) as it was."""
        before = self.store.get_state("pin")
        self.store.set_state("pin", self._rollback_target(to))
        res = await self.sync_now()
        if res.get("result") not in ("synced", "unchanged"):
            self.store.set_state("pin", before)
            raise GitopsError(f"rollback to {to or 'the previous revision'} failed, pin "
                              f"unchanged: {res.get('message') or res.get('result')}")
        if pin := self.store.get_state("pin"):     # None: a new commit released it
            self.store.set_state("pin", {**pin, "sha": res.get("revision")})   # full sha
        return res

    def _rollback_target(self, to: str) -> dict:
        if isinstance(self.source, DirSource):
            raise GitopsError("a local directory has no history: rollback needs a git source")
        head = self.store.get_state("fetched_revision") or ""
        current = self.store.get_state("applied_revision") or ""
        if to:
            return {"sha": to, "head": head}
        for entry in self.store.history(200):
            rev = entry.get("revision", "")
            if entry.get("result") == "synced" and rev and rev != current:
                return {"sha": rev, "head": head}
        raise GitopsError("no earlier successfully applied revision in the history")

    async def pod_logs(self, req: LogRequest) -> str | AsyncIterator[bytes]:
        obj = self.store.get(ObjectKey("Pod", req.namespace, req.pod))
        if obj is None:
            raise GitopsError(f'pod "{req.pod}" not found')
        spec = obj["spec"]
        names = [c["name"] for c in [*(spec.get("initContainers") or []), *spec["containers"]]]
        name = req.container or spec["containers"][0]["name"]
        if name not in names:
            raise GitopsError(f'container "{name}" is not valid for pod "{req.pod}"')
        info = next((c for c in await asyncio.to_thread(self.runtime.list_containers)
                     if c.pod_uid == obj["metadata"]["uid"] and c.container == name), None)
        if info is None:
            raise GitopsError(f'container "{name}" in pod "{req.pod}" has not started')
        statuses = obj.get("status", {}).get("containerStatuses") or []
        last = next((s.get("lastState", {}).get("terminated") for s in statuses
                     if s["name"] == name), None)
        if req.previous:
            if not last:
                raise GitopsError(f'previous terminated container "{name}" in pod '
                                  f'"{req.pod}" not found')
            since = self.node.previous_run_since(obj["metadata"]["uid"], name,
                                                 last.get("startedAt") or "")
            return await asyncio.to_thread(self.runtime.logs, info.id, req.tail, since,
                                           _epoch(last.get("finishedAt"), 0.001))
        # The current run began when the previous one finished.
        since = _epoch(last.get("finishedAt")) if last else None
        if not req.follow:
            return await asyncio.to_thread(self.runtime.logs, info.id, req.tail, since)
        return self._follow(info.id, req.tail, since)

    async def _follow(self, container_id: str, tail: int,
                      since: float | None) -> AsyncIterator[bytes]:
        """Relay a blocking Docker log stream; closing it ends the reader thread."""
        stream = await asyncio.to_thread(self.runtime.follow_logs, container_id, tail, since)
        try:
            while not self.stop.is_set():
                chunk = await asyncio.to_thread(next, stream, None)
                if chunk is None:
                    break
                yield chunk
        finally:
            stream.close()

    # -- lifecycle ----------------------------------------------------------------------
    async def run(self) -> None:
        self._loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            self._loop.add_signal_handler(sig, self.stop.set)
        if not await self._wait_for_runtime():
            return
        # Cluster DNS on the pod network's gateway (containers' only nameserver) and on
        # the host's loopback; pods fall back to Docker's resolver if neither could bind.
        await self.services.start_dns([self.node.host_ip, "127.0.0.1"])
        if self.services.answers_at(self.node.host_ip):
            self.node.dns_server = self.node.host_ip
        self.store.watch(self._on_store_change)

        app = make_app(ApiContext(self.store, self.token, self.status, self.control,
                                  self.stop.set, self.pod_logs,
                                  kube=KubeBackends(exec=RuntimeStreams(self.runtime)),
                                  allow_host_access=self.config.allow_host_access,
                                  public_metrics=self.config.public_metrics))
        add_webhook_routes(app, self.webhook_secret, self.source.url, self.config.ref,
                           lambda _event: self.trigger_sync("webhook"))
        metrics.attach(self, app)       # GET /metrics (Prometheus)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        url, kube_url = await start_listeners(runner, self.dd.root, self.config.api_host,
                                              self.config.api_port)
        # Redacted: credentials stay in git's own config (repos/), nowhere else on disk.
        _write_json(self.dd.agent_file, {"pid": os.getpid(), "url": url, "kube_url": kube_url,
                                         "instance": self.dd.instance,
                                         "repo": redact_url(self.source.url),
                                         "network": self.network,
                                         "docker_host": self.runtime.host})
        _write_json(self.dd.runtime_file, {"docker_host": self.runtime.host,
                                           "network": self.network,
                                           "service_cidr": self.service_cidr})
        log.info("agent_started", api=url, repo=redact_url(self.source.url),
                 instance=self.dd.instance,
                 node=self.node.node_name, interval=self.config.interval)

        scheduler = start_polling(self.config.interval, self.sync_loop.poke)
        if self.dir_watcher is not None:
            try:
                self.dir_watcher.start()
            except OSError as exc:        # e.g. inotify limits; polling still works
                log.warning("dir_watch_unavailable", path=self.source.url, error=str(exc))
        watcher = threading.Thread(target=self._watch_docker, name="docker-events", daemon=True)
        watcher.start()
        tasks = [asyncio.create_task(loop.run(self.stop)) for loop in
                 (self.sync_loop, self.controller_loop, self.agent_loop)]
        tasks.append(asyncio.create_task(self._proxy_loop()))
        try:
            await self.stop.wait()
        finally:
            log.info("agent_stopping")
            scheduler.shutdown(wait=False)
            if self.dir_watcher is not None:
                self.dir_watcher.stop()
            for loop in (self.sync_loop, self.controller_loop, self.agent_loop):
                loop.poke()
            self.proxy_dirty.set()
            await asyncio.wait(tasks, timeout=15)
            await self.services.close()
            await runner.cleanup()
            self.node.close()
            self.dd.agent_file.unlink(missing_ok=True)
            self.store.close()
            log.info("agent_stopped")

    async def _wait_for_runtime(self) -> bool:
        """Set up the runtime, waiting while the engine does not answer (it may be starting).
        False if asked to stop meanwhile."""
        delay = 1.0
        while True:
            try:
                await asyncio.to_thread(self._setup_runtime)
                return True
            except RuntimeUnavailable as exc:
                log.warning("runtime_unavailable_waiting", error=str(exc), retry_in=delay)
            try:
                await asyncio.wait_for(self.stop.wait(), timeout=delay)
                return False
            except asyncio.TimeoutError:
                delay = min(10.0, delay * 2)

    def _setup_runtime(self) -> None:
        subnet = self.config.pod_subnet or self.store.get_state("pod_subnet")
        if not subnet:
            subnet = pick_subnet(self.dd.instance, self.runtime.used_subnets())
        self.node.setup(subnet)
        self.store.set_state("pod_subnet", subnet)


def _epoch(stamp: str | None, pad: float = 0.0) -> float | None:
    ts = parse_ts(stamp)
    return None if ts is None else ts + pad


def _lock(path: Path) -> int:
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise GitopsError(f"another agent is already running with data dir {path.parent}")
    return fd


def _write_json(path: Path, data: dict) -> None:
    write_atomic(path, json.dumps(data))


def run_agent(config: AgentConfig) -> None:
    from gitops.proxy.loop import run  # uvloop when installed: the proxy's data path
    # Everything this process writes (store, clones, pod files, logs) is its owner's
    # alone; what containers must read (projected volume files) gets its mode explicitly.
    os.umask(OWNER_ONLY_UMASK)
    run(Agent(config).run())
