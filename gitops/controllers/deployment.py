"""Deployment: one ReplicaSet per pod template, rolled out the way the deployment
controller of Kubernetes does it (pure; see pkg/controller/deployment there).

One pass, in Kubernetes' order:
- Paused: only scaling and history clean-up; Progressing is Unknown/DeploymentPaused.
- Scaling event (replicas changed while no template changed: a ReplicaSet's
  `deployment.kubernetes.io/desired-replicas` differs): the one active ReplicaSet takes
  the new count; during a rollout the difference is spread over the active ReplicaSets in
  proportion to their size (largest first, leftovers to the largest).
- RollingUpdate: the new ReplicaSet grows while the total stays within replicas +
  maxSurge; else old ones shrink while replicas - maxUnavailable pods stay available
  (unhealthy old pods first, then the oldest ReplicaSets). Percentages round as in
  Kubernetes: surge up, unavailable down; both zero means maxUnavailable 1.
- Recreate: old ReplicaSets go to zero, the new one is created and scaled only once no
  old pod runs (terminating pods included).
- Revisions: a new ReplicaSet gets revision max(old) + 1; a template that returns to an
  older ReplicaSet's (rollback, `kubectl rollout undo`) reuses that ReplicaSet and bumps
  its revision, keeping the previous numbers in `deployment.kubernetes.io/revision-history`.
  The Deployment carries the revision of its new ReplicaSet. Once complete, ReplicaSets
  beyond revisionHistoryLimit (default 10), scaled to zero, are deleted oldest revision
  first.
- Status as kubectl rollout status reads it, with the Available / Progressing conditions
  and their reasons. A rollout that shows no progress for progressDeadlineSeconds is
  ProgressDeadlineExceeded and stays so until it progresses again: never success.

Deliberate differences: the pod-template-hash is a sha256 prefix of the effective
template (no collisionCount); ReplicaSets created in the same second are ordered by
revision, not by name. Config-only commits roll out too: the hash of every ConfigMap and
Secret the pod template reads is put in its annotations (opt out with
gitops.io/config-rollout: "false").
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Iterable
from datetime import datetime, timezone

from gitops.controllers.base import Action, Create, Delete, Emit, SetStatus, Update
from gitops.events import event_for
from gitops.model import key_of
from gitops.model.meta import is_deleting, owner_ref, stable_hash
from gitops.model.podspec import referenced_configs

COMPONENT = "deployment-controller"
REVISION = "deployment.kubernetes.io/revision"
REVISION_HISTORY = "deployment.kubernetes.io/revision-history"
DESIRED_REPLICAS = "deployment.kubernetes.io/desired-replicas"
MAX_REPLICAS = "deployment.kubernetes.io/max-replicas"
RESTARTED_AT = "kubectl.kubernetes.io/restartedAt"
CHANGE_CAUSE = "kubernetes.io/change-cause"
CONFIG_HASH = "gitops.io/config-hash"
CONFIG_ROLLOUT = "gitops.io/config-rollout"
# Annotations of the Deployment that are not copied to its ReplicaSets.
_SKIP_COPY = {"kubectl.kubernetes.io/last-applied-configuration", REVISION, REVISION_HISTORY,
              DESIRED_REPLICAS, MAX_REPLICAS, "deprecated.deployment.rollback.to"}
MAX_REVISION_HISTORY_CHARS = 2000
NO_DEADLINE = 2**31 - 1

# Condition reasons (pkg/controller/deployment/util).
NEW_RS_CREATED, FOUND_NEW_RS = "NewReplicaSetCreated", "FoundNewReplicaSet"
RS_UPDATED, NEW_RS_AVAILABLE = "ReplicaSetUpdated", "NewReplicaSetAvailable"
TIMED_OUT, PAUSED, RESUMED = "ProgressDeadlineExceeded", "DeploymentPaused", "DeploymentResumed"
MIN_AVAILABLE, MIN_UNAVAILABLE = "MinimumReplicasAvailable", "MinimumReplicasUnavailable"

ConfigLookup = Callable[[str, str, str], dict | None]   # kind, namespace, name


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _ts(value: str | None) -> float:
    if not value:
        return 0.0
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return 0.0


# -- templates ------------------------------------------------------------------------
def effective_template(deploy: dict, lookup: ConfigLookup | None = None) -> dict:
    template = copy.deepcopy(deploy["spec"].get("template", {}))
    annotations = deploy["metadata"].get("annotations") or {}
    if lookup is None or annotations.get(CONFIG_ROLLOUT) == "false":
        return template
    ns = deploy["metadata"]["namespace"]
    refs = sorted(referenced_configs(template.get("spec", {})))
    if not refs:
        return template
    data = []
    for kind, name in refs:
        obj = lookup(kind, ns, name) or {}
        data.append([kind, name, obj.get("data"), obj.get("stringData"), obj.get("binaryData")])
    meta = template.setdefault("metadata", {})
    meta["annotations"] = {**(meta.get("annotations") or {}), CONFIG_HASH: stable_hash(data)}
    return template


def template_hash(template: dict) -> str:
    return stable_hash(template)


# -- rollout arithmetic ---------------------------------------------------------------
def resolve_int_or_percent(value: int | str | None, total: int, round_up: bool,
                           default: int | str) -> int:
    """intstr.GetScaledValueFromIntOrPercent: "25%" of total, rounded up or down."""
    value = default if value is None else value
    if isinstance(value, str) and value.endswith("%"):
        exact = int(value[:-1]) * total / 100
        return math.ceil(exact) if round_up else math.floor(exact)
    return int(value)


def _is_rolling(deploy: dict) -> bool:
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
    surge = resolve_int_or_percent(rolling.get("maxSurge"), want, True, "25%")
    unavailable = resolve_int_or_percent(rolling.get("maxUnavailable"), want, False, "25%")
    if surge == 0 and unavailable == 0:
        unavailable = 1          # Kubernetes: both zero would deadlock
    return surge, unavailable


def max_surge(deploy: dict) -> int:
    return surge_and_unavailable(deploy)[0] if _is_rolling(deploy) else 0


def max_unavailable(deploy: dict) -> int:
    want = desired_replicas(deploy)
    if not _is_rolling(deploy) or want == 0:
        return 0
    return min(surge_and_unavailable(deploy)[1], want)


def _round_half_away(x: float) -> int:
    """Go's math.Round, which Kubernetes' RoundToInt32 uses (Python's round is banker's)."""
    return int(math.floor(abs(x) + 0.5)) * (1 if x >= 0 else -1)


# -- small facts about ReplicaSets ----------------------------------------------------
def _replicas(rs: dict) -> int:
    return int(rs["spec"].get("replicas", 0) or 0)


def _st(rs: dict | None, field: str) -> int:
    return int(((rs or {}).get("status") or {}).get(field, 0) or 0)


def revision_of(obj: dict) -> int:
    try:
        return int(((obj.get("metadata") or {}).get("annotations") or {}).get(REVISION, 0))
    except (TypeError, ValueError):
        return 0


def _annotation_int(rs: dict, name: str) -> int | None:
    try:
        return int((rs["metadata"].get("annotations") or {})[name])
    except (KeyError, TypeError, ValueError):
        return None


def _created(rs: dict) -> tuple:
    return (_ts(rs["metadata"].get("creationTimestamp")), revision_of(rs),
            rs["metadata"]["name"])


def _active(rses: Iterable[dict]) -> list[dict]:
    return [rs for rs in rses if rs is not None and _replicas(rs) > 0]


# -- object builders ------------------------------------------------------------------
def new_replicaset(deploy: dict, template: dict, name: str, thash: str, replicas: int,
                   revision: int) -> dict:
    template = copy.deepcopy(template)
    tmeta = template.setdefault("metadata", {})
    tmeta["labels"] = {**(tmeta.get("labels") or {}), "pod-template-hash": thash}
    selector = copy.deepcopy(deploy["spec"].get("selector", {}))
    selector["matchLabels"] = {**(selector.get("matchLabels") or {}), "pod-template-hash": thash}
    annotations = {k: v for k, v in (deploy["metadata"].get("annotations") or {}).items()
                   if k not in _SKIP_COPY}
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
def _condition(status: dict, ctype: str) -> dict | None:
    return next((c for c in status.get("conditions") or [] if c.get("type") == ctype), None)


def _new_condition(ctype: str, status: str, reason: str, message: str, now: float) -> dict:
    stamp = _iso(now)
    return {"type": ctype, "status": status, "lastUpdateTime": stamp,
            "lastTransitionTime": stamp, "reason": reason, "message": message}


def _set_condition(status: dict, cond: dict) -> None:
    """SetDeploymentCondition: same status and reason -> untouched; same status -> the
    transition time is kept."""
    current = _condition(status, cond["type"])
    if current and current.get("status") == cond["status"] and \
            current.get("reason") == cond["reason"]:
        return
    if current and current.get("status") == cond["status"]:
        cond = {**cond, "lastTransitionTime": current.get("lastTransitionTime",
                                                          cond["lastTransitionTime"])}
    status["conditions"] = [*(c for c in status.get("conditions") or []
                              if c.get("type") != cond["type"]), cond]


def _remove_condition(status: dict, ctype: str) -> None:
    status["conditions"] = [c for c in status.get("conditions") or [] if c.get("type") != ctype]


def progress_deadline(deploy: dict) -> int | None:
    value = (deploy.get("spec") or {}).get("progressDeadlineSeconds", 600)
    return None if value is None or int(value) >= NO_DEADLINE else int(value)


# -- the reconciler -------------------------------------------------------------------
class _Rollout:
    """One pass over one Deployment, on copies; `actions()` says what to write."""

    def __init__(self, deploy: dict, replicasets: list[dict], now: float,
                 lookup: ConfigLookup | None, pods: list[dict] | None) -> None:
        self.d = deploy
        self.now = now
        self.pods = pods
        self.want = desired_replicas(deploy)
        self.template = effective_template(deploy, lookup)
        self.hash = template_hash(self.template)
        self.new_name = f"{deploy['metadata']['name']}-{self.hash}"
        self.rs = {rs["metadata"]["name"]: copy.deepcopy(rs) for rs in replicasets}
        self.before = {name: copy.deepcopy(rs) for name, rs in self.rs.items()}
        self.created: str | None = None
        self.deleted: list[dict] = []
        self.events: dict[str, list] = {}          # RS name -> events of its write
        self.status = copy.deepcopy(deploy.get("status") or {})
        self.revision: str | None = None           # the Deployment's revision annotation

    # views
    @property
    def new(self) -> dict | None:
        return self.rs.get(self.new_name)

    @property
    def old(self) -> list[dict]:
        return sorted((rs for n, rs in self.rs.items() if n != self.new_name), key=_created)

    def every(self) -> list[dict]:
        return [*self.old, *([self.new] if self.new else [])]

    # -- the main flow (syncDeployment) ----------------------------------------------
    def run(self) -> list[Action]:
        self._check_paused_conditions()
        if self.d["spec"].get("paused"):
            self._sync(paused=True)
        elif self._is_scaling_event():
            self._sync(paused=False)
        elif _is_rolling(self.d):
            self._rolling()
        else:
            self._recreate()
        return self._actions()

    def _sync(self, paused: bool) -> None:
        self._new_replicaset(create=False)
        self._scale()
        if paused:
            self._cleanup()
        self._status(rollout=False)

    def _rolling(self) -> None:
        self._new_replicaset(create=True)
        if not self._reconcile_new() and not self._reconcile_old():
            if self._complete(self.d.get("status") or {}):
                self._cleanup()
        self._status(rollout=True)

    def _recreate(self) -> None:
        self._new_replicaset(create=False)
        scaled = False
        for rs in _active(self.old):
            scaled |= self._scale_rs(rs, 0)
        if not scaled and not self._old_pods_running():
            if self.new is None:
                self._new_replicaset(create=True)
            self._scale_rs(self.new, self.want)
            if self._complete(self.d.get("status") or {}):
                self._cleanup()
        self._status(rollout=True)

    # -- the new ReplicaSet (getNewReplicaSet) ----------------------------------------
    def _new_replicaset(self, create: bool) -> None:
        new_revision = max((revision_of(rs) for rs in self.old), default=0) + 1
        deadline = progress_deadline(self.d) is not None
        existing = self.new
        if existing is not None:
            self._sync_annotations(existing, new_revision)
            existing["spec"]["minReadySeconds"] = self.d["spec"].get("minReadySeconds", 0)
            self.revision = existing["metadata"]["annotations"][REVISION]
            if deadline and _condition(self.status, "Progressing") is None:
                _set_condition(self.status, _new_condition(
                    "Progressing", "True", FOUND_NEW_RS,
                    f'Found new replica set "{self.new_name}"', self.now))
            return
        if not create:
            return
        rs = new_replicaset(self.d, self.template, self.new_name, self.hash, 0, new_revision)
        self.rs[self.new_name] = rs
        count = self._new_rs_new_replicas(rs)
        rs["spec"]["replicas"] = count
        self.created = self.new_name
        if count > 0:
            self._event(self.new_name, "ScalingReplicaSet",
                        f"Scaled up replica set {self.new_name} from 0 to {count}")
        self.revision = str(new_revision)
        if deadline:
            _set_condition(self.status, _new_condition(
                "Progressing", "True", NEW_RS_CREATED,
                f'Created new replica set "{self.new_name}"', self.now))

    def _sync_annotations(self, rs: dict, new_revision: int) -> None:
        """SetNewReplicaSetAnnotations for an existing new ReplicaSet."""
        ann = rs["metadata"].setdefault("annotations", {})
        for k, v in (self.d["metadata"].get("annotations") or {}).items():
            if k not in _SKIP_COPY and ann.get(k) != v:
                ann[k] = v
        old = ann.get(REVISION)
        try:
            old_int = int(old) if old else 0
        except ValueError:
            return
        if old_int < new_revision:
            ann[REVISION] = str(new_revision)
            if old:          # an older ReplicaSet is new again: a rollback
                history = ann.get(REVISION_HISTORY, "")
                revisions = [r for r in history.split(",") if r] + [old]
                while len(",".join(revisions)) > MAX_REVISION_HISTORY_CHARS:
                    revisions.pop(0)
                ann[REVISION_HISTORY] = ",".join(revisions)

    def _new_rs_new_replicas(self, new: dict) -> int:
        if not _is_rolling(self.d):
            return self.want
        current = sum(_replicas(rs) for rs in self.every())
        total_max = self.want + max_surge(self.d)
        if current >= total_max:
            return _replicas(new)
        return _replicas(new) + min(total_max - current, self.want - _replicas(new))

    # -- scaling ----------------------------------------------------------------------
    def _scale_rs(self, rs: dict, count: int, operation: str = "") -> bool:
        """scaleReplicaSet: the size and the replica annotations; True when resized."""
        before = _replicas(rs)
        ann = rs["metadata"].setdefault("annotations", {})
        ann[DESIRED_REPLICAS] = str(self.want)
        ann[MAX_REPLICAS] = str(self.want + max_surge(self.d))
        if before == count:
            return False
        rs["spec"]["replicas"] = count
        operation = operation or ("up" if count > before else "down")
        name = rs["metadata"]["name"]
        if name == self.created:
            self.events.pop(name, None)
            before = 0
        self._event(name, "ScalingReplicaSet",
                    f"Scaled {operation} replica set {name} from {before} to {count}")
        return True

    def _is_scaling_event(self) -> bool:
        for rs in _active([*self.old, self.new]):
            desired = _annotation_int(rs, DESIRED_REPLICAS)
            if desired is not None and desired != self.want:
                return True
        return False

    def _active_or_latest(self) -> dict | None:
        old = sorted(self.old, key=_created, reverse=True)
        active = _active([*old, self.new])
        if len(active) == 1:
            return active[0]
        if not active:
            return self.new or (old[0] if old else None)
        return None

    def _saturated(self) -> bool:
        new = self.new
        return new is not None and _replicas(new) == self.want and \
            _annotation_int(new, DESIRED_REPLICAS) == self.want and \
            _st(new, "availableReplicas") == self.want

    def _scale(self) -> None:
        """DeploymentController.scale: replicas changed, no template change."""
        if (target := self._active_or_latest()) is not None:
            self._scale_rs(target, self.want)
            return
        if self._saturated():
            for rs in _active(self.old):
                self._scale_rs(rs, 0)
            return
        if not _is_rolling(self.d):
            return
        active = _active(self.every())
        allowed = self.want + max_surge(self.d) if self.want > 0 else 0
        to_add = allowed - sum(_replicas(rs) for rs in active)
        if to_add == 0:
            return
        # Largest first; among equals, newer first when growing and older first when
        # shrinking.
        active.sort(key=_created, reverse=to_add > 0)
        active.sort(key=lambda rs: -_replicas(rs))        # stable: ties keep that order
        added = 0
        sizes: dict[str, int] = {}
        for rs in active:
            proportion = self._proportion(rs, to_add, added)
            sizes[rs["metadata"]["name"]] = _replicas(rs) + proportion
            added += proportion
        first = active[0]["metadata"]["name"]
        sizes[first] = max(0, sizes[first] + to_add - added)
        for rs in active:
            self._scale_rs(rs, sizes[rs["metadata"]["name"]], "up" if to_add > 0 else "down")

    def _proportion(self, rs: dict, to_add: int, added: int) -> int:
        """GetReplicaSetProportion."""
        if _replicas(rs) == 0 or to_add == 0 or to_add == added:
            return 0
        if self.want == 0:
            fraction = -_replicas(rs)
        else:
            max_now = self.want + max_surge(self.d)
            max_before = _annotation_int(rs, MAX_REPLICAS) or \
                int((self.d.get("status") or {}).get("replicas", 0) or 0)
            if max_before == 0:
                return 0
            fraction = _round_half_away(_replicas(rs) * max_now / max_before) - _replicas(rs)
        allowed = to_add - added
        return min(fraction, allowed) if to_add > 0 else max(fraction, allowed)

    # -- rolling update ---------------------------------------------------------------
    def _reconcile_new(self) -> bool:
        new = self.new
        if _replicas(new) == self.want:
            return False
        if _replicas(new) > self.want:
            return self._scale_rs(new, self.want)
        return self._scale_rs(new, self._new_rs_new_replicas(new))

    def _reconcile_old(self) -> bool:
        old = _active(self.old)
        if sum(_replicas(rs) for rs in old) == 0:
            return False
        new = self.new
        every = self.every()
        min_available = self.want - max_unavailable(self.d)
        new_unavailable = _replicas(new) - _st(new, "availableReplicas")
        max_scaled_down = sum(_replicas(rs) for rs in every) - min_available - new_unavailable
        if max_scaled_down <= 0:
            return False
        total = 0
        for rs in sorted(old, key=_created):       # unhealthy replicas first
            if total >= max_scaled_down:
                break
            if _replicas(rs) == 0 or _replicas(rs) == _st(rs, "availableReplicas"):
                continue
            cut = min(max_scaled_down - total, _replicas(rs) - _st(rs, "availableReplicas"))
            self._scale_rs(rs, _replicas(rs) - cut)
            total += cut
        available = sum(_st(rs, "availableReplicas") for rs in every)
        if available > min_available:               # then the oldest, within the budget
            budget = available - min_available
            done = 0
            for rs in sorted(old, key=_created):
                if done >= budget:
                    break
                if _replicas(rs) == 0:
                    continue
                cut = min(_replicas(rs), budget - done)
                self._scale_rs(rs, _replicas(rs) - cut)
                done += cut
            total += done
        return total > 0

    # -- recreate ---------------------------------------------------------------------
    def _old_pods_running(self) -> bool:
        if sum(_st(rs, "replicas") for rs in self.old):
            return True
        if self.pods is None:
            return False
        new_uid = (self.new or {}).get("metadata", {}).get("uid")
        for pod in self.pods:
            ref = next((r for r in pod["metadata"].get("ownerReferences") or []
                        if r.get("controller")), {})
            if new_uid and ref.get("uid") == new_uid:
                continue
            if (pod.get("status") or {}).get("phase") not in ("Failed", "Succeeded"):
                return True
        return False

    # -- history ----------------------------------------------------------------------
    def _cleanup(self) -> None:
        limit = self.d["spec"].get("revisionHistoryLimit", 10)
        if limit is None:
            return
        alive = sorted((rs for rs in self.old if not is_deleting(rs)),
                       key=lambda rs: (revision_of(rs), _created(rs)))
        for rs in alive[: max(0, len(alive) - int(limit))]:
            if _st(rs, "replicas") or _replicas(rs) or \
                    rs["metadata"].get("generation", 1) > _st(rs, "observedGeneration"):
                continue
            self.deleted.append(rs)

    # -- status -----------------------------------------------------------------------
    def _complete(self, status: dict) -> bool:
        """DeploymentComplete."""
        return all(int(status.get(f, 0) or 0) == self.want
                   for f in ("updatedReplicas", "replicas", "availableReplicas")) and \
            int(status.get("observedGeneration", 0) or 0) >= self.d["metadata"].get(
                "generation", 1)

    def _check_paused_conditions(self) -> None:
        if progress_deadline(self.d) is None:
            return
        cond = _condition(self.status, "Progressing")
        if cond and cond.get("reason") == TIMED_OUT:
            return
        paused_cond = cond is not None and cond.get("reason") == PAUSED
        if self.d["spec"].get("paused") and not paused_cond:
            _set_condition(self.status, _new_condition("Progressing", "Unknown", PAUSED,
                                                       "Deployment is paused", self.now))
        elif not self.d["spec"].get("paused") and paused_cond:
            _set_condition(self.status, _new_condition("Progressing", "Unknown", RESUMED,
                                                       "Deployment is resumed", self.now))

    def _calculate(self) -> dict:
        every = self.every()
        available = sum(_st(rs, "availableReplicas") for rs in every)
        total = sum(_replicas(rs) for rs in every)
        status = {
            "observedGeneration": self.d["metadata"].get("generation", 1),
            "replicas": sum(_st(rs, "replicas") for rs in every),
            "updatedReplicas": _st(self.new, "replicas"),
            "readyReplicas": sum(_st(rs, "readyReplicas") for rs in every),
            "availableReplicas": available,
            "unavailableReplicas": max(0, total - available),
            "conditions": copy.deepcopy(self.status.get("conditions") or []),
        }
        if "collisionCount" in self.status:
            status["collisionCount"] = self.status["collisionCount"]
        if available >= self.want - max_unavailable(self.d):
            _set_condition(status, _new_condition("Available", "True", MIN_AVAILABLE,
                                                  "Deployment has minimum availability.",
                                                  self.now))
        else:
            _set_condition(status, _new_condition("Available", "False", MIN_UNAVAILABLE,
                                                  "Deployment does not have minimum "
                                                  "availability.", self.now))
        return status

    def _status(self, rollout: bool) -> None:
        new_status = self._calculate()
        if rollout:
            # Kubernetes compares with the status as this pass left it so far (conditions
            # set on the way included), counts as last written.
            self._rollout_conditions(self.status, new_status)
        self.status = new_status

    def _rollout_conditions(self, old_status: dict, new_status: dict) -> None:
        """syncRolloutStatus: NewReplicaSetAvailable, ReplicaSetUpdated or timed out."""
        if progress_deadline(self.d) is None:
            _remove_condition(new_status, "Progressing")
            return
        current = _condition(old_status, "Progressing")
        complete_before = new_status["replicas"] == new_status["updatedReplicas"] and \
            current is not None and current.get("reason") == NEW_RS_AVAILABLE
        if complete_before:
            return
        name = self.new_name if self.new is not None else None
        subject = f'ReplicaSet "{name}"' if name else f'Deployment "{self.d["metadata"]["name"]}"'
        if self._complete(new_status):
            _set_condition(new_status, _new_condition(
                "Progressing", "True", NEW_RS_AVAILABLE, f"{subject} has successfully "
                "progressed.", self.now))
        elif self._progressing(old_status, new_status):
            cond = _new_condition("Progressing", "True", RS_UPDATED,
                                  f"{subject} is progressing.", self.now)
            if current is not None and current.get("status") == "True":
                cond["lastTransitionTime"] = current.get("lastTransitionTime",
                                                         cond["lastTransitionTime"])
            new_status["conditions"] = [c for c in new_status["conditions"]
                                        if c.get("type") != "Progressing"] + [cond]
        elif self._timed_out(new_status):
            _set_condition(new_status, _new_condition(
                "Progressing", "False", TIMED_OUT, f"{subject} has timed out progressing.",
                self.now))

    @staticmethod
    def _progressing(old: dict, new: dict) -> bool:
        """DeploymentProgressing: more updated, fewer old, more ready or more available."""
        g = lambda s, f: int(s.get(f, 0) or 0)            # noqa: E731
        return g(new, "updatedReplicas") > g(old, "updatedReplicas") or \
            g(new, "replicas") - g(new, "updatedReplicas") < \
            g(old, "replicas") - g(old, "updatedReplicas") or \
            g(new, "readyReplicas") > g(old, "readyReplicas") or \
            g(new, "availableReplicas") > g(old, "availableReplicas")

    def _timed_out(self, new_status: dict) -> bool:
        deadline = progress_deadline(self.d)
        cond = _condition(new_status, "Progressing")
        if deadline is None or cond is None or cond.get("reason") == NEW_RS_AVAILABLE:
            return False
        if cond.get("reason") == TIMED_OUT:
            return True
        return _ts(cond.get("lastUpdateTime")) + deadline < self.now

    # -- output -----------------------------------------------------------------------
    def _event(self, rs_name: str, reason: str, message: str) -> None:
        self.events.setdefault(rs_name, []).append(
            event_for(self.d, reason, message, component=COMPONENT))

    def _actions(self) -> list[Action]:
        actions: list[Action] = []
        for name, rs in self.rs.items():
            events = self.events.get(name) or [None]
            if name == self.created:
                actions.append(Create(rs, events[0]))
            elif rs != self.before.get(name):
                actions.append(Update(rs, events[0]))
            else:
                continue
            actions += [Emit(e) for e in events[1:]]
        for rs in self.deleted:
            actions.append(Delete(key_of(rs)))
        if self.revision is not None and \
                (self.d["metadata"].get("annotations") or {}).get(REVISION) != self.revision:
            d = copy.deepcopy(self.d)
            d["metadata"].setdefault("annotations", {})[REVISION] = self.revision
            d.pop("status", None)
            actions.append(Update(d))
        actions.append(SetStatus(key_of(self.d), self.status))
        return actions


def reconcile(deploy: dict, replicasets: list[dict], now: float,
              lookup: ConfigLookup | None = None, pods: list[dict] | None = None
              ) -> list[Action]:
    """replicasets: the ReplicaSets this Deployment owns; pods: the pods those own (used by
    Recreate to wait for old pods; without them, ReplicaSet status is trusted)."""
    if is_deleting(deploy):
        return []
    return _Rollout(deploy, replicasets, now, lookup, pods).run()


def rollout_history(replicasets: list[dict]) -> list[tuple[int, dict]]:
    """(revision, ReplicaSet) oldest first, as `kubectl rollout history` lists them."""
    return sorted(((revision_of(rs), rs) for rs in replicasets if revision_of(rs)),
                  key=lambda pair: pair[0])
