"""PodDisruptionBudget status, as the disruption controller keeps it (pure).

The budget counts the pods its selector picks in its namespace: how many are healthy
(Ready, not being deleted), how many must stay so (minAvailable, or the expected count
less maxUnavailable; percentages of the expected count round up), and so how many may be
disrupted now. The expected count is the scale of the pods' controllers (a ReplicaSet's
Deployment, a StatefulSet, ...) when a percentage or maxUnavailable needs it, else the
number of pods. Evictions (the API's pods/eviction) ask it before deleting a pod.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from gitops.controllers.rollout import resolve_int_or_percent
from gitops.model import key_of
from gitops.model.actions import Action, SetStatus
from gitops.model.meta import controller_of, is_deleting
from gitops.model.pods import has_finished, is_ready
from gitops.model.selectors import matches

Lookup = Callable[[str, str, str], dict | None]     # kind, namespace, name -> object


@dataclass(frozen=True)
class Budget:
    expected: int
    healthy: int
    desired: int

    @property
    def allowed(self) -> int:
        return max(0, self.healthy - self.desired)


def is_healthy(pod: dict) -> bool:
    return not is_deleting(pod) and is_ready(pod)


def covers(pdb: dict, pod: dict) -> bool:
    return (pod["metadata"].get("namespace") == pdb["metadata"].get("namespace")
            and matches((pdb.get("spec") or {}).get("selector"),
                        pod["metadata"].get("labels")))


def _scaled(value: int | str, total: int) -> int:
    """A percentage of total, rounded up (intstr's own arithmetic); a number as it is."""
    if isinstance(value, str) and value.endswith("%"):
        return resolve_int_or_percent(value, total, round_up=True, default=0)
    return int(value)


def _expected(pods: list[dict], lookup: Lookup) -> int:
    """The controllers' scale, each counted once (a ReplicaSet of a Deployment counts as
    the Deployment); a pod without a controller counts as itself."""
    scale: dict[tuple[str, str], int] = {}
    loose = 0
    for pod in pods:
        ref = controller_of(pod)
        owner = lookup(ref["kind"], pod["metadata"]["namespace"], ref["name"]) if ref else None
        if owner is None:
            loose += 1
            continue
        top = controller_of(owner)
        if owner["kind"] == "ReplicaSet" and top and top.get("kind") == "Deployment":
            owner = lookup("Deployment", pod["metadata"]["namespace"], top["name"]) or owner
        scale[(owner["kind"], owner["metadata"]["name"])] = int(
            (owner.get("spec") or {}).get("replicas", 1))
    return sum(scale.values()) + loose


def budget(pdb: dict, pods: list[dict], lookup: Lookup) -> Budget:
    mine = [p for p in pods if covers(pdb, p) and not has_finished(p)]
    healthy = sum(1 for p in mine if is_healthy(p))
    spec = pdb.get("spec") or {}
    if spec.get("maxUnavailable") is not None:
        expected = _expected(mine, lookup)
        desired = max(0, expected - _scaled(spec["maxUnavailable"], expected))
    elif isinstance(spec.get("minAvailable"), str):
        expected = _expected(mine, lookup)
        desired = _scaled(spec["minAvailable"], expected)
    else:
        expected = len(mine)
        desired = int(spec.get("minAvailable", 1))
    return Budget(expected, healthy, desired)


def status(pdb: dict, b: Budget, now: str) -> dict:
    before = pdb.get("status") or {}
    allowed = "True" if b.allowed > 0 else "False"
    old = next((c for c in before.get("conditions") or []
                if c.get("type") == "DisruptionAllowed"), {})
    return {"observedGeneration": pdb["metadata"].get("generation", 1),
            "expectedPods": b.expected, "currentHealthy": b.healthy,
            "desiredHealthy": b.desired, "disruptionsAllowed": b.allowed,
            "conditions": [{
                "type": "DisruptionAllowed", "status": allowed,
                "reason": "SufficientPods" if b.allowed > 0 else "InsufficientPods",
                "message": "", "observedGeneration": pdb["metadata"].get("generation", 1),
                "lastTransitionTime": old.get("lastTransitionTime", now)
                if old.get("status") == allowed else now}]}


def reconcile(pdbs: list[dict], pods: list[dict], lookup: Lookup, now: str) -> list[Action]:
    actions: list[Action] = []
    for pdb in pdbs:
        new = status(pdb, budget(pdb, pods, lookup), now)
        if _without_times(new) != _without_times(pdb.get("status") or {}):
            actions.append(SetStatus(key_of(pdb), new))
    return actions


def _without_times(st: dict) -> dict:
    return {**st, "conditions": [{k: v for k, v in c.items() if k != "lastTransitionTime"}
                                 for c in st.get("conditions") or []]}
