"""Pod volumes on Docker (pure decisions; files are written by ProjectedFiles).

- emptyDir: a named Docker volume per pod and volume, removed with the pod
  (medium: Memory becomes a tmpfs mount).
- persistentVolumeClaim: a named Docker volume per claim that outlives pods, prune and
  `down`; only `down --volumes` removes it.
- configMap / secret / downwardAPI / projected (those three and serviceAccountToken):
  files the agent writes under the data dir and
  bind-mounts read-only, swapped atomically when the source object changes (kubelet's
  `..data` symlink scheme), so running containers see updates in place.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from gitops.agent.env import expand, field_value
from gitops.agent.runtime import Mount, RuntimeFailure
from gitops.model import volumepaths

VOLUME_KIND = "gitops.volume.kind"          # emptyDir | pvc
VOLUME_POD_UID = "gitops.volume.pod-uid"
PVC_NAMESPACE = "gitops.pvc.namespace"
PVC_NAME = "gitops.pvc.name"

Lookup = Callable[[str, str, str], dict | None]
Tokens = Callable[[dict, dict], bytes]     # (pod, serviceAccountToken source) -> token


@dataclass(frozen=True)
class FileSet:
    """Files one configMap/secret/downwardAPI volume should contain: path -> (bytes, mode)."""
    volume: str
    files: dict[str, tuple[bytes, int]]


def pvc_volume_name(instance: str, namespace: str, claim: str) -> str:
    """One Docker volume per claim, never shared: `team/a-db` and `team-a/db` read alike,
    so a hash of namespace/name ends the name (the readable part is cut to fit 255)."""
    digest = hashlib.sha256(f"{namespace}/{claim}".encode()).hexdigest()[:10]
    return f"gitops-{instance}-pvc-{namespace}-{claim}"[:200] + f"-{digest}"


def empty_dir_name(instance: str, pod_uid: str, volume: str) -> str:
    return f"gitops-{instance}-{pod_uid[:13]}-{volume}"


def _items(data: dict[str, bytes], volume: dict, what: str,
           mode: int | None = None) -> dict[str, tuple[bytes, int]]:
    mode = volume.get("defaultMode", 0o644) if mode is None else mode
    items = volume.get("items")
    if not items:
        return {k: (v, mode) for k, v in data.items()}
    out = {}
    for item in items:
        if item["key"] not in data:
            if volume.get("optional"):
                continue
            raise RuntimeFailure(f'key "{item["key"]}" not found in {what}',
                                 "CreateContainerConfigError")
        out[item["path"]] = (data[item["key"]], item.get("mode", mode))
    return out


# (kind, field naming the object, how its data is decoded) per object source.
_OBJECT_SOURCES = {
    "configMap": ("ConfigMap", "name"),
    "secret": ("Secret", "secretName"),
}


def _object_files(ns: str, field: str, source: dict, lookup: Lookup, name_field: str,
                  mode: int | None = None) -> dict[str, tuple[bytes, int]]:
    """A configMap or secret source's files (a volume, or a projected volume's source)."""
    kind = _OBJECT_SOURCES[field][0]
    name = source.get(name_field, "")
    obj = lookup(kind, ns, name)
    what = f'{kind.lower()} "{name}"'
    if obj is None and not source.get("optional"):
        raise RuntimeFailure(f"{what} not found", "CreateContainerConfigError")
    obj = obj or {}
    if kind == "ConfigMap":
        data = {k: v.encode() for k, v in (obj.get("data") or {}).items()}
        data |= {k: base64.b64decode(v) for k, v in (obj.get("binaryData") or {}).items()}
    else:
        data = {k: base64.b64decode(v) for k, v in (obj.get("data") or {}).items()}
        data |= {k: v.encode() for k, v in (obj.get("stringData") or {}).items()}
    return _items(data, source, what, mode)


def _downward_files(pod: dict, source: dict,
                    mode: int | None = None) -> dict[str, tuple[bytes, int]]:
    mode = source.get("defaultMode", 0o644) if mode is None else mode
    return {item["path"]: (field_value(pod, ref["fieldPath"]).encode(),
                           item.get("mode", mode))
            for item in source.get("items") or [] if (ref := item.get("fieldRef"))}


def _projected_files(pod: dict, projected: dict, lookup: Lookup,
                     tokens: Tokens | None) -> dict[str, tuple[bytes, int]]:
    """A projected volume: its sources' files in one directory, each mode defaulting to
    the volume's defaultMode."""
    ns = pod["metadata"]["namespace"]
    mode = projected.get("defaultMode", 0o644)
    files: dict[str, tuple[bytes, int]] = {}
    for source in projected.get("sources") or []:
        if cm := source.get("configMap"):
            files |= _object_files(ns, "configMap", cm, lookup, "name", cm.get("mode", mode))
        elif sec := source.get("secret"):
            files |= _object_files(ns, "secret", sec, lookup, "name", sec.get("mode", mode))
        elif (dapi := source.get("downwardAPI")) is not None:
            files |= _downward_files(pod, dapi, mode)
        elif (sat := source.get("serviceAccountToken")) is not None:
            if tokens is None:
                raise RuntimeFailure("serviceAccountToken volumes need the agent's token "
                                     "key", "CreateContainerConfigError")
            files[sat.get("path") or "token"] = (tokens(pod, sat), mode)
        else:
            kind = next(iter(source), "unknown")
            raise RuntimeFailure(f"projected source {kind} is not supported on this node",
                                 "CreateContainerConfigError")
    return files


def file_sets(pod: dict, lookup: Lookup, tokens: Tokens | None = None) -> list[FileSet]:
    """What each projected volume of the pod should hold right now (configMap, secret,
    downwardAPI and projected volumes). tokens(pod, source): a serviceAccountToken
    source's token."""
    ns = pod["metadata"]["namespace"]
    out = []
    for vol in pod.get("spec", {}).get("volumes") or []:
        if (cm := vol.get("configMap")) is not None:
            out.append(FileSet(vol["name"], _object_files(ns, "configMap", cm, lookup, "name")))
        elif (sec := vol.get("secret")) is not None:
            out.append(FileSet(vol["name"],
                               _object_files(ns, "secret", sec, lookup, "secretName")))
        elif (dapi := vol.get("downwardAPI")) is not None:
            out.append(FileSet(vol["name"], _downward_files(pod, dapi)))
        elif (projected := vol.get("projected")) is not None:
            out.append(FileSet(vol["name"], _projected_files(pod, projected, lookup, tokens)))
    return out


def sub_path(mount: dict, env: Mapping[str, str]) -> str:
    """A volumeMount's subPath, or its subPathExpr expanded with the container's env; one
    that would leave the volume (absolute, `..`) is refused, as the kubelet refuses it."""
    sub = mount.get("subPath") or ""
    if not sub and mount.get("subPathExpr"):
        sub = expand(mount["subPathExpr"], env)
    if sub and (problem := volumepaths.descending_path_problem(sub)):
        raise RuntimeFailure(f'volumeMount "{mount.get("name")}": subPath "{sub[:200]}": '
                             f"{problem}", "CreateContainerConfigError")
    return sub


def _projected_source(base: str, sub: str, name: str) -> str:
    """The host path to bind for a configMap/secret/downwardAPI volume, never outside it
    (symlinks resolved: the volume's top-level names are links into ..data)."""
    if not sub:
        return base
    path = Path(base, sub)
    if not volumepaths.inside(Path(base), path):
        raise RuntimeFailure(f'volumeMount "{name}": subPath "{sub[:200]}" leaves the volume',
                             "CreateContainerConfigError")
    return str(path)


def container_mounts(pod: dict, container: dict, instance: str, projected_root: str,
                     lookup: Lookup, allow_host_path: bool = False,
                     env: Mapping[str, str] | None = None) -> list[Mount]:
    """Docker mounts for one container, from its volumeMounts and the pod's volumes."""
    meta = pod["metadata"]
    volumes = {v["name"]: v for v in pod.get("spec", {}).get("volumes") or []}
    mounts = []
    for vm in container.get("volumeMounts") or []:
        vol = volumes.get(vm["name"])
        if vol is None:
            raise RuntimeFailure(f'volume "{vm["name"]}" is not defined in the pod',
                                 "CreateContainerConfigError")
        target, ro = vm["mountPath"], bool(vm.get("readOnly"))
        sub = sub_path(vm, env or {})
        if "emptyDir" in vol:
            if (vol["emptyDir"] or {}).get("medium") == "Memory":
                mounts.append(Mount("tmpfs", target))
            else:
                mounts.append(Mount("volume", target, empty_dir_name(instance, meta["uid"],
                                                                      vol["name"]), ro,
                                    ((VOLUME_KIND, "emptyDir"), (VOLUME_POD_UID, meta["uid"]))))
        elif claim := vol.get("persistentVolumeClaim"):
            name = claim.get("claimName", "")
            pvc = lookup("PersistentVolumeClaim", meta["namespace"], name)
            if pvc is None:
                raise RuntimeFailure(f'persistentvolumeclaim "{name}" not found',
                                     "CreateContainerConfigError")
            mounts.append(Mount("volume", target,
                                pvc_volume_name(instance, meta["namespace"], name),
                                ro or bool(claim.get("readOnly")),
                                ((VOLUME_KIND, "pvc"), (PVC_NAMESPACE, meta["namespace"]),
                                 (PVC_NAME, name))))
        elif "hostPath" in vol and allow_host_path:
            mounts.append(Mount("bind", target, vol["hostPath"]["path"], ro))
        elif any(k in vol for k in ("configMap", "secret", "downwardAPI", "projected")):
            base = f"{projected_root}/{vol['name']}"
            mounts.append(Mount("bind", target, _projected_source(base, sub, vm["name"]), True))
        else:
            kind = next((k for k in vol if k != "name"), None)
            raise RuntimeFailure(f'volume "{vol["name"]}": ' + (
                f"{kind} volumes are not supported on this node" if kind else
                "no volume type (emptyDir, configMap, persistentVolumeClaim...)"),
                "CreateContainerConfigError")
    return mounts
