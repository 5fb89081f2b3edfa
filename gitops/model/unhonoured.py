"""Pod spec fields this node accepts but cannot honour (pure): `gitops validate` and the
API warn about each, naming it, so nothing is silently ignored. Fields the node refuses
at run time (a volume type it lacks, a Localhost seccomp profile) are named with the
consequence; the rest run without what they ask.

Keep in step with the node agent: a field it learns to honour leaves this list.
"""

from __future__ import annotations

from collections.abc import Iterator

# Volume types the node mounts; any other fails the pod (CreateContainerConfigError).
SUPPORTED_VOLUMES = ("emptyDir", "persistentVolumeClaim", "hostPath", "configMap", "secret",
                     "downwardAPI", "projected")
PROJECTED_SOURCES = ("configMap", "secret", "downwardAPI", "serviceAccountToken")
WONT_START = "the pod will not start on this node"

_POD_FIELDS = {
    "runtimeClassName": "runtime classes are not supported: the engine's default runtime "
                        "runs the pod",
    "priorityClassName": "pod priority and preemption are not implemented",
    "preemptionPolicy": "pod priority and preemption are not implemented",
    "readinessGates": "readiness gates are not evaluated: the pod is Ready when its "
                      "containers are",
    "shareProcessNamespace": "containers do not share a process namespace",
    "schedulingGates": "scheduling gates are not honoured: the pod is scheduled at once",
    "resourceClaims": "dynamic resource allocation is not supported",
    "imagePullSecrets": "not used: images are pulled with the engine's own credentials "
                        "(docker login)",
}
_CONTAINER_FIELDS = {
    "resizePolicy": "in-place resize is not supported: a changed resource replaces the "
                    "container",
    "volumeDevices": "raw block devices are not supported",
}
_SECURITY_FIELDS = {
    "seLinuxOptions": "SELinux labels are not applied",
    "appArmorProfile": "AppArmor profiles are not applied: the engine's default one is",
    "procMount": "procMount is not supported: /proc is masked as the engine masks it",
}
_POD_SECURITY_FIELDS = {
    **_SECURITY_FIELDS,
    "sysctls": "sysctls are not applied",
    "fsGroupChangePolicy": "volume ownership is not changed: fsGroup is the containers' "
                           "supplemental group only",
    "supplementalGroupsPolicy": "supplementalGroupsPolicy is not supported",
}


def _security(base: str, sc: object, fields: dict[str, str]) -> Iterator[tuple[str, str]]:
    if not isinstance(sc, dict):
        return
    for name, why in fields.items():
        if sc.get(name):
            yield f"{base}.{name}", why
    if isinstance(sc.get("seccompProfile"), dict) and \
            sc["seccompProfile"].get("type") == "Localhost":
        yield f"{base}.seccompProfile", f"Localhost seccomp profiles are not supported: " \
                                        f"{WONT_START}"


def _container(base: str, c: dict) -> Iterator[tuple[str, str]]:
    for name, why in _CONTAINER_FIELDS.items():
        if c.get(name):
            yield f"{base}.{name}", why
    if isinstance(c.get("lifecycle"), dict) and c["lifecycle"].get("stopSignal"):
        yield f"{base}.lifecycle.stopSignal", "not supported: containers stop with the " \
                                              "image's STOPSIGNAL (SIGTERM by default)"
    resources = c.get("resources") if isinstance(c.get("resources"), dict) else {}
    if resources.get("claims"):
        yield f"{base}.resources.claims", "dynamic resource allocation is not supported"
    limits = resources.get("limits") if isinstance(resources.get("limits"), dict) else {}
    for name in limits:
        if name == "ephemeral-storage" or str(name).startswith("hugepages-"):
            yield f"{base}.resources.limits.{name}", "not enforced on this node"
    mounts = c.get("volumeMounts")
    for j, m in enumerate(mounts if isinstance(mounts, list) else []):
        if not isinstance(m, dict):
            continue
        if m.get("mountPropagation") not in (None, "None"):
            yield f"{base}.volumeMounts[{j}].mountPropagation", "mount propagation is not " \
                                                                "supported: mounts are private"
        if m.get("recursiveReadOnly") == "Enabled":
            yield f"{base}.volumeMounts[{j}].recursiveReadOnly", "not supported: submounts " \
                                                                 "of a read-only mount stay " \
                                                                 "writable"
    yield from _security(f"{base}.securityContext", c.get("securityContext"), _SECURITY_FIELDS)


def _volume(base: str, v: dict) -> Iterator[tuple[str, str]]:
    kind = next((k for k in v if k != "name"), None)
    if kind is not None and kind not in SUPPORTED_VOLUMES:
        yield f"{base}.{kind}", f"{kind} volumes are not supported: {WONT_START}"
    empty = v.get("emptyDir")
    if isinstance(empty, dict) and empty.get("sizeLimit"):
        yield f"{base}.emptyDir.sizeLimit", "not enforced on this node"
    sources = (v.get("projected") or {}).get("sources") if isinstance(
        v.get("projected"), dict) else None
    for i, source in enumerate(sources if isinstance(sources, list) else []):
        other = next((k for k in (source if isinstance(source, dict) else {})
                      if k not in PROJECTED_SOURCES), None)
        if other:
            yield f"{base}.projected.sources[{i}].{other}", \
                f"{other} projections are not supported: {WONT_START}"


def unhonoured(spec: dict) -> Iterator[tuple[str, str]]:
    """(path relative to the pod spec, why) of each field the node cannot honour."""
    for name, why in _POD_FIELDS.items():
        if spec.get(name):
            yield name, why
    if spec.get("hostUsers") is False:
        yield "hostUsers", "user namespaces are not supported: containers run in the " \
                           "host's user namespace"
    if isinstance(spec.get("os"), dict) and spec["os"].get("name") not in (None, "linux"):
        yield "os.name", f"this node runs Linux containers only: {WONT_START}"
    yield from _security("securityContext", spec.get("securityContext"), _POD_SECURITY_FIELDS)
    for group in ("initContainers", "containers", "ephemeralContainers"):
        containers = spec.get(group)
        for i, c in enumerate(containers if isinstance(containers, list) else []):
            if isinstance(c, dict):
                yield from _container(f"{group}[{i}]", c)
    volumes = spec.get("volumes")
    for i, v in enumerate(volumes if isinstance(volumes, list) else []):
        if isinstance(v, dict):
            yield from _volume(f"volumes[{i}]", v)
