"""Table columns of the kinds kept mostly as data (RBAC, policy, networking, storage,
autoscaling, coordination), as kube-apiserver 1.32 prints them (pure)."""

from __future__ import annotations

from collections.abc import Callable

from gitops.api.kube.cells import age, format_selector, map_selector

Column = tuple[str, str, int]          # name, type, priority
Row = Callable[[dict, float], list]

_NAME: Column = ("Name", "string", 0)
_AGE: Column = ("Age", "string", 0)
_CREATED: Column = ("Created At", "date", 0)
_MODES = {"ReadWriteOnce": "RWO", "ReadOnlyMany": "ROX", "ReadWriteMany": "RWX",
          "ReadWriteOncePod": "RWOP"}


def _name(obj: dict) -> str:
    return obj["metadata"]["name"]


def _created(obj: dict, now: float) -> list:
    return [_name(obj), obj["metadata"].get("creationTimestamp") or "<unknown>"]


def _hpa(obj: dict, now: float) -> list:
    spec, st = obj.get("spec") or {}, obj.get("status") or {}
    ref = spec.get("scaleTargetRef") or {}
    current = {(m.get("resource") or {}).get("name"): (m.get("resource") or {}).get("current")
               for m in st.get("currentMetrics") or [] if m.get("type") == "Resource"}
    targets = []
    for m in spec.get("metrics") or []:
        if m.get("type") != "Resource":
            targets.append(f"<{m.get('type', 'unknown')}>")
            continue
        res = m.get("resource") or {}
        target, now_at = res.get("target") or {}, current.get(res.get("name")) or {}
        if "averageUtilization" in target:
            seen = now_at.get("averageUtilization")
            targets.append(f"{res.get('name')}: {'<unknown>' if seen is None else f'{seen}%'}"
                           f"/{target['averageUtilization']}%")
        else:
            want = target.get("averageValue") or target.get("value") or "?"
            seen = now_at.get("averageValue") or now_at.get("value")
            targets.append(f"{res.get('name')}: {seen or '<unknown>'}/{want}")
    return [_name(obj), f"{ref.get('kind', '')}/{ref.get('name', '')}",
            ", ".join(targets) or "<none>", spec.get("minReplicas", "<unset>"),
            spec.get("maxReplicas", 0), st.get("currentReplicas", 0), age(obj, now)]


def _ingress(obj: dict, now: float) -> list:
    spec = obj.get("spec") or {}
    hosts = [r["host"] for r in spec.get("rules") or [] if r.get("host")]
    lbs = ((obj.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []
    address = ",".join(i.get("ip") or i.get("hostname") or "" for i in lbs)
    return [_name(obj), spec.get("ingressClassName") or "<none>", ",".join(hosts) or "*",
            address, "80, 443" if spec.get("tls") else "80", age(obj, now)]


def _ingress_class(obj: dict, now: float) -> list:
    spec = obj.get("spec") or {}
    params = spec.get("parameters") or {}
    shown = f"{params.get('kind')}/{params.get('name')}" if params else "<none>"
    return [_name(obj), spec.get("controller", ""), shown, age(obj, now)]


def _network_policy(obj: dict, now: float) -> list:
    selector = format_selector((obj.get("spec") or {}).get("podSelector"))
    return [_name(obj), "<none>" if selector == "<none>" else selector, age(obj, now)]


def _binding(obj: dict, now: float) -> list:
    ref = obj.get("roleRef") or {}
    subjects = obj.get("subjects") or []

    def of(kind: str) -> str:
        return ", ".join(s.get("name", "") if kind != "ServiceAccount" else
                         f"{s.get('namespace', '')}/{s.get('name', '')}"
                         for s in subjects if s.get("kind") == kind)
    return [_name(obj), f"{ref.get('kind', '')}/{ref.get('name', '')}", age(obj, now),
            of("User"), of("Group"), of("ServiceAccount")]


def _priority_class(obj: dict, now: float) -> list:
    return [_name(obj), obj.get("value", 0), bool(obj.get("globalDefault")), age(obj, now),
            obj.get("preemptionPolicy") or "PreemptLowerPriority"]


def _replication_controller(obj: dict, now: float) -> list:
    spec, st = obj.get("spec") or {}, obj.get("status") or {}
    containers = (((spec.get("template") or {}).get("spec") or {}).get("containers") or [])
    return [_name(obj), spec.get("replicas", 1), st.get("replicas", 0),
            st.get("readyReplicas", 0), age(obj, now),
            ",".join(c.get("name", "") for c in containers),
            ",".join(c.get("image", "") for c in containers),
            map_selector(spec.get("selector"))]


def _pv(obj: dict, now: float) -> list:
    spec, st = obj.get("spec") or {}, obj.get("status") or {}
    claim = spec.get("claimRef") or {}
    return [_name(obj), (spec.get("capacity") or {}).get("storage", ""),
            ",".join(_MODES.get(m, m) for m in spec.get("accessModes") or []),
            spec.get("persistentVolumeReclaimPolicy", "Retain"), st.get("phase", "Pending"),
            f"{claim.get('namespace')}/{claim.get('name')}" if claim else "",
            spec.get("storageClassName", ""),
            spec.get("volumeAttributesClassName") or "<unset>", st.get("reason", ""),
            age(obj, now), spec.get("volumeMode", "Filesystem")]


def _quota(obj: dict, now: float) -> list:
    hard = (obj.get("spec") or {}).get("hard") or {}
    used = (obj.get("status") or {}).get("used") or {}

    def cell(keys: list[str]) -> str:
        return ", ".join(f"{k}: {used.get(k, 0)}/{hard[k]}" for k in sorted(keys))
    limits = [k for k in hard if k.startswith("limits.")]
    return [_name(obj), age(obj, now), cell([k for k in hard if k not in limits]),
            cell(limits)]


def _lease(obj: dict, now: float) -> list:
    return [_name(obj), (obj.get("spec") or {}).get("holderIdentity") or "", age(obj, now)]


def _endpoint_slice(obj: dict, now: float) -> list:
    ports = ",".join(str(p.get("port")) for p in obj.get("ports") or [] if "port" in p)
    addrs = [a for e in obj.get("endpoints") or [] for a in e.get("addresses") or []]
    shown = ",".join(addrs[:3]) + (f" + {len(addrs) - 3} more..." if len(addrs) > 3 else "")
    return [_name(obj), obj.get("addressType", ""), ports or "<unset>", shown or "<unset>",
            age(obj, now)]


def _storage_class(obj: dict, now: float) -> list:
    default = (obj["metadata"].get("annotations") or {}).get(
        "storageclass.kubernetes.io/is-default-class") == "true"
    return [_name(obj) + (" (default)" if default else ""), obj.get("provisioner", ""),
            obj.get("reclaimPolicy", "Delete"),
            obj.get("volumeBindingMode", "Immediate"),
            bool(obj.get("allowVolumeExpansion")), age(obj, now)]


def _runtime_class(obj: dict, now: float) -> list:
    return [_name(obj), obj.get("handler", ""), age(obj, now)]


def _webhooks(obj: dict, now: float) -> list:
    return [_name(obj), len(obj.get("webhooks") or []), age(obj, now)]


def _pod_template(obj: dict, now: float) -> list:
    template = obj.get("template") or {}
    containers = (template.get("spec") or {}).get("containers") or []
    return [_name(obj), ",".join(c.get("name", "") for c in containers),
            ",".join(c.get("image", "") for c in containers),
            map_selector((template.get("metadata") or {}).get("labels"))]


def _csr(obj: dict, now: float) -> list:
    spec = obj.get("spec") or {}
    conditions = [c.get("type", "") for c in (obj.get("status") or {}).get("conditions") or []]
    duration = spec.get("expirationSeconds")
    return [_name(obj), age(obj, now), spec.get("signerName", ""), spec.get("username", ""),
            f"{duration}s" if duration else "<none>", ",".join(conditions) or "Pending"]


def _api_service(obj: dict, now: float) -> list:
    svc = (obj.get("spec") or {}).get("service") or {}
    available = next((c.get("status") for c in (obj.get("status") or {}).get("conditions")
                      or [] if c.get("type") == "Available"), "Unknown")
    return [_name(obj), f"{svc.get('namespace')}/{svc.get('name')}" if svc else "Local",
            "True" if available == "True" else f"{available}", age(obj, now)]


_BINDING_COLUMNS = (_NAME, ("Role", "string", 0), _AGE, ("Users", "string", 1),
                    ("Groups", "string", 1), ("ServiceAccounts", "string", 1))

MORE_PRINTERS: dict[str, tuple[tuple[Column, ...], Row]] = {
    "HorizontalPodAutoscaler": ((_NAME, ("Reference", "string", 0), ("Targets", "string", 0),
                                 ("MinPods", "string", 0), ("MaxPods", "integer", 0),
                                 ("Replicas", "integer", 0), _AGE), _hpa),
    "Ingress": ((_NAME, ("Class", "string", 0), ("Hosts", "string", 0),
                 ("Address", "string", 0), ("Ports", "string", 0), _AGE), _ingress),
    "IngressClass": ((_NAME, ("Controller", "string", 0), ("Parameters", "string", 0), _AGE),
                     _ingress_class),
    "NetworkPolicy": ((_NAME, ("Pod-Selector", "string", 0), _AGE), _network_policy),
    "ClusterRole": ((_NAME, _CREATED), _created),
    "Role": ((_NAME, _CREATED), _created),
    "ClusterRoleBinding": (_BINDING_COLUMNS, _binding),
    "RoleBinding": (_BINDING_COLUMNS, _binding),
    "PriorityClass": ((_NAME, ("Value", "integer", 0), ("Global-Default", "boolean", 0),
                       _AGE, ("PreemptionPolicy", "string", 0)), _priority_class),
    "ReplicationController": ((_NAME, ("Desired", "integer", 0), ("Current", "integer", 0),
                               ("Ready", "integer", 0), _AGE, ("Containers", "string", 1),
                               ("Images", "string", 1), ("Selector", "string", 1)),
                              _replication_controller),
    "PersistentVolume": ((_NAME, ("Capacity", "string", 0), ("Access Modes", "string", 0),
                          ("Reclaim Policy", "string", 0), ("Status", "string", 0),
                          ("Claim", "string", 0), ("StorageClass", "string", 0),
                          ("VolumeAttributesClass", "string", 0), ("Reason", "string", 0),
                          _AGE, ("VolumeMode", "string", 1)), _pv),
    "LimitRange": ((_NAME, _CREATED), _created),
    "ResourceQuota": ((_NAME, _AGE, ("Request", "string", 0), ("Limit", "string", 0)),
                      _quota),
    "Lease": ((_NAME, ("Holder", "string", 0), _AGE), _lease),
    "EndpointSlice": ((_NAME, ("AddressType", "string", 0), ("Ports", "string", 0),
                       ("Endpoints", "string", 0), _AGE), _endpoint_slice),
    "StorageClass": ((_NAME, ("Provisioner", "string", 0), ("ReclaimPolicy", "string", 0),
                      ("VolumeBindingMode", "string", 0),
                      ("AllowVolumeExpansion", "string", 0), _AGE), _storage_class),
    "RuntimeClass": ((_NAME, ("Handler", "string", 0), _AGE), _runtime_class),
    "MutatingWebhookConfiguration": ((_NAME, ("Webhooks", "integer", 0), _AGE), _webhooks),
    "ValidatingWebhookConfiguration": ((_NAME, ("Webhooks", "integer", 0), _AGE),
                                       _webhooks),
    "PodTemplate": ((("Template", "string", 0), ("Containers", "string", 0),
                     ("Images", "string", 0), ("Pod Labels", "string", 0)), _pod_template),
    "CertificateSigningRequest": ((_NAME, _AGE, ("SignerName", "string", 0),
                                   ("Requestor", "string", 0),
                                   ("RequestedDuration", "string", 0),
                                   ("Condition", "string", 0)), _csr),
    "APIService": ((_NAME, ("Service", "string", 0), ("Available", "string", 0), _AGE),
                   _api_service),
    "CustomResourceDefinition": ((_NAME, _CREATED), _created),
}
