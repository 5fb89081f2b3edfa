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

from gitops.controllers.rollout import (
    DESIRED_REPLICAS,
    FOUND_NEW_RS,
    MAX_REPLICAS,
    MAX_REVISION_HISTORY_CHARS,
    MIN_AVAILABLE,
    MIN_UNAVAILABLE,
    NEW_RS_AVAILABLE,
    NEW_RS_CREATED,
    PAUSED,
    RESUMED,
    REVISION,
    REVISION_HISTORY,
    RS_UPDATED,
    SKIP_COPY,
    TIMED_OUT,
    ConfigLookup,
    annotation_int,
    comparable_template,
    creation_order,
    desired_replicas,
    effective_template,
    get_condition,
    is_rolling,
    max_surge,
    max_unavailable,
    new_condition,
    new_replicaset,
    parse_time,
    progress_deadline,
    remove_condition,
    revision_of,
    round_half_away,
    set_condition,
    spec_replicas,
    status_count,
    template_hash,
)
from gitops.controllers.rollout import (
    active as active_sets,
)
from gitops.model import key_of
from gitops.model.actions import Action, Create, Delete, Emit, SetStatus, Update
from gitops.model.events import event_for
from gitops.model.meta import is_deleting

COMPONENT = "deployment-controller"


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
        self.new_name = _same_template(replicasets, self.template) or \
            f"{deploy['metadata']['name']}-{self.hash}"
        self.before = {rs["metadata"]["name"]: rs for rs in replicasets}   # never mutated
        self.rs = {name: _writable(rs) for name, rs in self.before.items()}
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
        return sorted((rs for n, rs in self.rs.items() if n != self.new_name), key=creation_order)

    def every(self) -> list[dict]:
        return [*self.old, *([self.new] if self.new else [])]

    # -- the main flow (syncDeployment) ----------------------------------------------
    def run(self) -> list[Action]:
        self._check_paused_conditions()
        if self.d["spec"].get("paused"):
            self._sync(paused=True)
        elif self._is_scaling_event():
            self._sync(paused=False)
        elif is_rolling(self.d):
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
        for rs in active_sets(self.old):
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
            if deadline and get_condition(self.status, "Progressing") is None:
                set_condition(self.status, new_condition(
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
            set_condition(self.status, new_condition(
                "Progressing", "True", NEW_RS_CREATED,
                f'Created new replica set "{self.new_name}"', self.now))

    def _sync_annotations(self, rs: dict, new_revision: int) -> None:
        """SetNewReplicaSetAnnotations for an existing new ReplicaSet."""
        ann = rs["metadata"].setdefault("annotations", {})
        for k, v in (self.d["metadata"].get("annotations") or {}).items():
            if k not in SKIP_COPY and ann.get(k) != v:
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
        if not is_rolling(self.d):
            return self.want
        current = sum(spec_replicas(rs) for rs in self.every())
        total_max = self.want + max_surge(self.d)
        if current >= total_max:
            return spec_replicas(new)
        return spec_replicas(new) + min(total_max - current, self.want - spec_replicas(new))

    # -- scaling ----------------------------------------------------------------------
    def _scale_rs(self, rs: dict, count: int, operation: str = "") -> bool:
        """scaleReplicaSet: the size and the replica annotations; True when resized."""
        before = spec_replicas(rs)
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
        for rs in active_sets([*self.old, self.new]):
            desired = annotation_int(rs, DESIRED_REPLICAS)
            if desired is not None and desired != self.want:
                return True
        return False

    def _active_or_latest(self) -> dict | None:
        old = sorted(self.old, key=creation_order, reverse=True)
        live = active_sets([*old, self.new])
        if len(live) == 1:
            return live[0]
        if not live:
            return self.new or (old[0] if old else None)
        return None

    def _saturated(self) -> bool:
        new = self.new
        return new is not None and spec_replicas(new) == self.want and \
            annotation_int(new, DESIRED_REPLICAS) == self.want and \
            status_count(new, "availableReplicas") == self.want

    def _scale(self) -> None:
        """DeploymentController.scale: replicas changed, no template change."""
        if (target := self._active_or_latest()) is not None:
            self._scale_rs(target, self.want)
            return
        if self._saturated():
            for rs in active_sets(self.old):
                self._scale_rs(rs, 0)
            return
        if not is_rolling(self.d):
            return
        active = active_sets(self.every())
        allowed = self.want + max_surge(self.d) if self.want > 0 else 0
        to_add = allowed - sum(spec_replicas(rs) for rs in active)
        if to_add == 0:
            return
        # Largest first; among equals, newer first when growing and older first when
        # shrinking.
        active.sort(key=creation_order, reverse=to_add > 0)
        active.sort(key=lambda rs: -spec_replicas(rs))        # stable: ties keep that order
        added = 0
        sizes: dict[str, int] = {}
        for rs in active:
            proportion = self._proportion(rs, to_add, added)
            sizes[rs["metadata"]["name"]] = spec_replicas(rs) + proportion
            added += proportion
        first = active[0]["metadata"]["name"]
        sizes[first] = max(0, sizes[first] + to_add - added)
        for rs in active:
            self._scale_rs(rs, sizes[rs["metadata"]["name"]], "up" if to_add > 0 else "down")

    def _proportion(self, rs: dict, to_add: int, added: int) -> int:
        """GetReplicaSetProportion."""
        if spec_replicas(rs) == 0 or to_add == 0 or to_add == added:
            return 0
        if self.want == 0:
            fraction = -spec_replicas(rs)
        else:
            max_now = self.want + max_surge(self.d)
            max_before = annotation_int(rs, MAX_REPLICAS) or \
                int((self.d.get("status") or {}).get("replicas", 0) or 0)
            if max_before == 0:
                return 0
            fraction = round_half_away(spec_replicas(rs) * max_now / max_before) - spec_replicas(rs)
        allowed = to_add - added
        return min(fraction, allowed) if to_add > 0 else max(fraction, allowed)

    # -- rolling update ---------------------------------------------------------------
    def _reconcile_new(self) -> bool:
        new = self.new
        if spec_replicas(new) == self.want:
            return False
        if spec_replicas(new) > self.want:
            return self._scale_rs(new, self.want)
        return self._scale_rs(new, self._new_rs_new_replicas(new))

    def _reconcile_old(self) -> bool:
        old = active_sets(self.old)
        if sum(spec_replicas(rs) for rs in old) == 0:
            return False
        new = self.new
        every = self.every()
        min_available = self.want - max_unavailable(self.d)
        new_unavailable = spec_replicas(new) - status_count(new, "availableReplicas")
        max_scaled_down = sum(spec_replicas(rs) for rs in every) - min_available - new_unavailable
        if max_scaled_down <= 0:
            return False
        total = 0
        for rs in sorted(old, key=creation_order):       # unhealthy replicas first
            if total >= max_scaled_down:
                break
            if spec_replicas(rs) == 0 or spec_replicas(rs) == status_count(rs, "availableReplicas"):
                continue
            cut = min(max_scaled_down - total, spec_replicas(rs) - status_count(rs, "availableReplicas"))
            self._scale_rs(rs, spec_replicas(rs) - cut)
            total += cut
        available = sum(status_count(rs, "availableReplicas") for rs in every)
        if available > min_available:               # then the oldest, within the budget
            budget = available - min_available
            done = 0
            for rs in sorted(old, key=creation_order):
                if done >= budget:
                    break
                if spec_replicas(rs) == 0:
                    continue
                cut = min(spec_replicas(rs), budget - done)
                self._scale_rs(rs, spec_replicas(rs) - cut)
                done += cut
            total += done
        return total > 0

    # -- recreate ---------------------------------------------------------------------
    def _old_pods_running(self) -> bool:
        if sum(status_count(rs, "replicas") for rs in self.old):
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
                       key=lambda rs: (revision_of(rs), creation_order(rs)))
        for rs in alive[: max(0, len(alive) - int(limit))]:
            if status_count(rs, "replicas") or spec_replicas(rs) or \
                    rs["metadata"].get("generation", 1) > status_count(rs, "observedGeneration"):
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
        cond = get_condition(self.status, "Progressing")
        if cond and cond.get("reason") == TIMED_OUT:
            return
        paused_cond = cond is not None and cond.get("reason") == PAUSED
        if self.d["spec"].get("paused") and not paused_cond:
            set_condition(self.status, new_condition("Progressing", "Unknown", PAUSED,
                                                       "Deployment is paused", self.now))
        elif not self.d["spec"].get("paused") and paused_cond:
            set_condition(self.status, new_condition("Progressing", "Unknown", RESUMED,
                                                       "Deployment is resumed", self.now))

    def _calculate(self) -> dict:
        every = self.every()
        available = sum(status_count(rs, "availableReplicas") for rs in every)
        total = sum(spec_replicas(rs) for rs in every)
        status = {
            "observedGeneration": self.d["metadata"].get("generation", 1),
            "replicas": sum(status_count(rs, "replicas") for rs in every),
            "updatedReplicas": status_count(self.new, "replicas"),
            "readyReplicas": sum(status_count(rs, "readyReplicas") for rs in every),
            "availableReplicas": available,
            "unavailableReplicas": max(0, total - available),
            "conditions": [dict(c) for c in self.status.get("conditions") or []],
        }
        if "collisionCount" in self.status:
            status["collisionCount"] = self.status["collisionCount"]
        if available >= self.want - max_unavailable(self.d):
            set_condition(status, new_condition("Available", "True", MIN_AVAILABLE,
                                                  "Deployment has minimum availability.",
                                                  self.now))
        else:
            set_condition(status, new_condition("Available", "False", MIN_UNAVAILABLE,
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
            remove_condition(new_status, "Progressing")
            return
        current = get_condition(old_status, "Progressing")
        complete_before = new_status["replicas"] == new_status["updatedReplicas"] and \
            current is not None and current.get("reason") == NEW_RS_AVAILABLE
        if complete_before:
            return
        name = self.new_name if self.new is not None else None
        subject = f'ReplicaSet "{name}"' if name else f'Deployment "{self.d["metadata"]["name"]}"'
        if self._complete(new_status):
            set_condition(new_status, new_condition(
                "Progressing", "True", NEW_RS_AVAILABLE, f"{subject} has successfully "
                "progressed.", self.now))
        elif self._progressing(old_status, new_status):
            cond = new_condition("Progressing", "True", RS_UPDATED,
                                  f"{subject} is progressing.", self.now)
            if current is not None and current.get("status") == "True":
                cond["lastTransitionTime"] = current.get("lastTransitionTime",
                                                         cond["lastTransitionTime"])
            new_status["conditions"] = [c for c in new_status["conditions"]
                                        if c.get("type") != "Progressing"] + [cond]
        elif self._timed_out(new_status):
            set_condition(new_status, new_condition(
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
        cond = get_condition(new_status, "Progressing")
        if deadline is None or cond is None or cond.get("reason") == NEW_RS_AVAILABLE:
            return False
        if cond.get("reason") == TIMED_OUT:
            return True
        return parse_time(cond.get("lastUpdateTime")) + deadline < self.now

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
        revised = self.revision is not None and \
            (self.d["metadata"].get("annotations") or {}).get(REVISION) != self.revision
        # The config hash goes into the Deployment's own template, so its current
        # ReplicaSet's template is the Deployment's (as `kubectl describe` compares them)
        # and `kubectl rollout undo` copies back nothing the Deployment lacks.
        retemplated = self.template != self.d["spec"].get("template", {})
        if revised or retemplated:
            d = copy.deepcopy(self.d)
            if revised:
                d["metadata"].setdefault("annotations", {})[REVISION] = self.revision
            if retemplated:
                d["spec"]["template"] = copy.deepcopy(self.template)
            d.pop("status", None)
            actions.append(Update(d))
        actions.append(SetStatus(key_of(self.d), self.status))
        return actions


def _same_template(replicasets: list[dict], template: dict) -> str | None:
    """The oldest ReplicaSet whose pod template is this one (FindNewReplicaSet): the same
    with or without the API server's defaults, whatever hash named it."""
    want = comparable_template(template)
    for rs in sorted(replicasets, key=creation_order):
        if not is_deleting(rs) and comparable_template(rs["spec"].get("template") or {}) \
                == want:
            return rs["metadata"]["name"]
    return None


def _writable(rs: dict) -> dict:
    """A copy of the parts a pass may change (annotations, spec fields); the pod template
    and everything else stay shared with the input, which is never changed."""
    meta = rs["metadata"]
    return {**rs, "metadata": {**meta, "annotations": dict(meta.get("annotations") or {})},
            "spec": dict(rs["spec"])}


def reconcile(deploy: dict, replicasets: list[dict], now: float,
              lookup: ConfigLookup | None = None, pods: list[dict] | None = None
              ) -> list[Action]:
    """replicasets: the ReplicaSets this Deployment owns; pods: the pods those own (used by
    Recreate to wait for old pods; without them, ReplicaSet status is trusted)."""
    if is_deleting(deploy):
        return []
    return _Rollout(deploy, replicasets, now, lookup, pods).run()

