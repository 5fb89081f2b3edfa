"""PersistentVolumeClaims bound to PersistentVolumes, as Kubernetes' volume binder and a
dynamic provisioner do it on one host (pure).

A claim binds to a PersistentVolume it fits (its volumeName's, else an Available one of
its storage class with the access modes, capacity and labels it asks for); failing that,
one is provisioned for it at once: `pvc-<claim uid>`, whose source is the Docker volume
the node agent provides for the claim (driver volumes.gitops.io). Provisioned volumes are
retained when their claim goes (volumes are never deleted implicitly): Released, and
bound again to a claim of the same namespace and name, whose data they hold. A claim
that explicitly asks for no storage class (`storageClassName: ""`) binds only to an
existing volume, as on a cluster, and stays Pending until one fits.
"""

from __future__ import annotations

from gitops.model import key_of
from gitops.model.actions import Action, Create, SetStatus, Update
from gitops.model.events import NORMAL, WARNING, event_for
from gitops.model.meta import is_deleting
from gitops.model.quantity import parse as parse_quantity

DRIVER = "volumes.gitops.io"
PROVISIONED_BY = "pv.kubernetes.io/provisioned-by"
_BOUND_ANNOTATIONS = {"pv.kubernetes.io/bind-completed": "yes",
                      "pv.kubernetes.io/bound-by-controller": "yes"}


def reconcile(claims: list[dict], volumes: list[dict]) -> list[Action]:
    """Bind every claim not bound yet; keep each volume's phase and each claim's status."""
    actions: list[Action] = []
    by_name = {v["metadata"]["name"]: v for v in volumes}
    taken: set[str] = set()
    for pvc in sorted(claims, key=lambda c: c["metadata"].get("creationTimestamp") or ""):
        if is_deleting(pvc):
            continue
        bound = by_name.get((pvc.get("spec") or {}).get("volumeName") or "")
        if bound is not None and _claimed_by(bound, pvc):
            taken.add(bound["metadata"]["name"])
            actions += _claim_status(pvc, bound)
            continue
        volume = _match(pvc, [v for v in volumes if v["metadata"]["name"] not in taken])
        if volume is None and _provisionable(pvc):
            volume = provisioned(pvc)
            actions.append(Create(volume, event_for(
                pvc, "ProvisioningSucceeded",
                f"Successfully provisioned volume {volume['metadata']['name']}",
                NORMAL, "persistentvolume-controller")))
        elif volume is not None:
            volume = _bind_volume(volume, pvc)
            actions.append(Update(volume))
        if volume is None:
            actions += _pending(pvc)
            continue
        taken.add(volume["metadata"]["name"])
        by_name[volume["metadata"]["name"]] = volume
        actions.append(Update(_bind_claim(pvc, volume["metadata"]["name"])))
        actions.append(SetStatus(key_of(pvc), _bound_status(volume)))
    live = {(c["metadata"].get("namespace"), c["metadata"]["name"]): c for c in claims}
    for volume in volumes:
        if volume["metadata"]["name"] in taken:
            phase = "Bound"
        else:
            phase = _phase(volume, live)
        if (volume.get("status") or {}).get("phase") != phase:
            actions.append(SetStatus(key_of(volume), {"phase": phase}))
    return actions


def provisioned(pvc: dict) -> dict:
    meta, spec = pvc["metadata"], pvc.get("spec") or {}
    ns = meta.get("namespace") or "default"
    return {"apiVersion": "v1", "kind": "PersistentVolume",
            "metadata": {"name": f"pvc-{meta['uid']}",
                         "annotations": {PROVISIONED_BY: DRIVER}},   # status: next pass
            "spec": {"capacity": {"storage": _request(pvc) or "0"},
                     "accessModes": list(spec.get("accessModes") or ["ReadWriteOnce"]),
                     "persistentVolumeReclaimPolicy": "Retain",
                     "storageClassName": spec.get("storageClassName") or "",
                     "volumeMode": spec.get("volumeMode") or "Filesystem",
                     "claimRef": _claim_ref(pvc),
                     "csi": {"driver": DRIVER, "volumeHandle": f"{ns}/{meta['name']}"}}}


def _claim_ref(pvc: dict) -> dict:
    meta = pvc["metadata"]
    return {"kind": "PersistentVolumeClaim", "apiVersion": "v1",
            "namespace": meta.get("namespace") or "default", "name": meta["name"],
            "uid": meta["uid"]}


def _claimed_by(volume: dict, pvc: dict) -> bool:
    ref = (volume.get("spec") or {}).get("claimRef") or {}
    return ref.get("uid") == pvc["metadata"]["uid"]


def _same_claim(ref: dict, pvc: dict) -> bool:
    meta = pvc["metadata"]
    return ref.get("name") == meta["name"] and \
        (ref.get("namespace") or "default") == (meta.get("namespace") or "default")


def _match(pvc: dict, volumes: list[dict]) -> dict | None:
    """The volume this claim binds to: its volumeName's when free; a volume pre-bound to
    it or provisioned for a claim of its name before; else the smallest that fits."""
    spec = pvc.get("spec") or {}
    wanted = spec.get("volumeName")
    free = [v for v in volumes if not is_deleting(v) and _free_for(v, pvc)]
    if wanted:
        return next((v for v in free if v["metadata"]["name"] == wanted), None)
    own = [v for v in free if _same_claim((v.get("spec") or {}).get("claimRef") or {}, pvc)]
    fitting = [v for v in own or free if _fits(v, pvc)]
    return min(fitting, key=_capacity, default=None)


def _free_for(volume: dict, pvc: dict) -> bool:
    ref = (volume.get("spec") or {}).get("claimRef")
    if not ref:
        return True
    if not _same_claim(ref, pvc):
        return False
    # pre-bound by name, or Released by a claim of this name: ours only when provisioned
    # here (the same Docker volume); a cluster admin's Released volume waits for them
    return not ref.get("uid") or (volume["metadata"].get("annotations") or {}).get(
        PROVISIONED_BY) == DRIVER


def _fits(volume: dict, pvc: dict) -> bool:
    spec, vspec = pvc.get("spec") or {}, volume.get("spec") or {}
    if (spec.get("storageClassName") or "") != (vspec.get("storageClassName") or ""):
        return False
    if not set(spec.get("accessModes") or []) <= set(vspec.get("accessModes") or []):
        return False
    if (spec.get("volumeMode") or "Filesystem") != (vspec.get("volumeMode") or "Filesystem"):
        return False
    labels = volume["metadata"].get("labels") or {}
    selector = spec.get("selector") or {}
    if any(labels.get(k) != v for k, v in (selector.get("matchLabels") or {}).items()):
        return False
    return _capacity(volume) >= _size(_request(pvc))


def _request(pvc: dict) -> str:
    return str((((pvc.get("spec") or {}).get("resources") or {}).get("requests") or {})
               .get("storage") or "")


def _size(quantity: str) -> float:
    try:
        return float(parse_quantity(quantity)) if quantity else 0.0
    except (ValueError, TypeError):
        return 0.0


def _capacity(volume: dict) -> float:
    return _size(str(((volume.get("spec") or {}).get("capacity") or {}).get("storage") or ""))


def _provisionable(pvc: dict) -> bool:
    spec = pvc.get("spec") or {}
    return not spec.get("volumeName") and spec.get("storageClassName") != ""


def _bind_volume(volume: dict, pvc: dict) -> dict:
    return {**volume, "spec": {**(volume.get("spec") or {}), "claimRef": _claim_ref(pvc)}}


def _bind_claim(pvc: dict, volume_name: str) -> dict:
    meta = pvc["metadata"]
    return {**pvc, "metadata": {**meta, "annotations": {**(meta.get("annotations") or {}),
                                                        **_BOUND_ANNOTATIONS}},
            "spec": {**(pvc.get("spec") or {}), "volumeName": volume_name}}


def _bound_status(volume: dict) -> dict:
    spec = volume.get("spec") or {}
    return {"phase": "Bound", "accessModes": list(spec.get("accessModes") or []),
            "capacity": dict(spec.get("capacity") or {})}


def _claim_status(pvc: dict, volume: dict) -> list[Action]:
    status = _bound_status(volume)
    return [] if pvc.get("status") == status else [SetStatus(key_of(pvc), status)]


def _pending(pvc: dict) -> list[Action]:
    if (pvc.get("status") or {}).get("phase") == "Pending":
        return []
    return [SetStatus(key_of(pvc), {"phase": "Pending"}, event_for(
        pvc, "FailedBinding", "no persistent volumes available for this claim and no "
        "storage class is set", WARNING, "persistentvolume-controller"))]


def _phase(volume: dict, claims: dict[tuple, dict]) -> str:
    ref = (volume.get("spec") or {}).get("claimRef")
    if not ref:
        return "Available"
    pvc = claims.get((ref.get("namespace") or "default", ref.get("name")))
    if pvc is None or not ref.get("uid"):
        return "Released" if ref.get("uid") else "Available"
    return "Bound" if pvc["metadata"]["uid"] == ref.get("uid") else "Released"

