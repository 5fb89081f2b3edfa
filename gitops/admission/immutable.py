"""Fields an update may not change, per kind, as the API server's validation refuses them
(pkg/apis/*/validation: ValidateImmutableField and friends) (pure).

`violations(new, old)` gives one (field path, message) per refused change, in Kubernetes'
wording ("Invalid value: ...: field is immutable"). Both sides are compared with their
defaults filled in, so an object stored before defaulting existed is not "changed" by it.
The path names the field that changed (where Kubernetes says `spec` for a StatefulSet or
a Pod, the path here is the first field found different: a repo's file:line points at it).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

from gitops.admission.defaults import with_defaults
from gitops.model import quantity

Violation = tuple[str, str]
_MAX_SHOWN = 200


def show(value: Any) -> str:
    text = json.dumps(value, sort_keys=True, separators=(",", ":"))
    return text if len(text) <= _MAX_SHOWN else text[:_MAX_SHOWN] + "..."


def _spec(obj: dict) -> dict:
    spec = obj.get("spec")
    return spec if isinstance(spec, dict) else {}


def semantic(value: Any) -> Any:
    """value as the API server compares it (Semantic.DeepEqual): an empty map or list,
    or null, is no value at all."""
    if isinstance(value, dict):
        out = {k: semantic(v) for k, v in value.items()}
        return {k: v for k, v in out.items() if v not in (None, {}, [])}
    if isinstance(value, list):
        return [semantic(v) for v in value]
    return value


def _same(new: Any, old: Any) -> bool:
    return semantic({"v": new}) == semantic({"v": old})


def immutable(path: str, new: Any, old: Any) -> Iterator[Violation]:
    if not _same(new, old):
        yield path, f"Invalid value: {show(new)}: field is immutable"


def _selector(new: dict, old: dict) -> Iterator[Violation]:
    yield from immutable("spec.selector", _spec(new).get("selector"),
                         _spec(old).get("selector"))


def _first_difference(new: dict, old: dict, fields: list[str], prefix: str) -> str | None:
    for field in fields:
        if not _same(new.get(field), old.get(field)):
            return f"{prefix}.{field}"
    return None


_STS_MUTABLE = ("replicas", "ordinals", "template", "updateStrategy", "revisionHistoryLimit",
                "persistentVolumeClaimRetentionPolicy", "minReadySeconds")
_STS_MESSAGE = ("Forbidden: updates to statefulset spec for fields other than 'replicas', "
                "'ordinals', 'template', 'updateStrategy', 'revisionHistoryLimit', "
                "'persistentVolumeClaimRetentionPolicy' and 'minReadySeconds' are forbidden")


def _statefulset(new: dict, old: dict) -> Iterator[Violation]:
    spec, before = _spec(new), _spec(old)
    fields = sorted((spec.keys() | before.keys()) - set(_STS_MUTABLE))
    if (path := _first_difference(spec, before, fields, "spec")) is not None:
        yield path, _STS_MESSAGE


_JOB_IMMUTABLE = ("completions", "selector", "completionMode", "podFailurePolicy",
                  "backoffLimitPerIndex", "managedBy", "successPolicy")
# What a suspended Job that never started may still change in its template (so a queue
# controller can place it): Kubernetes' "mutable scheduling directives".
_SCHEDULING = {"metadata": ("labels", "annotations"),
               "spec": ("nodeSelector", "affinity", "tolerations", "schedulingGates")}


def _without_scheduling(template: Any) -> Any:
    if not isinstance(template, dict):
        return template
    out = dict(template)
    for part, fields in _SCHEDULING.items():
        if isinstance(out.get(part), dict):
            out[part] = {k: v for k, v in out[part].items() if k not in fields}
    return out


def _job(new: dict, old: dict) -> Iterator[Violation]:
    spec, before = _spec(new), _spec(old)
    for field in _JOB_IMMUTABLE:
        yield from immutable(f"spec.{field}", spec.get(field), before.get(field))
    template, old_template = spec.get("template"), before.get("template")
    never_started = before.get("suspend") is True and \
        not (old.get("status") or {}).get("startTime")
    if never_started:
        template, old_template = _without_scheduling(template), \
            _without_scheduling(old_template)
    yield from immutable("spec.template", template, old_template)


def _service(new: dict, old: dict) -> Iterator[Violation]:
    spec, before = _spec(new), _spec(old)
    if "ExternalName" in (spec.get("type"), before.get("type")) or \
            not before.get("clusterIP"):
        return                  # to or from ExternalName the address is released or made
    yield from immutable("spec.clusterIP", spec.get("clusterIP"), before.get("clusterIP"))


_PVC_MESSAGE = ("Forbidden: spec is immutable after creation except resources.requests and "
                "volumeAttributesClassName for bound claims")


def _claim(new: dict, old: dict) -> Iterator[Violation]:
    spec, before = dict(_spec(new)), dict(_spec(old))
    if not before.get("volumeName"):
        spec.pop("volumeName", None)          # binding sets it once
        before.pop("volumeName", None)
    requests = (spec.get("resources") or {}).get("requests") or {}
    old_requests = (before.get("resources") or {}).get("requests") or {}
    for side in (spec, before):
        side.pop("volumeAttributesClassName", None)
        if isinstance(side.get("resources"), dict):
            side["resources"] = {k: v for k, v in side["resources"].items() if k != "requests"}
    fields = sorted(spec.keys() | before.keys())
    if (path := _first_difference(spec, before, fields, "spec")) is not None:
        yield path, _PVC_MESSAGE
    if isinstance(requests, dict) and isinstance(old_requests, dict):
        try:
            smaller = quantity.parse(requests.get("storage", 0)) < \
                quantity.parse(old_requests.get("storage", 0))
        except ValueError:
            smaller = False               # not a quantity: validation says so
        if smaller:
            yield ("spec.resources.requests.storage",
                   "Forbidden: field can not be less than previous value")


_PV_NOT_SOURCE = {"capacity", "accessModes", "claimRef", "persistentVolumeReclaimPolicy",
                  "storageClassName", "mountOptions", "volumeMode", "nodeAffinity",
                  "volumeAttributesClassName"}


def _volume(new: dict, old: dict) -> Iterator[Violation]:
    spec, before = _spec(new), _spec(old)
    fields = sorted((spec.keys() | before.keys()) - _PV_NOT_SOURCE)
    if (path := _first_difference(spec, before, fields, "spec")) is not None:
        yield path, "Forbidden: spec.persistentvolumesource is immutable after creation"
    yield from immutable("spec.volumeMode", spec.get("volumeMode"), before.get("volumeMode"))


_WHEN_SET = "Forbidden: field is immutable when `immutable` is set"


def _config(new: dict, old: dict) -> Iterator[Violation]:
    if old.get("immutable") is not True:
        return
    if new.get("immutable") is not True:
        yield "immutable", _WHEN_SET
    for field in ("data", "binaryData"):
        if not _same(new.get(field), old.get(field)):
            yield field, _WHEN_SET


def _secret(new: dict, old: dict) -> Iterator[Violation]:
    yield from _config(new, old)
    yield from immutable("type", new.get("type"), old.get("type"))


def _role_ref(new: dict, old: dict) -> Iterator[Violation]:
    if not _same(new.get("roleRef"), old.get("roleRef")):
        yield "roleRef", f"Invalid value: {show(new.get('roleRef'))}: cannot change roleRef"


_POD_MESSAGE = ("Forbidden: pod updates may not change fields other than "
                "`spec.containers[*].image`,`spec.initContainers[*].image`,"
                "`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to existing "
                "tolerations),`spec.terminationGracePeriodSeconds` (allow it to be set to 1 "
                "if it was previously negative)")


def _pod(new: dict, old: dict) -> Iterator[Violation]:
    """A pod's spec is fixed but for images, its deadline, added tolerations, removed
    scheduling gates and its binding to a node (the scheduler's, once)."""
    spec, before = dict(_spec(new)), dict(_spec(old))
    for group in ("containers", "initContainers"):
        mine, theirs = spec.get(group), before.get(group)
        if isinstance(mine, list) and isinstance(theirs, list) and len(mine) == len(theirs):
            spec[group] = [{**c, "image": o.get("image")} if isinstance(c, dict) and
                           isinstance(o, dict) else c for c, o in zip(mine, theirs)]
    tolerations, old_tolerations = spec.get("tolerations") or [], before.get("tolerations") or []
    if isinstance(tolerations, list) and all(t in tolerations for t in old_tolerations):
        spec["tolerations"] = before.get("tolerations")
    gates, old_gates = spec.get("schedulingGates") or [], before.get("schedulingGates") or []
    if isinstance(gates, list) and all(g in old_gates for g in gates):
        spec["schedulingGates"] = before.get("schedulingGates")
    if not before.get("nodeName"):
        spec["nodeName"] = before.get("nodeName")
    grace = before.get("terminationGracePeriodSeconds")
    if isinstance(grace, int) and grace < 0 and spec.get("terminationGracePeriodSeconds") == 1:
        spec["terminationGracePeriodSeconds"] = grace
    spec["activeDeadlineSeconds"] = before.get("activeDeadlineSeconds")
    fields = sorted(spec.keys() | before.keys())
    if (path := _first_difference(spec, before, fields, "spec")) is not None:
        yield path, _POD_MESSAGE


RULES: dict[str, Callable[[dict, dict], Iterator[Violation]]] = {
    "Deployment": _selector, "ReplicaSet": _selector, "DaemonSet": _selector,
    "StatefulSet": _statefulset, "Job": _job, "Service": _service,
    "PersistentVolumeClaim": _claim, "PersistentVolume": _volume,
    "ConfigMap": _config, "Secret": _secret, "Pod": _pod,
    "RoleBinding": _role_ref, "ClusterRoleBinding": _role_ref,
}


def violations(new: dict, old: dict) -> list[Violation]:
    """What an update from old to new may not change (both with their defaults)."""
    rule = RULES.get(new.get("kind", ""))
    if rule is None:
        return []
    return list(rule(with_defaults(new), with_defaults(old)))
