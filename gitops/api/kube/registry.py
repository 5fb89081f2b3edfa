"""The REST resources the Kubernetes API serves: one per kind in the kinds registry.

Every kind gets the standard verbs generically, custom kinds too (from the store's
CustomResourceDefinitions, with the status and scale subresources they declare);
subresources (status, scale, pod log,
exec, attach, port-forward, eviction) are added where Kubernetes has them. Events are
served even before the kinds registry lists them, so `kubectl describe` and
`kubectl get events` work.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from gitops.model import custom
from gitops.model.kinds import KINDS, Kind

VERBS = ("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch")
# Kinds whose schema has no status (no status subresource), as Kubernetes 1.32 serves them.
_NO_STATUS = {"ConfigMap", "Secret", "ServiceAccount", "Endpoints", "Event",
              "ControllerRevision", "LimitRange", "PodTemplate", "EndpointSlice", "Lease",
              "Role", "ClusterRole", "RoleBinding", "ClusterRoleBinding", "PriorityClass",
              "RuntimeClass", "StorageClass", "IngressClass", "NetworkPolicy", "CSIDriver",
              "CSINode", "CSIStorageCapacity", "MutatingWebhookConfiguration",
              "ValidatingWebhookConfiguration", "ValidatingAdmissionPolicyBinding"}
SCALABLE = {"Deployment", "ReplicaSet", "StatefulSet", "ReplicationController"}
_POD_EXTRA = ("log", "exec", "attach", "portforward", "eviction")
_FALLBACK = (Kind("Event", "v1", "events", apply_order=90, short_names=("ev",)),)


@dataclass(frozen=True)
class Resource:
    kind: str
    group: str
    version: str
    plural: str
    namespaced: bool
    short_names: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    subresources: tuple[str, ...] = ()
    verbs: tuple[str, ...] = VERBS
    virtual: bool = False            # answered, never stored (access reviews)

    @property
    def singular(self) -> str:
        return self.kind.lower()

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def list_kind(self) -> str:
        return f"{self.kind}List"

    def path(self, namespace: str | None = None, name: str = "") -> str:
        base = f"/apis/{self.api_version}" if self.group else "/api/v1"
        path = f"{base}/namespaces/{namespace}/{self.plural}" if namespace and self.namespaced \
            else f"{base}/{self.plural}"
        return f"{path}/{name}" if name else path


def _resource(k: Kind) -> Resource:
    group, _, version = k.api_version.rpartition("/")
    subs: list[str] = []
    crd = custom.crd_for(k.kind)
    if crd is not None:
        declared = custom.subresources(crd)
        subs += [s for s in ("status", "scale") if s in declared]
    elif k.kind not in _NO_STATUS:
        subs.append("status")
    if k.kind in SCALABLE:
        subs.append("scale")
    if k.kind == "Pod":
        subs.extend(_POD_EXTRA)
    if k.kind == "ServiceAccount":
        subs.append("token")           # TokenRequest: `kubectl create token`, nodes' pods
    return Resource(k.kind, group, version, k.plural, k.namespaced, tuple(k.short_names),
                    tuple(getattr(k, "categories", ()) or ()), tuple(subs))


# `kubectl auth can-i` and `kubectl auth whoami`: one token may do everything.
_REVIEWS = (
    Resource("SelfSubjectAccessReview", "authorization.k8s.io", "v1",
             "selfsubjectaccessreviews", False, verbs=("create",), virtual=True),
    Resource("SelfSubjectReview", "authentication.k8s.io", "v1", "selfsubjectreviews",
             False, verbs=("create",), virtual=True),
)


def resources() -> tuple[Resource, ...]:
    """Every resource served: the built-in kinds and the CRDs' (as of now)."""
    return _resources(custom.generation())


@lru_cache(maxsize=2)
def _resources(_generation: int) -> tuple[Resource, ...]:
    kinds = dict(KINDS)
    for k in _FALLBACK:
        kinds.setdefault(k.kind, k)
    return (*(_resource(k) for k in kinds.values()), *_REVIEWS)


def group_versions() -> dict[str, list[Resource]]:
    """"v1", "apps/v1", ... -> their resources, core first then groups by name."""
    out: dict[str, list[Resource]] = {}
    for r in sorted(resources(), key=lambda r: (r.group != "", r.group, r.version, r.plural)):
        out.setdefault(r.api_version, []).append(r)
    return out


def lookup(group: str, version: str, plural: str) -> Resource | None:
    return next((r for r in resources()
                 if r.group == group and r.version == version and r.plural == plural), None)


def for_kind(kind: str) -> Resource | None:
    return next((r for r in resources() if r.kind == kind), None)
