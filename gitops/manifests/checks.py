"""Checks the OpenAPI schemas cannot express (names, selectors, port ranges, uniqueness).

Each check takes an object body and yields (dotted path, message). Bodies may be any junk
that survived schema validation errors, so every check tolerates wrong types silently:
the schema errors already describe those.
To add a check, write a function and add a row to CHECKS.
"""

from __future__ import annotations

import json
import re
from typing import Any, Callable, Iterable, Iterator

from gitops.manifests import paths
from gitops.manifests.loader import SourceObject
from gitops.model import quantity, volumepaths

Problem = tuple[str, str]
Check = Callable[[dict], Iterable[Problem]]

_LABEL = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?"
_DNS1123_LABEL = re.compile(_LABEL + r"\Z")
_DNS1035_LABEL = re.compile(r"[a-z]([-a-z0-9]*[a-z0-9])?\Z")
_DNS1123_SUBDOMAIN = re.compile(rf"{_LABEL}(\.{_LABEL})*\Z")
_ENV_NAME = re.compile(r"[\x20-\x3c\x3e-\x7e]+\Z")  # Kubernetes: printable ASCII but "="

# Where each workload kind keeps its pod spec.
POD_SPEC_PATHS: dict[str, tuple[str, ...]] = {
    "Pod": ("spec",),
    "PodTemplate": ("template", "spec"),
    **{k: ("spec", "template", "spec") for k in (
        "Deployment", "ReplicaSet", "StatefulSet", "DaemonSet", "Job", "ReplicationController")},
    "CronJob": ("spec", "jobTemplate", "spec", "template", "spec"),
}
SELECTOR_REQUIRED = frozenset({"Deployment", "ReplicaSet", "StatefulSet", "DaemonSet"})
SELECTOR_CHECKED = SELECTOR_REQUIRED | {"Job"}  # Job's selector is usually generated

# Built-in kinds without a namespace (identity and namespace defaulting depend on it).
CLUSTER_SCOPED = frozenset({
    "Namespace", "Node", "PersistentVolume", "ClusterRole", "ClusterRoleBinding",
    "StorageClass", "CSIDriver", "CSINode", "VolumeAttachment", "VolumeAttributesClass",
    "CustomResourceDefinition", "APIService", "PriorityClass", "RuntimeClass", "IngressClass",
    "MutatingWebhookConfiguration", "ValidatingWebhookConfiguration",
    "ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding",
    "MutatingAdmissionPolicy", "MutatingAdmissionPolicyBinding",
    "CertificateSigningRequest", "ClusterTrustBundle", "FlowSchema",
    "PriorityLevelConfiguration", "ComponentStatus", "DeviceClass", "ResourceSlice",
    "IPAddress", "ServiceCIDR", "StorageVersionMigration", "TokenReview",
    "SelfSubjectReview", "SelfSubjectAccessReview", "SelfSubjectRulesReview",
    "SubjectAccessReview",
})


def _get(body: Any, *keys: str) -> Any:
    for key in keys:
        if not isinstance(body, dict):
            return None
        body = body.get(key)
    return body


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def dns1123_label(value: str) -> str | None:
    if len(value) > 63 or not _DNS1123_LABEL.match(value):
        return "must be a DNS-1123 label (lowercase letters, digits and '-', at most 63)"
    return None


def dns1035_label(value: str) -> str | None:
    if len(value) > 63 or not _DNS1035_LABEL.match(value):
        return ("must be a DNS-1035 label (lowercase letters, digits and '-', starting with "
                "a letter, at most 63)")
    return None


def dns1123_subdomain(value: str) -> str | None:
    if len(value) > 253 or not _DNS1123_SUBDOMAIN.match(value):
        return ("must be a DNS-1123 subdomain (lowercase letters, digits, '-' and '.', "
                "at most 253)")
    return None


def path_segment(value: str) -> str | None:
    if value in (".", "..") or "/" in value or "%" in value:
        return "must not be '.' or '..' nor contain '/' or '%'"
    return None


# How Kubernetes validates metadata.name per kind (default: DNS-1123 subdomain).
NAME_RULES: dict[str, Callable[[str], str | None]] = {
    "Namespace": dns1123_label,
    "Service": dns1035_label,  # the API server wants a leading letter for Services
    **{k: path_segment for k in ("Role", "ClusterRole", "RoleBinding", "ClusterRoleBinding")},
}


def check_name(body: dict) -> Iterator[Problem]:
    name = _get(body, "metadata", "name")
    prefix = _get(body, "metadata", "generateName")
    if name is None and isinstance(prefix, str) and prefix:
        # As the API server: the prefix plus five characters must make a valid name.
        problem = NAME_RULES.get(body.get("kind"), dns1123_subdomain)(prefix[:58] + "abcde")
        if problem:
            yield "metadata.generateName", f'invalid generateName "{prefix}": {problem}'
    elif name is None:
        yield "metadata", 'required field "name" is missing'
    elif isinstance(name, str):
        problem = NAME_RULES.get(body.get("kind"), dns1123_subdomain)(name)
        if problem:
            yield "metadata.name", f'invalid name "{name}": {problem}'


def check_namespace(body: dict) -> Iterator[Problem]:
    namespace = _get(body, "metadata", "namespace")
    if isinstance(namespace, str):
        problem = dns1123_label(namespace)
        if problem:
            yield "metadata.namespace", f'invalid namespace "{namespace}": {problem}'


def _selects(selector: dict, labels: dict) -> bool | None:
    """Does the label selector match? None when it uses an unknown operator."""
    match_labels = selector.get("matchLabels") or {}
    if not isinstance(match_labels, dict):
        return True  # a type error the schema reports
    if any(labels.get(k) != v for k, v in match_labels.items()):
        return False
    for expr in selector.get("matchExpressions") or []:
        if not isinstance(expr, dict):
            continue
        key, op, values = expr.get("key"), expr.get("operator"), expr.get("values") or []
        if not isinstance(key, str) or not isinstance(values, list):
            continue
        present = key in labels
        if op == "In":
            ok = present and labels[key] in values
        elif op == "NotIn":
            ok = not present or labels[key] not in values
        elif op == "Exists":
            ok = present
        elif op == "DoesNotExist":
            ok = not present
        else:
            return None
        if not ok:
            return False
    return True


def check_selector(body: dict) -> Iterator[Problem]:
    selector = _get(body, "spec", "selector")
    if not isinstance(selector, dict):
        return  # missing: the schema requires it where Kubernetes does
    if body.get("kind") in SELECTOR_REQUIRED and not (
            selector.get("matchLabels") or selector.get("matchExpressions")):
        yield "spec.selector", "selector must not be empty"
        return
    labels = _get(body, "spec", "template", "metadata", "labels")
    matched = _selects(selector, labels if isinstance(labels, dict) else {})
    if matched is None:
        yield "spec.selector", "selector uses an unknown operator"
    elif not matched:
        yield "spec.selector", "selector does not match template labels"


def _port(path: str, field: str, value: Any, low: int = 1, high: int = 65535,
          zero_ok: bool = False) -> Iterator[Problem]:
    if _is_int(value) and not (low <= value <= high or (zero_ok and value == 0)):
        yield paths.child(path, field), f"{field} {value} out of range {low}..{high}"


def check_pod_spec(body: dict) -> Iterator[Problem]:
    spec_path = POD_SPEC_PATHS[body["kind"]]
    spec = _get(body, *spec_path)
    if not isinstance(spec, dict):
        return
    base = paths.join(spec_path)
    names: dict[str, str] = {}  # container name -> path of its first use
    for group in ("initContainers", "containers", "ephemeralContainers"):
        containers = spec.get(group)
        for i, container in enumerate(containers if isinstance(containers, list) else []):
            if not isinstance(container, dict):
                continue
            path = f"{paths.child(base, group)}[{i}]"
            name = container.get("name")
            if isinstance(name, str):
                problem = dns1123_label(name)
                if problem:
                    yield f"{path}.name", f'invalid container name "{name}": {problem}'
                if name in names:
                    yield f"{path}.name", f'duplicate container name "{name}" (also {names[name]})'
                else:
                    names[name] = path
            env = container.get("env")
            for j, var in enumerate(env if isinstance(env, list) else []):
                name = var.get("name") if isinstance(var, dict) else None
                if isinstance(name, str) and not _ENV_NAME.match(name):
                    yield (f"{path}.env[{j}].name", f'invalid environment variable name '
                           f'"{name[:70]}": printable ASCII characters other than "=" only')
            if not container.get("image"):  # optional in the schema, required by the API
                yield path, 'required field "image" is missing'
            ports = container.get("ports")
            for j, port in enumerate(ports if isinstance(ports, list) else []):
                if isinstance(port, dict):
                    ppath = f"{path}.ports[{j}]"
                    yield from _port(ppath, "containerPort", port.get("containerPort"))
                    yield from _port(ppath, "hostPort", port.get("hostPort"), zero_ok=True)


def _invalid(value: str, problem: str) -> str:
    return f"Invalid value: {json.dumps(value[:200])}: {problem}"


def _key_paths(base: str, source: Any, group: str = "items") -> Iterator[tuple[str, Any]]:
    """(path, value) of each items[].path in a configMap/secret/downwardAPI source."""
    items = source.get(group) if isinstance(source, dict) else None
    for i, item in enumerate(items if isinstance(items, list) else []):
        if isinstance(item, dict) and "path" in item:
            yield f"{base}.{group}[{i}].path", item["path"]


def _volume_file_paths(base: str, volume: dict) -> Iterator[tuple[str, Any]]:
    """Every path a volume asks the node to write a file at, relative to the volume."""
    for kind in ("configMap", "secret", "downwardAPI"):
        yield from _key_paths(f"{base}.{kind}", volume.get(kind))
    sources = _get(volume, "projected", "sources")
    for i, source in enumerate(sources if isinstance(sources, list) else []):
        if not isinstance(source, dict):
            continue
        where = f"{base}.projected.sources[{i}]"
        for kind in ("configMap", "secret", "downwardAPI"):
            yield from _key_paths(f"{where}.{kind}", source.get(kind))
        for kind in ("serviceAccountToken", "clusterTrustBundle"):
            if isinstance(source.get(kind), dict) and "path" in source[kind]:
                yield f"{where}.{kind}.path", source[kind]["path"]


def _file_modes(base: str, volume: dict) -> Iterator[tuple[str, Any]]:
    """(path, value) of every defaultMode and items[].mode of a volume."""
    sources = [(f"{base}.{k}", volume.get(k)) for k in
               ("configMap", "secret", "downwardAPI", "projected")]
    projected = _get(volume, "projected", "sources")
    for i, source in enumerate(projected if isinstance(projected, list) else []):
        for kind in ("configMap", "secret", "downwardAPI"):
            sources.append((f"{base}.projected.sources[{i}].{kind}", _get(source, kind)))
    for where, source in sources:
        if not isinstance(source, dict):
            continue
        if "defaultMode" in source:
            yield f"{where}.defaultMode", source["defaultMode"]
        items = source.get("items")
        for j, item in enumerate(items if isinstance(items, list) else []):
            if isinstance(item, dict) and "mode" in item:
                yield f"{where}.items[{j}].mode", item["mode"]


def check_volume_paths(body: dict) -> Iterator[Problem]:
    """Volume names, items[].path, subPath and subPathExpr as the API server checks them:
    the node agent runs as root, so a path that leaves the volume would reach the host."""
    spec_path = POD_SPEC_PATHS[body["kind"]]
    spec = _get(body, *spec_path)
    if not isinstance(spec, dict):
        return
    base = paths.join(spec_path)
    volumes = spec.get("volumes")
    seen: set[str] = set()
    for i, volume in enumerate(volumes if isinstance(volumes, list) else []):
        if not isinstance(volume, dict):
            continue
        vpath = f"{base}.volumes[{i}]"
        name = volume.get("name")
        if isinstance(name, str):
            problem = dns1123_label(name)
            if problem:
                yield f"{vpath}.name", _invalid(name, problem)
            elif name in seen:
                yield f"{vpath}.name", f'Duplicate value: "{name}"'
            seen.add(name)
        for path, value in _volume_file_paths(vpath, volume):
            if isinstance(value, str):
                problem = volumepaths.item_path_problem(value)
                if problem:
                    yield path, _invalid(value, problem)
        for path, mode in _file_modes(vpath, volume):
            if _is_int(mode) and not 0 <= mode <= 0o777:
                yield path, (f"Invalid value: {mode}: must be a number between 0 and 0777 "
                             "(octal), both inclusive")
    for group in ("initContainers", "containers", "ephemeralContainers"):
        containers = spec.get(group)
        for i, container in enumerate(containers if isinstance(containers, list) else []):
            mounts = container.get("volumeMounts") if isinstance(container, dict) else None
            for j, mount in enumerate(mounts if isinstance(mounts, list) else []):
                if not isinstance(mount, dict):
                    continue
                mpath = f"{base}.{group}[{i}].volumeMounts[{j}]"
                if mount.get("subPath") and mount.get("subPathExpr"):
                    yield (f"{mpath}.subPathExpr",
                           "subPathExpr and subPath are mutually exclusive")
                for field in ("subPath", "subPathExpr"):
                    value = mount.get(field)
                    if isinstance(value, str) and value:
                        problem = volumepaths.descending_path_problem(value)
                        if problem:
                            yield f"{mpath}.{field}", _invalid(value, problem)


# Every volume source Kubernetes knows (a volume names exactly one).
VOLUME_SOURCES = frozenset({
    "awsElasticBlockStore", "azureDisk", "azureFile", "cephfs", "cinder", "configMap", "csi",
    "downwardAPI", "emptyDir", "ephemeral", "fc", "flexVolume", "flocker",
    "gcePersistentDisk", "gitRepo", "glusterfs", "hostPath", "image", "iscsi", "nfs",
    "persistentVolumeClaim", "photonPersistentDisk", "portworxVolume", "projected",
    "quobyte", "rbd", "scaleIO", "secret", "storageos", "vsphereVolume"})
_KEY_HINT = ("a valid config key must consist of alphanumeric characters, '-', '_' or '.' "
             "(e.g. 'key.name', or 'KEY_NAME', or 'key-name')")


def _config_key(path: str, key: Any) -> Iterator[Problem]:
    if isinstance(key, str) and (not _CONFIG_KEY.match(key) or len(key) > 253):
        yield path, _invalid(key, _KEY_HINT)
    elif isinstance(key, str) and (problem := volumepaths.config_key_problem(key)):
        yield path, _invalid(key, problem)


def _volume_problems(vpath: str, volume: dict) -> Iterator[Problem]:
    """At most one source per volume (none is an emptyDir, as the API server defaults it),
    and the keys its items name."""
    kinds = [k for k in volume if k in VOLUME_SOURCES]
    for extra in kinds[1:]:
        yield f"{vpath}.{extra}", "Forbidden: may not specify more than 1 volume type"
    sources = [(f"{vpath}.{k}", volume.get(k)) for k in ("configMap", "secret")]
    projected = _get(volume, "projected", "sources")
    for i, source in enumerate(projected if isinstance(projected, list) else []):
        sources += [(f"{vpath}.projected.sources[{i}].{k}", _get(source, k))
                    for k in ("configMap", "secret")]
    for where, source in sources:
        items = source.get("items") if isinstance(source, dict) else None
        for j, item in enumerate(items if isinstance(items, list) else []):
            if isinstance(item, dict):
                yield from _config_key(f"{where}.items[{j}].key", item.get("key"))


def _container_references(cpath: str, container: dict, volumes: set[str]) -> Iterator[Problem]:
    """Mounts name a volume of the pod, once per path; env keys are config keys."""
    mounts = container.get("volumeMounts")
    seen: set[str] = set()
    for j, mount in enumerate(mounts if isinstance(mounts, list) else []):
        if not isinstance(mount, dict):
            continue
        name, target = mount.get("name"), mount.get("mountPath")
        if isinstance(name, str) and name not in volumes:
            yield f"{cpath}.volumeMounts[{j}].name", f'Not found: "{name}"'
        if isinstance(target, str):
            if target in seen:
                yield f"{cpath}.volumeMounts[{j}].mountPath", _invalid(target, "must be unique")
            seen.add(target)
    env = container.get("env")
    for j, var in enumerate(env if isinstance(env, list) else []):
        for ref in ("configMapKeyRef", "secretKeyRef"):
            found = _get(var, "valueFrom", ref)
            if isinstance(found, dict):
                yield from _config_key(f"{cpath}.env[{j}].valueFrom.{ref}.key",
                                       found.get("key"))


def check_pod_references(body: dict) -> Iterator[Problem]:
    """What a pod's parts name must exist and be well formed, as the API server checks:
    one source per volume, mounts of declared volumes, config keys in env and items."""
    spec_path = POD_SPEC_PATHS[body["kind"]]
    spec = _get(body, *spec_path)
    if not isinstance(spec, dict):
        return
    base = paths.join(spec_path)
    volumes = spec.get("volumes")
    names: set[str] = set()
    for i, volume in enumerate(volumes if isinstance(volumes, list) else []):
        if isinstance(volume, dict):
            names.add(str(volume.get("name")))
            yield from _volume_problems(f"{base}.volumes[{i}]", volume)
    # A StatefulSet's claim templates are volumes of its pods too (one claim per pod).
    claims = _get(body, "spec", "volumeClaimTemplates") if body["kind"] == "StatefulSet" \
        else None
    names |= {str(_get(c, "metadata", "name")) for c in (claims or [])
              if isinstance(c, dict)} if isinstance(claims, list) else set()
    for group in ("initContainers", "containers", "ephemeralContainers"):
        containers = spec.get(group)
        for i, container in enumerate(containers if isinstance(containers, list) else []):
            if isinstance(container, dict):
                yield from _container_references(f"{base}.{group}[{i}]", container, names)


def _quantities(path: str, values: Any, non_negative: bool = True) -> Iterator[Problem]:
    """Each value of a resource list (limits, requests, hard...) is a quantity."""
    for name, value in (values.items() if isinstance(values, dict) else ()):
        if isinstance(value, bool) or not isinstance(value, (str, int, float)):
            continue            # a wrong type: the schema step reports it
        where = paths.child(path, str(name))
        if problem := quantity.problem(value):
            shown = json.dumps(value) if isinstance(value, str) else repr(value)
            yield where, f"Invalid value: {shown[:80]}: {problem}"
        elif non_negative and quantity.parse(value) < 0:
            yield where, f"Invalid value: {json.dumps(value)}: must be greater than or equal to 0"


def _resources(path: str, resources: Any) -> Iterator[Problem]:
    """A container's (or a claim's) limits and requests; a request above its limit is the
    API server's 'must be less than or equal to ... limit'."""
    if not isinstance(resources, dict):
        return
    found = [*_quantities(paths.child(path, "limits"), resources.get("limits")),
             *_quantities(paths.child(path, "requests"), resources.get("requests"))]
    yield from found
    limits, requests = resources.get("limits"), resources.get("requests")
    if found or not isinstance(limits, dict) or not isinstance(requests, dict):
        return
    for name, value in requests.items():
        if name in limits and quantity.parse(value) > quantity.parse(limits[name]):
            yield (paths.child(paths.child(path, "requests"), str(name)),
                   f"Invalid value: {json.dumps(value)}: must be less than or equal to "
                   f"{name} limit of {limits[name]}")


def check_pod_quantities(body: dict) -> Iterator[Problem]:
    spec_path = POD_SPEC_PATHS[body["kind"]]
    spec = _get(body, *spec_path)
    if not isinstance(spec, dict):
        return
    base = paths.join(spec_path)
    for group in ("initContainers", "containers", "ephemeralContainers"):
        containers = spec.get(group)
        for i, container in enumerate(containers if isinstance(containers, list) else []):
            if isinstance(container, dict):
                yield from _resources(f"{base}.{group}[{i}].resources",
                                      container.get("resources"))
                env = container.get("env")
                for j, var in enumerate(env if isinstance(env, list) else []):
                    yield from _divisor(f"{base}.{group}[{i}].env[{j}].valueFrom."
                                        "resourceFieldRef", _get(var, "valueFrom",
                                                                 "resourceFieldRef"))
    yield from _quantities(f"{base}.overhead", spec.get("overhead"))
    yield from _resources(f"{base}.resources", spec.get("resources"))
    volumes = spec.get("volumes")
    for i, volume in enumerate(volumes if isinstance(volumes, list) else []):
        limit = _get(volume, "emptyDir", "sizeLimit")
        if limit is not None:
            yield from _quantities(f"{base}.volumes[{i}].emptyDir", {"sizeLimit": limit})
        yield from _resources(f"{base}.volumes[{i}].ephemeral.volumeClaimTemplate.spec."
                              "resources", _get(volume, "ephemeral", "volumeClaimTemplate",
                                                "spec", "resources"))
        items = _get(volume, "downwardAPI", "items")
        for j, item in enumerate(items if isinstance(items, list) else []):
            yield from _divisor(f"{base}.volumes[{i}].downwardAPI.items[{j}]."
                                "resourceFieldRef", _get(item, "resourceFieldRef"))


def _divisor(path: str, ref: Any) -> Iterator[Problem]:
    """A downward API resourceFieldRef's divisor is a quantity."""
    if isinstance(ref, dict) and "divisor" in ref:
        yield from _quantities(path, {"divisor": ref["divisor"]})


def check_other_quantities(body: dict) -> Iterator[Problem]:
    """Claims, volumes, quotas and limit ranges: every quantity the API server parses."""
    kind = body["kind"]
    if kind == "PersistentVolumeClaim":
        yield from _resources("spec.resources", _get(body, "spec", "resources"))
    elif kind == "PersistentVolume":
        yield from _quantities("spec.capacity", _get(body, "spec", "capacity"))
    elif kind == "StatefulSet":
        templates = _get(body, "spec", "volumeClaimTemplates")
        for i, claim in enumerate(templates if isinstance(templates, list) else []):
            yield from _resources(f"spec.volumeClaimTemplates[{i}].spec.resources",
                                  _get(claim, "spec", "resources"))
    elif kind == "ResourceQuota":
        yield from _quantities("spec.hard", _get(body, "spec", "hard"))
    elif kind == "RuntimeClass":
        yield from _quantities("overhead.podFixed", _get(body, "overhead", "podFixed"))
    elif kind == "CSIStorageCapacity":
        yield from _quantities("", {k: body[k] for k in ("capacity", "maximumVolumeSize")
                                    if k in body})
    elif kind == "HorizontalPodAutoscaler":
        metrics = _get(body, "spec", "metrics")
        for i, metric in enumerate(metrics if isinstance(metrics, list) else []):
            for source in ("resource", "containerResource", "pods", "object", "external"):
                target = _get(metric, source, "target")
                if isinstance(target, dict):
                    yield from _quantities(f"spec.metrics[{i}].{source}.target",
                                           {k: target[k] for k in ("value", "averageValue")
                                            if k in target})
    elif kind == "LimitRange":
        limits = _get(body, "spec", "limits")
        for i, item in enumerate(limits if isinstance(limits, list) else []):
            for field in ("max", "min", "default", "defaultRequest", "maxLimitRequestRatio"):
                yield from _quantities(f"spec.limits[{i}].{field}", _get(item, field))


def check_service(body: dict) -> Iterator[Problem]:
    ports = _get(body, "spec", "ports")
    for i, port in enumerate(ports if isinstance(ports, list) else []):
        if isinstance(port, dict):
            path = f"spec.ports[{i}]"
            yield from _port(path, "port", port.get("port"))
            yield from _port(path, "targetPort", port.get("targetPort"))
            yield from _port(path, "nodePort", port.get("nodePort"), 30000, 32767, zero_ok=True)


_LABEL_NAME = re.compile(r"([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?\Z")


def label_problem(key: str, value: Any) -> str | None:
    """Kubernetes' rules for one label: a qualified key, a value of at most 63 characters."""
    prefix, _, name = key.rpartition("/")
    if not name or len(name) > 63 or not _LABEL_NAME.match(name) or \
            (prefix and dns1123_subdomain(prefix)):
        return (f'invalid label key "{key}": must be [prefix/]name, the name at most 63 '
                "alphanumerics, '-', '_' or '.', the prefix a DNS-1123 subdomain")
    if isinstance(value, str) and (len(value) > 63 or not _LABEL_NAME.match(value)):
        return (f'invalid label value "{value[:70]}": at most 63 alphanumerics, '
                "'-', '_' or '.', starting and ending with an alphanumeric")
    return None


def check_labels(body: dict) -> Iterator[Problem]:
    """The object's labels and, for workloads, its pod template's."""
    spots = [("metadata",)]
    if body.get("kind") in POD_SPEC_PATHS:
        spots.append(POD_SPEC_PATHS[body["kind"]][:-1] + ("metadata",))
    for spot in spots:
        labels = _get(body, *spot, "labels")
        if not isinstance(labels, dict):
            continue
        for key, value in labels.items():
            problem = label_problem(str(key), value)
            if problem:
                yield paths.join([*spot, "labels", str(key)]), problem


MAX_CONFIG_BYTES = 1024 * 1024   # Kubernetes' cap on a ConfigMap's or a Secret's data
_CONFIG_KEY = re.compile(r"[-._a-zA-Z0-9]+\Z")
_BASE64 = re.compile(r"[A-Za-z0-9+/]*={0,2}\Z")


def check_config_data(body: dict) -> Iterator[Problem]:
    """ConfigMap and Secret payloads: keys Kubernetes accepts, base64 where it is expected
    (never quoting a value: it may be a Secret's), at most 1 MiB in all."""
    total = 0
    encoded = ("data", "binaryData") if body.get("kind") == "Secret" else ("binaryData",)
    for field in ("data", "binaryData", "stringData"):
        entries = body.get(field)
        if not isinstance(entries, dict):
            continue
        for key, value in entries.items():
            where = paths.child(field, str(key))
            if not _CONFIG_KEY.match(str(key)) or len(str(key)) > 253:
                yield where, (f'invalid key "{str(key)[:70]}": letters, digits, "-", "_" and '
                              '"." only, at most 253')
            elif problem := volumepaths.config_key_problem(str(key)):
                yield where, f'invalid key "{key}": {problem} (keys are file names in volumes)'
            flat = value.replace("\n", "").replace("\r", "") if isinstance(value, str) else ""
            if field in encoded and isinstance(value, str) and \
                    (len(flat) % 4 or not _BASE64.match(flat)):   # Go skips newlines too
                yield where, "value is not valid base64 (use stringData for plain text)"
        total += sum(len(str(k).encode()) + len(v.encode()) for k, v in entries.items()
                     if isinstance(v, str))
    if total > MAX_CONFIG_BYTES:
        yield "data", f"{total} bytes of data: at most {MAX_CONFIG_BYTES} allowed"


# (kinds it applies to, or None for every kind; check)
_PERCENT = re.compile(r"[0-9]+%\Z")
# Where each kind keeps its int-or-percent rollout bounds.
_ROLLOUT_BOUNDS = {"Deployment": ("spec", "strategy", "rollingUpdate"),
                   "DaemonSet": ("spec", "updateStrategy", "rollingUpdate"),
                   "StatefulSet": ("spec", "updateStrategy", "rollingUpdate")}


def check_rollout_bounds(body: dict) -> Iterator[Problem]:
    """maxSurge / maxUnavailable: a non-negative integer or "N%", as Kubernetes validates."""
    where = _ROLLOUT_BOUNDS[body["kind"]]
    bounds = _get(body, *where)
    if not isinstance(bounds, dict):
        return
    path = ".".join(where)
    zero = []
    for field in ("maxSurge", "maxUnavailable"):
        value = bounds.get(field)
        if value is None:
            continue
        if isinstance(value, str) and not _PERCENT.match(value):
            yield f"{path}.{field}", f'{value!r} must be an integer or a percentage ("25%")'
        elif _is_int(value) and value < 0:
            yield f"{path}.{field}", f"{value} must be greater than or equal to 0"
        elif value in (0, "0%"):
            zero.append(field)
    if body["kind"] == "Deployment" and len(zero) == 2:
        yield f"{path}.maxUnavailable", "may not be 0 when maxSurge is 0"


CHECKS: list[tuple[frozenset[str] | None, Check]] = [
    (frozenset({"ConfigMap", "Secret"}), check_config_data),
    (None, check_name),
    (None, check_namespace),
    (None, check_labels),
    (SELECTOR_CHECKED, check_selector),
    (frozenset(POD_SPEC_PATHS), check_pod_spec),
    (frozenset(POD_SPEC_PATHS), check_volume_paths),
    (frozenset(POD_SPEC_PATHS), check_pod_references),
    (frozenset(POD_SPEC_PATHS), check_pod_quantities),
    (frozenset({"PersistentVolumeClaim", "PersistentVolume", "StatefulSet", "ResourceQuota",
                "LimitRange", "RuntimeClass", "CSIStorageCapacity",
                "HorizontalPodAutoscaler"}), check_other_quantities),
    (frozenset({"Service"}), check_service),
    (frozenset(_ROLLOUT_BOUNDS), check_rollout_bounds),
]


def run(obj: SourceObject) -> list[Problem]:
    kind = obj.body.get("kind")
    if not isinstance(kind, str):
        return []  # the schema step reports it
    return [problem for kinds, check in CHECKS if kinds is None or kind in kinds
            for problem in check(obj.body)]


def identity(obj: SourceObject) -> tuple[str, str, str, str] | None:
    """(group, kind, namespace, name) as the API server keys objects; None if unnamed."""
    api_version, kind = obj.body.get("apiVersion"), obj.body.get("kind")
    name, namespace = _get(obj.body, "metadata", "name"), _get(obj.body, "metadata", "namespace")
    if not (isinstance(api_version, str) and isinstance(kind, str) and isinstance(name, str)):
        return None
    if kind in CLUSTER_SCOPED:
        namespace = ""
    elif not isinstance(namespace, str) or not namespace:
        namespace = "default"
    return api_version.rpartition("/")[0], kind, namespace, name
