"""Filters: can this pod run on that node? Each returns the reasons it cannot, worded as
the Kubernetes scheduler words them, in the order its default plugins run (pure)."""

from __future__ import annotations

from gitops.model.nodes import (
    UNSCHEDULABLE_TAINT,
    matches_affinity,
    node_ready,
    tolerates,
    tolerations_of,
    untolerated,
)
from gitops.scheduler import resources as R

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
    node = info.node
    spec = node.get("spec") or {}
    if spec.get("unschedulable") and not any(
            tolerates(t, {"key": UNSCHEDULABLE_TAINT, "effect": "NoSchedule"})
            for t in tolerations_of(pod)):
        return ["node(s) were unschedulable"]
    if bad := untolerated(pod, node, node_taints=info.taints):
        return [f"node(s) had untolerated taint {{{bad[0].get('key', '')}: "
                f"{bad[0].get('value', '')}}}"]
    if not matches_affinity(pod, node):
        return ["node(s) didn't match Pod's node affinity/selector"]
    if (ports := R.host_ports(pod)) and _ports_clash(ports, info.ports):
        return ["node(s) didn't have free ports for the requested pod ports"]
    return insufficient(pod, info, wanted)
