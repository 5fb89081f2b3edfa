"""Facts about pod specs wherever they appear (Pod, workload templates) (pure)."""

from __future__ import annotations

from collections.abc import Iterator

# Where each kind keeps its pod spec.
POD_SPEC_PATH = {
    "Pod": ("spec",),
    "Deployment": ("spec", "template", "spec"), "ReplicaSet": ("spec", "template", "spec"),
    "StatefulSet": ("spec", "template", "spec"), "DaemonSet": ("spec", "template", "spec"),
    "Job": ("spec", "template", "spec"),
    "ReplicationController": ("spec", "template", "spec"),
    "CronJob": ("spec", "jobTemplate", "spec", "template", "spec"),
}

HOST_ACCESS_HINT = "refused on this node unless the agent runs with --allow-host-access"


def pod_spec_of(obj: dict) -> tuple[str, dict] | None:
    """(dotted path, pod spec) of an object that carries one."""
    path = POD_SPEC_PATH.get(obj.get("kind", ""))
    if path is None:
        return None
    node: object = obj
    for part in path:
        node = node.get(part) if isinstance(node, dict) else None
    return (".".join(path), node) if isinstance(node, dict) else None


def _list(value: object) -> list:
    """A list field as a list; junk (a type error validation reports) as nothing."""
    return value if isinstance(value, list) else []


# Capabilities a container may add without host access: the Pod Security Standards'
# baseline set, plus NET_RAW, which the engine grants by default anyway. Any other one
# (SYS_ADMIN, NET_ADMIN, SYS_PTRACE, SYS_MODULE, DAC_READ_SEARCH, ALL...) reaches into the
# host's kernel or other processes.
BASELINE_CAPABILITIES = frozenset({
    "AUDIT_WRITE", "CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID", "KILL", "MKNOD",
    "NET_BIND_SERVICE", "SETFCAP", "SETGID", "SETPCAP", "SETUID", "SYS_CHROOT", "NET_RAW"})


def capability_name(value: str) -> str:
    """NET_ADMIN for net_admin, CAP_NET_ADMIN...: the spelling the engine and the
    standards compare."""
    return value.upper().removeprefix("CAP_")


def _unconfined(sc: object) -> bool:
    profile = sc.get("seccompProfile") if isinstance(sc, dict) else None
    return isinstance(profile, dict) and profile.get("type") == "Unconfined"


def host_access(spec: dict) -> Iterator[tuple[str, str]]:
    """(path inside the pod spec, message) for every request to reach into the host.
    Runs at sync time on unvalidated specs too, so wrong types are skipped, not fatal."""
    for flag in ("hostNetwork", "hostPID", "hostIPC"):
        if spec.get(flag):
            yield flag, f"{flag} is {HOST_ACCESS_HINT}"
    for i, vol in enumerate(_list(spec.get("volumes"))):
        if isinstance(vol, dict) and "hostPath" in vol:
            yield f"volumes[{i}].hostPath", f"hostPath volumes are {HOST_ACCESS_HINT}"
    if _unconfined(spec.get("securityContext")):
        yield ("securityContext.seccompProfile.type",
               f"seccompProfile Unconfined is {HOST_ACCESS_HINT}")
    for field in ("initContainers", "containers"):
        for i, c in enumerate(_list(spec.get(field))):
            sc = c.get("securityContext") if isinstance(c, dict) else None
            if not isinstance(sc, dict):
                continue
            at = f"{field}[{i}].securityContext"
            if sc.get("privileged"):
                yield f"{at}.privileged", f"privileged containers are {HOST_ACCESS_HINT}"
            if _unconfined(sc):
                yield (f"{at}.seccompProfile.type",
                       f"seccompProfile Unconfined is {HOST_ACCESS_HINT}")
            caps = sc.get("capabilities")
            added = caps.get("add") if isinstance(caps, dict) else None
            for j, cap in enumerate(_list(added)):
                if isinstance(cap, str) and capability_name(cap) not in \
                        BASELINE_CAPABILITIES:
                    yield (f"{at}.capabilities.add[{j}]",
                           f"capability {capability_name(cap)} is {HOST_ACCESS_HINT}")


def referenced_configs(spec: dict) -> set[tuple[str, str]]:
    """(kind, name) of every ConfigMap and Secret a pod spec reads (env, envFrom, volumes)."""
    refs: set[tuple[str, str]] = set()
    for c in [*(spec.get("initContainers") or []), *(spec.get("containers") or [])]:
        for src in c.get("envFrom") or []:
            if ref := src.get("configMapRef"):
                refs.add(("ConfigMap", ref.get("name", "")))
            if ref := src.get("secretRef"):
                refs.add(("Secret", ref.get("name", "")))
        for var in c.get("env") or []:
            source = var.get("valueFrom") or {}
            if ref := source.get("configMapKeyRef"):
                refs.add(("ConfigMap", ref.get("name", "")))
            if ref := source.get("secretKeyRef"):
                refs.add(("Secret", ref.get("name", "")))
    for vol in spec.get("volumes") or []:
        if ref := vol.get("configMap"):
            refs.add(("ConfigMap", ref.get("name", "")))
        if ref := vol.get("secret"):
            refs.add(("Secret", ref.get("secretName", "")))
        for src in (vol.get("projected") or {}).get("sources") or []:
            if ref := src.get("configMap"):
                refs.add(("ConfigMap", ref.get("name", "")))
            if ref := src.get("secret"):
                refs.add(("Secret", ref.get("name", "")))
    return refs
