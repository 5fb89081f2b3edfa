"""Filters: can this pod run on that node? Each returns the reasons it cannot, worded as
the Kubernetes scheduler words them, in the order its default plugins run (pure)."""

from __future__ import annotations

from gitops.model.nodes import matches_affinity, node_ready
from gitops.scheduler import resources as R
from gitops.scheduler.equivalence import static_reasons

__all__ = ["filter_reasons", "insufficient", "matches_affinity", "node_ready"]

def _ports_clash(wanted: set, used: set) -> bool:
    for ip, proto, port in wanted:
        for uip, uproto, uport in used:
            if port == uport and proto == uproto and \
                    (ip == uip or "0.0.0.0" in (ip, uip)):
                return True
    return False


def wanted_resources(pod: dict) -> list[tuple[str, int]]:
    """The pod's requests in the order NodeResourcesFit reports them (once per pod: the
    scheduler checks them against every node)."""
    return sorted(R.pod_requests(pod).items(),
                  key=lambda kv: (kv[0] not in (R.CPU, R.MEMORY), kv[0]))


def insufficient(pod: dict, info: R.NodeInfo,
                 wanted: list[tuple[str, int]] | None = None) -> list[str]:
    """NodeResourcesFit: every resource the pod requests that the node cannot give."""
    offered = info.allocatable
    used = info.requested
    reasons = []
    if R.PODS in offered and info.pods + 1 > offered[R.PODS]:
        reasons.append("Too many pods")
    for name, want in (wanted if wanted is not None else wanted_resources(pod)):
        if name == R.PODS:
            continue
        if want > offered.get(name, 0) - used.get(name, 0):
            reasons.append(f"Insufficient {name}")
    return reasons


def filter_reasons(pod: dict, info: R.NodeInfo,
                   wanted: list[tuple[str, int]] | None = None) -> list[str]:
    """Why `pod` cannot go to the node ([] : it can). Like the scheduler, the first plugin
    that fails decides: NodeUnschedulable, TaintToleration, NodeAffinity, NodePorts,
    NodeResourcesFit (then, given where the other pods are, interpod.Placement's)."""
    return static_reasons(pod, info) or placed_reasons(pod, info, wanted, R.host_ports(pod))


def placed_reasons(pod: dict, info: R.NodeInfo, wanted: list[tuple[str, int]] | None,
                   ports: set) -> list[str]:
    """NodePorts and NodeResourcesFit: what the pods already on the node leave free."""
    if ports and _ports_clash(ports, info.ports):
        return ["node(s) didn't have free ports for the requested pod ports"]
    return insufficient(pod, info, wanted)
