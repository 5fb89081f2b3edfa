"""The API server's defaulting, per kind (pure): what Kubernetes fills in where a writer
leaves a field out (pkg/apis/*/v1/defaults.go and the defaulting admission plugins).

`fill(obj)` runs on every create and update in the store's registry, so what is stored and
served is what a cluster stores and serves; `with_defaults(obj)` is the same on a copy,
for the GitOps diff (the live side of a comparison, whatever version stored it).
Everything tolerates junk: a wrong type is left as it is (validation reports it).

Pod templates (in workloads) get the pod spec's and containers' defaults; a Pod also gets
what only pods get (enableServiceLinks, requests copied from limits, the default service
account, the not-ready / unreachable tolerations of 300 s, priority 0). Values needing
state (a ClusterIP, node ports, a Job's generated selector, status) are the registry's
(gitops.admission.prepare).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from gitops.model.podspec import POD_SPEC_PATH

_PROBE_DEFAULTS = {"timeoutSeconds": 1, "periodSeconds": 10, "successThreshold": 1,
                   "failureThreshold": 3}
FILE_MODE = 0o644      # defaultMode of configMap/secret/downwardAPI/projected volumes (420)
TOLERATION_SECONDS = 300        # DefaultTolerationSeconds: not-ready and unreachable
# The server's --default-unreachable-toleration-seconds, as kube-apiserver's flag of that
# name: one value per process, so admission and the sync's diff (which defaults git's side
# the same way) always agree.
_toleration_seconds = [TOLERATION_SECONDS]


def set_default_toleration_seconds(seconds: int) -> None:
    """What the DefaultTolerationSeconds rule gives pods (the composition root sets it)."""
    _toleration_seconds[0] = int(seconds)
NODE_CONDITION_TAINTS = ("node.kubernetes.io/not-ready", "node.kubernetes.io/unreachable")
_VOLUME_SOURCES = (
    "hostPath", "emptyDir", "gcePersistentDisk", "awsElasticBlockStore", "gitRepo", "secret",
    "nfs", "iscsi", "glusterfs", "persistentVolumeClaim", "rbd", "flexVolume", "cinder",
    "cephfs", "flocker", "downwardAPI", "fc", "azureFile", "configMap", "vsphereVolume",
    "quobyte", "azureDisk", "photonPersistentDisk", "projected", "portworxVolume", "scaleIO",
    "storageos", "csi", "ephemeral", "image")


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
            if key not in obj:
                obj[key] = json_copy(value)


def _dicts(value: Any) -> list[dict]:
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


def _get(obj: Any, *path: str) -> Any:
    for part in path:
        obj = obj.get(part) if isinstance(obj, dict) else None
    return obj


def _child(obj: dict, field: str) -> dict | None:
    """obj[field] as a dict, made when absent; None when it holds something else."""
    value = obj.setdefault(field, {})
    return value if isinstance(value, dict) else None


def pull_policy(image: str) -> str:
    tagged = ":" in image.rsplit("/", 1)[-1] or "@" in image
    return "IfNotPresent" if tagged and not image.endswith(":latest") else "Always"


# -- pod specs -----------------------------------------------------------------------------
def _handler(handler: Any) -> None:
    """A probe's or lifecycle hook's action."""
    _fill(_get(handler, "httpGet"), {"scheme": "HTTP", "path": "/"})
    _fill(_get(handler, "grpc"), {"service": ""})


def _container(c: dict, host_network: bool) -> None:
    _fill(c, {"terminationMessagePath": "/dev/termination-log",
              "terminationMessagePolicy": "File", "resources": {}})
    if isinstance(c.get("image"), str):
        c.setdefault("imagePullPolicy", pull_policy(c["image"]))
    for port in _dicts(c.get("ports")):
        port.setdefault("protocol", "TCP")
        if host_network and "containerPort" in port:
            port.setdefault("hostPort", port["containerPort"])
    for field in ("livenessProbe", "readinessProbe", "startupProbe"):
        probe = c.get(field)
        if isinstance(probe, dict):
            _fill(probe, _PROBE_DEFAULTS)
            _handler(probe)
    for hook in ("postStart", "preStop"):
        _handler(_get(c, "lifecycle", hook))
    for var in _dicts(c.get("env")):
        _fill(_get(var, "valueFrom", "fieldRef"), {"apiVersion": "v1"})
        _fill(_get(var, "valueFrom", "resourceFieldRef"), {"divisor": "0"})


def container_without_defaults(c: dict) -> dict:
    """A container with the values its defaulting would give left out: the same for a
    container stored before defaults were filled in and after (what a node hashes to
    tell whether a running container still matches its spec)."""
    out = {k: v for k, v in c.items() if not (
        (k == "terminationMessagePath" and v == "/dev/termination-log")
        or (k == "terminationMessagePolicy" and v == "File") or (k == "resources" and v == {})
        or (k == "imagePullPolicy" and isinstance(c.get("image"), str)
            and v == pull_policy(c["image"])))}
    if isinstance(out.get("ports"), list):
        out["ports"] = [{k: v for k, v in p.items() if not (k == "protocol" and v == "TCP")}
                        if isinstance(p, dict) else p for p in out["ports"]]
    for field in ("livenessProbe", "readinessProbe", "startupProbe"):
        probe = out.get(field)
        if isinstance(probe, dict):
            probe = {k: v for k, v in probe.items() if _PROBE_DEFAULTS.get(k, object()) != v}
            action = probe.get("httpGet")
            if isinstance(action, dict):
                probe["httpGet"] = {k: v for k, v in action.items()
                                    if (k, v) not in (("scheme", "HTTP"), ("path", "/"))}
            out[field] = probe
    if isinstance(out.get("env"), list):
        out["env"] = [_env_without_defaults(v) if isinstance(v, dict) else v
                      for v in out["env"]]
    return out


def _env_without_defaults(var: dict) -> dict:
    source = var.get("valueFrom")
    if not isinstance(source, dict):
        return var
    source = dict(source)
    for field, default in (("fieldRef", ("apiVersion", "v1")),
                           ("resourceFieldRef", ("divisor", "0"))):
        if isinstance(source.get(field), dict):
            source[field] = {k: v for k, v in source[field].items() if (k, v) != default}
    return {**var, "valueFrom": source}


def _downward_items(items: Any) -> None:
    for item in _dicts(items):
        _fill(item.get("fieldRef"), {"apiVersion": "v1"})
        _fill(item.get("resourceFieldRef"), {"divisor": "0"})


def _volume(vol: dict) -> None:
    if not any(source in vol for source in _VOLUME_SOURCES):
        vol["emptyDir"] = {}
    for source in ("configMap", "secret", "downwardAPI", "projected"):
        _fill(vol.get(source), {"defaultMode": FILE_MODE})
    _fill(vol.get("hostPath"), {"type": ""})
    _downward_items(_get(vol, "downwardAPI", "items"))
    for source in _dicts(_get(vol, "projected", "sources")):
        _downward_items(_get(source, "downwardAPI", "items"))
        _fill(source.get("serviceAccountToken"), {"expirationSeconds": 3600})
    claim = _get(vol, "ephemeral", "volumeClaimTemplate", "spec")
    if isinstance(claim, dict):
        claim.setdefault("volumeMode", "Filesystem")


def pod_spec(spec: Any) -> None:
    """A pod spec's defaults, wherever it is (a Pod, a workload's template)."""
    if not isinstance(spec, dict):
        return
    _fill(spec, {"restartPolicy": "Always", "terminationGracePeriodSeconds": 30,
                 "dnsPolicy": "ClusterFirst", "schedulerName": "default-scheduler",
                 "securityContext": {}})
    host_network = spec.get("hostNetwork") is True
    for group in ("initContainers", "containers", "ephemeralContainers"):
        for c in _dicts(spec.get(group)):
            _container(c, host_network)
    for vol in _dicts(spec.get("volumes")):
        _volume(vol)


def _tolerates(tolerations: list[dict], key: str) -> bool:
    return any((t.get("operator") == "Exists" and not t.get("key"))
               or (t.get("key") == key and t.get("effect") in (None, "", "NoExecute"))
               for t in tolerations)


def pod_only(spec: Any) -> None:
    """What a Pod gets and a template does not (SetDefaults_Pod and the admission plugins
    ServiceAccount, DefaultTolerationSeconds and Priority)."""
    if not isinstance(spec, dict):
        return
    spec.setdefault("enableServiceLinks", True)
    if isinstance(spec.get("serviceAccount"), str) and "serviceAccountName" not in spec:
        spec["serviceAccountName"] = spec["serviceAccount"]
    spec.setdefault("serviceAccountName", "default")
    if isinstance(spec["serviceAccountName"], str):
        spec.setdefault("serviceAccount", spec["serviceAccountName"])
    for group in ("initContainers", "containers"):
        for c in _dicts(spec.get(group)):
            resources = c.get("resources")
            limits = _get(resources, "limits")
            if isinstance(limits, dict) and limits:
                requests = _child(resources, "requests")
                if requests is not None:
                    for name, value in limits.items():
                        requests.setdefault(name, value)
    tolerations = spec.get("tolerations")
    if tolerations is None or isinstance(tolerations, list):
        current = _dicts(tolerations)
        added = [{"key": key, "operator": "Exists", "effect": "NoExecute",
                  "tolerationSeconds": _toleration_seconds[0]}
                 for key in NODE_CONDITION_TAINTS if not _tolerates(current, key)]
        if added:
            spec["tolerations"] = [*(tolerations or []), *added]
    if not spec.get("priorityClassName"):
        spec.setdefault("priority", 0)
    spec.setdefault("preemptionPolicy", "PreemptLowerPriority")


def pod_template(template: Any) -> None:
    """A workload's pod template (metadata untouched)."""
    pod_spec(_get(template, "spec"))


# -- kinds -------------------------------------------------------------------------------
def _rolling(spec: dict, field: str, rolling: dict) -> None:
    strategy = _child(spec, field)
    if strategy is not None:
        strategy.setdefault("type", "RollingUpdate")
        if strategy["type"] == "RollingUpdate":
            _fill(_child(strategy, "rollingUpdate"), rolling)


def _deployment(spec: dict) -> None:
    _fill(spec, {"replicas": 1, "revisionHistoryLimit": 10, "progressDeadlineSeconds": 600})
    _rolling(spec, "strategy", {"maxSurge": "25%", "maxUnavailable": "25%"})


def _claim_template(claim: dict) -> None:
    """A StatefulSet's volumeClaimTemplates item, as the API server encodes it."""
    _fill(claim, {"apiVersion": "v1", "kind": "PersistentVolumeClaim"})
    _fill(claim.get("spec"), {"volumeMode": "Filesystem"})
    _fill(_child(claim, "status"), {"phase": "Pending"})


def _statefulset(spec: dict) -> None:
    _fill(spec, {"replicas": 1, "podManagementPolicy": "OrderedReady",
                 "revisionHistoryLimit": 10})
    _rolling(spec, "updateStrategy", {"partition": 0})
    _fill(_child(spec, "persistentVolumeClaimRetentionPolicy"),
          {"whenDeleted": "Retain", "whenScaled": "Retain"})
    for claim in _dicts(spec.get("volumeClaimTemplates")):
        _claim_template(claim)


def _daemonset(spec: dict) -> None:
    _fill(spec, {"revisionHistoryLimit": 10})
    _rolling(spec, "updateStrategy", {"maxUnavailable": 1, "maxSurge": 0})


def _job(spec: dict) -> None:
    if "completions" not in spec and "parallelism" not in spec:
        spec["completions"] = 1          # parallelism alone is a work queue: no completions
    _fill(spec, {"parallelism": 1, "completionMode": "NonIndexed", "suspend": False,
                 "manualSelector": False, "podReplacementPolicy": "TerminatingOrFailed"})
    if "backoffLimit" not in spec:
        spec["backoffLimit"] = 2**31 - 1 if spec.get("backoffLimitPerIndex") is not None \
            else 6


def _cronjob(spec: dict) -> None:
    _fill(spec, {"concurrencyPolicy": "Allow", "suspend": False,
                 "successfulJobsHistoryLimit": 3, "failedJobsHistoryLimit": 1})


def _service(spec: dict) -> None:
    _fill(spec, {"type": "ClusterIP", "sessionAffinity": "None"})
    kind = spec.get("type")
    if kind != "ExternalName":
        spec.setdefault("internalTrafficPolicy", "Cluster")
    if kind in ("NodePort", "LoadBalancer"):
        spec.setdefault("externalTrafficPolicy", "Cluster")
    if kind == "LoadBalancer":
        spec.setdefault("allocateLoadBalancerNodePorts", True)
    if spec.get("sessionAffinity") == "ClientIP":
        config = _child(spec, "sessionAffinityConfig")
        if config is not None:
            _fill(_child(config, "clientIP"), {"timeoutSeconds": 10800})
    for port in _dicts(spec.get("ports")):
        port.setdefault("protocol", "TCP")
        if "port" in port:
            port.setdefault("targetPort", port["port"])


def _ports(items: Any) -> None:
    for port in _dicts(items):
        port.setdefault("protocol", "TCP")


def _network_policy(spec: dict) -> None:
    if "policyTypes" not in spec:
        spec["policyTypes"] = ["Ingress", *(["Egress"] if spec.get("egress") else [])]
    for rule in (*_dicts(spec.get("ingress")), *_dicts(spec.get("egress"))):
        _ports(rule.get("ports"))


def _hpa(spec: dict) -> None:
    spec.setdefault("minReplicas", 1)
    if not spec.get("metrics") and "metrics" not in spec:
        spec["metrics"] = [{"type": "Resource", "resource": {
            "name": "cpu", "target": {"type": "Utilization", "averageUtilization": 80}}}]


def _replication_controller(spec: dict) -> None:
    spec.setdefault("replicas", 1)
    labels = _get(spec, "template", "metadata", "labels")
    if "selector" not in spec and isinstance(labels, dict):
        spec["selector"] = dict(labels)


_SPEC: dict[str, Callable[[dict], None]] = {
    "Deployment": _deployment, "ReplicaSet": lambda s: _fill(s, {"replicas": 1}),
    "StatefulSet": _statefulset, "DaemonSet": _daemonset, "Job": _job, "CronJob": _cronjob,
    "Service": _service,
    "PersistentVolumeClaim": lambda s: _fill(s, {"volumeMode": "Filesystem"}),
    "PersistentVolume": lambda s: _fill(s, {"persistentVolumeReclaimPolicy": "Retain",
                                            "volumeMode": "Filesystem"}),
    "Namespace": lambda s: _fill(s, {"finalizers": ["kubernetes"]}),
    "NetworkPolicy": _network_policy, "HorizontalPodAutoscaler": _hpa,
    "ReplicationController": _replication_controller,
}
# Kinds whose spec a writer may leave out entirely and still get defaults in.
_SPEC_ALWAYS = frozenset({"Namespace"})
POD_TEMPLATE_PATH = {kind: path[:-1] for kind, path in POD_SPEC_PATH.items() if kind != "Pod"}
POD_TEMPLATE_PATH["ReplicationController"] = ("spec", "template")
POD_TEMPLATE_PATH["PodTemplate"] = ("template",)


def fill(obj: dict) -> None:
    """Fill the API server's defaults into obj, in place."""
    kind = obj.get("kind", "")
    if kind == "Secret":
        obj.setdefault("type", "Opaque")
    elif kind == "Endpoints":
        for subset in _dicts(obj.get("subsets")):
            _ports(subset.get("ports"))
    elif kind == "EndpointSlice":
        _ports(obj.get("ports"))
    elif kind == "PriorityClass":
        obj.setdefault("preemptionPolicy", "PreemptLowerPriority")
    elif kind == "Job":
        labels = _get(obj, "spec", "template", "metadata", "labels")
        meta = obj.get("metadata")
        if isinstance(meta, dict) and not meta.get("labels") and isinstance(labels, dict) \
                and labels:
            meta["labels"] = dict(labels)
    if kind in _SPEC_ALWAYS:
        obj.setdefault("spec", {})
    spec = obj.get("spec")
    if isinstance(spec, dict) and kind in _SPEC:
        _SPEC[kind](spec)
    if kind == "Pod":
        pod_spec(spec)
        pod_only(spec)
    elif kind in POD_TEMPLATE_PATH:
        pod_template(_get(obj, *POD_TEMPLATE_PATH[kind]))


def with_defaults(obj: dict) -> dict:
    """A copy of `obj` with the API server's defaults filled in where it leaves them out."""
    out = json_copy(obj)
    fill(out)
    return out


def template_with_defaults(template: Any) -> Any:
    """A copy of a pod template with its defaults (to compare templates as stored)."""
    out = json_copy(template)
    pod_template(out)
    return out
