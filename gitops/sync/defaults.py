"""Kubernetes' API defaults per kind, filled into a copy of an object before diffing (pure).

The live side of a diff gets them before it is projected onto what git declares, so a
declared value equal to a default the live copy leaves implicit is no drift, and the
Kubernetes API presents objects with them. Fields git leaves out are never compared
(`kubectl scale` of a Deployment whose manifest omits `replicas` is not drift, as in Argo
CD). Only what the API server would set on its own is listed here; values that need an
allocator (clusterIP, nodePort) are not.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from gitops.model.podspec import POD_SPEC_PATH

_PROBE_DEFAULTS = {"timeoutSeconds": 1, "periodSeconds": 10, "successThreshold": 1,
                   "failureThreshold": 3}
_FILE_MODE = 0o644      # defaultMode of configMap/secret/downwardAPI volumes (420)


def json_copy(value: Any) -> Any:
    """A deep copy of JSON-shaped data, several times faster than copy.deepcopy."""
    if isinstance(value, dict):
        return {k: json_copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [json_copy(v) for v in value]
    return value


def _fill(obj: Any, defaults: dict) -> None:
    if isinstance(obj, dict):
        for key, value in defaults.items():
            obj.setdefault(key, value)


def _dicts(value: Any) -> list[dict]:
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


def _get(obj: Any, *path: str) -> Any:
    for part in path:
        obj = obj.get(part) if isinstance(obj, dict) else None
    return obj


def pull_policy(image: str) -> str:
    tagged = ":" in image.rsplit("/", 1)[-1] or "@" in image
    return "IfNotPresent" if tagged and not image.endswith(":latest") else "Always"


def _container(c: dict) -> None:
    _fill(c, {"terminationMessagePath": "/dev/termination-log",
              "terminationMessagePolicy": "File"})
    if isinstance(c.get("image"), str):
        c.setdefault("imagePullPolicy", pull_policy(c["image"]))
    for port in _dicts(c.get("ports")):
        port.setdefault("protocol", "TCP")
    for field in ("livenessProbe", "readinessProbe", "startupProbe"):
        probe = c.get(field)
        if isinstance(probe, dict):
            _fill(probe, _PROBE_DEFAULTS)
            _fill(probe.get("httpGet"), {"scheme": "HTTP", "path": "/"})
    for var in _dicts(c.get("env")):
        _fill(_get(var, "valueFrom", "fieldRef"), {"apiVersion": "v1"})


def pod_spec(spec: Any) -> None:
    if not isinstance(spec, dict):
        return
    _fill(spec, {"restartPolicy": "Always", "terminationGracePeriodSeconds": 30,
                 "dnsPolicy": "ClusterFirst", "schedulerName": "default-scheduler",
                 "enableServiceLinks": True})
    for group in ("initContainers", "containers"):
        for c in _dicts(spec.get(group)):
            _container(c)
    for vol in _dicts(spec.get("volumes")):
        for source in ("configMap", "secret", "downwardAPI"):
            _fill(vol.get(source), {"defaultMode": _FILE_MODE})


def _rolling(spec: dict, field: str, rolling: dict) -> None:
    strategy = spec.setdefault(field, {})
    if isinstance(strategy, dict):
        strategy.setdefault("type", "RollingUpdate")
        if strategy["type"] == "RollingUpdate":
            strategy.setdefault("rollingUpdate", {})
            _fill(strategy["rollingUpdate"], rolling)


def _deployment(spec: dict) -> None:
    _fill(spec, {"replicas": 1, "revisionHistoryLimit": 10, "progressDeadlineSeconds": 600,
                 "minReadySeconds": 0})
    _rolling(spec, "strategy", {"maxSurge": "25%", "maxUnavailable": "25%"})


def _statefulset(spec: dict) -> None:
    _fill(spec, {"replicas": 1, "podManagementPolicy": "OrderedReady",
                 "revisionHistoryLimit": 10})
    _rolling(spec, "updateStrategy", {"partition": 0})
    _fill(spec.setdefault("persistentVolumeClaimRetentionPolicy", {}),
          {"whenDeleted": "Retain", "whenScaled": "Retain"})


def _daemonset(spec: dict) -> None:
    _fill(spec, {"revisionHistoryLimit": 10})
    _rolling(spec, "updateStrategy", {"maxUnavailable": 1, "maxSurge": 0})


def _job(spec: dict) -> None:
    if "parallelism" not in spec:       # a work queue (parallelism alone) has no completions
        spec.setdefault("completions", 1)
    _fill(spec, {"backoffLimit": 6, "parallelism": 1, "completionMode": "NonIndexed",
                 "suspend": False})


def _cronjob(spec: dict) -> None:
    _fill(spec, {"concurrencyPolicy": "Allow", "suspend": False,
                 "successfulJobsHistoryLimit": 3, "failedJobsHistoryLimit": 1})
    job = _get(spec, "jobTemplate", "spec")
    if isinstance(job, dict):
        _fill(job, {"backoffLimit": 6, "completionMode": "NonIndexed", "suspend": False})


def _service(spec: dict) -> None:
    _fill(spec, {"type": "ClusterIP", "sessionAffinity": "None"})
    if spec.get("type") != "ExternalName":
        spec.setdefault("internalTrafficPolicy", "Cluster")
    for port in _dicts(spec.get("ports")):
        port.setdefault("protocol", "TCP")
        if "port" in port:
            port.setdefault("targetPort", port["port"])


_SPEC: dict[str, Callable[[dict], None]] = {
    "Deployment": _deployment, "ReplicaSet": lambda s: _fill(s, {"replicas": 1}),
    "StatefulSet": _statefulset, "DaemonSet": _daemonset, "Job": _job, "CronJob": _cronjob,
    "Service": _service,
    "PersistentVolumeClaim": lambda s: _fill(s, {"volumeMode": "Filesystem"}),
}


def with_defaults(obj: dict) -> dict:
    """A copy of `obj` with the API server's defaults filled in where it leaves them out.
    Tolerates junk (wrong types are left as they are: validation reports those)."""
    out = json_copy(obj)
    kind = out.get("kind", "")
    if kind == "Secret":
        out.setdefault("type", "Opaque")
    spec = out.get("spec")
    if isinstance(spec, dict) and kind in _SPEC:
        _SPEC[kind](spec)
    if kind in POD_SPEC_PATH:
        pod_spec(_get(out, *POD_SPEC_PATH[kind]))
    return out
