"""What `--advertise-address` adds to the all-in-one agent: nodes join (token, per-node
credentials, NodeRestriction), get pod CIDRs, heartbeat with Leases, and lose their pods
when silent past the grace period; the server's own node routes to the others'."""

from __future__ import annotations

import secrets
import time

import structlog
from aiohttp import web

from gitops.agent import routes
from gitops.agent.heartbeat import LEASE_NAMESPACE, Heartbeat
from gitops.agent.node import NodeAgent
from gitops.agent.podnet import Backend
from gitops.api.join import JoinService, NodeCredentials, load_or_create_token
from gitops.api.kube.tls import CA_CERT, ensure_ca, issue_node_cert, server_context
from gitops.api.nodeproxy import NodeEndpoints, NodeProxy
from gitops.cluster.shared import StateMap
from gitops.controllers import nodeipam, nodelifecycle
from gitops.model import ObjectKey
from gitops.model.actions import Delete
from gitops.paths import DataDir
from gitops.runnable import Loop
from gitops.store.base import Conflict
from gitops.store.registry import Registry, execute

log = structlog.get_logger(component="cluster")

NODE_TOKEN = "node-token"
NODE_CREDENTIALS = "node-credentials.json"
NODE_ENDPOINTS = "node-endpoints.json"
SERVERS = "cluster-servers"     # state on a shared store: data dir instance -> its URL


class ClusterServer:
    def __init__(self, store: Registry, dd: DataDir, advertise: str, port: int,
                 cluster_cidr: str, service_cidr: str, settings: nodelifecycle.Settings,
                 events=None, shared: bool = False,
                 backend: Backend = Backend.AUTO) -> None:
        self.store = store
        self.dd = dd
        self.advertise = advertise
        self.port = port
        self.cluster_cidr = cluster_cidr
        self.settings = settings
        self.backend = backend
        self.events = events
        ensure_ca(dd.root)
        ca_pem = (dd.root / CA_CERT).read_bytes()
        self.token = load_or_create_token(dd.root / NODE_TOKEN, ca_pem)
        # Servers on one store know every node's credential and endpoint token alike.
        self.credentials = NodeCredentials(
            dd.root / NODE_CREDENTIALS, StateMap(store, NODE_CREDENTIALS) if shared else None)
        self.endpoints = NodeEndpoints(
            dd.root / NODE_ENDPOINTS, StateMap(store, NODE_ENDPOINTS) if shared else None)
        self.servers = StateMap(store, SERVERS) if shared else None
        self.join = JoinService(self.token, self.credentials, ca_pem, {
            "serviceCIDR": service_cidr, "clusterCIDR": cluster_cidr},
            endpoint=self._endpoint_for)
        self.url = f"https://{advertise}:{port}"
        self.ipam_loop = Loop("node-ipam", self._assign_cidrs, resync=30, debounce=0.01)
        self.lifecycle_loop = Loop("node-lifecycle", self._lifecycle,
                                   resync=max(0.5, min(5.0, settings.grace / 4)))
        self._observed = nodelifecycle.Observed()
        self.routes_loop: Loop | None = None
        self.heartbeat: Loop | None = None

    # -- wiring -------------------------------------------------------------------------
    def add_routes(self, app: web.Application) -> None:
        self.join.add_routes(app)

    async def start_listener(self, runner: web.AppRunner) -> str:
        """The API on ADDR:port for nodes and kubectl elsewhere (HTTPS only)."""
        tls = server_context(self.dd.root, ["127.0.0.1", self.advertise])
        site = web.TCPSite(runner, self.advertise, self.port, ssl_context=tls)
        await site.start()
        port = runner.addresses[-1][1]
        self.url = f"https://{self.advertise}:{port}"
        command = join_command(",".join(self.server_urls()), self.dd.root / NODE_TOKEN)
        log.info("cluster_server_listening", url=self.url, join=command)
        return command

    def server_urls(self) -> list[str]:
        """Every server nodes may use, this one first: on a shared store, each server
        records its advertised URL there (by data dir instance: a restart replaces it)."""
        if self.servers is None:
            return [self.url]
        others = self.servers.put(self.dd.instance, self.url)
        return [self.url, *sorted({u for u in others.values() if u != self.url})]

    def loops(self) -> list[Loop]:
        return [*self.controller_loops(), *self.host_loops()]

    def controller_loops(self) -> list[Loop]:
        """The cluster's controllers: one server at a time runs them (leader election)."""
        return [self.ipam_loop, self.lifecycle_loop]

    def host_loops(self) -> list[Loop]:
        """What this server's own host runs as a node: its routes and its heartbeat."""
        return [*([self.routes_loop] if self.routes_loop else []),
                *([self.heartbeat] if self.heartbeat else [])]

    def on_change(self, _event: str, old: dict | None, new: dict | None) -> None:
        kind = (new or old or {}).get("kind")
        if kind == "Node":
            self.ipam_loop.poke()
            self.lifecycle_loop.poke()
            if self.routes_loop is not None:
                self.routes_loop.poke()
        elif kind == "Lease":
            self.lifecycle_loop.poke()

    def _endpoint_for(self, node: str, address: str) -> dict:
        """A joining node's endpoint: a serving certificate for its address and the token
        this server will present to it."""
        cert, key = issue_node_cert(self.dd.root, node, address)
        token = secrets.token_urlsafe(32)
        self.endpoints.set(node, token)
        return {"cert": cert.decode(), "key": key.decode(), "token": token}

    def node_proxy(self, own_node: str) -> NodeProxy:
        return NodeProxy(self.store, own_node, self.endpoints, self.dd.root / CA_CERT)

    # -- the server's own node --------------------------------------------------------
    def prepare_own_node(self, node: NodeAgent) -> str:
        """Register the server's own node at its advertised address and give it its pod
        CIDR now (its pod network is made on it)."""
        _ensure_namespace(self.store, LEASE_NAMESPACE)
        node.node_ip = self.advertise
        node.register_node()
        self._assign_cidrs()
        own = self.store.get(ObjectKey("Node", "", node.node_name)) or {}
        cidr = nodeipam.pod_cidr(own)
        if not cidr:
            raise RuntimeError(f"no pod CIDR left in {self.cluster_cidr} for node "
                               f"{node.node_name}")
        routes.enable_forwarding()
        name = node.node_name
        network = routes.PodNetwork(self.store, name, self.advertise, self.backend,
                                    routes.vni_from_env())
        self.routes_loop = Loop("node-routes", network.sync, resync=30, debounce=0.01)
        beat = Heartbeat(self.store, name, lambda: node.runtime_up)
        self.heartbeat = Loop("node-heartbeat", beat.beat, resync=beat.every)
        return cidr

    def pod_mtu(self) -> int:
        return routes.pod_mtu(self.backend, self.advertise)

    # -- controllers ------------------------------------------------------------------
    def _assign_cidrs(self) -> None:
        actions = nodeipam.assign(self.store.list("Node"), self.cluster_cidr)
        for action in actions:
            log.info("node_pod_cidr_assigned", node=action.obj["metadata"]["name"],
                     pod_cidr=action.obj["spec"]["podCIDR"])
        execute(self.store, actions, "node-ipam", self.events)

    def _lifecycle(self) -> float | None:
        now = time.time()
        nodes = self.store.list("Node")
        leases = {o["metadata"]["name"]: o for o in self.store.list("Lease", LEASE_NAMESPACE)}
        actions = []
        for node in nodes:
            silent = self._observed.silent_for(node, leases.get(node["metadata"]["name"]), now)
            actions += nodelifecycle.reconcile_node(node, silent, now, self.settings)
        self._observed.forget({n["metadata"]["name"] for n in nodes})
        execute(self.store, actions, "node-lifecycle", self.events)
        nodes = self.store.list("Node")         # with the taints just added
        pod_actions, next_due = nodelifecycle.reconcile_pods(
            nodes, self.store.list("Pod"), now, self.settings)
        for action in pod_actions:
            if isinstance(action, Delete):
                log.info("pod_evicted", pod=str(action.key))
        execute(self.store, pod_actions, "node-lifecycle", self.events)
        return next_due


def join_command(url: str, token_file) -> str:
    return f"gitops agent --server {url} --token-file {token_file} --data-dir DATA_DIR"


def _ensure_namespace(store: Registry, name: str) -> None:
    if store.get(ObjectKey("Namespace", "", name)) is None:
        try:
            store.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
            store.update_status(ObjectKey("Namespace", "", name), {"phase": "Active"})
        except Conflict:
            pass
