"""Where the other pods are: InterPodAffinity, and (spread.py) PodTopologySpread (pure).

Pods are placed with or away from other pods by their labels. A term holds per topology
domain: the value of its topologyKey label on a node (`kubernetes.io/hostname` is the
node itself). As the scheduler's plugin: required terms filter (the pod's own affinity,
its own anti-affinity, then existing pods' anti-affinity against it), preferred terms
and existing pods' terms score.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

from gitops.model.selectors import matches
from gitops.scheduler.spread import hard_constraints, namespace_of, node_label, spread_reason

REQUIRED = "requiredDuringSchedulingIgnoredDuringExecution"
PREFERRED = "preferredDuringSchedulingIgnoredDuringExecution"
HARD_AFFINITY_WEIGHT = 1     # an existing pod's required affinity, when scoring

NO_AFFINITY = "node(s) didn't match pod affinity rules"
NO_ANTI_AFFINITY = "node(s) didn't match pod anti-affinity rules"
EXISTING_ANTI_AFFINITY = "node(s) didn't satisfy existing pods anti-affinity rules"


def _terms(pod: dict, kind: str, which: str) -> list[dict]:
    affinity = ((pod.get("spec") or {}).get("affinity") or {}).get(kind) or {}
    return affinity.get(which) or []


def depends_on_others(pod: dict) -> bool:
    """Pod (anti-)affinity or a hard spread constraint: its place depends on the others'."""
    affinity = (pod.get("spec") or {}).get("affinity") or {}
    return bool(affinity.get("podAffinity") or affinity.get("podAntiAffinity")
                or hard_constraints(pod))


class Placement:
    """The nodes and the pods bound to them, kept up to date through a pass."""

    def __init__(self, nodes: list[dict], namespaces: Iterable[dict] = ()) -> None:
        self.nodes = nodes
        self.placed: list[tuple[dict, dict]] = []
        self._ns_labels = {n["metadata"]["name"]: n["metadata"].get("labels") or {}
                           for n in namespaces}

    def add(self, pod: dict, node: dict) -> None:
        self.placed.append((pod, node))

    def selects(self, term: dict, owner: dict, pod: dict) -> bool:
        """Does `owner`'s term cover `pod`: its namespaces (the owner's own unless the
        term names some or selects them) and its label selector."""
        ns = namespace_of(pod)
        names, selector = term.get("namespaces") or [], term.get("namespaceSelector")
        if names or selector is not None:
            labels = {"kubernetes.io/metadata.name": ns, **self._ns_labels.get(ns, {})}
            in_scope = ns in names or (selector is not None and matches(selector, labels))
        else:
            in_scope = ns == namespace_of(owner)
        return in_scope and matches(term.get("labelSelector"),
                                    (pod.get("metadata") or {}).get("labels"))

    def filter_reasons(self, pod: dict, node: dict) -> list[str]:
        """Why `pod` cannot go to `node` ([] : it can): PodTopologySpread, then
        InterPodAffinity, as the scheduler runs them."""
        why = spread_reason(pod, node, self.nodes, self.placed) or self._affinity_reason(pod, node)
        return [why] if why else []

    def _affinity_reason(self, pod: dict, node: dict) -> str:
        affinity = _terms(pod, "podAffinity", REQUIRED)
        if affinity and not self._affinity_holds(pod, node, affinity):
            return NO_AFFINITY
        for term in _terms(pod, "podAntiAffinity", REQUIRED):
            key = term.get("topologyKey", "")
            here = node_label(node, key)
            if here is not None and any(node_label(other_node, key) == here
                                        and self.selects(term, pod, other)
                                        for other, other_node in self.placed):
                return NO_ANTI_AFFINITY
        for other, other_node in self.placed:
            for term in _terms(other, "podAntiAffinity", REQUIRED):
                key = term.get("topologyKey", "")
                there = node_label(other_node, key)
                if there is not None and node_label(node, key) == there \
                        and self.selects(term, other, pod):
                    return EXISTING_ANTI_AFFINITY
        return ""

    def _affinity_holds(self, pod: dict, node: dict, terms: list[dict]) -> bool:
        """Every term has a pod matching all of them in the node's domain; or no pod
        anywhere matches them and the pod matches its own terms (the first of a group)."""
        counts: Counter = Counter()
        for other, other_node in self.placed:
            if all(self.selects(t, pod, other) for t in terms):
                for t in terms:
                    value = node_label(other_node, t.get("topologyKey", ""))
                    if value is not None:
                        counts[(t.get("topologyKey", ""), value)] += 1
        found = True
        for t in terms:
            value = node_label(node, t.get("topologyKey", ""))
            if value is None:
                return False           # the node must carry every topology label
            found = found and counts[(t.get("topologyKey", ""), value)] > 0
        return found or (not counts and all(self.selects(t, pod, pod) for t in terms))

    def scores(self, pod: dict, nodes: list[dict]) -> dict[str, int]:
        """Raw per node: weights of the pod's preferred terms and of existing pods'
        terms toward it, summed over the domains the node is in."""
        domain: Counter = Counter()

        def credit(term: dict, other_node: dict, weight: int) -> None:
            key = term.get("topologyKey", "")
            value = node_label(other_node, key)
            if value is not None:
                domain[(key, value)] += weight

        for other, other_node in self.placed:
            for kind, sign in (("podAffinity", 1), ("podAntiAffinity", -1)):
                for pref in _terms(pod, kind, PREFERRED):
                    term = pref.get("podAffinityTerm") or {}
                    if self.selects(term, pod, other):
                        credit(term, other_node, sign * int(pref.get("weight") or 0))
                for pref in _terms(other, kind, PREFERRED):
                    term = pref.get("podAffinityTerm") or {}
                    if self.selects(term, other, pod):
                        credit(term, other_node, sign * int(pref.get("weight") or 0))
            for term in _terms(other, "podAffinity", REQUIRED):
                if self.selects(term, other, pod):
                    credit(term, other_node, HARD_AFFINITY_WEIGHT)
        return {n["metadata"]["name"]: sum(w for (key, value), w in domain.items()
                                           if node_label(n, key) == value) for n in nodes}
