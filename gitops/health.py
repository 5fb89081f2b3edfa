"""Health per kind, as Argo CD users know it: Healthy, Progressing, Degraded, Suspended,
Missing, and Unknown for an object nothing on this host reports on (pure).

Workloads (Deployment, ReplicaSet, StatefulSet, DaemonSet) are also judged by their pods
when they are given: one crash-looping or image-less pod makes the workload Degraded at
once, without waiting for a progress deadline. `assess_in` finds those pods in a store, by
owner references (never by label: a Helm test pod carrying the app's labels is not the
Deployment's).

Kinds that are only data (ServiceAccount, ConfigMap, StorageClass, ...) are Healthy once
stored. Kinds whose behaviour this agent does not implement (NetworkPolicy is not
enforced, no admission webhook is called...) are Unknown with a
message that says so ("not implemented on this node: ..."), never silently Healthy,
unless something sets their status conditions (then those are read). A kind whose health lives in a status nothing on this host writes (an Ingress
without an ingress controller, a custom resource) is judged
by that status when someone sets it (`status.conditions` Ready / Available, or the kind's
own fields) and is Unknown ("no controller") while it has none: never Healthy merely
because it has no status. Unknown holds neither a sync wave nor `up --wait`: nothing here
would ever change it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol

from gitops.model.times import parse_rfc3339

HEALTHY, PROGRESSING, DEGRADED, MISSING, SUSPENDED, UNKNOWN = (
    "Healthy", "Progressing", "Degraded", "Missing", "Suspended", "Unknown")
SETTLED = (HEALTHY, UNKNOWN)      # nothing left to wait for
NO_CONTROLLER = "no controller on this host reports its status"
NOT_IMPLEMENTED_PREFIX = "not implemented on this node: "

_BAD_WAITING = {"CrashLoopBackOff", "ErrImagePull", "ImagePullBackOff", "ErrImageNeverPull",
                "InvalidImageName", "CreateContainerConfigError", "CreateContainerError",
                "RunContainerError", "CreatePodSandboxError"}


@dataclass(frozen=True)
class Health:
    status: str
    message: str = ""


_WORKLOADS = ("Deployment", "ReplicaSet", "StatefulSet", "DaemonSet", "ReplicationController")


def assess(obj: dict | None, pods: Iterable[dict] | None = None) -> Health:
    """pods: the workload's pods (for workloads), to see crash loops at once."""
    if obj is None:
        return Health(MISSING, "not in the store")
    if pods is not None and obj.get("kind") in _WORKLOADS:
        if (bad := _failing_pod(pods)) is not None:
            return bad
    kind = obj.get("kind", "")
    if kind in NOT_IMPLEMENTED and not (obj.get("status") or {}).get("conditions"):
        return Health(UNKNOWN, f"{NOT_IMPLEMENTED_PREFIX}{NOT_IMPLEMENTED[kind]}")
    if kind in DATA_KINDS:
        return Health(HEALTHY)
    fn = _BY_KIND.get(kind)
    return fn(obj) if fn else _by_conditions(obj)


class _Reader(Protocol):
    def list(self, kind: str, namespace: str | None = None) -> list[dict]: ...


def pods_of(store: _Reader, obj: dict) -> list[dict] | None:
    """The pods a workload controls (a Deployment's through its ReplicaSets)."""
    kind = obj.get("kind")
    if kind not in _WORKLOADS:
        return None
    controlled_by = getattr(store, "controlled_by", None)
    if controlled_by is not None:   # an informer: its index by controller, nothing scanned
        uid = (obj.get("metadata") or {}).get("uid") or ""
        owners = [rs["metadata"].get("uid") or "" for rs in controlled_by("ReplicaSet", uid)] \
            if kind == "Deployment" else [uid]
        return [p for owner in owners for p in controlled_by("Pod", owner)]
    ns = (obj.get("metadata") or {}).get("namespace") or "default"
    owners = {(obj.get("metadata") or {}).get("uid")}
    if kind == "Deployment":
        owners = {rs["metadata"].get("uid") for rs in store.list("ReplicaSet", ns)
                  if _controller_uid(rs) in owners}
    return [p for p in store.list("Pod", ns) if _controller_uid(p) in owners]


def assess_in(store: _Reader, obj: dict | None) -> Health:
    return assess(obj, pods_of(store, obj) if obj is not None else None)


def _controller_uid(obj: dict) -> str | None:
    for ref in (obj.get("metadata") or {}).get("ownerReferences") or []:
        if ref.get("controller"):
            return ref.get("uid")
    return None


def _failing_pod(pods: Iterable[dict]) -> Health | None:
    for pod in sorted(pods, key=lambda p: p["metadata"].get("name", "")):
        if pod["metadata"].get("deletionTimestamp"):
            continue
        health = _pod(pod)
        if health.status == DEGRADED and (pod.get("status") or {}).get("phase") != "Failed":
            return Health(DEGRADED, f"pod {pod['metadata']['name']}: {health.message}")
    return None


def _deployment(obj: dict) -> Health:
    spec, st = obj.get("spec", {}), obj.get("status", {})
    if spec.get("paused"):
        return Health(SUSPENDED, "deployment is paused")
    want = spec.get("replicas", 1)
    if st.get("observedGeneration", 0) < obj["metadata"].get("generation", 1):
        return Health(PROGRESSING, "waiting for the rollout to be observed")
    for cond in st.get("conditions", []) or []:
        if cond.get("type") == "Progressing" and cond.get("reason") == "ProgressDeadlineExceeded":
            return Health(DEGRADED, cond.get("message", "progress deadline exceeded"))
        if cond.get("type") == "ReplicaFailure" and cond.get("status") == "True":
            return Health(DEGRADED, cond.get("message", "replica failure"))
    updated, available = st.get("updatedReplicas", 0), st.get("availableReplicas", 0)
    if updated < want:
        return Health(PROGRESSING, f"{updated} of {want} updated replicas")
    if st.get("replicas", 0) > updated:
        return Health(PROGRESSING, f"{st['replicas'] - updated} old replicas pending termination")
    if available < want:
        return Health(PROGRESSING, f"{available} of {want} updated replicas are available")
    return Health(HEALTHY, f"{available}/{want} available")


def _replicaset(obj: dict) -> Health:
    """ReplicaSet, and ReplicationController the same way (as Argo CD judges both)."""
    st = obj.get("status") or {}
    if obj.get("kind") == "ReplicationController" and not st:
        return Health(PROGRESSING, "waiting for the replication controller")
    observed = st.get("observedGeneration")
    if observed is not None and observed < obj["metadata"].get("generation", 1):
        return Health(PROGRESSING, "waiting for the new generation to be observed")
    for cond in st.get("conditions") or []:
        if cond.get("type") == "ReplicaFailure" and cond.get("status") == "True":
            return Health(DEGRADED, cond.get("message") or "replica failure")
    want = obj.get("spec", {}).get("replicas", 1)
    ready = st.get("readyReplicas", 0)
    return Health(HEALTHY) if ready >= want else Health(PROGRESSING, f"{ready}/{want} ready")


def _pod(obj: dict) -> Health:
    st = obj.get("status", {})
    for cs in [*(st.get("initContainerStatuses") or []), *(st.get("containerStatuses") or [])]:
        waiting = (cs.get("state") or {}).get("waiting")
        if waiting and waiting.get("reason") in _BAD_WAITING:
            msg = waiting.get("message", "")
            return Health(DEGRADED, f"{cs['name']}: {waiting['reason']}" + (f": {msg}" if msg
                                                                             else ""))
    phase = st.get("phase", "Pending")
    if phase == "Failed":
        return Health(DEGRADED, "pod failed")
    if phase == "Succeeded":
        return Health(HEALTHY, "completed")
    conditions = {c["type"]: c for c in st.get("conditions", []) or []}
    if conditions.get("PodScheduled", {}).get("status") == "False":
        return Health(PROGRESSING, conditions["PodScheduled"].get("message", "unschedulable"))
    if phase == "Running" and conditions.get("Ready", {}).get("status") == "True":
        return Health(HEALTHY)
    return Health(PROGRESSING, f"phase {phase}, not ready")


def _service(obj: dict) -> Health:
    spec = obj.get("spec", {})
    kind = spec.get("type", "ClusterIP")
    if kind != "ExternalName" and not spec.get("clusterIP"):
        return Health(PROGRESSING, "waiting for a cluster IP")
    if kind in ("NodePort", "LoadBalancer") and \
            not all(p.get("nodePort") for p in spec.get("ports", []) or []):
        return Health(PROGRESSING, "waiting for node port allocation")
    for cond in (obj.get("status") or {}).get("conditions") or []:
        # the node's proxy cannot bind one of its listeners (a port held elsewhere)
        if cond.get("type") == "ProxyListening" and cond.get("status") == "False":
            return Health(DEGRADED, cond.get("message") or cond.get("reason") or "")
    if kind == "LoadBalancer":
        # On this host the load balancer is the node: its address is set once every node
        # port listens.
        ingress = _lb_ingress(obj)
        if not ingress:
            return Health(PROGRESSING, "waiting for its node ports to listen "
                                       "(status.loadBalancer.ingress)")
        return Health(HEALTHY, f"address {ingress}")
    return Health(HEALTHY)


def _lb_ingress(obj: dict) -> str:
    ingress = ((obj.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []
    return ", ".join(str(i.get("ip") or i.get("hostname") or "") for i in ingress
                     if isinstance(i, dict))


def _ingress(obj: dict) -> Health:
    address = _lb_ingress(obj)
    if address:
        return Health(HEALTHY, f"address {address}")
    return Health(UNKNOWN, "no ingress controller on this host sets its address")


# Argo CD's HPA rule: these conditions decide, in the order the HPA lists them.
_HPA_DEGRADED = {("AbleToScale", "FailedGetScale"), ("AbleToScale", "FailedUpdateScale"),
                 ("ScalingActive", "FailedGetResourceMetric"),
                 ("ScalingActive", "InvalidSelector")}
_HPA_HEALTHY = {("AbleToScale", "SucceededRescale"), ("ScalingLimited", "DesiredWithinRange"),
                ("ScalingLimited", "TooFewReplicas"), ("ScalingLimited", "TooManyReplicas")}


def _hpa(obj: dict) -> Health:
    conditions = (obj.get("status") or {}).get("conditions") or []
    if not obj.get("status"):
        return Health(PROGRESSING, "waiting for the autoscaler")
    for cond in conditions:
        pair = (cond.get("type"), cond.get("reason"))
        if pair in _HPA_DEGRADED:
            return Health(DEGRADED, cond.get("message") or cond.get("reason") or "")
        if pair in _HPA_HEALTHY:
            return Health(HEALTHY, cond.get("message") or cond.get("reason") or "")
    return Health(PROGRESSING, "waiting to autoscale")


def _pdb(obj: dict) -> Health:
    st = obj.get("status") or {}
    if "currentHealthy" not in st:
        return Health(PROGRESSING, "waiting for the disruption controller")
    current, desired = st.get("currentHealthy", 0), st.get("desiredHealthy", 0)
    if current < desired:
        return Health(PROGRESSING, f"{current} healthy pod(s), {desired} needed")
    return Health(HEALTHY, f"{st.get('disruptionsAllowed', 0)} disruption(s) allowed")


def _namespace(obj: dict) -> Health:
    if obj["metadata"].get("deletionTimestamp"):
        return Health(PROGRESSING, "terminating")
    return Health(HEALTHY)


def _pv(obj: dict) -> Health:
    phase = (obj.get("status") or {}).get("phase")
    if phase is None:
        return Health(UNKNOWN, NO_CONTROLLER)
    if phase == "Failed":
        return Health(DEGRADED, (obj.get("status") or {}).get("message") or "failed")
    if phase == "Pending":
        return Health(PROGRESSING, "pending")
    return Health(HEALTHY, phase.lower())


def _by_conditions(obj: dict) -> Health:
    """Any other kind (custom resources included): its status.conditions, as kstatus and
    Argo CD's generic checks read them; no status at all means nobody reports on it."""
    st = obj.get("status")
    if not isinstance(st, dict) or not st:
        return Health(UNKNOWN, NO_CONTROLLER)
    conditions = {c.get("type"): c for c in st.get("conditions") or []
                  if isinstance(c, dict)}
    stalled = conditions.get("Stalled") or {}
    if stalled.get("status") == "True":
        return Health(DEGRADED, stalled.get("message") or stalled.get("reason") or "stalled")
    reconciling = conditions.get("Reconciling") or {}
    if reconciling.get("status") == "True":
        return Health(PROGRESSING, reconciling.get("message") or "reconciling")
    for kind in ("Ready", "Available", "Established"):
        cond = conditions.get(kind)
        if cond is None:
            continue
        message = cond.get("message") or cond.get("reason") or ""
        if cond.get("status") == "True":
            return Health(HEALTHY, message)
        if cond.get("status") == "False":
            return Health(DEGRADED, message or f"{kind} is False")
        return Health(PROGRESSING, message or f"{kind} is Unknown")
    return Health(UNKNOWN, "its status has no Ready or Available condition")


def _pvc(obj: dict) -> Health:
    phase = obj.get("status", {}).get("phase", "Pending")
    if phase == "Bound":
        return Health(HEALTHY, "bound")
    if phase == "Lost":
        return Health(DEGRADED, "the claim lost its volume")
    return Health(PROGRESSING, phase)


def _config(obj: dict) -> Health:
    """ConfigMaps and Secrets are data: present is healthy (keys counted, never shown)."""
    keys = {*(obj.get("data") or {}), *(obj.get("binaryData") or {}),
            *(obj.get("stringData") or {})}
    return Health(HEALTHY, f"{len(keys)} key(s)")


def _node(obj: dict) -> Health:
    ready = next((c for c in (obj.get("status") or {}).get("conditions") or []
                  if c.get("type") == "Ready"), None)
    if ready is None or ready.get("status") != "True":
        return Health(DEGRADED, (ready or {}).get("message") or "node is not ready")
    if (obj.get("spec") or {}).get("unschedulable"):
        return Health(HEALTHY, "ready, scheduling disabled")
    return Health(HEALTHY, "ready")


def _statefulset(obj: dict) -> Health:
    spec, st = obj.get("spec", {}), obj.get("status", {})
    want = spec.get("replicas", 1)
    if st.get("observedGeneration", 0) < obj["metadata"].get("generation", 1):
        return Health(PROGRESSING, "waiting for the statefulset spec to be observed")
    ready, available = st.get("readyReplicas", 0), st.get("availableReplicas", 0)
    if ready < want:
        return Health(PROGRESSING, f"{ready} of {want} pods ready")
    if available < want:
        return Health(PROGRESSING, f"{available} of {want} pods available")
    if st.get("replicas", 0) > want:
        return Health(PROGRESSING, f"{st['replicas'] - want} pods pending termination")
    strategy = spec.get("updateStrategy") or {}
    if strategy.get("type") == "OnDelete":
        return Health(HEALTHY, f"{ready}/{want} ready (OnDelete: pods update when deleted)")
    updated, revision = st.get("updatedReplicas", 0), st.get("updateRevision", "")
    if partition := (strategy.get("rollingUpdate") or {}).get("partition") or 0:
        target = max(0, want - partition)
        if updated < target:
            return Health(PROGRESSING, f"partitioned rollout: {updated} of {target} pods "
                                       f"at revision {revision}")
        return Health(HEALTHY, f"partitioned rollout complete: {updated} of {want} pods "
                               f"at revision {revision}")
    if st.get("currentRevision") != revision:
        return Health(PROGRESSING, f"rolling update: {updated} of {want} pods at revision "
                                   f"{revision}")
    return Health(HEALTHY, f"{ready}/{want} ready at revision {revision}")


def _daemonset(obj: dict) -> Health:
    spec, st = obj.get("spec", {}), obj.get("status", {})
    if st.get("observedGeneration", 0) < obj["metadata"].get("generation", 1):
        return Health(PROGRESSING, "waiting for the daemonset spec to be observed")
    desired = st.get("desiredNumberScheduled", 0)
    updated, available = st.get("updatedNumberScheduled", 0), st.get("numberAvailable", 0)
    if (spec.get("updateStrategy") or {}).get("type") != "OnDelete" and updated < desired:
        return Health(PROGRESSING, f"{updated} of {desired} updated pods scheduled")
    if available < desired:
        return Health(PROGRESSING, f"{available} of {desired} pods available")
    return Health(HEALTHY, f"{available}/{desired} available")


def _job(obj: dict) -> Health:
    st = obj.get("status", {})
    conditions = {c.get("type"): c for c in st.get("conditions", []) or []}
    failed = conditions.get("Failed", {})
    if failed.get("status") == "True":
        return Health(DEGRADED, failed.get("message") or failed.get("reason") or "job failed")
    if conditions.get("Complete", {}).get("status") == "True":
        return Health(HEALTHY, f"{st.get('succeeded', 0)} succeeded")
    if obj.get("spec", {}).get("suspend"):
        return Health(SUSPENDED, "job is suspended")
    return Health(PROGRESSING, f"{st.get('active', 0)} active, {st.get('succeeded', 0)} "
                               f"succeeded, {st.get('failed', 0)} failed")


def _cronjob(obj: dict) -> Health:
    st = obj.get("status", {})
    if obj.get("spec", {}).get("suspend"):
        return Health(SUSPENDED, "cronjob is suspended")
    for cond in st.get("conditions", []) or []:
        if cond.get("type") == "InvalidSchedule" and cond.get("status") == "True":
            return Health(DEGRADED, cond.get("message", "invalid schedule"))
    scheduled, succeeded = st.get("lastScheduleTime"), st.get("lastSuccessfulTime")
    if scheduled and not st.get("active") and \
            (not succeeded or _when(succeeded) < _when(scheduled)):
        return Health(DEGRADED, "the last job did not complete successfully")
    return Health(HEALTHY, f"{len(st.get('active') or [])} active")


def _when(value: str) -> float:
    return parse_rfc3339(value) or 0.0


_BY_KIND = {"Deployment": _deployment, "ReplicaSet": _replicaset, "Pod": _pod,
            "ReplicationController": _replicaset,
            "Service": _service, "PersistentVolumeClaim": _pvc, "StatefulSet": _statefulset,
            "DaemonSet": _daemonset, "Job": _job, "CronJob": _cronjob,
            "ConfigMap": _config, "Secret": _config, "Node": _node,
            "HorizontalPodAutoscaler": _hpa, "Ingress": _ingress,
            "PodDisruptionBudget": _pdb, "Namespace": _namespace, "PersistentVolume": _pv}

# Kinds that are data: stored is all there is to them.
DATA_KINDS = frozenset({
    "ServiceAccount", "StorageClass", "IngressClass", "PodTemplate", "Lease", "Endpoints",
    "EndpointSlice", "ControllerRevision", "Event", "VolumeAttributesClass",
    # RBAC: pods' ServiceAccount tokens are authorized by it (api/kube/access.py)
    "Role", "ClusterRole", "RoleBinding", "ClusterRoleBinding"})

_VOLUMES = "stored, not used: a claim's volume is a Docker volume the node provides"
# Kinds stored and served whose behaviour this agent does not implement: what they would
# do on a cluster does not happen here.
NOT_IMPLEMENTED = {
    "NetworkPolicy": "stored, not enforced: no network policy engine filters pod traffic",
    "ResourceQuota": "stored, not enforced: nothing is counted against it or refused",
    "LimitRange": "stored, not applied: no default or limit comes from it",
    "MutatingWebhookConfiguration": "stored, not called: no admission webhook runs",
    "ValidatingWebhookConfiguration": "stored, not called: no admission webhook runs",
    "ValidatingAdmissionPolicy": "stored, not evaluated: no CEL admission policy runs",
    "ValidatingAdmissionPolicyBinding": "stored, not evaluated: no CEL admission policy runs",
    "FlowSchema": "stored, not applied: the API has no priority and fairness",
    "PriorityLevelConfiguration": "stored, not applied: the API has no priority and fairness",
    "PriorityClass": "stored, not used: the scheduler neither orders nor preempts by priority",
    "RuntimeClass": "stored, not used: containers run with the Docker engine's runtime",
    "APIService": "stored, not served: the API aggregates no other server",
    "CertificateSigningRequest": "stored, never signed: no signer runs here",
    "CSIDriver": _VOLUMES, "CSINode": _VOLUMES, "VolumeAttachment": _VOLUMES,
    "CSIStorageCapacity": _VOLUMES,
}
