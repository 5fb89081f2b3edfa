"""What a node's credential may do, as Kubernetes' Node authorizer and NodeRestriction
admission allow a kubelet (pure).

(`forbidden` decides; `node_restriction` gathers what it needs from a request.)
A node reads what a kubelet and kube-proxy read: nodes, pods, Services, Endpoints,
namespaces, its Lease, and only the ConfigMaps, Secrets, claims and ServiceAccounts its own
pods use (by name, never listed). It writes only its own Node (and its status), its own
Lease in kube-node-lease, the status of pods bound to it, the deletion of those pods once
stopped, Events, and asks for tokens of its pods' ServiceAccounts bound to those pods.
Everything else is Forbidden.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass

from aiohttp import web

from gitops.api.kube import status as st
from gitops.api.kube.request import Target, parse_path
from gitops.model import ObjectKey
from gitops.model.satoken import service_account_name

LEASE_NAMESPACE = "kube-node-lease"
ROOT_CA = "kube-root-ca.crt"    # the API's CA, in every namespace
# The node a request was authenticated as (set by the API's auth, read by handlers).
NODE = web.RequestKey("node", str) if hasattr(web, "RequestKey") else "node"
_READ_ANY = {"Node", "Pod", "Service", "Endpoints", "Namespace", "Event"}
_READ_REFERENCED = {"ConfigMap", "Secret", "PersistentVolumeClaim", "ServiceAccount"}

Lookup = Callable[[str, str, str], dict | None]     # kind, namespace, name -> object
PodsOn = Callable[[str, str], list[dict]]           # node, namespace -> pods bound to it


@dataclass(frozen=True)
class Request:
    method: str
    target: Target | None       # None: not a resource path
    path: str
    body_name: str = ""         # metadata.name of a create's body
    bound_pod: str = ""         # a TokenRequest's spec.boundObjectRef (a Pod's name)


def forbidden(node: str, req: Request, lookup: Lookup, pods_on: PodsOn) -> str:
    """Why `node` may not make this request, or "" when it may."""
    if req.path in ("/version", "/api", "/apis", "/healthz") or req.path.startswith(
            ("/openapi/", "/api/v1?")) or (req.target is None and req.method == "GET"
                                          and req.path.startswith(("/api", "/apis/"))):
        return ""       # discovery
    t = req.target
    if t is None:
        return _deny(node, req.method.lower(), req.path)
    kind, name, sub = t.resource.kind, t.name, t.sub
    verb = _verb(req.method, name)
    if verb in ("get", "list", "watch"):
        if sub in ("log", "exec", "attach", "portforward"):
            return _deny(node, verb, f"pods/{sub}")
        if kind in _READ_ANY or (kind == "Lease" and t.namespace == LEASE_NAMESPACE):
            return ""
        if kind in _READ_REFERENCED and verb == "get" and _referenced(
                kind, name, pods_on(node, t.namespace or "")):
            return ""
        if kind in _READ_REFERENCED:
            return (f'node "{node}" may read a {kind} only by name, and only one a pod '
                    f'bound to it uses ({kind.lower()}s "{name or "*"}" in namespace '
                    f'"{t.namespace or ""}")')
        return _deny(node, verb, t.resource.plural)
    if kind == "Event" and verb in ("create", "update", "patch"):
        return ""
    if kind == "ServiceAccount" and sub == "token" and verb == "create":
        pod = lookup("Pod", t.namespace or "", req.bound_pod) if req.bound_pod else None
        if pod is not None and (pod.get("spec") or {}).get("nodeName") == node and \
                service_account_name(pod.get("spec") or {}) == name:
            return ""
        return (f'node "{node}" may ask for a token only for the ServiceAccount of a pod '
                f'bound to it, bound to that pod (serviceaccounts "{name}" in namespace '
                f'"{t.namespace or ""}")')
    if kind == "Node":
        target_name = name or req.body_name
        if verb in ("create", "update", "patch") and target_name == node and sub in ("",
                                                                                     "status"):
            return ""
        return f'node "{node}" may write only its own Node, not nodes "{target_name}"'
    if kind == "Lease":
        target_name = name or req.body_name
        if t.namespace == LEASE_NAMESPACE and target_name == node and verb in (
                "create", "update", "patch"):
            return ""
        return (f'node "{node}" may write only its own Lease in {LEASE_NAMESPACE}, not '
                f'leases "{target_name}" in "{t.namespace}"')
    if kind == "Pod" and name:
        pod = lookup("Pod", t.namespace or "", name)
        bound = pod is not None and (pod.get("spec") or {}).get("nodeName") == node
        if bound and ((sub == "status" and verb in ("update", "patch"))
                      or (sub == "" and verb == "delete")):
            return ""
        if not bound:
            return f'node "{node}" may write only pods bound to it, not pods "{name}"'
    return _deny(node, verb, f"{t.resource.plural}{'/' + sub if sub else ''}")


def _verb(method: str, name: str) -> str:
    return {"GET": "get" if name else "list", "POST": "create", "PUT": "update",
            "PATCH": "patch", "DELETE": "delete" if name else "deletecollection"
            }.get(method, method.lower())


def _deny(node: str, verb: str, what: str) -> str:
    return f'node "{node}" cannot {verb} {what}: a node credential may not'


def _referenced(kind: str, name: str, pods: list[dict]) -> bool:
    """Whether one of the node's pods uses the object, as the Node authorizer's graph
    answers it."""
    return any(name in references(pod).get(kind, set()) for pod in pods)


def references(pod: dict) -> dict[str, set[str]]:
    """ConfigMaps, Secrets and claims a pod names (volumes, env, envFrom, projected,
    imagePullSecrets)."""
    spec = pod.get("spec") or {}
    # its ServiceAccount and the API's CA: what the node mounts as the pod's token volume
    out: dict[str, set[str]] = {"ConfigMap": {ROOT_CA}, "Secret": set(),
                                "PersistentVolumeClaim": set(),
                                "ServiceAccount": {service_account_name(spec)}}
    for ref in spec.get("imagePullSecrets") or []:
        out["Secret"].add(ref.get("name", ""))
    for vol in spec.get("volumes") or []:
        if "configMap" in vol:
            out["ConfigMap"].add(vol["configMap"].get("name", ""))
        if "secret" in vol:
            out["Secret"].add(vol["secret"].get("secretName", ""))
        if "persistentVolumeClaim" in vol:
            out["PersistentVolumeClaim"].add(vol["persistentVolumeClaim"].get("claimName", ""))
        for source in (vol.get("projected") or {}).get("sources") or []:
            if "configMap" in source:
                out["ConfigMap"].add(source["configMap"].get("name", ""))
            if "secret" in source:
                out["Secret"].add(source["secret"].get("name", ""))
    for c in [*(spec.get("initContainers") or []), *(spec.get("containers") or [])]:
        for env in c.get("env") or []:
            source = env.get("valueFrom") or {}
            if "configMapKeyRef" in source:
                out["ConfigMap"].add(source["configMapKeyRef"].get("name", ""))
            if "secretKeyRef" in source:
                out["Secret"].add(source["secretKeyRef"].get("name", ""))
        for env_from in c.get("envFrom") or []:
            if "configMapRef" in env_from:
                out["ConfigMap"].add(env_from["configMapRef"].get("name", ""))
            if "secretRef" in env_from:
                out["Secret"].add(env_from["secretRef"].get("name", ""))
    return out


async def node_restriction(request, store, node: str) -> str:
    """Why this HTTP request of `node` is refused, or "" (reads the store for the pods
    bound to it)."""
    try:
        target = parse_path(request.path)
    except st.ApiError:
        target = None
    body_name = bound_pod = ""
    if request.method == "POST" and target is not None and (not target.name
                                                            or target.sub == "token"):
        try:
            body = await request.json()
            body_name = ((body or {}).get("metadata") or {}).get("name", "")
            ref = ((body or {}).get("spec") or {}).get("boundObjectRef") or {}
            bound_pod = ref.get("name", "") if ref.get("kind") == "Pod" else ""
        except (ValueError, AttributeError):
            body_name = bound_pod = ""

    def lookup(kind: str, ns: str, name: str) -> dict | None:
        return store.get(ObjectKey(kind, ns, name))

    def pods_on(node_name: str, ns: str) -> list[dict]:
        return [p for p in store.list("Pod", ns)
                if (p.get("spec") or {}).get("nodeName") == node_name]

    req = Request(request.method, target, request.path, body_name, bound_pod)
    return await asyncio.to_thread(forbidden, node, req, lookup, pods_on)
