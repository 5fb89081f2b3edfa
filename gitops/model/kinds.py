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


# Every built-in kind Kubernetes 1.32 serves and stores by default (GA versions; the
# request-only ones such as reviews and bindings are answered by the API, not stored).
# Apply order follows what kubectl/Argo CD do: namespaces, definitions and policy before
# config, config before the things that consume it, workloads last; webhooks and API
# services after the Services that back them.
KINDS: dict[str, Kind] = {k.kind: k for k in (
    Kind("Namespace", "v1", "namespaces", namespaced=False, apply_order=0, short_names=("ns",)),
    Kind("CustomResourceDefinition", "apiextensions.k8s.io/v1", "customresourcedefinitions",
         namespaced=False, apply_order=1, short_names=("crd", "crds")),
    Kind("PriorityClass", "scheduling.k8s.io/v1", "priorityclasses", namespaced=False,
         apply_order=2, short_names=("pc",)),
    Kind("RuntimeClass", "node.k8s.io/v1", "runtimeclasses", namespaced=False, apply_order=2),
    Kind("FlowSchema", "flowcontrol.apiserver.k8s.io/v1", "flowschemas", namespaced=False,
         apply_order=2),
    Kind("PriorityLevelConfiguration", "flowcontrol.apiserver.k8s.io/v1",
         "prioritylevelconfigurations", namespaced=False, apply_order=2),
    Kind("StorageClass", "storage.k8s.io/v1", "storageclasses", namespaced=False,
         apply_order=3, short_names=("sc",)),
    Kind("CSIDriver", "storage.k8s.io/v1", "csidrivers", namespaced=False, apply_order=3),
    Kind("IngressClass", "networking.k8s.io/v1", "ingressclasses", namespaced=False,
         apply_order=3),
    Kind("NetworkPolicy", "networking.k8s.io/v1", "networkpolicies", apply_order=4,
         short_names=("netpol",)),
    Kind("ResourceQuota", "v1", "resourcequotas", apply_order=4, short_names=("quota",)),
    Kind("LimitRange", "v1", "limitranges", apply_order=4, short_names=("limits",)),
    Kind("Node", "v1", "nodes", namespaced=False, apply_order=5, short_names=("no",)),
    Kind("ConfigMap", "v1", "configmaps", apply_order=10, short_names=("cm",)),
    Kind("Secret", "v1", "secrets", apply_order=10),
    Kind("PersistentVolume", "v1", "persistentvolumes", namespaced=False, apply_order=12,
         short_names=("pv",)),
    Kind("PersistentVolumeClaim", "v1", "persistentvolumeclaims", apply_order=15,
         short_names=("pvc",)),
    Kind("ServiceAccount", "v1", "serviceaccounts", apply_order=15, short_names=("sa",)),
    Kind("ClusterRole", "rbac.authorization.k8s.io/v1", "clusterroles", namespaced=False,
         apply_order=16),
    Kind("Role", "rbac.authorization.k8s.io/v1", "roles", apply_order=16),
    Kind("ClusterRoleBinding", "rbac.authorization.k8s.io/v1", "clusterrolebindings",
         namespaced=False, apply_order=17),
    Kind("RoleBinding", "rbac.authorization.k8s.io/v1", "rolebindings", apply_order=17),
    Kind("PodTemplate", "v1", "podtemplates", apply_order=18),
    Kind("Service", "v1", "services", apply_order=20, short_names=("svc",)),
    Kind("Deployment", "apps/v1", "deployments", apply_order=30, short_names=("deploy",)),
    Kind("StatefulSet", "apps/v1", "statefulsets", apply_order=30, short_names=("sts",)),
    Kind("DaemonSet", "apps/v1", "daemonsets", apply_order=30, short_names=("ds",)),
    Kind("ReplicationController", "v1", "replicationcontrollers", apply_order=30,
         short_names=("rc",)),
    Kind("ReplicaSet", "apps/v1", "replicasets", apply_order=31, short_names=("rs",)),
    Kind("ControllerRevision", "apps/v1", "controllerrevisions", apply_order=31),
    Kind("Pod", "v1", "pods", apply_order=32, short_names=("po",)),
    Kind("Job", "batch/v1", "jobs", apply_order=33),
    Kind("CronJob", "batch/v1", "cronjobs", apply_order=34, short_names=("cj",)),
    Kind("PodDisruptionBudget", "policy/v1", "poddisruptionbudgets", apply_order=35,
         short_names=("pdb",)),
    Kind("HorizontalPodAutoscaler", "autoscaling/v2", "horizontalpodautoscalers",
         apply_order=36, short_names=("hpa",)),
    Kind("Ingress", "networking.k8s.io/v1", "ingresses", apply_order=37,
         short_names=("ing",)),
    Kind("Endpoints", "v1", "endpoints", apply_order=40, short_names=("ep",)),
    Kind("EndpointSlice", "discovery.k8s.io/v1", "endpointslices", apply_order=40),
    Kind("Lease", "coordination.k8s.io/v1", "leases", apply_order=45),
    Kind("CSINode", "storage.k8s.io/v1", "csinodes", namespaced=False, apply_order=50),
    Kind("CSIStorageCapacity", "storage.k8s.io/v1", "csistoragecapacities", apply_order=50),
    Kind("VolumeAttachment", "storage.k8s.io/v1", "volumeattachments", namespaced=False,
         apply_order=50),
    Kind("CertificateSigningRequest", "certificates.k8s.io/v1", "certificatesigningrequests",
         namespaced=False, apply_order=50, short_names=("csr",)),
    Kind("ValidatingAdmissionPolicy", "admissionregistration.k8s.io/v1",
         "validatingadmissionpolicies", namespaced=False, apply_order=55),
    Kind("ValidatingAdmissionPolicyBinding", "admissionregistration.k8s.io/v1",
         "validatingadmissionpolicybindings", namespaced=False, apply_order=56),
    Kind("MutatingWebhookConfiguration", "admissionregistration.k8s.io/v1",
         "mutatingwebhookconfigurations", namespaced=False, apply_order=70),
    Kind("ValidatingWebhookConfiguration", "admissionregistration.k8s.io/v1",
         "validatingwebhookconfigurations", namespaced=False, apply_order=70),
    Kind("APIService", "apiregistration.k8s.io/v1", "apiservices", namespaced=False,
         apply_order=70),
    Kind("Event", "v1", "events", apply_order=60, short_names=("ev",)),
    # node heartbeats (kube-node-lease) and leader election (gitops.store.election)
    Kind("Lease", "coordination.k8s.io/v1", "leases", apply_order=50),
)}

# kubectl's `all` category, as a real API server groups it.
for _name in ("Pod", "Service", "Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job",
              "CronJob", "ReplicationController", "HorizontalPodAutoscaler"):
    if _name in KINDS:
        KINDS[_name] = replace(KINDS[_name], categories=("all",))


def kind_for(name: str) -> Kind | None:
    """Resolve a kind from what a user types: Kind, plural, singular or short name."""
    low = name.lower()
    for k in tuple(KINDS.values()):
        if low in (k.kind.lower(), k.plural, k.plural.rstrip("s")) or low in k.short_names:
            return k
    return None
