"""`gitops agent --server`: a node alone, joined to a server.

The same parts as the all-in-one agent's node half (NodeAgent on Docker, the Service
proxy, DNS), on a RemoteStore: the node talks to the control plane only through its API,
with its own credential, as a kubelet and kube-proxy do. It registers its Node at its
address, waits for the pod CIDR the server gives it, makes its pod network there, routes
to the other nodes' pod CIDRs and renews its Lease.
"""

from __future__ import annotations

import asyncio
import fcntl
import json
import os
import signal
import socket
import threading
import time
import urllib.parse
from dataclasses import dataclass
from pathlib import Path

import structlog

from gitops.agent import routes
from gitops.agent.docker import DockerRuntime
from gitops.agent.heartbeat import Heartbeat
from gitops.agent.node import NodeAgent
from gitops.agent.podnet import Backend
from gitops.agent.runtime import RuntimeUnavailable
from gitops.api import joinclient
from gitops.api.join import parse_token
from gitops.api.kube.api import KubeBackends
from gitops.api.kube.backends import RuntimeStreams
from gitops.api.nodeproxy import KUBELET_PORT
from gitops.api.podlogs import PodLogs
from gitops.api.remote import ApiClient, RemoteStore
from gitops.cluster.endpoint import NodeEndpoint
from gitops.controllers.nodeipam import pod_cidr
from gitops.errors import GitopsError
from gitops.model import ObjectKey
from gitops.paths import DataDir
from gitops.private_files import make_private_dir, write_atomic
from gitops.proxy.services import ServiceNetwork
from gitops.runnable import Group, Hooks, Loop, Worker

log = structlog.get_logger(component="node")

PODCIDR_WAIT = 60.0


@dataclass
class NodeConfig:
    servers: list[str]
    token_file: Path
    data_dir: Path
    node_name: str = ""
    node_ip: str = ""
    allow_host_access: bool = False
    kubelet_port: int = KUBELET_PORT
    pod_network_backend: str = "auto"      # gitops.agent.podnet.Backend


def source_address(server: str) -> str:
    """This host's address on the way to the server (what other hosts reach it at)."""
    url = urllib.parse.urlsplit(server)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.connect((url.hostname or "127.0.0.1", url.port or 6443))     # no packet is sent
        return s.getsockname()[0]


def obtain_identity(cfg: NodeConfig, dd: DataDir, node_name: str,
                    address: str) -> joinclient.NodeIdentity:
    """The credential this data dir joined with, or a new one from the first server that
    accepts the token. A refused token changes nothing here or on the server."""
    try:
        text = cfg.token_file.read_text()
    except OSError as exc:
        raise GitopsError(f"cannot read the token file {cfg.token_file}: {exc.strerror}")
    token = parse_token(text, f"the token file {cfg.token_file}")
    known = joinclient.load(dd.root, token, node_name, address)
    if known is not None:
        return known
    errors = []
    for server in cfg.servers:
        try:
            identity = joinclient.join(server, token, node_name, address)
        except joinclient.JoinError as exc:
            errors.append(str(exc))
            continue
        joinclient.save(dd.root, identity, address)
        log.info("node_joined", server=server, node=node_name)
        return identity
    raise joinclient.JoinError("; ".join(errors))


class NodeRole:
    def __init__(self, cfg: NodeConfig) -> None:
        self.cfg = cfg
        self.dd = DataDir.at(cfg.data_dir)
        make_private_dir(self.dd.root)
        self._lock_fd = _lock(self.dd.lock_file)
        self.node_name = cfg.node_name or socket.gethostname().lower()
        self.node_ip = cfg.node_ip or source_address(cfg.servers[0])
        self.identity = obtain_identity(cfg, self.dd, self.node_name, self.node_ip)
        self.stop = asyncio.Event()
        self._stopping = threading.Event()
        client = ApiClient(cfg.servers, self.identity.credential, self.identity.tls())
        self.store = RemoteStore(client, self._stopping)
        self.runtime = DockerRuntime(self.dd.instance)
        self.network = f"gitops-{self.dd.instance}"
        self.node = NodeAgent(self.store, self.runtime, self.node_name, self.network,
                              self.dd.root / "pods", allow_host_access=cfg.allow_host_access)
        self.node.node_ip = self.node_ip
        self.node.kubelet_port = cfg.kubelet_port
        # Pods' ServiceAccount tokens: asked of the server, bound to the pod (TokenRequest)
        self.node.enable_service_accounts(self.identity.ca_pem.decode(),
                                          request=self._request_token)
        self.endpoint = NodeEndpoint(self.dd.root, self.identity.endpoint, self.store,
                                     KubeBackends(
                                         logs=PodLogs(self.store, self.runtime,
                                                      self.node.previous_run_since,
                                                      self.stop.is_set),
                                         exec=RuntimeStreams(self.runtime)))
        self.services = ServiceNetwork(self.dd.instance,
                                       self.identity.cluster.get("serviceCIDR", ""),
                                       self.node_ip, proxy_workers=node_proxy_workers())
        # As the all-in-one agent's: a pass hands pods to their workers and returns, so a
        # pod bound meanwhile starts without waiting for the slowest start of this pass.
        self.node_loop = Loop("node-agent", lambda: self.node.sync_once(wait=False),
                              resync=2, debounce=0.003)
        self.proxy_loop = Loop("services", self._apply_services, resync=10, debounce=0,
                               retry_failed=True)
        self.pod_network = routes.PodNetwork(self.store, self.node_name, self.node_ip,
                                             Backend(cfg.pod_network_backend),
                                             routes.vni_from_env())
        self.routes_loop = Loop("node-routes", self.pod_network.sync, resync=30,
                                debounce=0.01)
        beat = Heartbeat(self.store, self.node_name, lambda: self.node.runtime_up)
        self.heartbeat = Loop("node-heartbeat", beat.beat, resync=beat.every)
        self.node.wake = self.node_loop.poke
        self.node.in_rotation = self.services.routes_to
        self.store.watch(self._wake)

    def _wake(self, _event: str, obj: dict) -> None:
        kind = obj.get("kind")
        if kind == "Node" or (kind == "Pod" and bound_to(obj, self.node_name)):
            self.node_loop.poke()
        if kind in ("Service", "Endpoints", "Pod"):
            self.proxy_loop.poke()
        if kind == "Node":
            self.routes_loop.poke()

    async def _apply_services(self) -> None:
        await self.services.apply(self.store.list("Service"), self.store.list("Endpoints"),
                                  self.store.list("Pod"))

    def _request_token(self, namespace: str, service_account: str, body: dict) -> dict:
        return self.store.client.request(
            "POST", f"/api/v1/namespaces/{namespace}/serviceaccounts/{service_account}/token",
            body)

    def _watch_docker(self, stopping) -> None:
        watch_runtime(self.runtime, self.node, self.node_loop, stopping)

    async def _start_dns(self) -> None:
        await start_node_dns(self.services, self.node)

    def runnables(self) -> Group:
        return Group("node", [
            Hooks("state", start=lambda: None, stop=self._close),
            Hooks("services", start=self._start_dns, stop=self.services.close),
            Hooks("endpoint", start=lambda: self.endpoint.start(self.node_ip,
                                                                self.cfg.kubelet_port),
                  stop=self.endpoint.stop),
            Worker("docker-events", self._watch_docker),
            Group("loops", [self.heartbeat, self.node_loop, self.proxy_loop,
                            self.routes_loop], together=True),
        ])

    def _close(self) -> None:
        self.node.close()
        self.dd.agent_file.unlink(missing_ok=True)
        self.store.close()

    # -- lifecycle --------------------------------------------------------------------
    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.stop.set)
        self.store.start()
        # The server may be down or restarting: wait for it, as a kubelet does.
        while not await asyncio.to_thread(self.store.wait_synced, 10):
            if self.stop.is_set():
                self._stopping.set()
                return
            log.warning("server_unreachable_waiting", servers=self.cfg.servers)
        if not await self._setup():
            return
        runnables = self.runnables()
        await runnables.start()
        # What `gitops down --data-dir` needs: this process, and what to clean up after it.
        write_atomic(self.dd.runtime_file, json.dumps({
            "docker_host": self.runtime.host, "network": self.network,
            "service_cidr": self.services.service_cidr, "pod_routes": True}))
        write_atomic(self.dd.agent_file, json.dumps({
            "pid": os.getpid(), "role": "node", "node": self.node_name,
            "server": self.store.client.server, "instance": self.dd.instance,
            "network": self.network, "docker_host": self.runtime.host}))
        log.info("node_started", node=self.node_name, address=self.node_ip,
                 server=self.store.client.server, pod_cidr=self.node.subnet)
        try:
            await self.stop.wait()
        finally:
            log.info("node_stopping")
            await runnables.stop()
            self._stopping.set()
            log.info("node_stopped")

    async def _setup(self) -> bool:
        """Register, wait for the pod CIDR, make the pod network on it. False if asked to
        stop meanwhile."""
        delay = 1.0
        while True:
            try:
                await asyncio.to_thread(self._setup_once)
                return True
            except (RuntimeUnavailable, PodCidrPending) as exc:
                log.warning("node_setup_waiting", error=str(exc), retry_in=delay)
            try:
                await asyncio.wait_for(self.stop.wait(), timeout=delay)
                return False
            except asyncio.TimeoutError:
                delay = min(10.0, delay * 2)

    def _setup_once(self) -> None:
        self.node.register_node()
        deadline = time.monotonic() + PODCIDR_WAIT
        cidr = ""
        while not cidr and time.monotonic() < deadline:
            cidr = pod_cidr(self.store.get(ObjectKey("Node", "", self.node_name)) or {})
            if not cidr:
                time.sleep(0.1)
        if not cidr:
            raise PodCidrPending(f"the server has given node {self.node_name} no pod CIDR yet")
        routes.enable_forwarding()
        self.node.setup(cidr, routes.pod_mtu(self.pod_network.backend, self.node_ip))


def node_proxy_workers() -> int:
    """A node's Service proxy moves its TCP data path to a worker process (as kube-proxy
    is a process of its own): connections through a ClusterIP then never wait behind
    the node agent's passes, watches and status writes. GITOPS_PROXY_WORKERS overrides."""
    try:
        return max(0, int(os.environ.get("GITOPS_PROXY_WORKERS", "1") or 1))
    except ValueError:
        raise GitopsError("GITOPS_PROXY_WORKERS must be a number of processes, not "
                          f"{os.environ['GITOPS_PROXY_WORKERS']!r}") from None


class PodCidrPending(GitopsError):
    pass


def _lock(path: Path) -> int:
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise GitopsError(f"another agent is already running with data dir {path.parent}")
    return fd


def run_node(cfg: NodeConfig) -> None:
    from gitops.private_files import OWNER_ONLY_UMASK
    from gitops.proxy.loop import run
    os.umask(OWNER_ONLY_UMASK)
    run(NodeRole(cfg).run())


def bound_to(pod: dict, node_name: str) -> bool:
    """Whether a pod event concerns this node's agent (the kubelet watches only the pods
    bound to it): other nodes' pods change all the time in a busy cluster."""
    return (pod.get("spec") or {}).get("nodeName") == node_name


def watch_runtime(runtime, node: NodeAgent, node_loop, stopping) -> None:
    """The engine's events to the node agent; a pass of its loop when one matters."""
    def on_event(event: dict) -> None:
        if node.on_runtime_event(event):
            node_loop.poke()
    runtime.watch_events(on_event, stopping)


async def start_node_dns(services, node: NodeAgent) -> None:
    """Cluster DNS on the pod network's gateway (containers' only nameserver) and on the
    host's loopback; pods fall back to Docker's resolver if neither could bind."""
    await services.start_dns([node.host_ip, "127.0.0.1"])
    if services.answers_at(node.host_ip):
        node.dns_server = node.host_ip
