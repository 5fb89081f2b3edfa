"""Endpoints: for each Service with a selector, the pods behind it and their target ports."""

from __future__ import annotations

from gitops.model.actions import Action, Create, Update
from gitops.model.meta import is_deleting, owner_ref
from gitops.model.pods import is_ready, resolve_target_port
from gitops.model.selectors import service_matches


def desired_endpoints(svc: dict, pods: list[dict]) -> dict:
    """Group pods by their resolved port list, as Kubernetes' subsets do."""
    ports = svc.get("spec", {}).get("ports", []) or []
    subsets: dict[tuple, dict] = {}
    for pod in sorted(pods, key=lambda p: p["metadata"]["name"]):
        ip = pod.get("status", {}).get("podIP")
        if not ip or is_deleting(pod) or not service_matches(
                svc.get("spec", {}).get("selector"), pod["metadata"].get("labels")):
            continue
        resolved = tuple((p.get("name", ""), resolve_target_port(p, pod), p.get("protocol", "TCP"))
                         for p in ports)
        if any(port is None for _, port, _ in resolved):
            continue
        subset = subsets.setdefault(resolved, {"addresses": [], "notReadyAddresses": [],
                                               "ports": [_port(*r) for r in resolved]})
        address = {"ip": ip, "nodeName": pod["spec"].get("nodeName", ""),
                   "targetRef": {"kind": "Pod", "name": pod["metadata"]["name"],
                                 "namespace": pod["metadata"]["namespace"],
                                 "uid": pod["metadata"]["uid"]}}
        if (host := _hostname(svc, pod)) is not None:
            address["hostname"] = host
        subset["addresses" if is_ready(pod) else "notReadyAddresses"].append(address)
    meta = svc["metadata"]
    return {"apiVersion": "v1", "kind": "Endpoints",
            "metadata": {"name": meta["name"], "namespace": meta["namespace"],
                         "labels": dict(meta.get("labels") or {}),
                         "ownerReferences": [owner_ref(svc)]},
            "subsets": [_compact(s) for s in subsets.values()]}


def _hostname(svc: dict, pod: dict) -> str | None:
    """The pod's own DNS name under its headless Service (a StatefulSet's db-0), as the
    Endpoints controller sets it: so SRV records and the A record name the pod."""
    spec = pod.get("spec") or {}
    if spec.get("hostname") and spec.get("subdomain") == svc["metadata"]["name"] and \
            pod["metadata"].get("namespace") == svc["metadata"].get("namespace"):
        return spec["hostname"]
    return None


def _port(name: str, port: int, protocol: str) -> dict:
    return {"name": name, "port": port, "protocol": protocol} if name \
        else {"port": port, "protocol": protocol}


def _compact(subset: dict) -> dict:
    return {k: v for k, v in subset.items() if v}


def reconcile(svc: dict | None, current: dict | None, pods: list[dict]) -> list[Action]:
    if svc is None or not svc.get("spec", {}).get("selector"):
        # Selector-less Services keep hand-written Endpoints; ours follow their Service
        # through the garbage collector (ownerReference).
        return []
    want = desired_endpoints(svc, pods)
    if current is None:
        return [Create(want)]
    if current.get("subsets") != want["subsets"] or \
            current["metadata"].get("labels") != want["metadata"]["labels"]:
        return [Update({**want, "metadata": {**current["metadata"], **want["metadata"]}})]
    return []

