"""EndpointSlices beside Endpoints: for each Service with a selector, its pods as
discovery.k8s.io/v1 slices, as the EndpointSlice controller keeps them (pure).

One slice per set of resolved ports (named target ports may resolve differently per pod),
named after the Service and that port set, labelled as the Kubernetes controller labels
its own (`kubernetes.io/service-name`, `endpointslice.kubernetes.io/managed-by`), so
tools that list a Service's slices by label find them. Slices another manager wrote are
left alone; ours go when their Service or its selector does.
"""

from __future__ import annotations

from gitops.model import ObjectKey, key_of
from gitops.model.actions import Action, Create, Delete, Update
from gitops.model.meta import is_deleting, owner_ref, stable_hash
from gitops.model.pods import is_ready, resolve_target_port
from gitops.model.selectors import service_matches

SERVICE_NAME = "kubernetes.io/service-name"
MANAGED_BY = "endpointslice.kubernetes.io/managed-by"
CONTROLLER = "endpointslice-controller.k8s.io"


def ours(slices: list[dict], service: str) -> list[dict]:
    """The slices this controller keeps for a Service (by their labels)."""
    return [s for s in slices
            if (labels := s["metadata"].get("labels") or {}).get(SERVICE_NAME) == service
            and labels.get(MANAGED_BY) == CONTROLLER]


def desired_slices(svc: dict, pods: list[dict]) -> list[dict]:
    spec, meta = svc.get("spec") or {}, svc["metadata"]
    ports = spec.get("ports") or []
    groups: dict[tuple, list[dict]] = {}
    for pod in sorted(pods, key=lambda p: p["metadata"]["name"]):
        ip = (pod.get("status") or {}).get("podIP")
        if not ip or not service_matches(spec.get("selector"),
                                         pod["metadata"].get("labels")):
            continue
        resolved = tuple((p.get("name", ""), resolve_target_port(p, pod),
                          p.get("protocol", "TCP")) for p in ports)
        if any(port is None for _, port, _ in resolved):
            continue
        groups.setdefault(resolved, []).append(_endpoint(pod, ip))
    if not groups and ports:          # a Service with no pods yet: one empty slice
        groups[()] = []
    labels = {**(meta.get("labels") or {}), SERVICE_NAME: meta["name"],
              MANAGED_BY: CONTROLLER}
    return [{"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
             "metadata": {"name": f"{meta['name']}-{stable_hash(list(resolved))[:5]}",
                          "namespace": meta.get("namespace") or "default",
                          "labels": labels, "ownerReferences": [owner_ref(svc)]},
             "addressType": "IPv4",
             "endpoints": endpoints,
             "ports": [_port(*r) for r in resolved] or None}
            for resolved, endpoints in sorted(groups.items())]


def _endpoint(pod: dict, ip: str) -> dict:
    terminating = is_deleting(pod)
    ready = is_ready(pod) and not terminating
    out: dict = {"addresses": [ip],
                 "conditions": {"ready": ready, "serving": is_ready(pod),
                                "terminating": terminating},
                 "targetRef": {"kind": "Pod", "name": pod["metadata"]["name"],
                               "namespace": pod["metadata"].get("namespace") or "default",
                               "uid": pod["metadata"]["uid"]}}
    if node := (pod.get("spec") or {}).get("nodeName"):
        out["nodeName"] = node
    return out


def _port(name: str, port: int, protocol: str) -> dict:
    return {"name": name, "port": port, "protocol": protocol}


def reconcile(svc: dict | None, slices: list[dict], pods: list[dict]) -> list[Action]:
    """slices: this Service's slices as `ours` finds them. A Service gone takes its
    slices through the garbage collector (their ownerReference)."""
    if svc is None:
        return []
    want = [] if is_deleting(svc) or not (svc.get("spec") or {}).get("selector") \
        else desired_slices(svc, pods)
    want = [{k: v for k, v in s.items() if v is not None} for s in want]
    have = {s["metadata"]["name"]: s for s in slices}
    actions: list[Action] = []
    for slice_ in want:
        current = have.pop(slice_["metadata"]["name"], None)
        if current is None:
            actions.append(Create(slice_))
        elif any(current.get(f) != slice_.get(f) for f in ("endpoints", "ports")) or \
                current["metadata"].get("labels") != slice_["metadata"]["labels"]:
            actions.append(Update({**slice_, "metadata": {**current["metadata"],
                                                          **slice_["metadata"]}}))
    actions += [Delete(key_of(s)) for s in have.values()]
    return actions


def service_of(slice_: dict) -> ObjectKey | None:
    """The Service a slice of ours belongs to."""
    labels = slice_["metadata"].get("labels") or {}
    if labels.get(MANAGED_BY) != CONTROLLER or not labels.get(SERVICE_NAME):
        return None
    return ObjectKey("Service", slice_["metadata"].get("namespace") or "default",
                     labels[SERVICE_NAME])
