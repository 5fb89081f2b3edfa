"""`Table` responses (as=Table): the columns kubectl shows for a real cluster (pure).

kubectl asks the server how to print: each kind has column definitions (priority 1 means
`-o wide` only) and one row of cells per object. Kinds without a printer get NAME and AGE,
as a Kubernetes server gives custom resources.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from gitops.model.pods import pod_display_status
from gitops.model.times import human_duration
from gitops.model.times import parse_rfc3339 as _epoch

Column = tuple[str, str, int]          # name, type, priority
Row = Callable[[dict, float], list]

_NAME: Column = ("Name", "string", 0)
_AGE: Column = ("Age", "string", 0)
_TEMPLATE_WIDE: tuple[Column, ...] = (("Containers", "string", 1), ("Images", "string", 1))
_SELECTOR_WIDE: Column = ("Selector", "string", 1)
_DESCRIPTIONS = {
    "Name": "Name must be unique within a namespace.",
    "Age": "CreationTimestamp is a timestamp representing the server time when this object "
           "was created.",
}


def since(stamp: str | None, now: float) -> str:
    at = _epoch(stamp)
    return "<unknown>" if at is None else human_duration(now - at)


def _age(obj: dict, now: float) -> str:
    return since(obj.get("metadata", {}).get("creationTimestamp"), now)


def _template_cells(template: dict) -> list[str]:
    containers = (template.get("spec") or {}).get("containers") or []
    return [",".join(c.get("name", "") for c in containers),
            ",".join(c.get("image", "") for c in containers)]


def format_selector(selector: dict | None) -> str:
    if not selector:
        return "<none>"
    parts = [f"{k}={v}" for k, v in sorted((selector.get("matchLabels") or {}).items())]
    for e in selector.get("matchExpressions") or []:
        op, key, values = e.get("operator"), e.get("key"), ",".join(e.get("values") or [])
        parts.append({"In": f"{key} in ({values})", "NotIn": f"{key} notin ({values})",
                      "Exists": key, "DoesNotExist": f"!{key}"}.get(op, key))
    return ",".join(parts) or "<none>"


def _map_selector(selector: dict | None) -> str:
    return ",".join(f"{k}={v}" for k, v in sorted((selector or {}).items())) or "<none>"


# -- per kind ----------------------------------------------------------------------------
def _pod(obj: dict, now: float) -> list:
    spec, st = obj.get("spec", {}), obj.get("status", {})
    statuses = st.get("containerStatuses") or []
    ready = sum(1 for c in statuses if c.get("ready"))
    restarts = sum(c.get("restartCount", 0) for c in statuses)
    last = max((_epoch(((c.get("lastState") or {}).get("terminated") or {}).get("finishedAt"))
                or 0 for c in statuses), default=0)
    restart_cell = f"{restarts} ({human_duration(now - last)} ago)" if restarts and last \
        else str(restarts)
    gates = spec.get("readinessGates") or []
    return [obj["metadata"]["name"], f"{ready}/{len(spec.get('containers') or [])}",
            pod_display_status(obj), restart_cell, _age(obj, now),
            st.get("podIP") or "<none>", spec.get("nodeName") or "<none>",
            st.get("nominatedNodeName") or "<none>",
            f"0/{len(gates)}" if gates else "<none>"]


def _deployment(obj: dict, now: float) -> list:
    spec, st = obj.get("spec", {}), obj.get("status", {})
    template = spec.get("template") or {}
    return [obj["metadata"]["name"], f"{st.get('readyReplicas', 0)}/{spec.get('replicas', 1)}",
            st.get("updatedReplicas", 0), st.get("availableReplicas", 0), _age(obj, now),
            *_template_cells(template), format_selector(spec.get("selector"))]


def _replicaset(obj: dict, now: float) -> list:
    spec, st = obj.get("spec", {}), obj.get("status", {})
    return [obj["metadata"]["name"], spec.get("replicas", 1), st.get("replicas", 0),
            st.get("readyReplicas", 0), _age(obj, now),
            *_template_cells(spec.get("template") or {}), format_selector(spec.get("selector"))]


def _replicationcontroller(obj: dict, now: float) -> list:
    spec, st = obj.get("spec", {}), obj.get("status", {})
    selector = spec.get("selector") or {}
    return [obj["metadata"]["name"], spec.get("replicas", 1), st.get("replicas", 0),
            st.get("readyReplicas", 0), _age(obj, now),
            *_template_cells(spec.get("template") or {}),
            ",".join(f"{k}={v}" for k, v in selector.items()) or "<none>"]


def _hpa(obj: dict, now: float) -> list:
    """As kubectl 1.30+ prints it: `cpu: 45%/50%` per metric, <unknown> before a figure."""
    spec, st = obj.get("spec", {}), obj.get("status", {})
    ref = spec.get("scaleTargetRef") or {}
    current = {(m.get("resource") or m.get("containerResource") or {}).get("name"):
               (m.get("resource") or m.get("containerResource") or {}).get("current") or {}
               for m in st.get("currentMetrics") or []}
    targets = []
    if "currentCPUUtilizationPercentage" in st:        # autoscaling/v1's figure
        current.setdefault("cpu", {"averageUtilization": st["currentCPUUtilizationPercentage"]})
    for metric in spec.get("metrics") or [{"type": "Resource", "resource": {
            "name": "cpu", "target": {"type": "Utilization", "averageUtilization":
                                      spec.get("targetCPUUtilizationPercentage", 80)}}}]:
        source = metric.get("resource") or metric.get("containerResource")
        if source is None:
            targets.append(f"{metric.get('type', '')}: <unknown>")
            continue
        name, target = source.get("name", ""), source.get("target") or {}
        now_ = current.get(name, {})
        if target.get("type", "Utilization") == "Utilization":
            have = now_.get("averageUtilization")
            targets.append(f"{name}: {'<unknown>' if have is None else f'{have}%'}/"
                           f"{target.get('averageUtilization', 80)}%")
        else:
            targets.append(f"{name}: {now_.get('averageValue', '<unknown>')}/"
                           f"{target.get('averageValue', '')}")
    return [obj["metadata"]["name"], f"{ref.get('kind', '')}/{ref.get('name', '')}",
            ", ".join(targets), spec.get("minReplicas", 1), spec.get("maxReplicas", 0),
            st.get("currentReplicas", 0), _age(obj, now)]


def _statefulset(obj: dict, now: float) -> list:
    spec, st = obj.get("spec", {}), obj.get("status", {})
    return [obj["metadata"]["name"], f"{st.get('readyReplicas', 0)}/{spec.get('replicas', 1)}",
            _age(obj, now), *_template_cells(spec.get("template") or {})]


def _daemonset(obj: dict, now: float) -> list:
    spec, st = obj.get("spec", {}), obj.get("status", {})
    template = spec.get("template") or {}
    return [obj["metadata"]["name"], st.get("desiredNumberScheduled", 0),
            st.get("currentNumberScheduled", 0), st.get("numberReady", 0),
            st.get("updatedNumberScheduled", 0), st.get("numberAvailable", 0),
            _map_selector((template.get("spec") or {}).get("nodeSelector")), _age(obj, now),
            *_template_cells(template), format_selector(spec.get("selector"))]


def _job_status(st: dict) -> str:
    for cond in st.get("conditions") or []:
        if cond.get("status") == "True" and cond.get("type") in (
                "Complete", "Failed", "Suspended", "FailureTarget", "SuccessCriteriaMet"):
            return {"FailureTarget": "FailureTarget", "SuccessCriteriaMet":
                    "SuccessCriteriaMet"}.get(cond["type"], cond["type"])
    return "Running"


def _job(obj: dict, now: float) -> list:
    spec, st = obj.get("spec", {}), obj.get("status", {})
    completions = spec.get("completions")
    parallelism = spec.get("parallelism", 1)
    done = st.get("succeeded", 0)
    shown = f"{done}/{completions}" if completions is not None else \
        f"{done}/1 of {parallelism}" if parallelism > 1 else f"{done}/1"
    start, end = _epoch(st.get("startTime")), _epoch(st.get("completionTime"))
    duration = human_duration((end or now) - start) if start else ""
    return [obj["metadata"]["name"], _job_status(st), shown, duration, _age(obj, now),
            *_template_cells(spec.get("template") or {}), format_selector(spec.get("selector"))]


def _cronjob(obj: dict, now: float) -> list:
    spec, st = obj.get("spec", {}), obj.get("status", {})
    template = ((spec.get("jobTemplate") or {}).get("spec") or {}).get("template") or {}
    last = st.get("lastScheduleTime")
    return [obj["metadata"]["name"], spec.get("schedule", ""), spec.get("timeZone") or "<none>",
            str(bool(spec.get("suspend"))), len(st.get("active") or []),
            since(last, now) if last else "<none>", _age(obj, now), *_template_cells(template),
            format_selector(((spec.get("jobTemplate") or {}).get("spec") or {}).get("selector"))]


def _service_ports(spec: dict) -> str:
    ports = []
    for p in spec.get("ports") or []:
        text = f"{p.get('port')}"
        if p.get("nodePort"):
            text += f":{p['nodePort']}"
        ports.append(f"{text}/{p.get('protocol', 'TCP')}")
    return ",".join(ports) or "<none>"


def _service(obj: dict, now: float) -> list:
    spec, st = obj.get("spec", {}), obj.get("status", {})
    kind = spec.get("type", "ClusterIP")
    external = ",".join(spec.get("externalIPs") or [])
    if kind == "LoadBalancer":
        ingress = [i.get("ip") or i.get("hostname") for i in
                   (st.get("loadBalancer") or {}).get("ingress") or []]
        external = ",".join(x for x in ingress if x) or "<pending>"
    elif kind == "ExternalName":
        external = spec.get("externalName", "")
    return [obj["metadata"]["name"], kind, spec.get("clusterIP") or "<none>",
            external or "<none>", _service_ports(spec), _age(obj, now),
            _map_selector(spec.get("selector"))]


def _endpoints(obj: dict, now: float) -> list:
    addrs = []
    for subset in obj.get("subsets") or []:
        ports = [p.get("port") for p in subset.get("ports") or []] or [None]
        for a in subset.get("addresses") or []:
            addrs += [f"{a.get('ip')}:{p}" if p else a.get("ip") for p in ports]
    shown = ",".join(str(a) for a in addrs[:3]) + (f" + {len(addrs) - 3} more..."
                                                   if len(addrs) > 3 else "")
    return [obj["metadata"]["name"], shown or "<none>", _age(obj, now)]


def _node(obj: dict, now: float) -> list:
    st = obj.get("status", {})
    ready = next((c.get("status") for c in st.get("conditions") or []
                  if c.get("type") == "Ready"), "Unknown")
    status = {"True": "Ready", "False": "NotReady"}.get(ready, "Unknown")
    if (obj.get("spec") or {}).get("unschedulable"):
        status += ",SchedulingDisabled"
    labels = obj["metadata"].get("labels") or {}
    roles = sorted(k.split("/", 1)[1] for k in labels
                   if k.startswith("node-role.kubernetes.io/") and "/" in k)
    info = st.get("nodeInfo") or {}
    addr = {a.get("type"): a.get("address") for a in st.get("addresses") or []}
    return [obj["metadata"]["name"], status, ",".join(roles) or "<none>", _age(obj, now),
            info.get("kubeletVersion") or "<none>", addr.get("InternalIP") or "<none>",
            addr.get("ExternalIP") or "<none>", info.get("osImage") or "<unknown>",
            info.get("kernelVersion") or "<unknown>",
            info.get("containerRuntimeVersion") or "<unknown>"]


def _event(obj: dict, now: float) -> list:
    inv = obj.get("involvedObject") or {}
    source = obj.get("source") or {}
    last = obj.get("lastTimestamp") or obj.get("eventTime") or \
        obj["metadata"].get("creationTimestamp")
    first = obj.get("firstTimestamp") or obj.get("eventTime")
    return [since(last, now), obj.get("type", ""), obj.get("reason", ""),
            f"{(inv.get('kind') or '').lower()}/{inv.get('name', '')}",
            inv.get("fieldPath", ""),
            ", ".join(x for x in (source.get("component"), source.get("host")) if x),
            (obj.get("message") or "").strip(), since(first, now) if first else "<unknown>",
            obj.get("count", 1), obj["metadata"]["name"]]


def _namespace(obj: dict, now: float) -> list:
    return [obj["metadata"]["name"], (obj.get("status") or {}).get("phase", "Active"),
            _age(obj, now)]


def _configmap(obj: dict, now: float) -> list:
    return [obj["metadata"]["name"], len(obj.get("data") or {}) + len(obj.get("binaryData") or {}),
            _age(obj, now)]


def _secret(obj: dict, now: float) -> list:
    return [obj["metadata"]["name"], obj.get("type", "Opaque"),
            len(obj.get("data") or {}), _age(obj, now)]


def _serviceaccount(obj: dict, now: float) -> list:
    return [obj["metadata"]["name"], len(obj.get("secrets") or []), _age(obj, now)]


def _pvc(obj: dict, now: float) -> list:
    spec, st = obj.get("spec", {}), obj.get("status", {})
    capacity = (st.get("capacity") or {}).get("storage", "")
    modes = ",".join({"ReadWriteOnce": "RWO", "ReadOnlyMany": "ROX", "ReadWriteMany": "RWX",
                      "ReadWriteOncePod": "RWOP"}.get(m, m)
                     for m in st.get("accessModes") or spec.get("accessModes") or [])
    return [obj["metadata"]["name"], st.get("phase", "Pending"), spec.get("volumeName", ""),
            capacity, modes, spec.get("storageClassName") or "<unset>",
            spec.get("volumeAttributesClassName") or "<unset>", _age(obj, now),
            spec.get("volumeMode", "Filesystem")]


def _controllerrevision(obj: dict, now: float) -> list:
    ref = next((r for r in obj["metadata"].get("ownerReferences") or []
                if r.get("controller")), None)
    controller = "<none>"
    if ref is not None:
        group = (ref.get("apiVersion") or "").rpartition("/")[0]
        controller = f"{(ref.get('kind') or '').lower()}{'.' + group if group else ''}/" \
                     f"{ref.get('name', '')}"
    return [obj["metadata"]["name"], controller, obj.get("revision", 0), _age(obj, now)]


def _pdb(obj: dict, now: float) -> list:
    spec, st = obj.get("spec", {}), obj.get("status", {})
    return [obj["metadata"]["name"], str(spec.get("minAvailable", "N/A")),
            str(spec.get("maxUnavailable", "N/A")), st.get("disruptionsAllowed", 0),
            _age(obj, now)]


def _default(obj: dict, now: float) -> list:
    return [obj["metadata"]["name"], _age(obj, now)]


PRINTERS: dict[str, tuple[tuple[Column, ...], Row]] = {
    "Pod": ((_NAME, ("Ready", "string", 0), ("Status", "string", 0),
             ("Restarts", "string", 0), _AGE, ("IP", "string", 1), ("Node", "string", 1),
             ("Nominated Node", "string", 1), ("Readiness Gates", "string", 1)), _pod),
    "Deployment": ((_NAME, ("Ready", "string", 0), ("Up-to-date", "integer", 0),
                    ("Available", "integer", 0), _AGE, *_TEMPLATE_WIDE, _SELECTOR_WIDE),
                   _deployment),
    "ReplicaSet": ((_NAME, ("Desired", "integer", 0), ("Current", "integer", 0),
                    ("Ready", "integer", 0), _AGE, *_TEMPLATE_WIDE, _SELECTOR_WIDE),
                   _replicaset),
    "ReplicationController": ((_NAME, ("Desired", "integer", 0), ("Current", "integer", 0),
                               ("Ready", "integer", 0), _AGE, *_TEMPLATE_WIDE,
                               _SELECTOR_WIDE), _replicationcontroller),
    "HorizontalPodAutoscaler": ((_NAME, ("Reference", "string", 0), ("Targets", "string", 0),
                                 ("MinPods", "string", 0), ("MaxPods", "integer", 0),
                                 ("Replicas", "integer", 0), _AGE), _hpa),
    "StatefulSet": ((_NAME, ("Ready", "string", 0), _AGE, *_TEMPLATE_WIDE), _statefulset),
    "DaemonSet": ((_NAME, ("Desired", "integer", 0), ("Current", "integer", 0),
                   ("Ready", "integer", 0), ("Up-to-date", "integer", 0),
                   ("Available", "integer", 0), ("Node Selector", "string", 0), _AGE,
                   *_TEMPLATE_WIDE, _SELECTOR_WIDE), _daemonset),
    "Job": ((_NAME, ("Status", "string", 0), ("Completions", "string", 0),
             ("Duration", "string", 0), _AGE, *_TEMPLATE_WIDE, _SELECTOR_WIDE), _job),
    "CronJob": ((_NAME, ("Schedule", "string", 0), ("Timezone", "string", 0),
                 ("Suspend", "boolean", 0), ("Active", "integer", 0),
                 ("Last Schedule", "string", 0), _AGE, *_TEMPLATE_WIDE, _SELECTOR_WIDE),
                _cronjob),
    "Service": ((_NAME, ("Type", "string", 0), ("Cluster-IP", "string", 0),
                 ("External-IP", "string", 0), ("Port(s)", "string", 0), _AGE,
                 _SELECTOR_WIDE), _service),
    "Endpoints": ((_NAME, ("Endpoints", "string", 0), _AGE), _endpoints),
    "Node": ((_NAME, ("Status", "string", 0), ("Roles", "string", 0), _AGE,
              ("Version", "string", 0), ("Internal-IP", "string", 1),
              ("External-IP", "string", 1), ("OS-Image", "string", 1),
              ("Kernel-Version", "string", 1), ("Container-Runtime", "string", 1)), _node),
    "Event": ((("Last Seen", "string", 0), ("Type", "string", 0), ("Reason", "string", 0),
               ("Object", "string", 0), ("Subobject", "string", 1), ("Source", "string", 1),
               ("Message", "string", 0), ("First Seen", "string", 1), ("Count", "integer", 1),
               ("Name", "string", 1)), _event),
    "Namespace": ((_NAME, ("Status", "string", 0), _AGE), _namespace),
    "ConfigMap": ((_NAME, ("Data", "integer", 0), _AGE), _configmap),
    "Secret": ((_NAME, ("Type", "string", 0), ("Data", "integer", 0), _AGE), _secret),
    "ServiceAccount": ((_NAME, ("Secrets", "integer", 0), _AGE), _serviceaccount),
    "ControllerRevision": ((_NAME, ("Controller", "string", 0), ("Revision", "integer", 0),
                            _AGE), _controllerrevision),
    "PersistentVolumeClaim": ((_NAME, ("Status", "string", 0), ("Volume", "string", 0),
                               ("Capacity", "string", 0), ("Access Modes", "string", 0),
                               ("StorageClass", "string", 0),
                               ("VolumeAttributesClass", "string", 0), _AGE,
                               ("VolumeMode", "string", 1)), _pvc),
    "PodDisruptionBudget": ((_NAME, ("Min Available", "string", 0),
                             ("Max Unavailable", "string", 0),
                             ("Allowed Disruptions", "integer", 0), _AGE), _pdb),
}


def columns(kind: str) -> list[dict]:
    cols, _ = PRINTERS.get(kind, ((_NAME, _AGE), _default))
    return [{"name": name, "type": typ, "format": "name" if name == "Name" else "",
             "description": _DESCRIPTIONS.get(name, name), "priority": prio}
            for name, typ, prio in cols]


def partial(obj: dict) -> dict:
    """What a row carries by default: the object's metadata (PartialObjectMetadata)."""
    return {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1",
            "metadata": obj.get("metadata", {})}


def table(kind: str, objects: list[dict], *, resource_version: str = "", cont: str = "",
          include: str = "Metadata", headers: bool = True,
          now: float | None = None) -> dict:
    """include: Metadata (default), Object (the whole object) or None."""
    now = time.time() if now is None else now
    _, row = PRINTERS.get(kind, ((), _default))
    rows = []
    for obj in objects:
        entry: dict = {"cells": row(obj, now)}
        if include == "Object":
            entry["object"] = obj
        elif include != "None":
            entry["object"] = partial(obj)
        rows.append(entry)
    meta: dict = {"resourceVersion": resource_version} if resource_version else {}
    if cont:
        meta["continue"] = cont
    return {"kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": meta,
            "columnDefinitions": columns(kind) if headers else [], "rows": rows}
