"""Rollout arithmetic and facts about Deployments and their ReplicaSets, as Kubernetes'
deployment controller computes them (pkg/controller/deployment/util) (pure)."""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Iterable

from gitops.admission.defaults import template_with_defaults
from gitops.admission.immutable import semantic
from gitops.errors import PermanentError
from gitops.model.deletion import PROPAGATION_ANNOTATION
from gitops.model.meta import owner_ref, stable_hash
from gitops.model.podspec import referenced_configs
from gitops.model.times import parse_rfc3339, rfc3339 as iso

REVISION = "deployment.kubernetes.io/revision"
REVISION_HISTORY = "deployment.kubernetes.io/revision-history"
DESIRED_REPLICAS = "deployment.kubernetes.io/desired-replicas"
MAX_REPLICAS = "deployment.kubernetes.io/max-replicas"
RESTARTED_AT = "kubectl.kubernetes.io/restartedAt"
CHANGE_CAUSE = "kubernetes.io/change-cause"
CONFIG_HASH = "gitops.io/config-hash"
TEMPLATE_HASH_LABEL = "pod-template-hash"
CONFIG_ROLLOUT = "gitops.io/config-rollout"
# Annotations of the Deployment that are not copied to its ReplicaSets.
SKIP_COPY = {PROPAGATION_ANNOTATION,          # ours: how deleting the Deployment cascades
             "kubectl.kubernetes.io/last-applied-configuration", REVISION, REVISION_HISTORY,
             DESIRED_REPLICAS, MAX_REPLICAS, "deprecated.deployment.rollback.to"}
MAX_REVISION_HISTORY_CHARS = 2000
NO_DEADLINE = 2**31 - 1

# Condition reasons (pkg/controller/deployment/util).
NEW_RS_CREATED, FOUND_NEW_RS = "NewReplicaSetCreated", "FoundNewReplicaSet"
RS_UPDATED, NEW_RS_AVAILABLE = "ReplicaSetUpdated", "NewReplicaSetAvailable"
TIMED_OUT, PAUSED, RESUMED = "ProgressDeadlineExceeded", "DeploymentPaused", "DeploymentResumed"
MIN_AVAILABLE, MIN_UNAVAILABLE = "MinimumReplicasAvailable", "MinimumReplicasUnavailable"

ConfigLookup = Callable[[str, str, str], dict | None]   # kind, namespace, name


def parse_time(value: str | None) -> float:
    return parse_rfc3339(value) or 0.0


# -- templates ------------------------------------------------------------------------
def effective_template(deploy: dict, lookup: ConfigLookup | None = None) -> dict:
    """The pod template with the hash of the ConfigMaps and Secrets it reads in its
    annotations (none when it reads none); without a lookup, or opted out, the object's
    own template (callers copy before they change it)."""
    template = deploy["spec"].get("template", {})
    annotations = deploy["metadata"].get("annotations") or {}
    if lookup is None or annotations.get(CONFIG_ROLLOUT) == "false":
        return template
    ns = deploy["metadata"]["namespace"]
    refs = sorted(referenced_configs(template.get("spec", {})))
    current = ((template.get("metadata") or {}).get("annotations") or {}).get(CONFIG_HASH)
    if not refs and current is None:
        return template
    template = copy.deepcopy(template)
    meta = template.setdefault("metadata", {})
    annotations = dict(meta.get("annotations") or {})
    annotations.pop(CONFIG_HASH, None)
    if refs:
        data = []
        for kind, name in refs:
            obj = lookup(kind, ns, name) or {}
            data.append([kind, name, obj.get("data"), obj.get("stringData"),
                         obj.get("binaryData")])
        annotations[CONFIG_HASH] = stable_hash(data)
    if annotations:
        meta["annotations"] = annotations
    else:
        meta.pop("annotations", None)
    return template


def comparable_template(template: dict) -> object:
    """A pod template as Kubernetes compares two (EqualIgnoreHash, Semantic.DeepEqual):
    defaults filled in, no pod-template-hash label, an empty value the same as none."""
    out = template_with_defaults(template)
    labels = (out.get("metadata") or {}).get("labels")
    if isinstance(labels, dict):
        labels.pop(TEMPLATE_HASH_LABEL, None)
    return semantic(out)


def template_hash(template: dict) -> str:
    """Names ReplicaSets and revisions: the same for a template stored with or without
    the API server's defaults."""
    return stable_hash(template_with_defaults(template))


# -- rollout arithmetic ---------------------------------------------------------------
def resolve_int_or_percent(value: int | str | None, total: int, round_up: bool,
                           default: int | str, field: str = "value") -> int:
    """intstr.GetScaledValueFromIntOrPercent: "25%" of total, rounded up or down."""
    value = default if value is None else value
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and value.endswith("%") and value[:-1].isdigit():
        exact = int(value[:-1]) * total / 100
        return math.ceil(exact) if round_up else math.floor(exact)
    raise PermanentError(f"{field}: invalid value {value!r}: must be an integer or a "
                         "percentage such as \"25%\"")


def is_rolling(deploy: dict) -> bool:
    return ((deploy.get("spec") or {}).get("strategy") or {}).get("type",
                                                                  "RollingUpdate") != "Recreate"


def desired_replicas(deploy: dict) -> int:
    value = (deploy.get("spec") or {}).get("replicas")
    return 1 if value is None else int(value)


def surge_and_unavailable(deploy: dict) -> tuple[int, int]:
    """ResolveFenceposts: (maxSurge, maxUnavailable) as pod counts."""
    spec = deploy.get("spec", {})
    want = desired_replicas(deploy)
    rolling = (spec.get("strategy") or {}).get("rollingUpdate") or {}
    field = "spec.strategy.rollingUpdate."
    surge = resolve_int_or_percent(rolling.get("maxSurge"), want, True, "25%",
                                   field + "maxSurge")
    unavailable = resolve_int_or_percent(rolling.get("maxUnavailable"), want, False, "25%",
                                         field + "maxUnavailable")
    if surge == 0 and unavailable == 0:
        unavailable = 1          # Kubernetes: both zero would deadlock
    return surge, unavailable


def max_surge(deploy: dict) -> int:
    return surge_and_unavailable(deploy)[0] if is_rolling(deploy) else 0


def max_unavailable(deploy: dict) -> int:
    want = desired_replicas(deploy)
    if not is_rolling(deploy) or want == 0:
        return 0
    return min(surge_and_unavailable(deploy)[1], want)


def round_half_away(x: float) -> int:
    """Go's math.Round, which Kubernetes' RoundToInt32 uses (Python's round is banker's)."""
    return int(math.floor(abs(x) + 0.5)) * (1 if x >= 0 else -1)


# -- small facts about ReplicaSets ----------------------------------------------------
def spec_replicas(rs: dict) -> int:
    return int(rs["spec"].get("replicas", 0) or 0)


def status_count(rs: dict | None, field: str) -> int:
    return int(((rs or {}).get("status") or {}).get(field, 0) or 0)


def revision_of(obj: dict) -> int:
    try:
        return int(((obj.get("metadata") or {}).get("annotations") or {}).get(REVISION, 0))
    except (TypeError, ValueError):
        return 0


def annotation_int(rs: dict, name: str) -> int | None:
    try:
        return int((rs["metadata"].get("annotations") or {})[name])
    except (KeyError, TypeError, ValueError):
        return None


def creation_order(rs: dict) -> tuple:
    return (parse_time(rs["metadata"].get("creationTimestamp")), revision_of(rs),
            rs["metadata"]["name"])


def active(rses: Iterable[dict]) -> list[dict]:
    return [rs for rs in rses if rs is not None and spec_replicas(rs) > 0]


# -- object builders ------------------------------------------------------------------
def new_replicaset(deploy: dict, template: dict, name: str, thash: str, replicas: int,
                   revision: int) -> dict:
    template = copy.deepcopy(template)
    tmeta = template.setdefault("metadata", {})
    tmeta["labels"] = {**(tmeta.get("labels") or {}), TEMPLATE_HASH_LABEL: thash}
    selector = copy.deepcopy(deploy["spec"].get("selector", {}))
    selector["matchLabels"] = {**(selector.get("matchLabels") or {}),
                               TEMPLATE_HASH_LABEL: thash}
    annotations = {k: v for k, v in (deploy["metadata"].get("annotations") or {}).items()
                   if k not in SKIP_COPY}
    want = desired_replicas(deploy)
    annotations.update({REVISION: str(revision), DESIRED_REPLICAS: str(want),
                        MAX_REPLICAS: str(want + max_surge(deploy))})
    return {"apiVersion": "apps/v1", "kind": "ReplicaSet",
            "metadata": {"name": name, "namespace": deploy["metadata"]["namespace"],
                         "labels": dict(tmeta["labels"]), "annotations": annotations,
                         "ownerReferences": [owner_ref(deploy)]},
            "spec": {"replicas": replicas, "selector": selector, "template": template,
                     "minReadySeconds": deploy["spec"].get("minReadySeconds", 0)}}


# -- conditions -----------------------------------------------------------------------
def get_condition(status: dict, ctype: str) -> dict | None:
    return next((c for c in status.get("conditions") or [] if c.get("type") == ctype), None)


def new_condition(ctype: str, status: str, reason: str, message: str, now: float) -> dict:
    stamp = iso(now)
    return {"type": ctype, "status": status, "lastUpdateTime": stamp,
            "lastTransitionTime": stamp, "reason": reason, "message": message}


def set_condition(status: dict, cond: dict) -> None:
    """SetDeploymentCondition: same status and reason -> untouched; same status -> the
    transition time is kept."""
    current = get_condition(status, cond["type"])
    if current and current.get("status") == cond["status"] and \
            current.get("reason") == cond["reason"]:
        return
    if current and current.get("status") == cond["status"]:
        cond = {**cond, "lastTransitionTime": current.get("lastTransitionTime",
                                                          cond["lastTransitionTime"])}
    status["conditions"] = [*(c for c in status.get("conditions") or []
                              if c.get("type") != cond["type"]), cond]


def remove_condition(status: dict, ctype: str) -> None:
    status["conditions"] = [c for c in status.get("conditions") or [] if c.get("type") != ctype]


def progress_deadline(deploy: dict) -> int | None:
    value = (deploy.get("spec") or {}).get("progressDeadlineSeconds", 600)
    return None if value is None or int(value) >= NO_DEADLINE else int(value)


def rollout_history(replicasets: list[dict]) -> list[tuple[int, dict]]:
    """(revision, ReplicaSet) oldest first, as `kubectl rollout history` lists them."""
    return sorted(((revision_of(rs), rs) for rs in replicasets if revision_of(rs)),
                  key=lambda pair: pair[0])


def rollout_status(deploy: dict) -> tuple[bool, str]:
    """(done, message) as `kubectl rollout status` words it; raises RolloutFailed when
    the progress deadline was exceeded."""
    name = deploy["metadata"]["name"]
    st = deploy.get("status") or {}
    if deploy["metadata"].get("generation", 1) > int(st.get("observedGeneration", 0) or 0):
        return False, "Waiting for deployment spec update to be observed..."
    cond = get_condition(st, "Progressing")
    if cond is not None and cond.get("reason") == TIMED_OUT:
        raise RolloutFailed(f'deployment "{name}" exceeded its progress deadline')
    want = desired_replicas(deploy)
    updated, total = int(st.get("updatedReplicas", 0)), int(st.get("replicas", 0))
    available = int(st.get("availableReplicas", 0))
    prefix = f'Waiting for deployment "{name}" rollout to finish: '
    if updated < want:
        return False, f"{prefix}{updated} out of {want} new replicas have been updated..."
    if total > updated:
        return False, f"{prefix}{total - updated} old replicas are pending termination..."
    if available < updated:
        return False, f"{prefix}{available} of {updated} updated replicas are available..."
    return True, f'deployment "{name}" successfully rolled out'


class RolloutFailed(PermanentError):
    """The rollout will not finish by itself (its progress deadline passed)."""
