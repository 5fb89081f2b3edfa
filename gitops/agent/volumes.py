"""Pod volumes on Docker (pure decisions; files are written by ProjectedFiles).

- emptyDir: a named Docker volume per pod and volume, removed with the pod
  (medium: Memory becomes a tmpfs mount).
- persistentVolumeClaim: a named Docker volume per claim that outlives pods, prune and
  `down`; only `down --volumes` removes it.
- configMap / secret / downwardAPI: files the agent writes under the data dir and
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


def _items(data: dict[str, bytes], volume: dict, what: str) -> dict[str, tuple[bytes, int]]:
    mode = volume.get("defaultMode", 0o644)
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


def file_sets(pod: dict, lookup: Lookup) -> list[FileSet]:
    """What each projected volume of the pod should hold right now."""
    ns = pod["metadata"]["namespace"]
    out = []
    for vol in pod.get("spec", {}).get("volumes") or []:
        if cm := vol.get("configMap"):
            obj = lookup("ConfigMap", ns, cm.get("name", ""))
            if obj is None and not cm.get("optional"):
                raise RuntimeFailure(f'configmap "{cm.get("name")}" not found',
                                     "CreateContainerConfigError")
            data = {k: v.encode() for k, v in ((obj or {}).get("data") or {}).items()}
            data |= {k: base64.b64decode(v)
                     for k, v in ((obj or {}).get("binaryData") or {}).items()}
            out.append(FileSet(vol["name"], _items(data, cm, f'configmap "{cm.get("name")}"')))
        elif sec := vol.get("secret"):
            obj = lookup("Secret", ns, sec.get("secretName", ""))
            if obj is None and not sec.get("optional"):
                raise RuntimeFailure(f'secret "{sec.get("secretName")}" not found',
                                     "CreateContainerConfigError")
            data = {k: base64.b64decode(v) for k, v in ((obj or {}).get("data") or {}).items()}
            data |= {k: v.encode() for k, v in ((obj or {}).get("stringData") or {}).items()}
            out.append(FileSet(vol["name"], _items(data, sec, f'secret "{sec.get("secretName")}"')))
        elif dapi := vol.get("downwardAPI"):
            files = {}
            for item in dapi.get("items") or []:
                if ref := item.get("fieldRef"):
                    files[item["path"]] = (field_value(pod, ref["fieldPath"]).encode(),
                                           item.get("mode", dapi.get("defaultMode", 0o644)))
            out.append(FileSet(vol["name"], files))
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
        elif any(k in vol for k in ("configMap", "secret", "downwardAPI")):
            base = f"{projected_root}/{vol['name']}"
            mounts.append(Mount("bind", target, _projected_source(base, sub, vm["name"]), True))
        else:
            kind = next((k for k in vol if k != "name"), "unknown")
            raise RuntimeFailure(f'volume "{vol["name"]}": {kind} volumes are not supported '
                                 "on this node", "CreateContainerConfigError")
    return mounts
