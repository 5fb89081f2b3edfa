"""Deployment: one ReplicaSet per pod template, rolled with Kubernetes' math.

RollingUpdate follows the deployment controller: the new ReplicaSet grows while the total
stays within replicas + maxSurge; old ones shrink while at least replicas - maxUnavailable
pods stay available (unhealthy old pods go first). Recreate empties the old ReplicaSets,
waits for their pods to be gone, then scales the new one. A rollout that makes no progress
for progressDeadlineSeconds is marked ProgressDeadlineExceeded (never reported as done).

Config-only commits roll out too: the hash of every ConfigMap and Secret the pod template
reads is put in its annotations (opt out with gitops.io/config-rollout: "false").
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from datetime import datetime, timezone

from gitops.controllers.base import Action, Create, Delete, SetStatus, Update
from gitops.model import key_of
from gitops.model.meta import owner_ref, stable_hash
from gitops.model.podspec import referenced_configs

REVISION = "deployment.kubernetes.io/revision"
CHANGE_CAUSE = "kubernetes.io/change-cause"     # `kubectl rollout history` shows it
CONFIG_HASH = "gitops.io/config-hash"
CONFIG_ROLLOUT = "gitops.io/config-rollout"

ConfigLookup = Callable[[str, str, str], dict | None]   # kind, namespace, name


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _ts(value: str | None) -> float:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp() if value else 0.0


def effective_template(deploy: dict, lookup: ConfigLookup | None = None) -> dict:
    template = copy.deepcopy(deploy["spec"].get("template", {}))
    annotations = deploy["metadata"].get("annotations") or {}
    if lookup is None or annotations.get(CONFIG_ROLLOUT) == "false":
        return template
    ns = deploy["metadata"]["namespace"]
    refs = sorted(referenced_configs(template.get("spec", {})))
    if not refs:
        return template
    data = []
    for kind, name in refs:
        obj = lookup(kind, ns, name) or {}
        data.append([kind, name, obj.get("data"), obj.get("stringData"), obj.get("binaryData")])
    meta = template.setdefault("metadata", {})
    meta["annotations"] = {**(meta.get("annotations") or {}), CONFIG_HASH: stable_hash(data)}
    return template


def template_hash(template: dict) -> str:
    return stable_hash(template)


def resolve_int_or_percent(value: int | str | None, total: int, round_up: bool,
                           default: str) -> int:
    value = default if value is None else value
    if isinstance(value, str) and value.endswith("%"):
        exact = int(value[:-1]) * total / 100
        return math.ceil(exact) if round_up else math.floor(exact)
    return int(value)


def surge_and_unavailable(deploy: dict) -> tuple[int, int]:
    spec = deploy.get("spec", {})
    want = spec.get("replicas", 1)
    rolling = (spec.get("strategy") or {}).get("rollingUpdate") or {}
    surge = resolve_int_or_percent(rolling.get("maxSurge"), want, True, "25%")
    unavailable = resolve_int_or_percent(rolling.get("maxUnavailable"), want, False, "25%")
    if surge == 0 and unavailable == 0:
        unavailable = 1          # Kubernetes: both zero would deadlock
    return surge, unavailable


def _replicas(rs: dict) -> int:
    return rs["spec"].get("replicas", 0)


def _available(rs: dict) -> int:
    return rs.get("status", {}).get("availableReplicas", 0)


def _revision(rs: dict) -> int:
    return int(rs["metadata"].get("annotations", {}).get(REVISION, 0))


def reconcile(deploy: dict, replicasets: list[dict], now: float,
              lookup: ConfigLookup | None = None) -> list[Action]:
    """replicasets: the ReplicaSets this Deployment owns."""
    if deploy["metadata"].get("deletionTimestamp"):
        return []
    spec = deploy.get("spec", {})
    want = spec.get("replicas", 1)
    template = effective_template(deploy, lookup)
    thash = template_hash(template)
    name = f"{deploy['metadata']['name']}-{thash}"
    current = next((rs for rs in replicasets if rs["metadata"]["name"] == name), None)
    old = sorted((rs for rs in replicasets if rs is not current), key=_revision)
    actions: list[Action] = []
    if spec.get("paused"):
        return [SetStatus(key_of(deploy), status(deploy, current, old, now))]

    scaled: dict[str, int] = {}      # ReplicaSet name -> new spec.replicas this pass
    created = current is None
    newest = max((_revision(rs) for rs in old), default=0)
    bumped = current is not None and _revision(current) < newest
    if bumped:                      # back to an older template (rollout undo): as Kubernetes
        current = copy.deepcopy(current)        # does, it becomes the newest revision
        current["metadata"]["annotations"] = {**(current["metadata"].get("annotations") or {}),
                                              REVISION: str(newest + 1)}
    if current is None:
        revision = max((_revision(rs) for rs in replicasets), default=0) + 1
        current = new_replicaset(deploy, template, name, thash, 0, revision)
    if (spec.get("strategy") or {}).get("type") == "Recreate":
        _recreate(current, old, want, scaled)
    else:
        _rolling(deploy, current, old, want, scaled)
    if created:
        current["spec"]["replicas"] = scaled.get(name, 0)
        actions.append(Create(current))
    for rs in [current, *old]:
        count = scaled.get(rs["metadata"]["name"], _replicas(rs))
        if count != _replicas(rs) or (bumped and rs is current):
            actions.append(Update(_scaled(rs, count)))

    history = spec.get("revisionHistoryLimit", 10)
    retired = [rs for rs in old if _replicas(rs) == 0 and not rs.get("status", {}).get("replicas")
               and scaled.get(rs["metadata"]["name"], 0) == 0]
    for rs in retired[: max(0, len(retired) - history)]:
        actions.append(Delete(key_of(rs)))
    actions.append(SetStatus(key_of(deploy), status(deploy, current, old, now)))
    return actions


def _recreate(current: dict, old: list[dict], want: int, scaled: dict[str, int]) -> None:
    for rs in old:
        scaled[rs["metadata"]["name"]] = 0
    if any(rs.get("status", {}).get("replicas", 0) for rs in old):
        return                      # old pods still terminating: never run both versions
    scaled[current["metadata"]["name"]] = want


def _rolling(deploy: dict, current: dict, old: list[dict], want: int,
             scaled: dict[str, int]) -> None:
    surge, max_unavailable = surge_and_unavailable(deploy)
    every = [current, *old]
    total = sum(_replicas(rs) for rs in every)
    # Scale up the new ReplicaSet within the surge budget.
    if _replicas(current) < want:
        room = want + surge - total
        if room > 0:
            scaled[current["metadata"]["name"]] = min(want, _replicas(current) + room)
            return                  # as the controller does: scale down on a later pass
    if _replicas(current) > want:
        scaled[current["metadata"]["name"]] = want
    # Scale down old ReplicaSets, keeping want - maxUnavailable available.
    min_available = want - max_unavailable
    new_unavailable = max(0, _replicas(current) - _available(current))
    budget = total - min_available - new_unavailable
    counts = {rs["metadata"]["name"]: _replicas(rs) for rs in old}
    for rs in old:                  # unhealthy old pods first: they serve nobody
        if budget <= 0:
            break
        unhealthy = counts[rs["metadata"]["name"]] - _available(rs)
        cut = min(budget, max(0, unhealthy))
        counts[rs["metadata"]["name"]] -= cut
        budget -= cut
    available = sum(_available(rs) for rs in every)
    budget = available - min_available
    for rs in old:                  # then healthy ones, oldest first
        if budget <= 0:
            break
        cut = min(budget, counts[rs["metadata"]["name"]])
        counts[rs["metadata"]["name"]] -= cut
        budget -= cut
    for rs_name, count in counts.items():
        scaled[rs_name] = count


def new_replicaset(deploy: dict, template: dict, name: str, thash: str, replicas: int,
                   revision: int) -> dict:
    template = copy.deepcopy(template)
    tmeta = template.setdefault("metadata", {})
    tmeta["labels"] = {**(tmeta.get("labels") or {}), "pod-template-hash": thash}
    selector = copy.deepcopy(deploy["spec"].get("selector", {}))
    selector["matchLabels"] = {**(selector.get("matchLabels") or {}), "pod-template-hash": thash}
    cause = (deploy["metadata"].get("annotations") or {}).get(CHANGE_CAUSE)
    return {"apiVersion": "apps/v1", "kind": "ReplicaSet",
            "metadata": {"name": name, "namespace": deploy["metadata"]["namespace"],
                         "labels": dict(tmeta["labels"]),
                         "annotations": {REVISION: str(revision),
                                         **({CHANGE_CAUSE: cause} if cause else {})},
                         "ownerReferences": [owner_ref(deploy)]},
            "spec": {"replicas": replicas, "selector": selector, "template": template,
                     "minReadySeconds": deploy["spec"].get("minReadySeconds", 0)}}


def _scaled(rs: dict, replicas: int) -> dict:
    rs = copy.deepcopy(rs)
    rs["spec"]["replicas"] = replicas
    rs["metadata"].pop("resourceVersion", None)
    return rs


def status(deploy: dict, current: dict | None, old: list[dict], now: float) -> dict:
    spec = deploy.get("spec", {})
    want = spec.get("replicas", 1)
    every = [rs for rs in (current, *old) if rs is not None]
    st = lambda rs, f: rs.get("status", {}).get(f, 0)   # noqa: E731
    replicas = sum(st(rs, "replicas") for rs in every)
    ready = sum(st(rs, "readyReplicas") for rs in every)
    available = sum(st(rs, "availableReplicas") for rs in every)
    updated = st(current, "replicas") if current else 0
    complete = current is not None and st(current, "availableReplicas") >= want \
        and replicas == updated
    previous = deploy.get("status", {})
    counts = {"replicas": replicas, "updatedReplicas": updated, "readyReplicas": ready,
              "availableReplicas": available}
    minimum = available >= want - surge_and_unavailable(deploy)[1]
    return {
        "observedGeneration": deploy["metadata"].get("generation", 1), **counts,
        "unavailableReplicas": max(0, want - available),
        "conditions": [
            {"type": "Available", "status": str(minimum),
             "reason": "MinimumReplicasAvailable" if minimum else "MinimumReplicasUnavailable"},
            _progressing(spec, previous, counts, complete, now),
        ],
    }


def _progressing(spec: dict, previous: dict, counts: dict, complete: bool, now: float) -> dict:
    """Progressing condition; lastUpdateTime moves only when the rollout moved."""
    before = next((c for c in previous.get("conditions", []) or []
                   if c.get("type") == "Progressing"), {})
    moved = any(previous.get(k) != v for k, v in counts.items())
    last = _iso(now) if moved or not before.get("lastUpdateTime") else before["lastUpdateTime"]
    if spec.get("paused"):
        return {"type": "Progressing", "status": "Unknown", "reason": "DeploymentPaused",
                "lastUpdateTime": last}
    if complete:
        return {"type": "Progressing", "status": "True", "reason": "NewReplicaSetAvailable",
                "lastUpdateTime": last}
    deadline = spec.get("progressDeadlineSeconds", 600)
    if before.get("reason") == "ProgressDeadlineExceeded" and not moved or \
            now - _ts(last) > deadline:
        return {"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded",
                "message": f"rollout made no progress for {deadline}s",
                "lastUpdateTime": last}
    return {"type": "Progressing", "status": "True", "reason": "ReplicaSetUpdated",
            "lastUpdateTime": last}
