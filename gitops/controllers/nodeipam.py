"""Pod CIDRs for nodes, as kube-controller-manager's node IPAM (range allocator) gives
them (pure): each node without one gets the next free /24 of the cluster CIDR, in the
order nodes registered; a CIDR is never moved once given."""

from __future__ import annotations

import ipaddress

from gitops.model.actions import Action, Update

NODE_MASK = 24


def pod_cidr(node: dict) -> str:
    return (node.get("spec") or {}).get("podCIDR") or ""


def assign(nodes: list[dict], cluster_cidr: str, mask: int = NODE_MASK) -> list[Action]:
    net = ipaddress.IPv4Network(cluster_cidr)
    taken = {pod_cidr(n) for n in nodes if pod_cidr(n)}
    free = (str(s) for s in net.subnets(new_prefix=mask) if str(s) not in taken)
    waiting = sorted((n for n in nodes if not pod_cidr(n)),
                     key=lambda n: (n["metadata"].get("creationTimestamp", ""),
                                    n["metadata"]["name"]))
    actions: list[Action] = []
    for node in waiting:
        cidr = next(free, None)
        if cidr is None:        # the range is used up: the node waits (and says so in logs)
            break
        spec = {**(node.get("spec") or {}), "podCIDR": cidr, "podCIDRs": [cidr]}
        actions.append(Update({**node, "spec": spec}))
    return actions
