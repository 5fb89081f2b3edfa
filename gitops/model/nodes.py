"""Facts about nodes and what pods ask of them (pure): readiness, taints and tolerations,
node affinity and selectors, as the scheduler's and the DaemonSet controller's
NodeAffinity and TaintToleration plugins read them."""

from __future__ import annotations

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


def tolerations_of(pod: dict) -> list[dict]:
    return list((pod.get("spec") or {}).get("tolerations") or [])


def untolerated(pod: dict, node: dict, effects: tuple[str, ...] = _BLOCKING,
                node_taints: list[dict] | None = None) -> list[dict]:
    """node_taints: taints(node) when the caller has it already (the scheduler's cache)."""
    found = taints(node) if node_taints is None else node_taints
    if not found:
        return []
    tols = tolerations_of(pod)
    return [t for t in found if t.get("effect") in effects
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


def node_affinity(pod: dict) -> dict:
    return (((pod.get("spec") or {}).get("affinity") or {}).get("nodeAffinity") or {})


def matches_affinity(pod: dict, node: dict) -> bool:
    """nodeSelector and required node affinity (terms ORed)."""
    labels = node["metadata"].get("labels") or {}
    selector = (pod.get("spec") or {}).get("nodeSelector") or {}
    if any(labels.get(k) != v for k, v in selector.items()):
        return False
    required = node_affinity(pod).get("requiredDuringSchedulingIgnoredDuringExecution")
    if required is None:
        return True
    return any(term_matches(t, node) for t in required.get("nodeSelectorTerms") or [])
