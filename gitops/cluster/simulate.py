"""`gitops agent --simulate N --server URL`: N simulated nodes (kwok's way) joined to the
servers through their API, as N kubelets would: each node joins with the token and gets
its own credential, registers its Node, renews its Lease every 10 s and turns the pods
bound to it Running (no container), every write with its own credential (NodeRestriction
holds). Reads share one watch cache (the first node's: a node may read every pod and
node). One process, a few threads, one kept-alive connection per thread.

`gitops simulate-nodes N --datastore etcd://...` (gitops.agent.simulated) writes the
store directly instead; both make the same objects.
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import structlog

from gitops.agent.simulated import (LEASE_NAMESPACE, NodeShape, node_object,
                                    running_status)
from gitops.api import joinclient
from gitops.api.join import parse_token
from gitops.api.remote import ApiClient, RemoteStore
from gitops.errors import GitopsError
from gitops.store.base import Conflict, NotFound
from gitops.store.election import micro_time

log = structlog.get_logger(component="simulated-nodes")

HEARTBEAT = 10.0        # seconds between two renewals of a node's Lease (the kubelet's)
WORKERS = 8             # threads writing; each keeps one connection


@dataclass
class SimulateConfig:
    servers: list[str]
    token_file: Path
    count: int
    prefix: str = "sim-node-"
    duration: float = 0.0           # 0: until stopped


class ApiSimulatedNodes:
    def __init__(self, cfg: SimulateConfig, shape: NodeShape = NodeShape()) -> None:
        self.cfg = cfg
        self.shape = shape
        self.names = [f"{cfg.prefix}{i:05d}" for i in range(cfg.count)]
        self._index = {n: i for i, n in enumerate(self.names)}
        self.tokens: dict[str, str] = {}
        self._leases: dict[str, dict] = {}
        self._pod_ips = 0
        self._ip_lock = threading.Lock()
        self.stop = threading.Event()
        self.pool = ThreadPoolExecutor(WORKERS, thread_name_prefix="sim-node")
        self.client: ApiClient | None = None
        self.cache: RemoteStore | None = None

    # -- joining ------------------------------------------------------------------------
    def join(self) -> None:
        try:
            text = self.cfg.token_file.read_text()
        except OSError as exc:
            raise GitopsError(f"cannot read the token file {self.cfg.token_file}: "
                              f"{exc.strerror}") from exc
        token = parse_token(text, f"the token file {self.cfg.token_file}")
        first = self._join_one(token, self.names[0])
        self.tokens[self.names[0]] = first.credential
        for name, identity in zip(self.names[1:], self.pool.map(
                lambda n: self._join_one(token, n), self.names[1:])):
            self.tokens[name] = identity.credential
        self.client = ApiClient(self.cfg.servers, first.credential, first.tls())
        self.cache = RemoteStore(self.client, self.stop)
        log.info("simulated_nodes_joined", count=len(self.names))

    def _join_one(self, token, name: str) -> joinclient.NodeIdentity:
        errors = []
        for server in self.cfg.servers:
            try:
                return joinclient.join(server, token, name, self.node_ip(name))
            except joinclient.JoinError as exc:
                errors.append(str(exc))
        raise joinclient.JoinError("; ".join(errors))

    def node_ip(self, name: str) -> str:
        i = self._index[name]
        return f"10.{200 + i // 65536 % 50}.{i // 256 % 256}.{i % 256}"

    # -- nodes and leases ---------------------------------------------------------------
    def register(self) -> None:
        list(self.pool.map(self._register_one, self.names))
        self.heartbeat()

    def _register_one(self, name: str) -> None:
        obj = node_object(name, self.shape, time.time(), self._index[name])
        status = obj.pop("status")
        # the API validates what a kubelet reports about its machine
        status["nodeInfo"] = {**status["nodeInfo"], **{
            f: f"simulated-{name}" for f in ("machineID", "systemUUID", "bootID")},
            "kernelVersion": "simulated", "osImage": "simulated",
            "containerRuntimeVersion": "simulated://0", "kubeProxyVersion": "simulated"}
        try:
            self._request("POST", "/api/v1/nodes", name, obj)
        except Conflict:
            pass                            # registered before (a restart)
        for _ in range(10):     # the server's IPAM and lifecycle write the Node too
            current = self._request("GET", f"/api/v1/nodes/{name}", name)
            # the server's own fields (podCIDR, taints) stay; the kubelet's status is ours
            try:
                self._request("PUT", f"/api/v1/nodes/{name}/status", name,
                              {**current, "status": {**(current.get("status") or {}),
                                                     **status}})
                return
            except Conflict:
                continue
        raise Conflict(f"node {name}: its status kept changing while registering it")

    def heartbeat(self) -> None:
        list(self.pool.map(self._renew, self.names))

    def _renew(self, name: str) -> None:
        path = f"/apis/coordination.k8s.io/v1/namespaces/{LEASE_NAMESPACE}/leases"
        spec = {"holderIdentity": name, "leaseDurationSeconds": 40,
                "renewTime": micro_time(time.time())}
        lease = self._leases.get(name)
        try:
            if lease is None:
                try:
                    lease = self._request("GET", f"{path}/{name}", name)
                except NotFound:
                    self._leases[name] = self._request("POST", path, name, {
                        "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                        "metadata": {"name": name, "namespace": LEASE_NAMESPACE},
                        "spec": spec})
                    return
            self._leases[name] = self._request(
                "PUT", f"{path}/{name}", name,
                {**lease, "spec": {**(lease.get("spec") or {}), **spec}})
        except (Conflict, NotFound):
            self._leases.pop(name, None)            # read again on the next renewal

    # -- pods -----------------------------------------------------------------------------
    def run_pods(self) -> int:
        """Pods bound to these nodes and not Running yet go Running; how many."""
        assert self.cache is not None
        todo = [p for p in self.cache.list("Pod")
                if (p.get("spec") or {}).get("nodeName") in self._index
                and (p.get("status") or {}).get("phase") not in ("Running", "Succeeded",
                                                                  "Failed")
                and not p["metadata"].get("deletionTimestamp")]
        gone = [p for p in self.cache.list("Pod")
                if (p.get("spec") or {}).get("nodeName") in self._index
                and p["metadata"].get("deletionTimestamp")]
        list(self.pool.map(self._start_pod, todo))
        list(self.pool.map(self._finish_pod, gone))
        return len(todo)

    def _start_pod(self, pod: dict) -> None:
        node, meta = pod["spec"]["nodeName"], pod["metadata"]
        with self._ip_lock:
            self._pod_ips += 1
            n = self._pod_ips
        ip = f"10.{100 + n // 65536 % 50}.{n // 256 % 256}.{n % 256}"
        body = {**pod, "status": running_status(pod, self.node_ip(node), ip, time.time())}
        body["metadata"] = {k: v for k, v in meta.items() if k != "resourceVersion"}
        try:
            self._request("PUT", f"/api/v1/namespaces/{meta['namespace']}/pods/"
                          f"{meta['name']}/status", node, body)
        except (Conflict, NotFound) as exc:
            log.info("simulated_pod_status_retry", pod=meta["name"], error=str(exc))

    def _finish_pod(self, pod: dict) -> None:
        """A deleted pod's "containers" stopped at once: the kubelet's final delete."""
        node, meta = pod["spec"]["nodeName"], pod["metadata"]
        try:
            self._request("DELETE", f"/api/v1/namespaces/{meta['namespace']}/pods/"
                          f"{meta['name']}?gracePeriodSeconds=0", node)
        except NotFound:
            pass

    def _request(self, method: str, path: str, node: str, body: dict | None = None) -> dict:
        if self.client is None:
            raise GitopsError("the simulated nodes have not joined yet")
        return self.client.request(method, path, body, token=self.tokens[node])

    # -- running ------------------------------------------------------------------------
    def run(self) -> None:
        assert self.cache is not None
        self.cache.start()
        while not self.cache.wait_synced(10):
            if self.stop.is_set():
                return
            log.warning("server_unreachable_waiting", servers=self.cfg.servers)
        while True:
            try:
                self.register()
                break
            except GitopsError as exc:      # a server restarting: register again
                log.warning("simulated_nodes_register_failed", error=str(exc))
                if self.stop.wait(1.0):
                    return
        log.info("simulated_nodes_registered", count=len(self.names))
        end = time.monotonic() + self.cfg.duration if self.cfg.duration else float("inf")
        last_beat = time.monotonic()
        while not self.stop.is_set() and time.monotonic() < end:
            try:
                self.run_pods()
                if time.monotonic() - last_beat >= HEARTBEAT:
                    self.heartbeat()
                    last_beat = time.monotonic()
            except GitopsError as exc:      # a server restarting: the next pass retries
                log.warning("simulated_nodes_pass_failed", error=str(exc))
            self.stop.wait(1.0)

    def close(self) -> None:
        self.stop.set()
        self.pool.shutdown(wait=False, cancel_futures=True)
        if self.cache is not None:
            self.cache.close()


def run_simulated(cfg: SimulateConfig) -> None:
    import signal
    nodes = ApiSimulatedNodes(cfg)
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: nodes.stop.set())
    try:
        nodes.join()
        nodes.run()
    finally:
        nodes.close()

