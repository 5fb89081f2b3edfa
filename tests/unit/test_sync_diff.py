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


def deployment(**spec):
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "w"},
            "spec": {"selector": {"matchLabels": {"app": "w"}},
                     "template": {"metadata": {"labels": {"app": "w"}},
                                  "spec": {"containers": [{"name": "c", "image": "i:1"}]}},
                     **spec}}


def test_fields_git_leaves_out_are_never_drift_nor_are_explicit_defaults():
    # As kubectl apply and Argo CD: what git does not declare belongs to whoever sets it
    # (kubectl scale, an autoscaler); git's own fields are compared, defaults included.
    d = deployment()                          # git leaves replicas out: 1 by default
    assert diff_object(d, live_of(d)) == ()
    scaled = live_of(d)
    scaled["spec"]["replicas"] = 5
    assert diff_object(d, scaled) == ()
    explicit_default = live_of(d)             # a client that writes every default
    explicit_default["spec"].update({"replicas": 1, "revisionHistoryLimit": 10,
                                     "strategy": {"type": "RollingUpdate"}})
    explicit_default["spec"]["template"]["spec"]["containers"][0].update(
        {"imagePullPolicy": "IfNotPresent", "terminationMessagePath": "/dev/termination-log"})
    explicit_default["spec"]["template"]["spec"].update({"restartPolicy": "Always",
                                                         "dnsPolicy": "ClusterFirst"})
    assert diff_object(d, explicit_default) == ()
    other_policy = live_of(d)
    other_policy["spec"]["template"]["spec"]["containers"][0]["imagePullPolicy"] = "Always"
    assert diff_object(d, other_policy) == ()
    declared = deployment()
    declared["spec"]["replicas"] = 2
    rescaled = live_of(declared)
    rescaled["spec"]["replicas"] = 5
    assert [(f.path, f.desired, f.live) for f in diff_object(declared, rescaled)] == [
        ("spec.replicas", 2, 5)]


def test_allocated_node_port_and_cluster_ip_are_not_drift_but_a_changed_declared_port_is():
    svc = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s"},
           "spec": {"type": "NodePort", "selector": {"app": "w"}, "ports": [{"port": 80}]}}
    live = live_of(svc)
    live["spec"]["clusterIP"] = "10.96.0.10"
    live["spec"]["ports"] = [{"port": 80, "nodePort": 30080, "protocol": "TCP",
                              "targetPort": 80}]
    assert diff_object(svc, live) == ()
    live["spec"]["ports"][0]["targetPort"] = 8080       # git leaves targetPort out
    assert diff_object(svc, live) == ()
    live["spec"]["ports"][0]["port"] = 8000
    assert [(f.path, f.desired, f.live) for f in diff_object(svc, live)] == [
        ("spec.ports[0].port", 80, 8000)]
    live["spec"]["ports"][0]["port"] = 80
    live["spec"]["ports"].append({"port": 81})          # an extra port: the list differs
    assert [f.path for f in diff_object(svc, live)] == ["spec.ports"]


def test_job_work_queue_keeps_completions_unset():
    from gitops.admission.defaults import with_defaults
    queue = {"kind": "Job", "spec": {"parallelism": 3, "template": {"spec": {}}}}
    assert "completions" not in with_defaults(queue)["spec"]
    plain = {"kind": "Job", "spec": {"template": {"spec": {}}}}
    assert with_defaults(plain)["spec"]["completions"] == 1


names = st.from_regex(r"[a-z][a-z0-9-]{0,8}", fullmatch=True)
containers = st.lists(st.fixed_dictionaries(
    {"name": names, "image": st.sampled_from(["busybox", "b:1", "b:latest", "r/b@sha256:0"])},
    optional={"imagePullPolicy": st.sampled_from(["Always", "IfNotPresent", "Never"]),
              "ports": st.lists(st.fixed_dictionaries(
                  {"containerPort": st.integers(1, 65535)},
                  optional={"protocol": st.sampled_from(["TCP", "UDP"])}), max_size=2),
              "args": st.lists(st.text(max_size=6), max_size=3),
              "readinessProbe": st.fixed_dictionaries(
                  {"httpGet": st.fixed_dictionaries({"port": st.integers(1, 65535)})},
                  optional={"periodSeconds": st.integers(1, 60)})}),
    min_size=1, max_size=3)
pod_specs = st.fixed_dictionaries({"containers": containers}, optional={
    "restartPolicy": st.sampled_from(["Always", "OnFailure", "Never"]),
    "terminationGracePeriodSeconds": st.integers(0, 120)})
workloads = st.builds(
    lambda kind, name, replicas, spec: {
        "apiVersion": "apps/v1", "kind": kind, "metadata": {"name": name},
        "spec": {**({"replicas": replicas} if replicas is not None else {}),
                 "selector": {"matchLabels": {"app": name}},
                 "template": {"metadata": {"labels": {"app": name}}, "spec": spec}}},
    st.sampled_from(["Deployment", "StatefulSet", "ReplicaSet"]), names,
    st.none() | st.integers(0, 10), pod_specs)
services = st.builds(
    lambda name, type_, ports: {"apiVersion": "v1", "kind": "Service",
                                "metadata": {"name": name},
                                "spec": {"type": type_, "ports": ports}},
    names, st.sampled_from(["ClusterIP", "NodePort"]),
    st.lists(st.fixed_dictionaries({"port": st.integers(1, 65535)}, optional={
        "targetPort": st.integers(1, 65535), "protocol": st.sampled_from(["TCP", "UDP"])}),
        min_size=1, max_size=3))


@given(obj=st.one_of(workloads, services))
def test_realistic_objects_against_themselves_and_their_defaulted_form_are_never_drift(obj):
    from gitops.admission.defaults import with_defaults
    assert diff_object(obj, normalize(obj)) == ()
    assert diff_object(obj, live_of(obj)) == ()
    assert diff_object(obj, live_of(with_defaults(obj))) == ()   # server filled defaults
    declared = Desired(obj, "x.yaml", 1)
    plan = compute_plan([declared], {declared.key: live_of(with_defaults(obj))},
                        {declared.key: desired_hash(obj)})
    assert [c.action for c in plan.changes] == ["unchanged"] and not plan.drifted


def test_memo_skips_only_pairs_whose_contents_are_the_same():
    d = deployment(replicas=2)
    declared = Desired(d, "web.yaml", 1)
    key = declared.key
    memo: dict = {}
    live = live_of(d)
    assert compute_plan([declared], {key: live}, {}, memo=memo).changes[0].action == "unchanged"
    assert key in memo
    scaled = live_of(d)
    scaled["spec"]["replicas"] = 3
    scaled["metadata"]["resourceVersion"] = "8"        # any write bumps it
    [change] = compute_plan([declared], {key: scaled}, {}, memo=memo).changes
    assert change.action == "update" and [f.path for f in change.fields] == ["spec.replicas"]
    moved = Desired(d, "other.yaml", 4, {"spec": 9})   # same object, declared elsewhere
    [change] = compute_plan([moved], {key: scaled}, {}, memo=memo).changes
    assert change.fields[0].line == 9
