"""Text views for `gitops describe` and `gitops events`, after kubectl's (pure).

`describe(obj, events, related, now)` renders an object's key fields, its conditions and
the Events about it; `related` carries what kubectl would fetch alongside (the
ReplicaSets of a Deployment, the pods of a node). Secret values are never shown: a Secret
lists its keys and their sizes, as kubectl does.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Iterable

from gitops.model.events import for_object, last_seen
from gitops.model.times import human_duration as human_age
from gitops.model.times import parse_rfc3339 as _epoch

Section = list[str]


def _since(value: object, now: float) -> str:
    ts = _epoch(value)
    return "<unknown>" if ts is None else human_age(now - ts)


def _table(headers: list[str], rows: list[list[str]], indent: str = "") -> list[str]:
    if not rows:
        return []
    widths = [max(len(str(x)) for x in col) for col in zip(headers, *rows)]
    out = []
    for row in [headers, ["-" * len(h) for h in headers], *rows]:
        out.append(indent + "  ".join(str(v).ljust(w) for v, w in zip(row, widths)).rstrip())
    return out


def _pairs(title: str, mapping: dict | None, width: int = 20) -> Section:
    items = sorted((mapping or {}).items())
    label = f"{title}:".ljust(width)
    if not items:
        return [f"{label}<none>"]
    return [(label if i == 0 else " " * width) + f"{k}={v}" for i, (k, v) in enumerate(items)]


def _field(title: str, value: object, width: int = 20) -> str:
    shown = "<none>" if value in (None, "", [], {}) else value
    return f"{title}:".ljust(width) + str(shown)


def _header(obj: dict, now: float) -> Section:
    meta = obj.get("metadata") or {}
    lines = [_field("Name", meta.get("name"))]
    if "namespace" in meta or obj.get("kind") not in ("Node", "Namespace"):
        lines.append(_field("Namespace", meta.get("namespace", "default")))
    if meta.get("creationTimestamp"):
        lines.append(_field("CreationTimestamp", f"{meta['creationTimestamp']} "
                            f"({_since(meta['creationTimestamp'], now)} ago)"))
    lines += _pairs("Labels", meta.get("labels"))
    annotations = {k: v for k, v in (meta.get("annotations") or {}).items()
                   if k != "kubectl.kubernetes.io/last-applied-configuration"}
    lines += _pairs("Annotations", annotations)
    if ref := next((r for r in meta.get("ownerReferences") or [] if r.get("controller")),
                   None):
        lines.append(_field("Controlled By", f"{ref.get('kind')}/{ref.get('name')}"))
    if meta.get("deletionTimestamp"):
        lines.append(_field("Terminating Since", meta["deletionTimestamp"]))
    return lines


def _conditions(obj: dict) -> Section:
    conds = (obj.get("status") or {}).get("conditions") or []
    if not conds:
        return []
    rows = [[c.get("type", ""), c.get("status", ""), c.get("reason", "") or ""]
            for c in conds]
    lines = ["Conditions:", *_table(["Type", "Status", "Reason"], rows, "  ")]
    messages = [f"  {c['type']}: {c['message']}" for c in conds if c.get("message")]
    return lines + messages


def _selector(sel: dict | None) -> str:
    sel = sel or {}
    parts = [f"{k}={v}" for k, v in sorted((sel.get("matchLabels") or {}).items())]
    for e in sel.get("matchExpressions") or []:
        values = ",".join(e.get("values") or [])
        parts.append(f"{e.get('key')} {e.get('operator', '').lower()} ({values})" if values
                     else f"{'!' if e.get('operator') == 'DoesNotExist' else ''}{e.get('key')}")
    return ",".join(parts) or "<none>"


def _resources(c: dict) -> Section:
    res = c.get("resources") or {}
    out = []
    for kind in ("limits", "requests"):
        if res.get(kind):
            out.append(f"      {kind.capitalize()}:")
            out += [f"        {k}:  {v}" for k, v in sorted(res[kind].items())]
    return out


def _env(c: dict) -> Section:
    out = []
    for var in c.get("env") or []:
        src = var.get("valueFrom") or {}
        if "value" in var:
            shown = var["value"]
        elif ref := src.get("secretKeyRef"):
            shown = f"<set to the key '{ref.get('key')}' in secret '{ref.get('name')}'>"
        elif ref := src.get("configMapKeyRef"):
            shown = f"<set to the key '{ref.get('key')}' of config map '{ref.get('name')}'>"
        elif ref := src.get("fieldRef"):
            shown = f"({ref.get('apiVersion', 'v1')}:{ref.get('fieldPath')})"
        else:
            shown = json.dumps(src)
        out.append(f"      {var.get('name')}:  {shown}")
    for src in c.get("envFrom") or []:
        if ref := src.get("configMapRef"):
            out.append(f"      ConfigMap  {ref.get('name')}")
        if ref := src.get("secretRef"):
            out.append(f"      Secret     {ref.get('name')}")
    return (["    Environment:"] + out) if out else ["    Environment:  <none>"]


def _state(state: dict | None) -> list[str]:
    state = state or {}
    for name in ("running", "waiting", "terminated"):
        if name in state:
            detail = state[name] or {}
            lines = [f"{name.capitalize()}"]
            for k in ("reason", "message", "exitCode", "startedAt", "finishedAt"):
                if detail.get(k) not in (None, ""):
                    lines.append(f"  {k[0].upper() + k[1:]}: {detail[k]}")
            return lines
    return ["<unknown>"]


def _containers(title: str, containers: list[dict], statuses: list[dict]) -> Section:
    if not containers:
        return []
    by_name = {s.get("name"): s for s in statuses}
    out = [f"{title}:"]
    for c in containers:
        st = by_name.get(c.get("name"), {})
        out.append(f"  {c.get('name')}:")
        out.append(f"    Image:          {c.get('image')}")
        if c.get("command"):
            out.append(f"    Command:        {' '.join(c['command'])}")
        if c.get("args"):
            out.append(f"    Args:           {' '.join(c['args'])}")
        ports = ", ".join(f"{p.get('containerPort')}/{p.get('protocol', 'TCP')}"
                          for p in c.get("ports") or [])
        out.append(f"    Port:           {ports or '<none>'}")
        if st:
            state = _state(st.get("state"))
            out.append(f"    State:          {state[0]}")
            out += [f"      {line.strip()}" for line in state[1:]]
            if st.get("lastState"):
                last = _state(st.get("lastState"))
                out.append(f"    Last State:     {last[0]}")
                out += [f"      {line.strip()}" for line in last[1:]]
            out.append(f"    Ready:          {st.get('ready', False)}")
            out.append(f"    Restart Count:  {st.get('restartCount', 0)}")
        out += _resources(c)
        for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
            if p := c.get(probe):
                how = next((k for k in ("httpGet", "tcpSocket", "exec", "grpc") if k in p), "")
                out.append(f"    {probe[:-5].capitalize()}:".ljust(20) +
                           f"{how} delay={p.get('initialDelaySeconds', 0)}s "
                           f"period={p.get('periodSeconds', 10)}s "
                           f"#failure={p.get('failureThreshold', 3)}")
        out += _env(c)
        mounts = c.get("volumeMounts") or []
        out.append("    Mounts:" + ("" if mounts else "         <none>"))
        out += [f"      {m.get('mountPath')} from {m.get('name')}"
                f" ({'ro' if m.get('readOnly') else 'rw'})" for m in mounts]
    return out


def _template(template: dict) -> Section:
    meta = template.get("metadata") or {}
    spec = template.get("spec") or {}
    out = ["Pod Template:", *("  " + line for line in _pairs("Labels", meta.get("labels"), 14))]
    if meta.get("annotations"):
        out += ["  " + line for line in _pairs("Annotations", meta.get("annotations"), 14)]
    out += ["  " + line for line in _containers("Containers", spec.get("containers") or [], [])]
    vols = spec.get("volumes") or []
    if vols:
        out.append("  Volumes:")
        out += [f"   {v.get('name')}: {next((k for k in v if k != 'name'), '')}" for v in vols]
    return out


# -- per kind ------------------------------------------------------------------------------
def _pod(obj: dict, related: dict, now: float) -> Section:
    spec, st = obj.get("spec") or {}, obj.get("status") or {}
    out = [_field("Node", spec.get("nodeName")),
           _field("Status", "Terminating" if obj["metadata"].get("deletionTimestamp")
                  else st.get("phase", "Pending")),
           _field("IP", st.get("podIP"))]
    if st.get("startTime"):
        out.append(_field("Start Time", st["startTime"]))
    out += _containers("Init Containers", spec.get("initContainers") or [],
                       st.get("initContainerStatuses") or [])
    out += _containers("Containers", spec.get("containers") or [],
                       st.get("containerStatuses") or [])
    out += _conditions(obj)
    vols = spec.get("volumes") or []
    if vols:
        out.append("Volumes:")
        for v in vols:
            kind = next((k for k in v if k != "name"), "")
            detail = v.get(kind) or {}
            name = detail.get("claimName") or detail.get("name") or detail.get("secretName") \
                if isinstance(detail, dict) else ""
            out.append(f"  {v.get('name')}:  {kind}" + (f" ({name})" if name else ""))
    out.append(_field("Node-Selectors", ",".join(
        f"{k}={v}" for k, v in sorted((spec.get("nodeSelector") or {}).items()))))
    out.append(_field("Tolerations", ", ".join(
        f"{t.get('key', '')}{':' + t['effect'] if t.get('effect') else ''}"
        f"{' op=' + t['operator'] if t.get('operator') else ''}"
        for t in spec.get("tolerations") or [])))
    return out


def _replicaset_line(rs: dict) -> str:
    st = rs.get("status") or {}
    return (f"{rs['metadata']['name']} ({st.get('replicas', 0)}/"
            f"{(rs.get('spec') or {}).get('replicas', 0)} replicas created)")


def _deployment(obj: dict, related: dict, now: float) -> Section:
    from gitops.controllers.deployment import REVISION
    spec, st = obj.get("spec") or {}, obj.get("status") or {}
    strategy = spec.get("strategy") or {}
    kind = strategy.get("type", "RollingUpdate")
    out = [_field("Selector", _selector(spec.get("selector"))),
           _field("Replicas", f"{spec.get('replicas', 1)} desired | "
                  f"{st.get('updatedReplicas', 0)} updated | {st.get('replicas', 0)} total | "
                  f"{st.get('availableReplicas', 0)} available | "
                  f"{st.get('unavailableReplicas', 0)} unavailable"),
           _field("StrategyType", kind),
           _field("MinReadySeconds", spec.get("minReadySeconds", 0))]
    if kind == "RollingUpdate":
        ru = strategy.get("rollingUpdate") or {}
        out.append(_field("RollingUpdateStrategy",
                          f"{ru.get('maxUnavailable', '25%')} max unavailable, "
                          f"{ru.get('maxSurge', '25%')} max surge"))
    if spec.get("paused"):
        out.append(_field("Paused", "true"))
    out += _template(spec.get("template") or {})
    out += _conditions(obj)
    rses = related.get("ReplicaSet") or []
    revision = (obj["metadata"].get("annotations") or {}).get(REVISION)
    new = [rs for rs in rses if (rs["metadata"].get("annotations") or {}).get(REVISION)
           == revision]
    old = [rs for rs in rses if rs not in new and (rs.get("spec") or {}).get("replicas")]
    out.append(_field("OldReplicaSets", ", ".join(_replicaset_line(r) for r in old)))
    out.append(_field("NewReplicaSet", ", ".join(_replicaset_line(r) for r in new)))
    return out


def _replicaset(obj: dict, related: dict, now: float) -> Section:
    spec, st = obj.get("spec") or {}, obj.get("status") or {}
    return [_field("Selector", _selector(spec.get("selector"))),
            _field("Replicas", f"{st.get('replicas', 0)} current / "
                   f"{spec.get('replicas', 0)} desired"),
            _field("Pods Status", f"{st.get('readyReplicas', 0)} Ready / "
                   f"{st.get('availableReplicas', 0)} Available"),
            *_template(spec.get("template") or {}), *_conditions(obj)]


def _statefulset(obj: dict, related: dict, now: float) -> Section:
    spec, st = obj.get("spec") or {}, obj.get("status") or {}
    strategy = spec.get("updateStrategy") or {}
    out = [_field("Selector", _selector(spec.get("selector"))),
           _field("Replicas", f"{spec.get('replicas', 1)} desired | "
                  f"{st.get('replicas', 0)} total"),
           _field("Update Strategy", strategy.get("type", "RollingUpdate")),
           _field("Pods Status", f"{st.get('readyReplicas', 0)} Ready / "
                  f"{st.get('updatedReplicas', 0)} Updated"),
           _field("Current Revision", st.get("currentRevision")),
           _field("Update Revision", st.get("updateRevision")),
           *_template(spec.get("template") or {})]
    claims = spec.get("volumeClaimTemplates") or []
    if claims:
        out.append("Volume Claims:")
        for c in claims:
            req = ((c.get("spec") or {}).get("resources") or {}).get("requests") or {}
            out.append(f"  Name: {c['metadata'].get('name')}  Capacity: "
                       f"{req.get('storage', '<none>')}  Access Modes: "
                       f"{','.join((c.get('spec') or {}).get('accessModes') or [])}")
    return out + _conditions(obj)


def _daemonset(obj: dict, related: dict, now: float) -> Section:
    spec, st = obj.get("spec") or {}, obj.get("status") or {}
    return [_field("Selector", _selector(spec.get("selector"))),
            _field("Desired Number of Nodes Scheduled", st.get("desiredNumberScheduled", 0),
                   36),
            _field("Current Number of Nodes Scheduled", st.get("currentNumberScheduled", 0),
                   36),
            _field("Number of Nodes Scheduled with Up-to-date Pods",
                   st.get("updatedNumberScheduled", 0), 48),
            _field("Number of Nodes Scheduled with Available Pods",
                   st.get("numberAvailable", 0), 48),
            _field("Number of Nodes Misscheduled", st.get("numberMisscheduled", 0), 36),
            _field("Pods Status", f"{st.get('numberReady', 0)} Ready"),
            *_template(spec.get("template") or {}), *_conditions(obj)]


def _job(obj: dict, related: dict, now: float) -> Section:
    spec, st = obj.get("spec") or {}, obj.get("status") or {}
    completions = spec.get("completions") if "completions" in spec else 1
    out = [_field("Parallelism", spec.get("parallelism", 1)),
           _field("Completions", "<unset>" if completions is None else completions),
           _field("Backoff Limit", spec.get("backoffLimit", 6))]
    if spec.get("activeDeadlineSeconds") is not None:
        out.append(_field("Active Deadline Seconds", f"{spec['activeDeadlineSeconds']}s"))
    if spec.get("ttlSecondsAfterFinished") is not None:
        out.append(_field("TTL After Finished", f"{spec['ttlSecondsAfterFinished']}s"))
    out.append(_field("Start Time", st.get("startTime")))
    if st.get("completionTime"):
        out.append(_field("Completed At", st["completionTime"]))
        start, done = _epoch(st.get("startTime")), _epoch(st["completionTime"])
        if start is not None and done is not None:
            out.append(_field("Duration", human_age(done - start)))
    out.append(_field("Pods Statuses", f"{st.get('active', 0)} Active / "
                      f"{st.get('succeeded', 0)} Succeeded / {st.get('failed', 0)} Failed"))
    return out + _template(spec.get("template") or {}) + _conditions(obj)


def _cronjob(obj: dict, related: dict, now: float) -> Section:
    spec, st = obj.get("spec") or {}, obj.get("status") or {}
    return [_field("Schedule", spec.get("schedule")),
            _field("Time Zone", spec.get("timeZone") or "<unset>"),
            _field("Concurrency Policy", spec.get("concurrencyPolicy", "Allow")),
            _field("Suspend", bool(spec.get("suspend"))),
            _field("Successful Job History Limit", spec.get("successfulJobsHistoryLimit", 3),
                   32),
            _field("Failed Job History Limit", spec.get("failedJobsHistoryLimit", 1), 32),
            _field("Last Schedule Time", st.get("lastScheduleTime")),
            _field("Last Successful Time", st.get("lastSuccessfulTime")),
            _field("Active Jobs", ", ".join(r.get("name", "") for r in st.get("active") or [])),
            *_conditions(obj)]


def _node(obj: dict, related: dict, now: float) -> Section:
    from gitops.scheduler.resources import allocatable, counts_on_node, requested
    spec, st = obj.get("spec") or {}, obj.get("status") or {}
    out = [_field("Taints", ", ".join(f"{t.get('key')}={t.get('value', '')}:{t.get('effect')}"
                                      for t in spec.get("taints") or [])),
           _field("Unschedulable", bool(spec.get("unschedulable"))),
           *_conditions(obj),
           "Addresses:", *(f"  {a.get('type')}:  {a.get('address')}"
                           for a in st.get("addresses") or [])]
    for title in ("capacity", "allocatable"):
        out.append(f"{title.capitalize()}:")
        out += [f"  {k}:  {v}" for k, v in sorted((st.get(title) or {}).items())]
    info = st.get("nodeInfo") or {}
    if info:
        out.append("System Info:")
        out += [f"  {k}:  {v}" for k, v in sorted(info.items())]
    pods = [p for p in related.get("Pod") or [] if counts_on_node(p)]
    out.append(f"Non-terminated Pods:  ({len(pods)} in total)")
    out += _table(["Namespace", "Name", "CPU Requests", "Memory Requests"],
                  [[p["metadata"].get("namespace", ""), p["metadata"]["name"],
                    f"{requested([p]).get('cpu', 0)}m",
                    f"{requested([p]).get('memory', 0) // 2**20}Mi"] for p in pods], "  ")
    offered, used = allocatable(obj), requested(pods)
    out.append("Allocated resources:")
    for name, unit, scale in (("cpu", "m", 1), ("memory", "Mi", 2**20)):
        have = offered.get(name, 0)
        pct = f" ({used.get(name, 0) * 100 // have}%)" if have else ""
        out.append(f"  {name}:  {used.get(name, 0) // scale}{unit}{pct}")
    return out


def _service(obj: dict, related: dict, now: float) -> Section:
    spec = obj.get("spec") or {}
    out = [_field("Selector", ",".join(f"{k}={v}" for k, v in
                                       sorted((spec.get("selector") or {}).items()))),
           _field("Type", spec.get("type", "ClusterIP")),
           _field("IP", spec.get("clusterIP"))]
    for p in spec.get("ports") or []:
        out.append(_field("Port", f"{p.get('name', '<unset>')}  {p.get('port')}/"
                          f"{p.get('protocol', 'TCP')}"))
        out.append(_field("TargetPort", f"{p.get('targetPort', p.get('port'))}/"
                          f"{p.get('protocol', 'TCP')}"))
        if p.get("nodePort"):
            out.append(_field("NodePort", f"{p.get('name', '<unset>')}  {p['nodePort']}/"
                              f"{p.get('protocol', 'TCP')}"))
    endpoints = related.get("Endpoints") or []
    addrs = [f"{a.get('ip')}:{port.get('port')}" for ep in endpoints
             for sub in ep.get("subsets") or [] for a in sub.get("addresses") or []
             for port in sub.get("ports") or []]
    out.append(_field("Endpoints", ",".join(addrs)))
    return out


def _claim(obj: dict, related: dict, now: float) -> Section:
    spec, st = obj.get("spec") or {}, obj.get("status") or {}
    return [_field("Status", st.get("phase", "Pending")),
            _field("Capacity", (st.get("capacity") or {}).get("storage")),
            _field("Access Modes", ",".join(st.get("accessModes") or spec.get("accessModes")
                                            or [])),
            _field("Used By", ", ".join(p["metadata"]["name"] for p in related.get("Pod")
                                        or []))]


def _data_size(value: object, b64: bool) -> int:
    if not isinstance(value, str):
        return 0
    if b64:
        try:
            return len(base64.b64decode(value, validate=True))
        except (binascii.Error, ValueError):
            return len(value)
    return len(value.encode())


def _configmap(obj: dict, related: dict, now: float) -> Section:
    out = ["", "Data", "===="]
    for k, v in sorted((obj.get("data") or {}).items()):
        out += [f"{k}:", "----", str(v), ""]
    for k, v in sorted((obj.get("binaryData") or {}).items()):
        out.append(f"{k}: {_data_size(v, True)} bytes (binary)")
    return out


def _secret(obj: dict, related: dict, now: float) -> Section:
    out = [_field("Type", obj.get("type", "Opaque")), "", "Data", "===="]
    for k, v in sorted((obj.get("data") or {}).items()):
        out.append(f"{k}:  {_data_size(v, True)} bytes")
    for k, v in sorted((obj.get("stringData") or {}).items()):
        out.append(f"{k}:  {_data_size(v, False)} bytes")
    return out


_BY_KIND: dict[str, Callable[[dict, dict, float], Section]] = {
    "Pod": _pod, "Deployment": _deployment, "ReplicaSet": _replicaset,
    "StatefulSet": _statefulset, "DaemonSet": _daemonset, "Job": _job, "CronJob": _cronjob,
    "Node": _node, "Service": _service, "PersistentVolumeClaim": _claim,
    "ConfigMap": _configmap, "Secret": _secret,
}


# -- events ---------------------------------------------------------------------------------
def event_age(event: dict, now: float) -> str:
    """kubectl's AGE of an event: `2m`, or `2m (x5 over 10m)` when it repeated."""
    last = human_age(now - last_seen(event))
    count = int(event.get("count") or 1)
    if count > 1:
        first = _epoch(event.get("firstTimestamp")) or last_seen(event)
        return f"{last} (x{count} over {human_age(now - first)})"
    return last


def events_section(events: list[dict], now: float) -> Section:
    if not events:
        return ["Events:  <none>"]
    rows = [[e.get("type", ""), e.get("reason", ""), event_age(e, now),
             (e.get("source") or {}).get("component", "") or e.get("reportingComponent", ""),
             e.get("message", "")] for e in events]
    return ["Events:", *_table(["Type", "Reason", "Age", "From", "Message"], rows, "  ")]


def describe(obj: dict, events: Iterable[dict], related: dict[str, list[dict]],
             now: float) -> str:
    meta = obj.get("metadata") or {}
    mine = for_object(events, obj.get("kind", ""), meta.get("name", ""),
                      meta.get("namespace", ""), meta.get("uid", ""))
    body = _BY_KIND.get(obj.get("kind", ""), lambda *_: [])(obj, related, now)
    return "\n".join([*_header(obj, now), *body, *events_section(mine, now)])


def gather(obj: dict, list_fn: Callable[[str, str | None], list[dict]]) -> dict[str, list[dict]]:
    """What describe shows beside the object; list_fn(kind, namespace or None for all)."""
    kind, meta = obj.get("kind"), obj.get("metadata") or {}
    ns, uid = meta.get("namespace") or "default", meta.get("uid")

    def controlled(items: list[dict]) -> list[dict]:
        return [o for o in items if any(r.get("controller") and r.get("uid") == uid
                                        for r in o["metadata"].get("ownerReferences") or [])]
    if kind == "Deployment":
        return {"ReplicaSet": controlled(list_fn("ReplicaSet", ns))}
    if kind == "Node":
        return {"Pod": [p for p in list_fn("Pod", None)
                        if (p.get("spec") or {}).get("nodeName") == meta.get("name")]}
    if kind == "Service":
        return {"Endpoints": [e for e in list_fn("Endpoints", ns)
                              if e["metadata"]["name"] == meta.get("name")]}
    if kind == "PersistentVolumeClaim":
        return {"Pod": [p for p in list_fn("Pod", ns) if any(
            (v.get("persistentVolumeClaim") or {}).get("claimName") == meta.get("name")
            for v in (p.get("spec") or {}).get("volumes") or [])]}
    return {}


def involved_name(event: dict) -> str:
    inv = event.get("involvedObject") or {}
    return f"{str(inv.get('kind', '')).lower()}/{inv.get('name', '')}"


def render_events(events: list[dict], now: float, show_namespace: bool) -> str:
    """`kubectl events`: oldest first, LAST SEEN TYPE REASON OBJECT MESSAGE."""
    if not events:
        return "No events found."
    ordered = sorted(events, key=lambda e: (last_seen(e), e["metadata"]["name"]))
    headers = ["LAST SEEN", "TYPE", "REASON", "OBJECT", "MESSAGE"]
    rows = [[event_age(e, now), e.get("type", ""), e.get("reason", ""), involved_name(e),
             e.get("message", "")] for e in ordered]
    if show_namespace:
        headers = ["NAMESPACE", *headers]
        rows = [[e["metadata"].get("namespace", ""), *r] for e, r in zip(ordered, rows)]
    widths = [max(len(str(x)) for x in col) for col in zip(headers, *rows)]
    return "\n".join("   ".join(str(v).ljust(w) for v, w in zip(r, widths)).rstrip()
                     for r in [headers, *rows])


def select_events(events: list[dict], for_kind: str = "", for_name: str = "",
                  types: Iterable[str] = ()) -> list[dict]:
    """--for KIND/NAME and --types Normal,Warning."""
    wanted = {t.lower() for t in types}
    out = []
    for e in events:
        inv = e.get("involvedObject") or {}
        if for_kind and (str(inv.get("kind", "")).lower() != for_kind.lower()
                         or inv.get("name") != for_name):
            continue
        if wanted and str(e.get("type", "")).lower() not in wanted:
            continue
        out.append(e)
    return out
