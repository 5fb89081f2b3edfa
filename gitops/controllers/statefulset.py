"""StatefulSet: pods with a stable name, DNS identity and their own storage (pure).

Identity. Ordinal pods `<sts>-0 .. <sts>-(replicas-1)`, each with spec.hostname = its name
and spec.subdomain = spec.serviceName, so the DNS server answers
`<pod>.<serviceName>.<ns>.svc.cluster.local` (point serviceName at a headless Service).
Pods carry the template's labels plus `statefulset.kubernetes.io/pod-name`,
`apps.kubernetes.io/pod-index` and `controller-revision-hash` (`<sts>-<template hash>`;
the template includes the config hash when a lookup is given, as for Deployments).

Storage. Every volumeClaimTemplate gives each ordinal its own PersistentVolumeClaim
`<template>-<sts>-<ordinal>`, created before the pod (earlier in the same action list) and
mounted through a pod volume named after the template (it replaces a template volume of
that name). persistentVolumeClaimRetentionPolicy is Retain/Retain: claims get no
ownerReference and are never deleted, on scale-down or when the StatefulSet goes, so a
pod that comes back finds its data. whenDeleted/whenScaled: Delete is not implemented
yet (treated as Retain).

Pod management. OrderedReady (default): pod i is created only when pods 0..i-1 are
Running, Ready and available for minReadySeconds; scale-down deletes the highest ordinal
first, one at a time, waiting for it to be gone, and only while every pod below is
healthy (an unhealthy pod blocks it unless it is the first unhealthy one). Parallel:
missing pods are created and surplus pods deleted all in one pass. Failed or Succeeded
pods are deleted and recreated under the same name.

Updates. RollingUpdate (default): when the revision changes and every pod is Running and
Ready, the pod with the highest ordinal >= partition that is not at the update revision is
deleted; it is recreated from the new template, and the next one goes once it is healthy.
OnDelete: running pods are never touched; a pod someone deletes comes back updated.

History. Each template has a ControllerRevision (see history.py), so `kubectl rollout
history|undo sts/...` work; the pods' controller-revision-hash is its name.

Deliberate differences from Kubernetes:
- A pod below the partition that has to be recreated copies the pod spec of a sibling
  still at the current revision (config hash included); without one it gets the template
  of that revision's ControllerRevision, and without that the update revision.
- currentRevision moves to updateRevision once every pod is updated and Ready, for
  OnDelete as well as RollingUpdate.
- Not supported yet: spec.ordinals, rollingUpdate.maxUnavailable (always 1). Orphan pods
  matching the selector are adopted first (by the controller manager, as Kubernetes'
  ControllerRefManager does); a pod holding one of our names but controlled by something
  else, or an orphan the selector does not match, is left alone and its ordinal waits.
- readyReplicas / availableReplicas do not count pods that are terminating.
"""

from __future__ import annotations

import copy

from gitops.controllers import history
from gitops.controllers.rollout import (
    ConfigLookup,
    effective_template,
    template_hash,
)
from gitops.model import key_of
from gitops.model.actions import Action, Create, Delete, SetStatus
from gitops.model.events import event_for
from gitops.model.meta import controller_of, is_deleting, owner_ref
from gitops.model.pods import is_available, is_ready

COMPONENT = "statefulset-controller"
POD_NAME_LABEL = "statefulset.kubernetes.io/pod-name"
POD_INDEX_LABEL = "apps.kubernetes.io/pod-index"
REVISION_LABEL = "controller-revision-hash"
_IDENTITY_LABELS = (POD_NAME_LABEL, POD_INDEX_LABEL, REVISION_LABEL)


# -- small facts ---------------------------------------------------------------------------

def ordinal_of(sts_name: str, pod_name: str) -> int | None:
    """The ordinal of `<sts>-<n>` (canonical decimal only), or None."""
    prefix = f"{sts_name}-"
    if not pod_name.startswith(prefix):
        return None
    tail = pod_name[len(prefix):]
    if not (tail.isascii() and tail.isdigit()) or str(int(tail)) != tail:
        return None
    return int(tail)


def pod_name(sts: dict, ordinal: int) -> str:
    return f"{sts['metadata']['name']}-{ordinal}"


def claim_name(claim_template: dict, sts: dict, ordinal: int) -> str:
    return f"{claim_template['metadata']['name']}-{sts['metadata']['name']}-{ordinal}"


def claim_templates(sts: dict) -> list[dict]:
    return list(sts.get("spec", {}).get("volumeClaimTemplates") or [])


def revision_name(sts: dict, template: dict) -> str:
    return f"{sts['metadata']['name']}-{template_hash(template)}"


def revision_of(pod: dict) -> str:
    return (pod.get("metadata", {}).get("labels") or {}).get(REVISION_LABEL, "")


def running_and_ready(pod: dict) -> bool:
    return pod.get("status", {}).get("phase") == "Running" and is_ready(pod)


def healthy(pod: dict, min_ready_seconds: int, now: float) -> bool:
    """Running, Ready and available, and not on its way out."""
    return not is_deleting(pod) and running_and_ready(pod) and \
        is_available(pod, min_ready_seconds, now)


def _terminal(pod: dict) -> bool:
    return pod.get("status", {}).get("phase") in ("Failed", "Succeeded")


def _namespace(obj: dict) -> str:
    return obj.get("metadata", {}).get("namespace") or "default"


# -- object builders -----------------------------------------------------------------------

def new_pod(sts: dict, template: dict, revision: str, ordinal: int) -> dict:
    """Pod `<sts>-<ordinal>` from a pod template, with its identity and claim volumes."""
    template = copy.deepcopy(template)
    tmeta = template.get("metadata") or {}
    name = pod_name(sts, ordinal)
    labels = {**(tmeta.get("labels") or {}), POD_NAME_LABEL: name,
              POD_INDEX_LABEL: str(ordinal), REVISION_LABEL: revision}
    spec = template.get("spec") or {}
    spec["hostname"] = name
    if service := sts.get("spec", {}).get("serviceName"):
        spec["subdomain"] = service
    if claims := claim_templates(sts):
        names = {c["metadata"]["name"] for c in claims}
        spec["volumes"] = [
            *({"name": c["metadata"]["name"],
               "persistentVolumeClaim": {"claimName": claim_name(c, sts, ordinal)}}
              for c in claims),
            *(v for v in spec.get("volumes") or [] if v.get("name") not in names)]
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": _namespace(sts), "labels": labels,
                         "annotations": dict(tmeta.get("annotations") or {}),
                         "ownerReferences": [owner_ref(sts)]},
            "spec": spec,
            "status": {"phase": "Pending"}}


def new_claim(sts: dict, claim_template: dict, ordinal: int) -> dict:
    """The claim of one ordinal: no ownerReference, so nothing ever collects it (Retain)."""
    claim_template = copy.deepcopy(claim_template)
    cmeta = claim_template.get("metadata") or {}
    selector = (sts.get("spec", {}).get("selector") or {}).get("matchLabels") or {}
    meta = {"name": claim_name(claim_template, sts, ordinal), "namespace": _namespace(sts),
            "labels": {**(cmeta.get("labels") or {}), **selector}}
    if cmeta.get("annotations"):
        meta["annotations"] = dict(cmeta["annotations"])
    return {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": meta,
            "spec": claim_template.get("spec") or {}}


def template_from_pod(sts: dict, pod: dict) -> dict:
    """Recover the pod template a sibling pod was made from (undoes new_pod)."""
    meta = pod.get("metadata", {})
    spec = copy.deepcopy(pod.get("spec") or {})
    for field in ("nodeName", "hostname", "subdomain"):
        spec.pop(field, None)
    if claims := claim_templates(sts):
        names = {c["metadata"]["name"] for c in claims}
        spec["volumes"] = [v for v in spec.get("volumes") or [] if v.get("name") not in names]
        if not spec["volumes"]:
            del spec["volumes"]
    labels = {k: v for k, v in (meta.get("labels") or {}).items() if k not in _IDENTITY_LABELS}
    return {"metadata": {"labels": labels,
                         "annotations": dict(meta.get("annotations") or {})},
            "spec": spec}


# -- reconcile -----------------------------------------------------------------------------

def reconcile(sts: dict, pods: list[dict], claims: list[dict], now: float,
              lookup: ConfigLookup | None = None,
              revisions: list[dict] | None = None) -> list[Action]:
    """pods / claims / revisions: those the StatefulSet owns or that match its naming
    (others in the lists are ignored, so the caller may pass everything in the
    namespace); revisions None: the ControllerRevision history is not kept."""
    meta = sts["metadata"]
    if meta.get("deletionTimestamp"):
        return []
    spec = sts.get("spec", {})
    name, uid, ns = meta["name"], meta.get("uid"), _namespace(sts)
    want = spec.get("replicas")
    want = 1 if want is None else int(want)
    min_ready = int(spec.get("minReadySeconds") or 0)
    parallel = spec.get("podManagementPolicy") == "Parallel"
    strategy = spec.get("updateStrategy") or {}
    rolling = strategy.get("type", "RollingUpdate") != "OnDelete"
    partition = int((strategy.get("rollingUpdate") or {}).get("partition") or 0)

    template = effective_template(sts, lookup)
    update_rev = revision_name(sts, template)
    current_rev = (sts.get("status") or {}).get("currentRevision") or update_rev

    ours: dict[int, dict] = {}       # ordinal -> our pod
    taken: set[int] = set()          # ordinals whose name a foreign pod holds
    for pod in pods:
        if _namespace(pod) != ns:
            continue
        ordinal = ordinal_of(name, pod["metadata"]["name"])
        if ordinal is None:
            continue
        ref = controller_of(pod)
        if ref is not None and ref.get("uid") == uid:
            ours[ordinal] = pod
        else:
            taken.add(ordinal)
    existing = {c["metadata"]["name"]: c for c in claims if _namespace(c) == ns}

    actions: list[Action] = []

    def ensure_claims(ordinal: int) -> bool:
        """Create missing claims; False while one is still being deleted."""
        missing = []
        for ct in claim_templates(sts):
            claim = existing.get(claim_name(ct, sts, ordinal))
            if claim is None:
                missing.append(new_claim(sts, ct, ordinal))
            elif is_deleting(claim):
                return False
        for claim in missing:
            actions.append(Create(claim, _event(
                sts, "SuccessfulCreate", f"create Claim {claim['metadata']['name']} Pod "
                f"{pod_name(sts, ordinal)} in StatefulSet {name} success")))
            existing[claim["metadata"]["name"]] = claim
        return True

    def template_for(ordinal: int) -> tuple[dict, str]:
        if rolling and ordinal < partition and current_rev != update_rev:
            sibling = next((p for _, p in sorted(ours.items())
                            if revision_of(p) == current_rev), None)
            if sibling is not None:
                return template_from_pod(sts, sibling), current_rev
            stored = history.template_of(sts, revisions or [], current_rev)
            if stored is not None:
                return stored, current_rev
        return template, update_rev

    # 1. Bring ordinals 0..want-1 into existence (in order unless Parallel).
    blocked = False
    for ordinal in range(want):
        pod = ours.get(ordinal)
        if pod is None:
            if ordinal not in taken and ensure_claims(ordinal):
                pod_template, revision = template_for(ordinal)
                actions.append(Create(new_pod(sts, pod_template, revision, ordinal), _event(
                    sts, "SuccessfulCreate", f"create Pod {pod_name(sts, ordinal)} in "
                    f"StatefulSet {name} successful")))
            if not parallel:
                blocked = True
                break
            continue
        if is_deleting(pod):
            if not parallel:          # wait until it is gone, then recreate it
                blocked = True
                break
            continue
        if _terminal(pod):
            actions.append(_delete(sts, pod))
            if not parallel:
                blocked = True
                break
            continue
        ensure_claims(ordinal)        # someone deleted a claim under a live pod
        if not parallel and not healthy(pod, min_ready, now):
            blocked = True
            break

    # 2. Scale down: highest ordinal first.
    condemned = sorted((o for o in ours if o >= want), reverse=True)
    if not blocked:
        unhealthy = [o for o in sorted(condemned) if not healthy(ours[o], min_ready, now)]
        first_unhealthy = unhealthy[0] if unhealthy else None
        for ordinal in condemned:
            pod = ours[ordinal]
            if is_deleting(pod):
                if not parallel:
                    blocked = True
                    break
                continue
            if not parallel and ordinal != first_unhealthy and \
                    not healthy(pod, min_ready, now):
                blocked = True
                break
            actions.append(_delete(sts, pod))
            if not parallel:
                blocked = True
                break

    # 3. Rolling update: one pod at a time, highest ordinal first, all pods healthy.
    settled = not condemned and all(
        o in ours and healthy(ours[o], min_ready, now) for o in range(want))
    if rolling and not blocked and settled:
        for ordinal in range(want - 1, partition - 1, -1):
            if revision_of(ours[ordinal]) != update_rev:
                actions.append(_delete(sts, ours[ordinal]))
                break

    if revisions is not None:
        in_use = {current_rev, *(revision_of(p) for p in ours.values())}
        actions += history.reconcile(sts, revisions, update_rev, template_hash(template),
                                     in_use)
    actions.append(SetStatus(key_of(sts), status(sts, ours, want, current_rev, update_rev,
                                                 now)))
    return actions


def _event(sts: dict, reason: str, message: str):
    return event_for(sts, reason, message, component=COMPONENT)


def _delete(sts: dict, pod: dict) -> Delete:
    return Delete(key_of(pod), _event(sts, "SuccessfulDelete", f"delete Pod "
                                      f"{pod['metadata']['name']} in StatefulSet "
                                      f"{sts['metadata']['name']} successful"))


def status(sts: dict, ours: dict[int, dict], want: int, current_rev: str, update_rev: str,
           now: float) -> dict:
    min_ready = int(sts.get("spec", {}).get("minReadySeconds") or 0)
    live = [p for p in ours.values() if not is_deleting(p)]
    ready = sum(1 for p in live if running_and_ready(p))
    available = sum(1 for p in live if healthy(p, min_ready, now))
    updated = sum(1 for p in live if revision_of(p) == update_rev)
    done = len(ours) == want and updated == want and ready == want
    if done:
        current_rev = update_rev
    current = sum(1 for p in live if revision_of(p) == current_rev)
    return {"observedGeneration": sts["metadata"].get("generation", 1),
            "replicas": len(ours), "readyReplicas": ready, "availableReplicas": available,
            "currentReplicas": current, "updatedReplicas": updated,
            "currentRevision": current_rev, "updateRevision": update_rev}
