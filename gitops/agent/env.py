"""A container's environment as the kubelet builds it: literals, references, $(VAR)."""

from __future__ import annotations

import base64
import re
from collections.abc import Callable, Mapping

from gitops.agent.runtime import RuntimeFailure

Lookup = Callable[[str, str, str], dict | None]     # (kind, namespace, name) -> object

_VAR = re.compile(r"\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)|\$\$")


def expand(text: str, env: Mapping[str, str]) -> str:
    """Kubernetes' $(VAR) expansion: unknown refs stay as written, $$ escapes a dollar."""
    def sub(m: re.Match) -> str:
        if m.group(0) == "$$":
            return "$"
        return env.get(m.group(1), m.group(0))
    return _VAR.sub(sub, text)


def field_value(pod: dict, path: str) -> str:
    """A downward-API field of the pod (fieldRef.fieldPath)."""
    meta = pod.get("metadata", {})
    simple = {"metadata.name": meta.get("name", ""),
              "metadata.namespace": meta.get("namespace", ""),
              "metadata.uid": meta.get("uid", ""),
              "spec.nodeName": pod["spec"].get("nodeName", ""),
              "spec.serviceAccountName": pod["spec"].get("serviceAccountName", "default"),
              "status.podIP": pod.get("status", {}).get("podIP", ""),
              "status.hostIP": pod.get("status", {}).get("hostIP", "")}
    if path in simple:
        return simple[path]
    m = re.fullmatch(r"metadata\.(labels|annotations)\['(.+)'\]", path)
    if m:
        return (meta.get(m.group(1)) or {}).get(m.group(2), "")
    raise RuntimeFailure(f"unsupported fieldRef {path}", "CreateContainerConfigError")


def uses_pod_ip(pod: dict) -> bool:
    """Does any env var or downwardAPI file of the pod read status.podIP?"""
    spec = pod.get("spec", {})
    for c in [*(spec.get("initContainers") or []), *(spec.get("containers") or [])]:
        for var in c.get("env") or []:
            if ((var.get("valueFrom") or {}).get("fieldRef") or {}).get("fieldPath") \
                    == "status.podIP":
                return True
    for vol in spec.get("volumes") or []:
        for item in (vol.get("downwardAPI") or {}).get("items") or []:
            if (item.get("fieldRef") or {}).get("fieldPath") == "status.podIP":
                return True
    return False


def _data(obj: dict) -> dict[str, str]:
    if obj.get("kind") == "Secret":
        out = {k: base64.b64decode(v).decode(errors="replace")
               for k, v in (obj.get("data") or {}).items()}
        out.update(obj.get("stringData") or {})
        return out
    return dict(obj.get("data") or {})


def _ref(lookup: Lookup, kind: str, ns: str, ref: dict) -> str | None:
    obj = lookup(kind, ns, ref.get("name", ""))
    data = _data(obj) if obj else None
    if data is None or ref["key"] not in data:
        if ref.get("optional"):
            return None
        what = f'{kind.lower()} "{ref.get("name")}"' if data is None \
            else f'key "{ref["key"]}" in {kind.lower()} "{ref.get("name")}"'
        raise RuntimeFailure(f"{what} not found", "CreateContainerConfigError")
    return data[ref["key"]]


def build_env(pod: dict, container: dict, lookup: Lookup,
              extra: Mapping[str, str] | None = None) -> dict[str, str]:
    ns = pod["metadata"]["namespace"]
    env: dict[str, str] = {"HOSTNAME": pod["metadata"]["name"][:63], **(extra or {})}
    for source in container.get("envFrom") or []:
        prefix = source.get("prefix", "")
        for kind, field in (("ConfigMap", "configMapRef"), ("Secret", "secretRef")):
            if ref := source.get(field):
                obj = lookup(kind, ns, ref.get("name", ""))
                if obj is None and not ref.get("optional"):
                    raise RuntimeFailure(f'{kind.lower()} "{ref.get("name")}" not found',
                                         "CreateContainerConfigError")
                env.update({prefix + k: v for k, v in (_data(obj) if obj else {}).items()})
    for var in container.get("env") or []:
        name, source = var["name"], var.get("valueFrom")
        if source is None:
            env[name] = expand(str(var.get("value", "")), env)
        elif "fieldRef" in source:
            env[name] = field_value(pod, source["fieldRef"]["fieldPath"])
        elif "configMapKeyRef" in source:
            if (value := _ref(lookup, "ConfigMap", ns, source["configMapKeyRef"])) is not None:
                env[name] = value
        elif "secretKeyRef" in source:
            if (value := _ref(lookup, "Secret", ns, source["secretKeyRef"])) is not None:
                env[name] = value
    return env


def service_env(services: list[dict]) -> dict[str, str]:
    """Kubernetes' service links: FOO_SERVICE_HOST, FOO_SERVICE_PORT, FOO_PORT_80_TCP...
    for every Service with a ClusterIP in the pod's namespace."""
    env: dict[str, str] = {}
    for svc in services:
        spec = svc.get("spec", {})
        ip = spec.get("clusterIP")
        ports = spec.get("ports") or []
        if not ip or ip == "None" or not ports:
            continue
        name = svc["metadata"]["name"].upper().replace("-", "_")
        first = ports[0]
        env[f"{name}_SERVICE_HOST"] = ip
        env[f"{name}_SERVICE_PORT"] = str(first["port"])
        env[f"{name}_PORT"] = f"{first.get('protocol', 'TCP').lower()}://{ip}:{first['port']}"
        for port in ports:
            proto = port.get("protocol", "TCP")
            if port.get("name"):
                env[f"{name}_SERVICE_PORT_{port['name'].upper().replace('-', '_')}"] = \
                    str(port["port"])
            prefix = f"{name}_PORT_{port['port']}_{proto}"
            env[prefix] = f"{proto.lower()}://{ip}:{port['port']}"
            env[f"{prefix}_PROTO"] = proto.lower()
            env[f"{prefix}_PORT"] = str(port["port"])
            env[f"{prefix}_ADDR"] = ip
    return env
