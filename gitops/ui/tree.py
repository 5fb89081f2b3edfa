"""The app as a tree (pure): every object git declares, with what grew from it.

Deployment -> ReplicaSets -> Pods -> containers, StatefulSet -> Pods and PVCs, Job ->
Pods, CronJob -> Jobs, Service -> Endpoints: children are found by controller owner
references (as Kubernetes' garbage collector and Argo CD's resource tree find them), a
Service's Endpoints by name, a StatefulSet's claims by their template's naming rule."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

from gitops.health import Health
from gitops.model import KINDS, ObjectKey, key_of

_NOT_IN_TREE = {"Event", "Lease", "ControllerRevision"}


@dataclass
class Declared:
    """Where git declared an object, and whether the live one matches it."""
    file: str
    line: int
    sync: str


@dataclass
class Node:
    kind: str
    namespace: str
    name: str
    health: str
    message: str = ""
    sync: str = ""                  # declared objects only: Synced | OutOfSync ...
    file: str = ""
    line: int = 0
    detail: str = ""                # a container's image, restarts; a pod's node, IP
    pod: str = ""                   # a container's pod (its link goes to the pod)
    children: list[Node] = field(default_factory=list)

    @property
    def declared(self) -> bool:
        return bool(self.sync)

    @property
    def id(self) -> str:
        """Stable across renders, so a live update keeps the keyboard focus in place."""
        raw = f"{self.kind}-{self.namespace}-{self.pod}-{self.name}".lower()
        return "n-" + re.sub(r"[^a-z0-9-]", "-", raw)


def build_tree(objects: Iterable[dict], declared: Mapping[ObjectKey, Declared],
               health_of: Callable[[dict], Health]) -> list[Node]:
    """Roots are the declared objects in apply order (a declared one missing from the
    store shows as Missing); every other object hangs under its controller."""
    live = [o for o in objects if o.get("kind") not in _NOT_IN_TREE]
    by_key = {key_of(o): o for o in live}
    owned: dict[str, list[dict]] = {}
    for obj in live:
        if (owner := _controller_uid(obj)) is not None:
            owned.setdefault(owner, []).append(obj)
    roots = []
    for key in sorted(declared, key=_rank):
        where = declared[key]
        obj = by_key.get(key)
        if obj is None:
            roots.append(Node(key.kind, key.namespace, key.name, "Missing",
                              "declared in git, not in the store", where.sync,
                              where.file, where.line))
            continue
        node = _node(obj, health_of, owned, by_key, seen=set())
        node.sync, node.file, node.line = where.sync, where.file, where.line
        roots.append(node)
    return roots


def _node(obj: dict, health_of: Callable[[dict], Health], owned: Mapping[str, list[dict]],
          by_key: Mapping[ObjectKey, dict], seen: set[str]) -> Node:
    meta = obj.get("metadata") or {}
    health = health_of(obj)
    node = Node(obj.get("kind", ""), meta.get("namespace", ""), meta.get("name", ""),
                health.status, health.message, detail=_detail(obj))
    uid = meta.get("uid", "")
    if uid in seen:                     # an owner loop: never recurse forever
        return node
    seen.add(uid)
    kids = sorted(owned.get(uid, []), key=lambda o: (_rank(key_of(o)), key_of(o).name))
    kids += _named_children(obj, by_key)
    node.children = [_node(k, health_of, owned, by_key, seen) for k in kids]
    if node.kind == "Pod":
        node.children += _containers(obj)
    return node


def _named_children(obj: dict, by_key: Mapping[ObjectKey, dict]) -> list[dict]:
    """Children found by name rather than by owner: a Service's Endpoints, a
    StatefulSet's claims (`<template>-<set>-<ordinal>`)."""
    key = key_of(obj)
    if key.kind == "Service":
        ep = by_key.get(ObjectKey("Endpoints", key.namespace, key.name))
        return [ep] if ep is not None and _controller_uid(ep) is None else []
    if key.kind == "StatefulSet":
        names = [(t.get("metadata") or {}).get("name", "") for t in
                 (obj.get("spec") or {}).get("volumeClaimTemplates") or []]
        patterns = [re.compile(re.escape(f"{n}-{key.name}-") + r"\d+$") for n in names if n]
        claims = [o for k, o in by_key.items() if k.kind == "PersistentVolumeClaim"
                  and k.namespace == key.namespace and _controller_uid(o) is None
                  and any(p.match(k.name) for p in patterns)]
        return sorted(claims, key=lambda o: key_of(o).name)
    return []


def _containers(pod: dict) -> list[Node]:
    meta, spec, st = pod.get("metadata") or {}, pod.get("spec") or {}, pod.get("status") or {}
    statuses = {s.get("name"): s for s in [*(st.get("initContainerStatuses") or []),
                                           *(st.get("containerStatuses") or [])]}
    out = []
    for init, c in [*((True, c) for c in spec.get("initContainers") or []),
                    *((False, c) for c in spec.get("containers") or [])]:
        health = container_health(statuses.get(c.get("name")), init)
        restarts = (statuses.get(c.get("name")) or {}).get("restartCount", 0)
        detail = c.get("image", "") + (f" · {restarts} restarts" if restarts else "") + \
            (" · init" if init else "")
        out.append(Node("Container", meta.get("namespace", ""), c.get("name", ""),
                        health.status, health.message, detail=detail,
                        pod=meta.get("name", "")))
    return out


_BAD = {"CrashLoopBackOff", "ErrImagePull", "ImagePullBackOff", "ErrImageNeverPull",
        "InvalidImageName", "CreateContainerConfigError", "CreateContainerError",
        "RunContainerError"}


def container_health(status: dict | None, init: bool = False) -> Health:
    """A container's state as a health, with the kubelet's reason."""
    if not status:
        return Health("Progressing", "not started")
    state = status.get("state") or {}
    if waiting := state.get("waiting"):
        reason = waiting.get("reason", "Waiting")
        text = reason + (f": {waiting['message']}" if waiting.get("message") else "")
        return Health("Degraded" if reason in _BAD else "Progressing", text)
    if term := state.get("terminated"):
        code = term.get("exitCode", 0)
        if code == 0:
            return Health("Healthy", term.get("reason") or "Completed")
        return Health("Degraded", f"{term.get('reason') or 'Error'} (exit code {code})")
    if "running" in state:
        if init or status.get("ready"):
            return Health("Healthy", "running")
        return Health("Progressing", "running, not ready")
    return Health("Progressing", "state unknown")


def _detail(obj: dict) -> str:
    kind, spec, st = obj.get("kind"), obj.get("spec") or {}, obj.get("status") or {}
    if kind == "Pod":
        return " · ".join(x for x in (st.get("phase", ""), st.get("podIP", ""),
                                      spec.get("nodeName", "")) if x)
    if kind in ("Deployment", "ReplicaSet", "StatefulSet"):
        return f"{st.get('readyReplicas', 0)}/{spec.get('replicas', 1)} ready"
    if kind == "Service":
        return " · ".join(x for x in (spec.get("type", "ClusterIP"), spec.get("clusterIP", ""))
                          if x)
    if kind == "Endpoints":
        ready = sum(len(s.get("addresses") or []) for s in obj.get("subsets") or [])
        return f"{ready} ready address{'es' if ready != 1 else ''}"
    return ""


def _controller_uid(obj: dict) -> str | None:
    for ref in (obj.get("metadata") or {}).get("ownerReferences") or []:
        if ref.get("controller"):
            return ref.get("uid")
    return None


def _rank(key: ObjectKey) -> tuple:
    info = KINDS.get(key.kind)
    return (info.apply_order if info else 100, key.kind, key.namespace, key.name)


# -- views of a tree --------------------------------------------------------------------
@dataclass(frozen=True)
class Filter:
    kind: str = ""
    name: str = ""
    health: str = ""

    def __bool__(self) -> bool:
        return bool(self.kind or self.name or self.health)

    def matches(self, node: Node) -> bool:
        return (not self.kind or node.kind.lower() == self.kind.lower()) and \
            (not self.name or self.name.lower() in node.name.lower()) and \
            (not self.health or node.health.lower() == self.health.lower())


def filter_tree(nodes: list[Node], flt: Filter) -> list[Node]:
    """The nodes that match, each with the path down to it from its root: a node that
    does not match stays only as the way to a descendant that does."""
    if not flt:
        return nodes
    out = []
    for node in nodes:
        kept = filter_tree(node.children, flt)
        if kept or flt.matches(node):
            out.append(Node(**{**node.__dict__, "children": kept}))
    return out


def flatten(nodes: list[Node], depth: int = 0) -> list[tuple[int, Node]]:
    """Rows of the list view: every node with its depth, parents first."""
    rows = []
    for node in nodes:
        rows.append((depth, node))
        rows.extend(flatten(node.children, depth + 1))
    return rows


def health_counts(nodes: list[Node]) -> dict[str, int]:
    """Declared objects by health, worst first."""
    order = ("Degraded", "Missing", "Progressing", "Suspended", "Unknown", "Healthy")
    counts = Counter(n.health for n in nodes)
    return {h: counts[h] for h in order if counts[h]} | \
        {h: c for h, c in counts.items() if h not in order}


def kinds_in(nodes: list[Node]) -> list[str]:
    return sorted({n.kind for _, n in flatten(nodes)})
