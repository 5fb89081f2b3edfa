"""The kinds the agent knows: API group/version, scope, plural and apply order."""

from __future__ import annotations

from dataclasses import dataclass, replace


@dataclass(frozen=True)
class Kind:
    kind: str
    api_version: str
    plural: str
    namespaced: bool = True
    apply_order: int = 50           # lower applies first, prunes last
    short_names: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()     # `kubectl get all` lists the kinds in "all"

    @property
    def group(self) -> str:
        return self.api_version.rpartition("/")[0] if "/" in self.api_version else ""


# Apply order follows what kubectl/Argo CD do: namespaces and config before the
# things that consume them, workloads last.
KINDS: dict[str, Kind] = {k.kind: k for k in (
    Kind("Namespace", "v1", "namespaces", namespaced=False, apply_order=0, short_names=("ns",)),
    Kind("ConfigMap", "v1", "configmaps", apply_order=10, short_names=("cm",)),
    Kind("Secret", "v1", "secrets", apply_order=10),
    Kind("PersistentVolumeClaim", "v1", "persistentvolumeclaims", apply_order=15,
         short_names=("pvc",)),
    Kind("ServiceAccount", "v1", "serviceaccounts", apply_order=15, short_names=("sa",)),
    Kind("Service", "v1", "services", apply_order=20, short_names=("svc",)),
    Kind("Deployment", "apps/v1", "deployments", apply_order=30, short_names=("deploy",)),
    Kind("StatefulSet", "apps/v1", "statefulsets", apply_order=30, short_names=("sts",)),
    Kind("DaemonSet", "apps/v1", "daemonsets", apply_order=30, short_names=("ds",)),
    Kind("ReplicaSet", "apps/v1", "replicasets", apply_order=31, short_names=("rs",)),
    Kind("ControllerRevision", "apps/v1", "controllerrevisions", apply_order=31),
    Kind("Pod", "v1", "pods", apply_order=32, short_names=("po",)),
    Kind("Job", "batch/v1", "jobs", apply_order=33),
    Kind("CronJob", "batch/v1", "cronjobs", apply_order=34, short_names=("cj",)),
    Kind("PodDisruptionBudget", "policy/v1", "poddisruptionbudgets", apply_order=35,
         short_names=("pdb",)),
    Kind("Endpoints", "v1", "endpoints", apply_order=40, short_names=("ep",)),
    Kind("Node", "v1", "nodes", namespaced=False, apply_order=5, short_names=("no",)),
    Kind("Event", "v1", "events", apply_order=60, short_names=("ev",)),
    # leader election of the servers sharing one store (gitops.store.election)
    Kind("Lease", "coordination.k8s.io/v1", "leases", apply_order=45),
)}

# kubectl's `all` category, as a real API server groups it.
for _name in ("Pod", "Service", "Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job",
              "CronJob"):
    if _name in KINDS:
        KINDS[_name] = replace(KINDS[_name], categories=("all",))


def kind_for(name: str) -> Kind | None:
    """Resolve a kind from what a user types: Kind, plural, singular or short name."""
    low = name.lower()
    for k in KINDS.values():
        if low in (k.kind.lower(), k.plural, k.plural.rstrip("s")) or low in k.short_names:
            return k
    return None
