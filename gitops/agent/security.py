"""A container's security context as the engine takes it, and the kubelet's runAsNonRoot
check (pure).

The pod's securityContext is the default of each container's, field by field. Deliberate
difference: a container that asks for no seccomp profile gets the engine's default one
(RuntimeDefault), which Kubernetes only does with the kubelet's --seccomp-default.
"""

from __future__ import annotations

from dataclasses import dataclass

from gitops.agent.runtime import RuntimeFailure
from gitops.model.podspec import capability_name

CONFIG_ERROR = "CreateContainerConfigError"
# Fields of a pod's securityContext that containers inherit (the rest are the pod's own:
# fsGroup, supplementalGroups, sysctls).
_INHERITED = ("runAsUser", "runAsGroup", "runAsNonRoot", "seccompProfile",
              "seLinuxOptions", "appArmorProfile", "windowsOptions")


@dataclass(frozen=True)
class Security:
    user: str | None = None                 # runAsUser[:runAsGroup]
    groups: tuple[str, ...] = ()            # fsGroup and supplementalGroups, as GroupAdd
    read_only: bool = False
    privileged: bool = False
    cap_add: tuple[str, ...] = ()
    cap_drop: tuple[str, ...] = ()
    security_opt: tuple[str, ...] = ()      # no-new-privileges, seccomp


def effective(pod: dict, container: dict) -> dict:
    """The container's securityContext with the pod's defaults filled in."""
    pod_sc = pod.get("spec", {}).get("securityContext") or {}
    own = container.get("securityContext") or {}
    return {**{k: pod_sc[k] for k in _INHERITED if k in pod_sc}, **own}


def run_as(sc: dict) -> str | None:
    """runAsUser[:runAsGroup], as the engine takes it."""
    if sc.get("runAsUser") is None:
        return None
    group = sc.get("runAsGroup")
    return str(sc["runAsUser"]) + (f":{group}" if group is not None else "")


def security(pod: dict, container: dict) -> Security:
    """What the engine is asked for. Refuses (RuntimeFailure) a seccomp profile it cannot
    load, as the kubelet does when a Localhost profile is missing."""
    sc = effective(pod, container)
    pod_sc = pod.get("spec", {}).get("securityContext") or {}
    groups = [pod_sc["fsGroup"]] if pod_sc.get("fsGroup") is not None else []
    groups += list(pod_sc.get("supplementalGroups") or [])
    caps = sc.get("capabilities") or {}
    opts = []
    if sc.get("allowPrivilegeEscalation") is False:
        opts.append("no-new-privileges:true")
    profile = (sc.get("seccompProfile") or {}).get("type")
    if profile == "Unconfined":
        opts.append("seccomp=unconfined")
    elif profile == "Localhost":
        where = (sc.get("seccompProfile") or {}).get("localhostProfile", "")
        raise RuntimeFailure(f'cannot load seccomp profile "{where}": Localhost seccomp '
                             "profiles are not supported on this node", CONFIG_ERROR)
    return Security(
        user=run_as(sc), groups=tuple(dict.fromkeys(str(g) for g in groups)),
        read_only=bool(sc.get("readOnlyRootFilesystem")),
        privileged=bool(sc.get("privileged")),
        cap_add=tuple(capability_name(c) for c in caps.get("add") or []),
        cap_drop=tuple(capability_name(c) for c in caps.get("drop") or []),
        security_opt=tuple(opts))


def needs_image_user(pod: dict, container: dict) -> bool:
    """runAsNonRoot without a runAsUser: only the image can tell who the process runs as."""
    sc = effective(pod, container)
    return bool(sc.get("runAsNonRoot")) and sc.get("runAsUser") is None


def verify_non_root(pod: dict, container: dict, image_user: str = "") -> None:
    """The kubelet's check of runAsNonRoot, worded as it words it. image_user: the
    image's USER (asked only when needs_image_user)."""
    sc = effective(pod, container)
    if not sc.get("runAsNonRoot"):
        return
    meta = pod["metadata"]
    where = (f'(pod: "{meta["name"]}_{meta["namespace"]}({meta["uid"]})", '
             f'container: {container["name"]})')
    if sc.get("runAsUser") is not None:
        if int(sc["runAsUser"]) == 0:
            raise RuntimeFailure(f"container's runAsUser breaks non-root policy {where}",
                                 CONFIG_ERROR)
        return
    user = image_user.split(":", 1)[0]
    if user and not user.isdigit():
        raise RuntimeFailure(f"container has runAsNonRoot and image has non-numeric user "
                             f"({user}), cannot verify user is non-root {where}",
                             CONFIG_ERROR)
    if not user or int(user) == 0:
        raise RuntimeFailure(f"container has runAsNonRoot and image will run as root "
                             f"{where}", CONFIG_ERROR)
