"""What the API server does to an object on its way in, beyond defaults (pure): the kinds'
PrepareForCreate / PrepareForUpdate, and what its JSON encoding drops.

- A Secret's stringData is merged into base64 data and never stored.
- Empty metadata maps and lists (annotations: {}) are dropped, as Go's `omitempty` does:
  a cluster never returns them, so `kubectl diff` would show them as changes.
- On create: the status a new object starts with (a Pod Pending with its qosClass, a
  Namespace Active, a claim Pending, a Service's empty load balancer) and a Job's
  generated selector and pod labels (controller-uid, job-name).
- On update: what the server allocated or generated and a writer leaves out is kept (a
  Service's ClusterIP and node ports, a Job's generated selector and labels), as
  Kubernetes' patchAllocatedValues does; a declarative writer (git, `kubectl replace`)
  never lists them.
"""

from __future__ import annotations

import base64
from typing import Any

from gitops.admission.defaults import POD_TEMPLATE_PATH
from gitops.admission.errors import Invalid
from gitops.admission.immutable import show
from gitops.model.qos import qos_class

JOB_NAME_LABELS = ("job-name", "batch.kubernetes.io/job-name")
CONTROLLER_UID_LABELS = ("controller-uid", "batch.kubernetes.io/controller-uid")
SELECTOR_LABEL = "batch.kubernetes.io/controller-uid"
_OMIT_EMPTY = ("annotations", "labels", "finalizers", "ownerReferences")
_ALLOCATED = ("clusterIP", "clusterIPs", "ipFamilies", "ipFamilyPolicy", "healthCheckNodePort")


def _get(obj: Any, *path: str) -> Any:
    for part in path:
        obj = obj.get(part) if isinstance(obj, dict) else None
    return obj


def merge_string_data(obj: dict) -> None:
    """stringData's values, base64-encoded, over data; stringData itself goes."""
    if obj.get("kind") != "Secret" or "stringData" not in obj:
        return
    plain = obj["stringData"]
    if plain is None:
        del obj["stringData"]
        return
    if not isinstance(plain, dict) or not all(isinstance(v, str) for v in plain.values()):
        return                  # not a map of strings: validation refuses it
    data = obj.get("data")
    if data is None:
        data = obj["data"] = {}
    if not isinstance(data, dict):
        return
    for key, value in plain.items():
        data[key] = base64.b64encode(value.encode()).decode()
    del obj["stringData"]


def omit_empty(obj: dict) -> None:
    metas = [obj.get("metadata")]
    if obj.get("kind") in POD_TEMPLATE_PATH:
        metas.append(_get(obj, *POD_TEMPLATE_PATH[obj["kind"]], "metadata"))
    for meta in metas:
        if isinstance(meta, dict):
            for field in _OMIT_EMPTY:
                if field in meta and meta[field] in ({}, [], None):
                    del meta[field]


# -- create ------------------------------------------------------------------------------
def _initial_status(obj: dict) -> dict | None:
    kind = obj.get("kind")
    if kind == "Pod":
        spec = obj.get("spec")
        return {"phase": "Pending",
                "qosClass": qos_class(spec if isinstance(spec, dict) else {})}
    return {"Namespace": {"phase": "Active"}, "PersistentVolumeClaim": {"phase": "Pending"},
            "PersistentVolume": {"phase": "Pending"},
            "Service": {"loadBalancer": {}}}.get(kind or "")


def _job_selector(job: dict) -> None:
    """Kubernetes' generateSelector and ValidateGeneratedSelector, unless the Job asks
    for a manual selector."""
    spec = job.get("spec")
    if not isinstance(spec, dict) or spec.get("manualSelector") is True:
        return
    meta = job.get("metadata") or {}
    uid, name = meta.get("uid") or "", meta.get("name") or ""
    template = spec.get("template")
    if not isinstance(template, dict):
        return
    tmeta = template.setdefault("metadata", {})
    labels = tmeta.setdefault("labels", {}) if isinstance(tmeta, dict) else None
    if not isinstance(labels, dict):
        return
    causes = []
    for keys, value in ((JOB_NAME_LABELS, name), (CONTROLLER_UID_LABELS, uid)):
        for key in keys:
            if labels.get(key, value) != value:
                causes.append((f"spec.template.metadata.labels[{key}]",
                               f"Invalid value: {show(labels[key])}: must be '{value}'"))
            labels[key] = value
    if isinstance(job.get("metadata"), dict) and not job["metadata"].get("labels"):
        job["metadata"]["labels"] = dict(labels)    # SetDefaults_Job, as read back
    expected = {"matchLabels": {SELECTOR_LABEL: uid}}
    given = spec.get("selector")
    if given is None:
        spec["selector"] = expected
    elif given != expected:
        causes.append(("spec.selector", f"Invalid value: {show(given)}: `selector` not "
                       "auto-generated (set spec.manualSelector: true to choose one)"))
    if causes:
        raise Invalid("Job", name, causes)


def on_create(obj: dict) -> None:
    if (status := _initial_status(obj)) is not None:
        current = obj.get("status")
        if not isinstance(current, dict):
            obj["status"] = status
        else:
            for key, value in status.items():
                current.setdefault(key, value)
    if obj.get("kind") == "Job":
        _job_selector(obj)


# -- update ------------------------------------------------------------------------------
def _keep_job_generated(obj: dict, old: dict) -> None:
    spec, old_spec = obj.get("spec"), old.get("spec") or {}
    if not isinstance(spec, dict) or spec.get("manualSelector") is True:
        return
    if "selector" not in spec and old_spec.get("selector") is not None:
        spec["selector"] = old_spec["selector"]
    labels = _get(spec, "template", "metadata")
    old_labels = _get(old_spec, "template", "metadata", "labels") or {}
    if isinstance(spec.get("template"), dict) and labels is None:
        labels = spec["template"]["metadata"] = {}
    if isinstance(labels, dict):
        current = labels.setdefault("labels", {})
        if isinstance(current, dict):
            for key in (*JOB_NAME_LABELS, *CONTROLLER_UID_LABELS):
                if key in old_labels and key not in current:
                    current[key] = old_labels[key]


def needs_cluster_ip(spec: dict) -> bool:
    return spec.get("type") != "ExternalName" and spec.get("clusterIP") != "None"


def needs_node_ports(spec: dict) -> bool:
    return spec.get("type") in ("NodePort", "LoadBalancer")


def _keep_allocations(obj: dict, old: dict) -> None:
    """A Service a writer sends without its ClusterIP or node ports keeps the ones it
    has (while it still needs them)."""
    spec, old_spec = obj.get("spec"), old.get("spec") or {}
    if not isinstance(spec, dict) or not isinstance(old_spec, dict):
        return
    if needs_cluster_ip(spec) and needs_cluster_ip(old_spec) and not spec.get("clusterIP"):
        for field in _ALLOCATED:
            if field in old_spec and not spec.get(field):
                spec[field] = old_spec[field]
    if needs_node_ports(spec) and needs_node_ports(old_spec):
        allocated = {(p.get("port"), p.get("protocol", "TCP")): p.get("nodePort")
                     for p in old_spec.get("ports") or [] if isinstance(p, dict)}
        for port in spec.get("ports") or []:
            if isinstance(port, dict) and not port.get("nodePort"):
                if node_port := allocated.get((port.get("port"), port.get("protocol", "TCP"))):
                    port["nodePort"] = node_port


def on_update(obj: dict, old: dict) -> None:
    kind = obj.get("kind")
    if kind == "Service":
        _keep_allocations(obj, old)
    elif kind == "Job":
        _keep_job_generated(obj, old)


def prepare(obj: dict, old: dict | None) -> None:
    """The mutating step of admission (after defaults), in place."""
    merge_string_data(obj)
    omit_empty(obj)
    if old is None:
        on_create(obj)
    else:
        on_update(obj, old)
