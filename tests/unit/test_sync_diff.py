from hypothesis import given, strategies as st

from gitops.model import ObjectKey
from gitops.sync.diff import (MASK, PRUNE_ANNOTATION, Desired, compute_plan, desired_hash,
                              diff_object, mask_secret, normalize)
from gitops.sync.waves import waves


def cm(name="c", data=None, **meta):
    return {"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": name, **meta}, "data": data or {"a": "1"}}


def live_of(obj, **extra_meta):
    """What the store would hold: server fields and a status added."""
    live = normalize(obj)
    live["metadata"].update({"uid": "u", "resourceVersion": "7", "generation": 1,
                             "creationTimestamp": "2026-01-01T00:00:00Z", **extra_meta})
    live["status"] = {"observed": True}
    return live


def test_server_fields_and_defaults_are_not_drift():
    d = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "w"},
         "spec": {"template": {"spec": {"containers": [{"name": "c", "image": "i"}]}}}}
    live = live_of(d)
    live["spec"]["replicas"] = 1                      # a default git does not declare
    live["spec"]["revisionHistoryLimit"] = 10
    assert diff_object(d, live) == ()


def test_changed_field_is_reported_with_path():
    fields = diff_object(cm(data={"a": "2", "b": "3"}), live_of(cm(data={"a": "1"})))
    assert [(f.path, f.desired, f.live) for f in fields] == [
        ("data.a", "2", "1"), ("data.b", "3", None)]


def test_secret_values_are_masked_in_diffs():
    s = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"},
         "data": {"pw": "bmV3"}}
    old = live_of({**s, "data": {"pw": "b2xk"}})
    fields = diff_object(s, old)
    assert [(f.path, f.desired, f.live) for f in fields] == [("data.pw", MASK, MASK)]
    assert mask_secret(old)["data"] == {"pw": MASK}


def test_plan_create_update_unchanged_prune_in_order():
    svc = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s"},
           "spec": {"ports": [{"port": 80}]}}
    desired = [Desired(svc, "svc.yaml", 1), Desired(cm("new"), "a.yaml", 1),
               Desired(cm("same"), "a.yaml", 5), Desired(cm("changed", {"x": "2"}), "a.yaml", 9)]
    gone_deploy = {"apiVersion": "apps/v1", "kind": "Deployment",
                   "metadata": {"name": "old", "namespace": "default"}}
    live = {ObjectKey("ConfigMap", "default", "same"): live_of(cm("same")),
            ObjectKey("ConfigMap", "default", "changed"): live_of(cm("changed", {"x": "1"})),
            ObjectKey("Deployment", "default", "old"): gone_deploy,
            ObjectKey("ConfigMap", "default", "gone"): live_of(cm("gone"))}
    plan = compute_plan(desired, live, {k: "old" for k in live})
    got = [(c.action, c.key.kind, c.key.name) for c in plan.changes]
    assert got == [("update", "ConfigMap", "changed"), ("create", "ConfigMap", "new"),
                   ("unchanged", "ConfigMap", "same"), ("create", "Service", "s"),
                   ("prune", "Deployment", "old"), ("prune", "ConfigMap", "gone")]
    assert plan.has_changes and plan.count("prune") == 2


def test_only_inventory_is_pruned_and_annotation_exempts():
    keep = live_of(cm("keep", annotations={PRUNE_ANNOTATION: "false"}))
    handmade = live_of(cm("handmade"))
    live = {ObjectKey("ConfigMap", "default", "keep"): keep,
            ObjectKey("ConfigMap", "default", "handmade"): handmade}
    plan = compute_plan([], live, {ObjectKey("ConfigMap", "default", "keep"): "h"})
    assert [(c.action, c.key.name) for c in plan.changes] == [("skip", "keep")]


json_leaf = st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=5))
json_value = st.recursive(json_leaf, lambda inner: st.one_of(
    st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=4), inner, max_size=3)),
    max_leaves=15)


@given(data=st.dictionaries(st.text(min_size=1, max_size=5), json_value, max_size=4),
       kind=st.sampled_from(["ConfigMap", "Deployment", "Namespace", "Widget"]))
def test_normalised_desired_against_itself_is_never_drift(data, kind):
    obj = {"apiVersion": "v1", "kind": kind, "metadata": {"name": "x"}, "spec": data}
    assert diff_object(obj, normalize(obj)) == ()
    assert diff_object(obj, live_of(obj)) == ()


def test_difference_on_object_git_did_not_change_is_drift_with_lines():
    declared = Desired(cm("c", {"a": "1"}), "cm.yaml", 1, {"data.a": 6})
    key = ObjectKey("ConfigMap", "default", "c")
    edited = live_of(cm("c", {"a": "edited"}))
    same_in_git = compute_plan([declared], {key: edited}, {key: desired_hash(declared.body)})
    [change] = same_in_git.changes
    assert change.action == "update" and change.drift == "modified"
    assert [(f.path, f.desired, f.live, f.line) for f in change.fields] == [
        ("data.a", "1", "edited", 6)]
    git_moved = compute_plan([declared], {key: edited}, {key: "an-older-hash"})
    assert git_moved.changes[0].drift == ""
    deleted = compute_plan([declared], {}, {key: desired_hash(declared.body)})
    assert (deleted.changes[0].action, deleted.changes[0].drift) == ("create", "missing")
    new = compute_plan([declared], {}, {})
    assert new.changes[0].drift == ""


def test_waves_order_by_annotation_then_kind():
    def with_wave(obj, wave):
        obj["metadata"]["annotations"] = {"gitops.io/sync-wave": str(wave)}
        return obj
    svc = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s"}, "spec": {}}
    argo = cm("argo")
    argo["metadata"]["annotations"] = {"argocd.argoproj.io/sync-wave": "-1"}
    plan = compute_plan([Desired(with_wave(cm("late"), 2)), Desired(svc), Desired(cm("early")),
                         Desired(argo)], {}, {})
    got = [(w, [c.key.name for c in changes]) for w, changes in waves(plan.changes)]
    assert got == [(-1, ["argo"]), (0, ["early", "s"]), (2, ["late"])]
