"""Deployment controller: Kubernetes' rollout arithmetic, revisions, history, conditions."""

from __future__ import annotations

import copy

import pytest

from gitops.controllers import deployment as D
from gitops.controllers import rollout as R
from gitops.errors import PermanentError
from gitops.health import assess
from gitops.model.actions import Create, Delete, Emit, SetStatus, Update

NOW = 1_800_000_000.0


def deploy(replicas=3, image="img:1", strategy=None, **spec):
    d = {"apiVersion": "apps/v1", "kind": "Deployment",
         "metadata": {"name": "web", "namespace": "default", "uid": "d-uid", "generation": 1},
         "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": "web"}},
                  "template": {"metadata": {"labels": {"app": "web"}},
                               "spec": {"containers": [{"name": "c", "image": image}]}},
                  **spec}}
    if strategy is not None:
        d["spec"]["strategy"] = strategy
    return d


def rolling(surge, unavailable):
    return {"type": "RollingUpdate",
            "rollingUpdate": {"maxSurge": surge, "maxUnavailable": unavailable}}


class Cluster:
    """The Deployment controller against ReplicaSets whose pods become available at once
    (or never, with available=False): the store and the ReplicaSet controller, faked."""

    def __init__(self, d: dict) -> None:
        self.d = d
        self.rs: dict[str, dict] = {}
        self.now = NOW
        self.events: list[str] = []
        self.available = True
        self._uid = 0

    def set_template(self, image: str, **spec) -> None:
        self.d = copy.deepcopy(self.d)
        self.d["spec"]["template"]["spec"]["containers"][0]["image"] = image
        self.d["spec"].update(spec)
        self.d["metadata"]["generation"] += 1

    def step(self) -> list:
        actions = D.reconcile(self.d, list(self.rs.values()), self.now)
        for a in actions:
            if a.event is not None:
                self.events.append(a.event.message)
            match a:
                case Create(obj):
                    self._uid += 1
                    obj = copy.deepcopy(obj)
                    obj["metadata"].update(uid=f"rs-{self._uid}", generation=1,
                                           creationTimestamp=R.iso(self.now))
                    self.rs[obj["metadata"]["name"]] = obj
                case Update(obj) if obj["kind"] == "ReplicaSet":
                    self.rs[obj["metadata"]["name"]] = copy.deepcopy(obj)
                case Update(obj):
                    self.d = {**copy.deepcopy(obj), "status": self.d.get("status", {})}
                case Delete(key):
                    del self.rs[key.name]
                case SetStatus(_, status):
                    self.d["status"] = status
        for rs in self.rs.values():        # the ReplicaSet controller and the pods
            want = rs["spec"]["replicas"]
            avail = want if self.available else min(want, rs.get("status", {}).get(
                "availableReplicas", 0))
            rs["status"] = {"replicas": want, "readyReplicas": avail,
                            "availableReplicas": avail, "observedGeneration": 1}
        self.now += 1
        return actions

    def sizes(self) -> dict[int, int]:
        return {D.revision_of(rs): rs["spec"]["replicas"] for rs in self.rs.values()}

    def converge(self, limit: int = 30) -> list[dict[int, int]]:
        seen = []
        for _ in range(limit):
            self.step()
            seen.append(self.sizes())
            if len(seen) > 2 and seen[-1] == seen[-2] == seen[-3]:
                break
        return seen


@pytest.mark.parametrize("replicas, surge, unavailable, want", [
    # defaults 25% / 25%: surge rounds up, unavailable down
    (1, None, None, (1, 0)), (3, None, None, (1, 0)), (4, None, None, (1, 1)),
    (5, None, None, (2, 1)), (7, None, None, (2, 1)), (10, None, None, (3, 2)),
    # both zero after rounding: maxUnavailable becomes 1
    (3, "0%", "10%", (0, 1)), (3, 0, 0, (0, 1)),
    (5, "50%", "50%", (3, 2)), (3, 2, 1, (2, 1)), (3, "100%", 0, (3, 0)),
])
def test_surge_and_unavailable_rounding(replicas, surge, unavailable, want):
    spec = {}
    if surge is not None:
        spec["strategy"] = rolling(surge, unavailable)
    assert R.surge_and_unavailable(deploy(replicas, **spec)) == want


@pytest.mark.parametrize("d, surge, unavailable", [
    (deploy(0), 0, 0),                                 # nothing to keep available
    (deploy(2, strategy=rolling(0, 5)), 0, 2),         # capped at replicas
    (deploy(3, strategy={"type": "Recreate"}), 0, 0),
])
def test_max_surge_and_unavailable_edges(d, surge, unavailable):
    assert (D.max_surge(d), D.max_unavailable(d)) == (surge, unavailable)


@pytest.mark.parametrize("surge", ["abc", "3", "x%", "2.5%", "-1%", True])
def test_int_or_percent_that_kubernetes_refuses_is_an_error_naming_the_field(surge):
    with pytest.raises(PermanentError, match=r"^spec\.strategy\.rollingUpdate\.maxSurge: "):
        R.surge_and_unavailable(deploy(3, strategy=rolling(surge, 0)))


@pytest.mark.parametrize("replicas, strategy, steps", [
    # 3 replicas, zero downtime: one extra pod at a time, old shrinks as new ones come up
    (3, rolling(1, 0), [{1: 3, 2: 1}, {1: 2, 2: 1}, {1: 2, 2: 2}, {1: 1, 2: 2},
                        {1: 1, 2: 3}, {1: 0, 2: 3}]),
    # 3 replicas, defaults (surge 1, unavailable 0 after rounding): the same path
    (3, None, [{1: 3, 2: 1}, {1: 2, 2: 1}, {1: 2, 2: 2}, {1: 1, 2: 2},
               {1: 1, 2: 3}, {1: 0, 2: 3}]),
    # 5 replicas, defaults (surge 2, unavailable 1): create at 2 and cut old by 1 at once
    (5, None, [{1: 4, 2: 2}, {1: 4, 2: 3}, {1: 1, 2: 3}, {1: 1, 2: 5}, {1: 0, 2: 5}]),
    # 3 replicas, no surge: old goes first, one at a time
    (3, rolling(0, 1), [{1: 2, 2: 0}, {1: 2, 2: 1}, {1: 1, 2: 1}, {1: 1, 2: 2},
                        {1: 0, 2: 2}, {1: 0, 2: 3}]),
    # 7 replicas, 50% / 50%: surge 4, unavailable 3; scale-up and scale-down alternate
    (7, rolling("50%", "50%"), [{1: 4, 2: 4}, {1: 4, 2: 7}, {1: 0, 2: 7}]),
])
def test_rolling_update_path(replicas, strategy, steps):
    c = Cluster(deploy(replicas, strategy=strategy))
    c.converge()
    assert c.sizes() == {1: replicas}
    c.set_template("img:2")
    seen = c.converge()
    dedup = [s for i, s in enumerate(seen) if i == 0 or s != seen[i - 1]]
    assert dedup == steps
    surge, unavailable = D.max_surge(c.d), D.max_unavailable(c.d)
    for sizes in seen:       # never above replicas + surge pods
        assert sum(sizes.values()) <= replicas + surge
    st = c.d["status"]
    assert (st["replicas"], st["updatedReplicas"], st["availableReplicas"],
            st["unavailableReplicas"]) == (replicas, replicas, replicas, 0)
    assert c.d["metadata"]["annotations"][D.REVISION] == "2"
    for before, after in zip([{1: replicas}, *seen], seen):   # availability budget held
        if after != before:
            assert sum(after.values()) >= replicas - unavailable


def test_zero_downtime_rollout_never_loses_availability():
    c = Cluster(deploy(3, strategy=rolling(1, 0)))
    c.converge()
    c.set_template("img:2")
    for _ in range(12):
        c.step()
        assert c.d["status"]["availableReplicas"] >= 3


def test_recreate_scales_old_to_zero_then_creates_new():
    c = Cluster(deploy(3, strategy={"type": "Recreate"}))
    c.converge()
    c.set_template("img:2")
    c.step()
    assert c.sizes() == {1: 0}                       # the new RS waits for the old pods
    c.step()
    assert c.sizes() == {1: 0, 2: 3}


def test_recreate_waits_for_terminating_pods():
    d = deploy(2, image="img:2", strategy={"type": "Recreate"})
    old = D.new_replicaset(deploy(2), D.effective_template(deploy(2)), "web-old", "old", 0, 1)
    old["metadata"]["uid"] = "rs-old"
    old["status"] = {"replicas": 0}
    terminating = {"kind": "Pod", "metadata": {
        "name": "web-old-x", "deletionTimestamp": "2027-01-01T00:00:00Z",
        "ownerReferences": [{"uid": "rs-old", "controller": True}]},
        "status": {"phase": "Running"}}
    actions = D.reconcile(d, [old], NOW, pods=[terminating])
    assert not any(isinstance(a, Create) for a in actions)
    finished = {**terminating, "status": {"phase": "Succeeded"}}
    actions = D.reconcile(d, [old], NOW, pods=[finished])
    [created] = [a.obj for a in actions if isinstance(a, Create)]
    assert created["spec"]["replicas"] == 2


@pytest.mark.parametrize("sizes, annotated_max, new_replicas, want", [
    # Kubernetes docs: 10 replicas, surge 3, rollout at old 8 / new 5, scaled to 15:
    # 5 more pods, split 3 to the old and 2 to the new ReplicaSet
    ((8, 5), 13, 15, (11, 7)),
    # scaled down from 10 to 5 mid-rollout: allowed 8, both shrink proportionally
    ((8, 5), 13, 5, (5, 3)),
    # to zero: everything goes
    ((8, 5), 13, 0, (0, 0)),
])
def test_proportional_scaling_during_a_rollout(sizes, annotated_max, new_replicas, want):
    strategy = rolling(3, 2)
    old_d = deploy(10, image="img:1", strategy=strategy)
    new_d = deploy(new_replicas, image="img:2", strategy=strategy)
    rses = []
    for rev, (d, size) in enumerate(((old_d, sizes[0]), (new_d, sizes[1])), start=1):
        t = D.effective_template(d)
        rs = D.new_replicaset(d, t, f"web-{D.template_hash(t)}", D.template_hash(t), size, rev)
        rs["metadata"]["annotations"].update({D.DESIRED_REPLICAS: "10",
                                              D.MAX_REPLICAS: str(annotated_max)})
        rs["metadata"]["creationTimestamp"] = R.iso(NOW + rev)
        rs["status"] = {"replicas": size, "availableReplicas": size}
        rses.append(rs)
    actions = D.reconcile(new_d, rses, NOW)
    got = {a.obj["metadata"]["annotations"][D.REVISION]: a.obj["spec"]["replicas"]
           for a in actions if isinstance(a, Update) and a.obj["kind"] == "ReplicaSet"}
    assert (got.get("1", sizes[0]), got.get("2", sizes[1])) == want
    scaled = [a for a in actions if isinstance(a, Update) and a.obj["kind"] == "ReplicaSet"]
    assert all(a.obj["metadata"]["annotations"][D.DESIRED_REPLICAS] == str(new_replicas)
               for a in scaled)


def test_scale_without_rollout_resizes_the_one_replicaset_and_says_so():
    c = Cluster(deploy(3))
    c.converge()
    c.d["spec"]["replicas"] = 5
    c.step()
    assert c.sizes() == {1: 5}
    assert c.events[-1].startswith("Scaled up replica set web-") and \
        c.events[-1].endswith("from 3 to 5")
    c.d["spec"]["replicas"] = 2
    c.step()
    assert c.sizes() == {1: 2} and c.events[-1].endswith("from 5 to 2")


def test_rollback_to_an_older_template_reuses_its_replicaset_and_bumps_its_revision():
    c = Cluster(deploy(2))
    c.converge()
    first = next(iter(c.rs))
    c.set_template("img:2")
    c.converge()
    c.set_template("img:1")                     # `gitops rollback` / rollout undo
    c.converge()
    assert len(c.rs) == 2                       # no third ReplicaSet
    rs1 = c.rs[first]
    assert rs1["spec"]["replicas"] == 2
    assert rs1["metadata"]["annotations"][D.REVISION] == "3"
    assert rs1["metadata"]["annotations"][D.REVISION_HISTORY] == "1"
    assert c.d["metadata"]["annotations"][D.REVISION] == "3"
    c.set_template("img:2")                     # and forward again
    c.converge()
    rs2 = next(rs for name, rs in c.rs.items() if name != first)
    assert rs2["metadata"]["annotations"][D.REVISION] == "4"
    assert rs2["metadata"]["annotations"][D.REVISION_HISTORY] == "2"
    history = [(rev, rs["metadata"]["name"]) for rev, rs in R.rollout_history(
        list(c.rs.values()))]
    assert [rev for rev, _ in history] == [3, 4]


def test_restarted_at_annotation_rolls_a_new_replicaset():
    c = Cluster(deploy(2))
    c.converge()
    c.d["spec"]["template"]["metadata"]["annotations"] = {
        R.RESTARTED_AT: "2027-01-15T08:00:00Z"}
    c.converge()
    assert c.sizes() == {1: 0, 2: 2}
    new = next(rs for rs in c.rs.values() if D.revision_of(rs) == 2)
    assert new["spec"]["template"]["metadata"]["annotations"][R.RESTARTED_AT]


def test_replicasets_carry_deployment_annotations_and_replica_counts():
    d = deploy(4, strategy=rolling(2, 1))
    d["metadata"]["annotations"] = {R.CHANGE_CAUSE: "v1 release",
                                    "kubectl.kubernetes.io/last-applied-configuration": "{}"}
    [rs] = [a.obj for a in D.reconcile(d, [], NOW) if isinstance(a, Create)]
    ann = rs["metadata"]["annotations"]
    assert ann[R.CHANGE_CAUSE] == "v1 release"
    assert "kubectl.kubernetes.io/last-applied-configuration" not in ann
    assert (ann[D.REVISION], ann[D.DESIRED_REPLICAS], ann[D.MAX_REPLICAS]) == ("1", "4", "6")


def older(template: dict, revision: int) -> dict:
    """The template of an older revision (another image)."""
    out = copy.deepcopy(template)
    out["spec"]["containers"][0]["image"] = f"img:old{revision}"
    return out


@pytest.mark.parametrize("limit, old_revisions, want_deleted", [
    (10, [1, 2, 3], []),
    (2, [1, 2, 3, 4], [1, 2]),
    (0, [1, 2], [1, 2]),
    (1, [3, 1, 2], [1, 2]),          # oldest revision first, whatever the list order
])
def test_history_trimming(limit, old_revisions, want_deleted):
    d = deploy(2, revisionHistoryLimit=limit)
    t = D.effective_template(d)
    current = D.new_replicaset(d, t, f"web-{D.template_hash(t)}", D.template_hash(t), 2, 9)
    current["status"] = {"replicas": 2, "availableReplicas": 2, "observedGeneration": 1}
    rses = [current]
    for rev in old_revisions:
        o = D.new_replicaset(d, older(t, rev), f"web-old{rev}", "x", 0, rev)
        o["status"] = {"replicas": 0, "observedGeneration": 1}
        rses.append(o)
    d["status"] = {"replicas": 2, "updatedReplicas": 2, "availableReplicas": 2,
                   "observedGeneration": 1}
    deleted = [a.key.name for a in D.reconcile(d, rses, NOW) if isinstance(a, Delete)]
    assert deleted == [f"web-old{r}" for r in want_deleted]


def test_history_keeps_replicasets_with_pods_and_waits_for_completion():
    d = deploy(2, revisionHistoryLimit=0)
    t = D.effective_template(d)
    current = D.new_replicaset(d, t, f"web-{D.template_hash(t)}", D.template_hash(t), 2, 3)
    current["status"] = {"replicas": 2, "availableReplicas": 2, "observedGeneration": 1}
    draining = D.new_replicaset(d, older(t, 1), "web-draining", "x", 0, 1)
    draining["status"] = {"replicas": 1, "observedGeneration": 1}     # a pod terminating
    done = D.new_replicaset(d, older(t, 2), "web-done", "y", 0, 2)
    done["status"] = {"replicas": 0, "observedGeneration": 1}
    d["status"] = {"replicas": 2, "updatedReplicas": 2, "availableReplicas": 2,
                   "observedGeneration": 1}
    deleted = [a.key.name for a in D.reconcile(d, [current, draining, done], NOW)
               if isinstance(a, Delete)]
    assert deleted == ["web-done"]
    d["status"]["availableReplicas"] = 1          # not complete: nothing is trimmed
    assert not any(isinstance(a, Delete) for a in D.reconcile(d, [current, done], NOW))


def _progressing(d):
    return next(c for c in d["status"]["conditions"] if c["type"] == "Progressing")


def _available(d):
    return next(c for c in d["status"]["conditions"] if c["type"] == "Available")


def test_conditions_through_a_rollout():
    c = Cluster(deploy(2))
    c.step()
    assert _progressing(c.d)["reason"] == D.NEW_RS_CREATED
    assert _progressing(c.d)["message"].startswith('Created new replica set "web-')
    assert _available(c.d)["status"] == "False"
    assert _available(c.d)["reason"] == D.MIN_UNAVAILABLE
    c.converge()
    assert _progressing(c.d)["reason"] == D.NEW_RS_AVAILABLE
    assert _progressing(c.d)["message"].endswith("has successfully progressed.")
    assert _available(c.d) | {"lastUpdateTime": "", "lastTransitionTime": ""} == {
        "type": "Available", "status": "True", "reason": D.MIN_AVAILABLE,
        "message": "Deployment has minimum availability.", "lastUpdateTime": "",
        "lastTransitionTime": ""}
    c.set_template("img:2")
    c.step()
    assert _progressing(c.d)["reason"] == D.NEW_RS_CREATED
    c.step()
    assert _progressing(c.d)["reason"] == D.RS_UPDATED
    assert assess(c.d).status == "Progressing"
    c.converge()
    assert _progressing(c.d)["reason"] == D.NEW_RS_AVAILABLE
    assert assess(c.d).status == "Healthy"


def test_stuck_rollout_times_out_and_recovers_on_progress():
    c = Cluster(deploy(2, progressDeadlineSeconds=30))
    c.converge()
    c.available = False                         # the new version never becomes ready
    c.set_template("img:broken")
    c.converge()
    created = _progressing(c.d)
    c.now += 31
    c.step()
    cond = _progressing(c.d)
    assert (cond["status"], cond["reason"]) == ("False", D.TIMED_OUT)
    assert cond["message"].endswith("has timed out progressing.")
    assert cond["lastTransitionTime"] != created["lastTransitionTime"]
    assert assess(c.d).status == "Degraded"
    c.now += 1000
    c.step()                                    # stays timed out, never success
    assert _progressing(c.d)["reason"] == D.TIMED_OUT
    c.available = True                          # a fix makes pods available: progress
    c.set_template("img:2")
    c.converge()
    assert _progressing(c.d)["reason"] == D.NEW_RS_AVAILABLE


def test_no_progress_deadline_means_no_progressing_condition():
    c = Cluster(deploy(1, progressDeadlineSeconds=2**31 - 1))
    c.converge()
    assert [x["type"] for x in c.d["status"]["conditions"]] == ["Available"]


def test_paused_deployment_scales_but_does_not_roll():
    c = Cluster(deploy(2))
    c.converge()
    c.d["spec"]["paused"] = True
    c.set_template("img:2")
    c.step()
    assert c.sizes() == {1: 2}
    assert (_progressing(c.d)["status"], _progressing(c.d)["reason"]) == ("Unknown", D.PAUSED)
    assert assess(c.d).status == "Suspended"
    c.d["spec"]["replicas"] = 4                 # scale still works while paused
    c.step()
    assert c.sizes() == {1: 4}
    c.d["spec"]["paused"] = False
    c.step()
    assert 2 in c.sizes()                       # resumed: the rollout starts
    c.converge()
    assert c.sizes() == {1: 0, 2: 4}


def test_status_fields_rollout_status_reads():
    c = Cluster(deploy(3, strategy=rolling(1, 0)))
    c.converge()
    c.set_template("img:2")
    c.d["metadata"]["generation"] = 7
    c.step()
    st = c.d["status"]
    assert st["observedGeneration"] == 7
    assert (st["replicas"], st["updatedReplicas"], st["readyReplicas"],
            st["availableReplicas"]) == (3, 0, 3, 3)
    c.step()
    st = c.d["status"]
    # 3 old + 1 new pod exist; unavailable counts desired pods of every ReplicaSet
    assert (st["replicas"], st["updatedReplicas"], st["unavailableReplicas"]) == (4, 1, 0)


def test_events_name_each_scaling():
    c = Cluster(deploy(2, strategy=rolling(1, 0)))
    c.converge()
    c.set_template("img:2")
    c.converge()
    new = next(n for n, rs in c.rs.items() if D.revision_of(rs) == 2)
    old = next(n for n, rs in c.rs.items() if D.revision_of(rs) == 1)
    assert f"Scaled up replica set {new} from 0 to 1" in c.events
    assert f"Scaled down replica set {old} from 2 to 1" in c.events
    assert c.events[-1] == f"Scaled down replica set {old} from 1 to 0"


def test_converged_deployment_writes_nothing_new():
    c = Cluster(deploy(2))
    c.converge()
    actions = c.step()
    assert [type(a) for a in actions] == [SetStatus]
    assert actions[0].status == c.d["status"]
    assert not any(isinstance(a, Emit) for a in actions)


def test_config_change_rolls_out_unless_opted_out():
    d = deploy()
    d["spec"]["template"]["spec"]["containers"][0]["envFrom"] = [{"configMapRef": {"name": "c"}}]
    configs = {"c": {"data": {"a": "1"}}}
    lookup = lambda kind, ns, name: configs.get(name)   # noqa: E731
    first = D.template_hash(D.effective_template(d, lookup))
    configs["c"] = {"data": {"a": "2"}}
    second = D.template_hash(D.effective_template(d, lookup))
    assert first != second
    d["metadata"]["annotations"] = {R.CONFIG_ROLLOUT: "false"}
    assert D.template_hash(D.effective_template(d, lookup)) == \
        D.template_hash(D.effective_template(d))


def _with_config(d: dict) -> dict:
    d["spec"]["template"]["spec"]["containers"][0]["envFrom"] = [{"configMapRef": {"name": "c"}}]
    return d


def test_the_config_hash_lives_in_the_deployments_own_template():
    """kubectl finds a Deployment's new ReplicaSet by comparing templates: the hash the
    ReplicaSet carries must be in the Deployment's template too, and stay put."""
    d = _with_config(deploy(2))
    configs = {"c": {"data": {"a": "1"}}}
    lookup = lambda kind, ns, name: configs.get(name)   # noqa: E731
    actions = D.reconcile(d, [], NOW, lookup)
    [rs] = [a.obj for a in actions if isinstance(a, Create)]
    [written] = [a.obj for a in actions if isinstance(a, Update) and a.obj["kind"] == "Deployment"]
    template = written["spec"]["template"]
    assert template["metadata"]["annotations"][R.CONFIG_HASH]
    assert R.comparable_template(rs["spec"]["template"]) == R.comparable_template(template)
    assert "pod-template-hash" not in template["metadata"]["labels"]
    # written back, the next pass writes the Deployment no more and makes no other set
    d = {**written, "metadata": {**written["metadata"], "generation": 2}}
    rs["metadata"]["uid"], rs["metadata"]["creationTimestamp"] = "rs-1", R.iso(NOW)
    again = D.reconcile(d, [rs], NOW + 1, lookup)
    assert not any(isinstance(a, Create) for a in again)
    assert not any(isinstance(a, Update) and a.obj["kind"] == "Deployment"
                   and a.obj["spec"] != d["spec"] for a in again)
    configs["c"] = {"data": {"a": "2"}}       # a config-only change: a new template
    rolled = D.reconcile(d, [rs], NOW + 2, lookup)
    [new] = [a.obj for a in rolled if isinstance(a, Create)]
    [moved] = [a.obj for a in rolled if isinstance(a, Update) and a.obj["kind"] == "Deployment"]
    assert new["metadata"]["name"] != rs["metadata"]["name"]
    assert R.comparable_template(new["spec"]["template"]) == \
        R.comparable_template(moved["spec"]["template"])


def test_a_replicaset_of_the_same_template_is_the_new_one_whatever_named_it():
    """Stored before defaults were (or hashed otherwise): found by its template, as
    Kubernetes' FindNewReplicaSet does, so nothing rolls."""
    d = deploy(2)
    legacy = D.new_replicaset(d, d["spec"]["template"], "web-legacy", "legacy", 2, 1)
    legacy["metadata"].update(uid="rs-1", creationTimestamp=R.iso(NOW))
    legacy["status"] = {"replicas": 2, "availableReplicas": 2, "observedGeneration": 1}
    defaulted = copy.deepcopy(d)
    defaulted["spec"]["template"]["spec"] |= {"dnsPolicy": "ClusterFirst",
                                              "restartPolicy": "Always"}
    actions = D.reconcile(defaulted, [legacy], NOW)
    assert not any(isinstance(a, Create) for a in actions)
    assert [a for a in actions if isinstance(a, Update) and a.obj["kind"] == "ReplicaSet"
            and a.obj["spec"]["replicas"] != 2] == []


@pytest.mark.parametrize("generation, status, done, message", [
    (2, {"observedGeneration": 1}, False, "Waiting for deployment spec update to be observed..."),
    (1, {"observedGeneration": 1, "updatedReplicas": 1, "replicas": 3},
     False, 'Waiting for deployment "web" rollout to finish: 1 out of 3 new replicas have '
            'been updated...'),
    (1, {"observedGeneration": 1, "updatedReplicas": 3, "replicas": 4},
     False, 'Waiting for deployment "web" rollout to finish: 1 old replicas are pending '
            'termination...'),
    (1, {"observedGeneration": 1, "updatedReplicas": 3, "replicas": 3, "availableReplicas": 2},
     False, 'Waiting for deployment "web" rollout to finish: 2 of 3 updated replicas are '
            'available...'),
    (1, {"observedGeneration": 1, "updatedReplicas": 3, "replicas": 3, "availableReplicas": 3},
     True, 'deployment "web" successfully rolled out'),
])
def test_rollout_status_words_it_as_kubectl(generation, status, done, message):
    d = deploy(3)
    d["metadata"]["generation"] = generation
    d["status"] = status
    assert R.rollout_status(d) == (done, message)


def test_rollout_status_fails_on_the_deadline():
    d = deploy(3)
    d["status"] = {"observedGeneration": 1, "conditions": [
        {"type": "Progressing", "status": "False", "reason": D.TIMED_OUT}]}
    with pytest.raises(R.RolloutFailed, match="exceeded its progress deadline"):
        R.rollout_status(d)
