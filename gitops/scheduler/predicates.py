"""Filters: can this pod run on that node? Each returns the reasons it cannot, worded as
the Kubernetes scheduler words them, in the order its default plugins run (pure)."""

from __future__ import annotations

from gitops.scheduler import resources as R

NOT_READY_TAINT = "node.kubernetes.io/not-ready"
UNSCHEDULABLE_TAINT = "node.kubernetes.io/unschedulable"
_BLOCKING = ("NoSchedule", "NoExecute")


def node_ready(node: dict) -> bool:
    return any(c.get("type") == "Ready" and c.get("status") == "True"
               for c in node.get("status", {}).get("conditions", []) or [])


def taints(node: dict) -> list[dict]:
    """The node's taints, plus the not-ready taint the node lifecycle controller would put
    on a node that is not Ready."""
    out = list((node.get("spec") or {}).get("taints") or [])
    if not node_ready(node) and not any(t.get("key") == NOT_READY_TAINT for t in out):
        out.append({"key": NOT_READY_TAINT, "effect": "NoSchedule"})
    return out


def tolerates(toleration: dict, taint: dict) -> bool:
    """v1.Toleration.ToleratesTaint."""
    if toleration.get("effect") and toleration["effect"] != taint.get("effect"):
        return False
    if toleration.get("key") and toleration["key"] != taint.get("key"):
        return False
    op = toleration.get("operator") or "Equal"
    if op == "Exists":
        return True
    return op == "Equal" and (toleration.get("value") or "") == (taint.get("value") or "")


def _tolerations(pod: dict) -> list[dict]:
    return list((pod.get("spec") or {}).get("tolerations") or [])


def untolerated(pod: dict, node: dict, effects: tuple[str, ...] = _BLOCKING) -> list[dict]:
    tols = _tolerations(pod)
    return [t for t in taints(node) if t.get("effect") in effects
            and not any(tolerates(tol, t) for tol in tols)]


def _requirement(expr: dict, value: str | None) -> bool:
    op, values = expr.get("operator"), [str(v) for v in expr.get("values") or []]
    if op == "In":
        return value is not None and value in values
    if op == "NotIn":
        return value is None or value not in values
    if op == "Exists":
        return value is not None
    if op == "DoesNotExist":
        return value is None
    if op in ("Gt", "Lt") and value is not None and len(values) == 1:
        try:
            have, bound = int(value), int(values[0])
        except ValueError:
            return False
        return have > bound if op == "Gt" else have < bound
    return False


def term_matches(term: dict, node: dict) -> bool:
    """A NodeSelectorTerm: all its expressions and fields hold; an empty term matches
    nothing."""
    exprs, fields = term.get("matchExpressions") or [], term.get("matchFields") or []
    if not exprs and not fields:
        return False
    labels = node["metadata"].get("labels") or {}
    name = node["metadata"].get("name")
    return all(_requirement(e, labels.get(e.get("key"))) for e in exprs) and \
        all(_requirement(f, name if f.get("key") == "metadata.name" else None)
            for f in fields)


def _node_affinity(pod: dict) -> dict:
    return (((pod.get("spec") or {}).get("affinity") or {}).get("nodeAffinity") or {})


def matches_affinity(pod: dict, node: dict) -> bool:
    """nodeSelector and required node affinity (terms ORed)."""
    labels = node["metadata"].get("labels") or {}
    selector = (pod.get("spec") or {}).get("nodeSelector") or {}
    if any(labels.get(k) != v for k, v in selector.items()):
        return False
    required = _node_affinity(pod).get("requiredDuringSchedulingIgnoredDuringExecution")
    if required is None:
        return True
    return any(term_matches(t, node) for t in required.get("nodeSelectorTerms") or [])


def _ports_clash(wanted: set, used: set) -> bool:
    for ip, proto, port in wanted:
        for uip, uproto, uport in used:
            if port == uport and proto == uproto and \
                    (ip == uip or "0.0.0.0" in (ip, uip)):
                return True
    return False


def insufficient(pod: dict, info: R.NodeInfo) -> list[str]:
    """NodeResourcesFit: every resource the pod requests that the node cannot give."""
    offered = info.allocatable
    used = info.requested
    reasons = []
    if R.PODS in offered and info.pods + 1 > offered[R.PODS]:
        reasons.append("Too many pods")
    for name, want in sorted(R.pod_requests(pod).items(),
                             key=lambda kv: (kv[0] not in (R.CPU, R.MEMORY), kv[0])):
        if name == R.PODS:
            continue
        if want > offered.get(name, 0) - used.get(name, 0):
            reasons.append(f"Insufficient {name}")
    return reasons


def filter_reasons(pod: dict, info: R.NodeInfo) -> list[str]:
    """Why `pod` cannot go to the node ([] : it can). Like the scheduler, the first plugin
    that fails decides: NodeUnschedulable, TaintToleration, NodeAffinity, NodePorts,
    NodeResourcesFit (then, given where the other pods are, interpod.Placement's)."""
    node = info.node
    spec = node.get("spec") or {}
    if spec.get("unschedulable") and not any(
            tolerates(t, {"key": UNSCHEDULABLE_TAINT, "effect": "NoSchedule"})
            for t in _tolerations(pod)):
        return ["node(s) were unschedulable"]
    if bad := untolerated(pod, node):
        return [f"node(s) had untolerated taint {{{bad[0].get('key', '')}: "
                f"{bad[0].get('value', '')}}}"]
    if not matches_affinity(pod, node):
        return ["node(s) didn't match Pod's node affinity/selector"]
    if (wanted := R.host_ports(pod)) and _ports_clash(wanted, info.ports):
        return ["node(s) didn't have free ports for the requested pod ports"]
    return insufficient(pod, info)
