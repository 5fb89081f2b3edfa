"""Composition root: builds the parts of the chosen role and runs them as runnables
(gitops.runnable), started in order and stopped in reverse; nothing else lives here."""

from __future__ import annotations

import asyncio
import fcntl
import json
import os
import signal
import socket
import time
from dataclasses import dataclass, field, fields
from pathlib import Path
from urllib.parse import urlsplit

import structlog
from aiohttp import web

from gitops.agent.docker import DockerRuntime
from gitops.agent.node import NodeAgent
from gitops.agent.podnet import Backend
from gitops.agent.runtime import RuntimeUnavailable
from gitops.agent.usage import UsageSampler
from gitops.api import metrics
from gitops.api import token as api_token
from gitops.api.kube.api import KubeBackends
from gitops.api.kube.backends import RuntimeStreams
from gitops.api.kube.managed import GitFieldOwner
from gitops.admission.defaults import set_default_toleration_seconds
from gitops.api.kube.listen import port_of, start_listeners
from gitops.api.kube.tls import ca_pem
from gitops.api.podlogs import PodLogs
from gitops.api.server import ApiContext, make_app, object_health, unmanaged_objects
from gitops.api.serviceaccounts import load_or_create_key
from gitops.api.webhook import add_webhook_routes
from gitops.cluster.node import bound_to, start_node_dns, watch_runtime
from gitops.controllers.nodelifecycle import Settings
from gitops.controllers.manager import ControllerManager
from gitops.errors import GitopsError
from gitops.manifests.age_keys import KeySource
from gitops.model import apiservice, key_of
from gitops.manifests.options import (DirectoryOptions, HelmOptions, RenderOptions,
                                      parse_var)
from gitops.model.addresses import SERVICE_POOL, pick_subnet
from gitops.model.events import WARNING, event_for
from gitops.model.times import rfc3339
from gitops.paths import DataDir
from gitops.private_files import OWNER_ONLY_UMASK, make_private_dir, write_atomic
from gitops.proxy.loadbalancer import bind_failure, service_statuses
from gitops.proxy.services import ServiceNetwork
from gitops.runnable import Elected, Group, Hooks, Loop, Polling, Worker
from gitops.scheduler.loop import SchedulerLoop
from gitops.source import make_source
from gitops.source.base import DirSource, redact_url
from gitops.source.watch import DirWatcher
from gitops.source.webhook import load_secret
from gitops.store.backup import open_backend
from gitops.store.election import LeaderElector, LeaseTimings
from gitops.store.informer import Informer
from gitops.store.registry import Registry, execute_batched
from gitops.sync.apps import Applications, app_status
from gitops.sync.drift import DriftRecorder, RuntimeDriftReporter
from gitops.sync.engine import SyncEngine, SyncPolicy
from gitops.sync.ignore import parse_flag
from gitops.sync.live import LiveDrift
from gitops.sync.options import app_options
from gitops.sync.requests import SyncRequests
from gitops.sync.runner import MARGIN as SYNC_MARGIN
from gitops.sync.runner import SyncRunner
from gitops.sync.status import health_condition
from gitops.ui import UiContext, add_ui_routes

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
    kube_port: int = 0                  # 0: the data dir's last one, else a free one
    pod_subnet: str = ""
    service_cidr: str = ""
    helm_values: tuple[str, ...] = ()
    allow_empty_prune: bool = False
    self_heal: bool = True
    self_heal_delay: float = 2.0
    sync_options: tuple[str, ...] = ()
    ignore_differences: str = ""                # a file in the repo
    ignore_difference: tuple[str, ...] = ()     # rules given as flags
    prune: bool = True
    wave_timeout: float = 300.0
    allow_host_access: bool = False
    allow_remote_bases: bool = False
    create_namespace: bool = False
    webhook_secret_file: str = ""
    webhook_secret_env: str = ""
    git_timeout: float = 60.0
    public_metrics: bool = False
    decryption_key_file: str = ""       # age keys of SOPS-encrypted manifests
    age_key: str = field(default="", repr=False)    # GITOPS_AGE_KEY's content
    ui_read_only: bool = False          # every UI session read-only (a wall screen)
    # how the agent's own source renders (an Application says the same for its app)
    release_name: str = ""
    dest_namespace: str = ""
    directory_recurse: bool = True
    directory_include: str = ""
    directory_exclude: str = ""
    jsonnet_tla_str: tuple[str, ...] = ()
    jsonnet_tla_code: tuple[str, ...] = ()
    jsonnet_ext_var_str: tuple[str, ...] = ()
    jsonnet_ext_var_code: tuple[str, ...] = ()
    jsonnet_libs: tuple[str, ...] = ()
    # A cluster server (gitops.cluster): nodes join at advertise_address:https_listen_port.
    advertise_address: str = ""
    https_listen_port: int = 6443
    cluster_cidr: str = "10.42.0.0/16"
    node_monitor_grace_period: float = 40.0
    default_unreachable_toleration_seconds: int = 300
    pod_network_backend: str = "auto"   # between nodes: auto | host-gw | vxlan (podnet)
    datastore: str = ""                 # "" (the data dir's SQLite) or etcd://h:2379,...
    leader_elect_lease_duration: float = 15.0   # Kubernetes' defaults; tests shorten them
    leader_elect_renew_deadline: float = 10.0
    leader_elect_retry_period: float = 2.0


class Agent:
    """One process's parts for its role, each a runnable (gitops.runnable), started in
    order and stopped in reverse. Today's role is the all-in-one: the control plane (sync,
    controllers, scheduler, API) and a node (node agent, Docker events, Service proxy,
    DNS) on one store."""

    def __init__(self, config: AgentConfig) -> None:
        self.config = config
        self.dd = DataDir.at(config.data_dir)
        self.webhook_secret = load_secret(config.webhook_secret_file or None,
                                          config.webhook_secret_env or None)
        self.decryption = KeySource(config.decryption_key_file, config.age_key)
        if self.decryption:     # a key it cannot use (others may read it...): refuse now
            log.info("decryption_keys_loaded", recipients=self.decryption.load().recipients)
        make_private_dir(self.dd.root)      # Secret data, the token, the repo URL: owner only
        self._lock_fd = _lock(self.dd.lock_file)
        # every writer's one path, over SQLite or etcd
        self.lease_timings = LeaseTimings(config.leader_elect_lease_duration,
                                          config.leader_elect_renew_deadline,
                                          config.leader_elect_retry_period).check()
        self.store = Registry(open_backend(config.datastore, self.dd.store))
        if self.shared:     # servers on one store: one CA, API token, SA key, join token
            from gitops.cluster.shared import share_secrets
            share_secrets(self.store, self.dd.root)
        self.token = api_token.load_or_create(self.dd.token_file)   # a bad one: refuse now
        self.sa_key = load_or_create_key(self.dd.service_account_key_file)
        self.stop = asyncio.Event()
        # -- control plane: git -> store -> controllers -> scheduler
        self.source = make_source(config.repo, self.dd.root, config.ref, config.path,
                                  config.git_timeout)
        self.drift = DriftRecorder()
        self.policy = SyncPolicy(self_heal=config.self_heal, prune=config.prune,
                                 allow_empty_prune=config.allow_empty_prune,
                                 wave_timeout=config.wave_timeout,
                                 allow_host_access=config.allow_host_access,
                                 helm_values=tuple(config.helm_values),
                                 allow_remote_bases=config.allow_remote_bases,
                                 decryption=self.decryption or None,
                                 self_heal_delay=config.self_heal_delay,
                                 options=app_options(_app_sync_options(config)),
                                 ignore_differences=tuple(
                                     parse_flag(r) for r in config.ignore_difference),
                                 ignore_file=config.ignore_differences,
                                 render=render_options(config))
        # The Applications git declares, each synced on its own (app-of-apps too).
        self.apps = Applications(self.store, self.dd.root, self.policy, self.drift,
                                 owner=GitFieldOwner(), git_timeout=config.git_timeout)
        self.engine = SyncEngine(self.store, self.source, self.policy, self.drift,
                                 owner=GitFieldOwner(),     # git writes as manager "gitops"
                                 on_apps=self.apps.declared_by("", self.source),
                                 claims=self.apps.claimed)
        self.sync = SyncRunner(self.engine)
        self.live = LiveDrift(self.engine, self.sync.heal)    # drift seen in seconds
        self.store.watch(self.live.on_change)
        self.service_cidr = (config.service_cidr or self.store.get_state("service_cidr")
                             or pick_subnet(self.dd.instance, [], SERVICE_POOL, 20))
        self.store.set_state("service_cidr", self.service_cidr)
        self.store.service_cidr = self.service_cidr     # ClusterIPs allocated on write
        self.informer = Informer(self.store)        # the cache every loop reads
        self.runtime = DockerRuntime(self.dd.instance)
        self.usage = UsageSampler(self.runtime.list_containers, self.runtime.stats,
                                  wanted=lambda: self.controllers.autoscaled_pods())
        self.controllers = ControllerManager(self.store, informer=self.informer,
                                             usage=self.usage.pod_usage,   # the HPA's
                                             root_ca=ca_pem(self.dd.root))
        self.scheduler = SchedulerLoop(
            self.informer,
            lambda actions: execute_batched(self.store, actions, "scheduler",
                                            self.controllers.events))
        # -- node: pods -> Docker; Services -> proxy and DNS
        self.network = f"gitops-{self.dd.instance}"
        self.node = NodeAgent(self.store, self.runtime, config.node_name or socket.gethostname(),
                              self.network, self.dd.root / "pods",
                              allow_host_access=config.allow_host_access)
        # Pods get their ServiceAccount's token, signed with sa_key, and the API's CA.
        self.node.enable_service_accounts(ca_pem(self.dd.root), key=self.sa_key)
        self.services = ServiceNetwork(self.dd.instance, self.service_cidr,
                                       _node_address(config))
        # A short debounce: a scheduled pod is started at once (a pass reads everything,
        # so pokes during a pass still coalesce into the next one).
        self.node_loop = Loop("node-agent", lambda: self.node.sync_once(wait=False), resync=2,
                              debounce=0.003)
        self.proxy_loop = Loop("services", self._apply_services, resync=10, debounce=0,
                               retry_failed=True)
        self.node.wake = self.node_loop.poke
        self.node.in_rotation = self.services.routes_to   # out of Services before SIGTERM
        self.node.on_drift = RuntimeDriftReporter(self.drift, self.store,
                                                  lambda: self.engine.source_info,
                                                  self._policy)
        self.pod_logs = PodLogs(self.store, self.runtime, self.node.previous_run_since,
                                self.stop.is_set)
        self.informer.add_handler(self._wake_node)
        self._api: web.AppRunner | None = None
        # -- a cluster server: other hosts join as nodes (gitops.cluster)
        set_default_toleration_seconds(config.default_unreachable_toleration_seconds)
        self.cluster = _cluster_server()(
            self.store, self.dd, config.advertise_address, config.https_listen_port,
            config.cluster_cidr, self.service_cidr,
            Settings(config.node_monitor_grace_period,
                     config.default_unreachable_toleration_seconds),
            self.controllers.events, shared=self.shared,
            backend=Backend(config.pod_network_backend)) if config.advertise_address else None
        if self.cluster is not None:
            self.informer.add_handler(self.cluster.on_change)
        # Several servers: sync requests made on one that does not lead reach the leader.
        self._leads: dict[str, Elected] = {}
        self.requests = SyncRequests(self.store, self._control_here, self._trigger) \
            if self.shared else None
        self.requests_loop = Loop("sync-requests", self.requests.serve, resync=10) \
            if self.requests else None
        if self.requests_loop is not None:
            self.informer.add_handler(lambda e, o, n: self.requests.on_change(e, o, n)
                                      and self.requests_loop.poke())
        self.servers = _server_registry(self.store, self.dd) if self.shared else None

    @property
    def shared(self) -> bool:
        """A store several servers share (etcd)."""
        return self.config.datastore.startswith("etcd://")

    # -- wiring ---------------------------------------------------------------------------
    def runnables(self) -> Group:
        """Started in this order, stopped in reverse: the store and the node's files go
        last; the loops, whose passes may take a while, stop together and first."""
        watch = self._dir_watch()
        return Group("agent", [
            Hooks("state", start=lambda: None, stop=self._close_state),
            Hooks("services", start=self._start_dns, stop=self.services.close),
            Hooks("api", start=self._start_api, stop=self._stop_api),
            Polling("poll", self.config.interval, lambda: self._trigger("interval")),
            *([watch] if watch is not None else []),
            Worker("docker-events", self._watch_docker),
            Worker("usage", self.usage.run),
            Group("loops", [
                *self._elected([self.sync, self.live, self.apps],
                               [self.controllers,
                                *(self.cluster.controller_loops() if self.cluster else [])],
                               [self.scheduler]),
                self.node_loop, self.proxy_loop,
                *([Loop("peers", self.servers.refresh, resync=5)] if self.servers else []),
                *(self.cluster.host_loops() if self.cluster else [])], together=True),
        ])

    def _trigger(self, reason: str) -> None:
        """A pass of the agent's own source and of every app (a poll, a webhook); a
        webhook on a server not leading sync is the leader's to act on."""
        if reason == "webhook" and self._follows_sync():
            self.requests.trigger(reason)
            return
        self.sync.trigger(reason)
        self.apps.trigger_all(reason)

    def _follows_sync(self) -> bool:
        elected = self._leads.get("gitops-sync")
        return self.requests is not None and elected is not None and not elected.leading

    async def _control(self, verb: str, params: dict) -> dict:
        """A control verb for the agent's own source, or for one app (`?app=NAME`); on a
        server not leading sync, the leader's answer (gitops.sync.requests)."""
        if self._follows_sync():
            return await self.requests.control(verb, params,
                                               self.policy.wave_timeout + SYNC_MARGIN)
        return await self._control_here(verb, params)

    async def _control_here(self, verb: str, params: dict) -> dict:
        app = params.get("app")
        if app:
            return await self.apps.get(app).runner.control(verb, params)
        return await self.sync.control(verb, params)

    def _elected(self, sync: list, controllers: list, scheduler: list) -> list:
        """On a shared store (etcd) every server serves the API, and one at a time runs
        each of sync, the controllers and the scheduler: the holder of its Lease."""
        if not self.config.datastore.startswith("etcd://"):
            return [*sync, *controllers, *scheduler]
        timings = self.lease_timings
        identity = f"{socket.gethostname()}_{self.dd.instance}"
        out = []
        for lease, members in (("gitops-sync", [*sync, self.requests_loop]),
                               ("gitops-controller-manager", controllers),
                               ("gitops-scheduler", scheduler)):
            elector = LeaderElector(self.store, lease, identity, timings)
            self._leads[lease] = Elected(lease, Group(lease, members, together=True),
                                         elector.try_acquire_or_renew, elector.release,
                                         timings.retry_period, timings.renew_deadline)
            out.append(self._leads[lease])
        return out

    def _wake_node(self, _event: str, old: dict | None, new: dict | None) -> None:
        kind = (new or old or {}).get("kind")
        if kind in ("Node", "ConfigMap", "Secret") or (
                kind == "Pod" and bound_to(new or old, self.node.node_name)):
            self.node_loop.poke()
        if kind in ("Service", "Endpoints", "Pod"):
            self.proxy_loop.poke()

    def _policy(self) -> dict:
        return {"self_heal": self.policy.self_heal, "prune": self.policy.prune}

    def _dir_watch(self) -> Hooks | None:
        """A local directory is watched: edit -> running in about a second."""
        if not isinstance(self.source, DirSource) or not Path(self.source.url).is_dir():
            return None
        watcher = DirWatcher(Path(self.source.url), lambda: self._trigger("watch"))

        def start() -> None:
            try:
                watcher.start()
            except OSError as exc:        # e.g. inotify limits; polling still works
                log.warning("dir_watch_unavailable", path=self.source.url, error=str(exc))
        return Hooks("dir-watch", start=start, stop=watcher.stop)

    async def _apply_services(self) -> None:
        services = self.store.list("Service")
        await self.services.apply(services, self.store.list("Endpoints"),
                                  self.store.list("Pod"))
        # LoadBalancer Services: the node's address once their node ports listen; any
        # Service whose listener cannot bind says why (and a Warning event).
        old = {key_of(s): s.get("status") for s in services}
        for key, status in service_statuses(services, self.services.listening(),
                                            self.config.node_address,
                                            self.services.listen_failures,
                                            rfc3339(time.time())).items():
            try:
                svc = self.store.update_status(key, status)
            except GitopsError:         # deleted meanwhile: the next pass sees it gone
                continue
            if (why := bind_failure(old.get(key), status)) is not None:
                self.controllers.events.record(event_for(svc, "FailedToBind", why, WARNING,
                                                         "service-proxy"))

    def _watch_docker(self, stopping) -> None:
        watch_runtime(self.runtime, self.node, self.node_loop, stopping)

    async def _start_dns(self) -> None:
        await start_node_dns(self.services, self.node)

    async def _start_api(self) -> None:
        app = make_app(ApiContext(self.store, self.token, self.status, self._control,
                                  self.stop.set, self.pod_logs,
                                  kube=KubeBackends(
                                      exec=RuntimeStreams(self.runtime),
                                      node_proxy=self.cluster.node_proxy(self.node.node_name)
                                      if self.cluster else None, token_key=self.sa_key),
                                  allow_host_access=self.config.allow_host_access,
                                  public_metrics=self.config.public_metrics,
                                  nodes=self.cluster.credentials if self.cluster else None,
                                  service_account_key=self.sa_key))
        if self.cluster is not None:
            self.cluster.add_routes(app)        # /cacerts, /gitops/v1/join
        add_webhook_routes(app, self.webhook_secret, self.source.url, self.config.ref,
                           lambda _event: self._trigger("webhook"))
        metrics.attach(self, app)       # GET /metrics (Prometheus)
        add_ui_routes(app, UiContext(self.store, lambda: self.status(objects=False),
                                     self._control,
                                     self.pod_logs, self.drift.recent,
                                     read_only=self.config.ui_read_only))   # /ui
        self._api = web.AppRunner(app, access_log=None)
        await self._api.setup()
        url, kube_url = await start_listeners(
            self._api, self.dd.root, self.config.api_host, self.config.api_port,
            self.config.kube_port or _remembered_port(self.dd), fallback=not self.config.kube_port,
            names=(apiservice.cluster_ip(self.service_cidr), *apiservice.DNS_NAMES))
        self.dd.kube_port_file.write_text(f"{port_of(kube_url)}\n")
        cluster = {} if self.cluster is None else {
            "join": await self.cluster.start_listener(self._api), "server": self.cluster.url}
        self._publish_api_service(kube_url)
        if self.servers is not None:    # where clients of this data dir find the others
            self.servers.register({"url": url, "kube_url": kube_url,
                                   "server": self.cluster.url if self.cluster else ""})
        # Redacted: credentials stay in git's own config (repos/), nowhere else on disk.
        _write_json(self.dd.agent_file, {"pid": os.getpid(), "url": url, "kube_url": kube_url,
                                         "instance": self.dd.instance,
                                         "repo": redact_url(self.source.url),
                                         "network": self.network,
                                         "docker_host": self.runtime.host,
                                         "options": self._options(), **cluster})
        _write_json(self.dd.runtime_file, {"docker_host": self.runtime.host,
                                           "network": self.network,
                                           "service_cidr": self.service_cidr,
                                           "datastore": self.config.datastore,
                                           "pod_routes": self.cluster is not None})
        log.info("agent_started", api=url, repo=redact_url(self.source.url),
                 instance=self.dd.instance,
                 node=self.node.node_name, interval=self.config.interval)

    def _options(self) -> dict:
        """The options it runs with (what `up` compares its own with); no secrets."""
        skip = ("repo", "data_dir", "age_key")
        return {f.name: list(v) if isinstance(v := getattr(self.config, f.name), tuple) else v
                for f in fields(self.config) if f.name not in skip}

    def _publish_api_service(self, kube_url: str) -> None:
        """default/kubernetes and its Endpoints: pods reach the API through the proxy."""
        where = urlsplit(kube_url)
        host = where.hostname or "127.0.0.1"
        ip = "127.0.0.1" if host in ("0.0.0.0", "::", "localhost") else host
        for obj in (apiservice.service(self.service_cidr),
                    apiservice.endpoints(ip, where.port or 443)):
            key = key_of(obj)
            existing = self.store.get(key)
            try:
                if existing is None:
                    self.store.create(obj)
                elif any(existing.get(f) != obj[f] for f in ("spec", "subsets") if f in obj):
                    self.store.update({**existing, **{f: obj[f] for f in ("spec", "subsets")
                                                      if f in obj}})
            except GitopsError as exc:      # the API still serves; pods just cannot find it
                log.warning("api_service_not_published", error=str(exc))

    async def _stop_api(self) -> None:
        if self._api is not None:
            await self._api.cleanup()

    def _close_state(self) -> None:
        if self.servers is not None:
            try:
                self.servers.unregister()
            except GitopsError as exc:      # the store is down: the entry stays
                log.warning("server_unregister_failed", error=str(exc))
        self.node.close()
        self.dd.agent_file.unlink(missing_ok=True)
        self.store.close()

    # -- the status the API serves ----------------------------------------------------------
    def status(self, objects: bool = True) -> dict:
        """objects=False: the app alone, without the objects' health (the UI judges it
        from the one read of the store its tree makes) nor the Healthy condition."""
        sync = self.sync.status.read().as_dict()
        app = {"source": {"repo": redact_url(self.source.url), "ref": self.config.ref,
                          "path": self.config.path},
               "applied_revision": sync["applied_revision"],
               "fetched_revision": sync["fetched_revision"],
               "pin": sync["pin"], "suspended": sync["suspended"],
               "policy": {**self._policy(), "self_heal_delay": self.policy.self_heal_delay},
               "last_sync": sync["last_sync"],
               "node": self.node.node_name, "network": self.network,
               "hooks": sync["hooks"], "conditions": sync["conditions"]}
        if not objects:
            return app
        health = object_health(self.store, self.informer)
        return {**app, "objects": health,
                "unmanaged": unmanaged_objects(self.store, self.apps.managed_keys(),
                                               self.informer),
                "conditions": [*sync["conditions"], health_condition(health).as_dict()],
                "apps": [app_status(a, object_health(a.engine.store))
                         for a in self.apps.all()]}

    # -- lifecycle --------------------------------------------------------------------------
    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.stop.set)
        if not await self._wait_for_runtime():
            return
        runnables = self.runnables()
        await runnables.start()
        try:
            await self.stop.wait()
        finally:
            log.info("agent_stopping")
            await runnables.stop()
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
        if self.cluster is not None:        # a cluster's node: the pod CIDR it was given
            self.node.setup(self.cluster.prepare_own_node(self.node), self.cluster.pod_mtu())
            return
        # the pod network is this host's: on a store several servers share, each its own
        name = "pod_subnet" if not self.config.datastore.startswith("etcd://") \
            else f"pod_subnet.{self.dd.instance}"
        subnet = self.config.pod_subnet or self.store.get_state(name)
        if not subnet:
            subnet = pick_subnet(self.dd.instance, self.runtime.used_subnets())
        self.node.setup(subnet)
        self.store.set_state(name, subnet)


# A cluster's modules are imported by the agents that need them: not a single host's cost.
def _cluster_server() -> type:
    from gitops.cluster.server import ClusterServer
    return ClusterServer


def _server_registry(store, dd: DataDir):
    from gitops.cluster.shared import PEERS, ServerRegistry
    return ServerRegistry(store, dd.instance, dd.root / PEERS)


def render_options(config: AgentConfig) -> RenderOptions:
    """How the agent's own source renders, from its flags (checked by the CLI)."""
    def jsonnet_vars(strings: tuple[str, ...], codes: tuple[str, ...]) -> tuple:
        return (*(parse_var(v) for v in strings), *(parse_var(v, code=True) for v in codes))
    return RenderOptions(
        directory=DirectoryOptions(
            recurse=config.directory_recurse, include=config.directory_include,
            exclude=config.directory_exclude,
            tlas=jsonnet_vars(config.jsonnet_tla_str, config.jsonnet_tla_code),
            ext_vars=jsonnet_vars(config.jsonnet_ext_var_str, config.jsonnet_ext_var_code),
            libs=tuple(config.jsonnet_libs)),
        helm=HelmOptions(release_name=config.release_name),
        namespace=config.dest_namespace)


def _remembered_port(dd: DataDir) -> int:
    try:
        return int(dd.kube_port_file.read_text().strip())
    except (OSError, ValueError):
        return 0


def _app_sync_options(config: AgentConfig) -> tuple[str, ...]:
    """--sync-option's list; --create-namespace is CreateNamespace=true for every object."""
    extra = ("CreateNamespace=true",) if config.create_namespace else ()
    return (*config.sync_options, *extra)


def _node_address(config: AgentConfig) -> str:
    """Where NodePorts listen: a cluster's node on its advertised address by default."""
    if config.advertise_address and config.node_address == "127.0.0.1":
        return config.advertise_address
    return config.node_address


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
