"""The pure rules of issue 16: sync and compare options, hook classification, the jq path
subset and ignoreDifferences, hook and wave states, LoadBalancer status."""

from __future__ import annotations

import pytest

from gitops.model import ObjectKey
from gitops.proxy.loadbalancer import load_balancer_statuses
from gitops.sync import hooks, options
from gitops.sync.apply import retained
from gitops.sync.gate import FAILED, RUNNING, SUCCEEDED, failed_for_good, hook_state
from gitops.sync.ignore import (
    IgnoreRule,
    ignored,
    keep_live,
    load_rules,
    parse_flag,
    pointer_path,
    without,
)
from gitops.sync.jqpath import JqError, compile_path
from gitops.sync.live import heal_delay


def annotated(**annotations: str) -> dict:
    return {"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "x", "annotations": annotations}}


# -- options ---------------------------------------------------------------------------------
@pytest.mark.parametrize("value,want", [
    ("Prune=false", {"prune": False}),
    (" Prune=false , ServerSideApply=true ", {"prune": False, "server_side_apply": True}),
    ("Replace=true,Force=true", {"replace": True, "force": True}),
    ("PrunePropagationPolicy=Orphan", {"prune_propagation": "orphan"}),
    ("ApplyOutOfSyncOnly=true,SkipDryRunOnMissingResource=true", {}),
    ("Validate=false,CreateNamespace=true,PruneLast=true",
     {"validate": False, "create_namespace": True, "prune_last": True}),
])
def test_sync_options_parse(value, want):
    assert options.parse(value.split(",")) == (want, [])


@pytest.mark.parametrize("value,problem", [
    ("Prune=confirm", "Prune=confirm waits for a person"),
    ("Delete=confirm", "Delete=confirm waits for a person"),
    ("Prune=maybe", 'Prune="maybe": true or false'),
    ("Replase=true", 'unknown sync option "Replase=true"'),
    ("Prune", 'unknown sync option "Prune"'),
    ("FailOnSharedResource=true", "an option of a whole app"),
    ("PrunePropagationPolicy=later", "one of background, foreground, orphan"),
])
def test_bad_sync_options_are_named(value, problem):
    _, problems = options.parse([value])
    assert len(problems) == 1 and problem in problems[0]


def test_object_options_override_the_apps_one_by_one():
    app = options.app_options(["Prune=false", "ServerSideApply=true", "IgnoreExtraneous"])
    assert (app.prune, app.server_side_apply, app.ignore_extraneous) == (False, True, True)
    obj = annotated(**{"argocd.argoproj.io/sync-options": "Prune=true"})
    mine = options.options_of(obj, app)
    assert (mine.prune, mine.server_side_apply) == (True, True)
    assert options.options_of(annotated(**{"gitops.io/prune": "false"})).prune is False
    assert options.describe(mine) == "Prune=true,ServerSideApply=true,IgnoreExtraneous=true"
    with pytest.raises(ValueError, match="Prune=confirm"):
        options.app_options(["Prune=confirm"])


def test_delete_false_and_helm_keep_are_retained_when_the_app_goes():
    assert retained(annotated(**{"argocd.argoproj.io/sync-options": "Delete=false"}))
    assert retained(annotated(**{"helm.sh/resource-policy": "keep"}))
    assert not retained(annotated())


def test_option_problems_name_the_annotation():
    obj = annotated(**{"argocd.argoproj.io/compare-options": "IgnoreExtraneous,Nope"})
    assert options.problems(obj) == [
        ('metadata.annotations["argocd.argoproj.io/compare-options"]',
         'unknown compare option "Nope" (known: IgnoreExtraneous, IncludeMutationWebhook, '
         'ServerSideDiff)')]


# -- hooks -----------------------------------------------------------------------------------
@pytest.mark.parametrize("annotations,role,phases,policies,wave", [
    ({}, "object", None, None, None),
    ({"argocd.argoproj.io/hook": "PreSync"}, "hook", ("PreSync",),
     {"BeforeHookCreation"}, 0),
    ({"argocd.argoproj.io/hook": "PreSync,PostSync",
      "argocd.argoproj.io/hook-delete-policy": "HookSucceeded,HookFailed",
      "argocd.argoproj.io/sync-wave": "-2"}, "hook", ("PreSync", "PostSync"),
     {"HookSucceeded", "HookFailed"}, -2),
    ({"helm.sh/hook": "pre-install,pre-upgrade", "helm.sh/hook-weight": "5",
      "helm.sh/hook-delete-policy": "hook-succeeded"}, "hook", ("PreSync",),
     {"HookSucceeded"}, 5),
    ({"helm.sh/hook": "post-install"}, "hook", ("PostSync",), {"BeforeHookCreation"}, 0),
    # Argo CD's annotation wins over Helm's
    ({"helm.sh/hook": "pre-install", "argocd.argoproj.io/hook": "Sync"}, "hook", ("Sync",),
     {"BeforeHookCreation"}, 0),
    ({"helm.sh/hook": "crd-install"}, "object", None, None, None),
])
def test_hook_classification(annotations, role, phases, policies, wave):
    got_role, what, problems = hooks.classify(annotated(**annotations))
    assert (got_role, problems) == (role, [])
    if role == "hook":
        assert what == (phases, frozenset(policies), wave)


@pytest.mark.parametrize("annotations,reason", [
    ({"argocd.argoproj.io/hook": "Skip"}, "Skip"),
    ({"helm.sh/hook": "test"}, "never deployed by a sync"),
    ({"helm.sh/hook": "test-success"}, "never deployed by a sync"),
    ({"helm.sh/hook": "pre-delete"}, "never deployed by a sync"),
    ({"argocd.argoproj.io/hook": "PostDelete"}, "when an app is deleted"),
])
def test_hooks_never_deployed_by_a_sync(annotations, reason):
    role, why, problems = hooks.classify(annotated(**annotations))
    assert role == "skip" and reason in why and problems == []


@pytest.mark.parametrize("annotations,field,problem", [
    ({"argocd.argoproj.io/hook": "Presync"}, "argocd.argoproj.io/hook", 'unknown hook "Presync"'),
    ({"helm.sh/hook": "pre-instal"}, "helm.sh/hook", 'unknown Helm hook "pre-instal"'),
    ({"argocd.argoproj.io/hook": "Sync", "argocd.argoproj.io/hook-delete-policy": "Always"},
     "argocd.argoproj.io/hook-delete-policy", 'unknown hook delete policy "Always"'),
    ({"helm.sh/hook": "pre-install", "helm.sh/hook-weight": "first"}, "helm.sh/hook-weight",
     '"first" is not an integer'),
])
def test_bad_hook_annotations_are_named(annotations, field, problem):
    _, _, problems = hooks.classify(annotated(**annotations))
    [(path, message)] = problems
    assert path == f'metadata.annotations["{field}"]' and problem in message


def test_generated_names_follow_kubernetes():
    name = hooks.generated_name("a" * 70 + "-")
    assert len(name) == 63 and name.startswith("a" * 58)
    assert set(name[58:]) <= set("bcdfghjklmnpqrstvwxz2456789")


# -- jq paths and ignoreDifferences --------------------------------------------------------
OBJ = {"spec": {"replicas": 3, "template": {"spec": {
    "initContainers": [{"name": "init"}, {"name": "istio-init", "image": "proxy:1"}],
    "containers": [{"name": "web", "env": [{"name": "OTEL_A"}, {"name": "B"}]}]}}},
    "metadata": {"annotations": {"a.b/c": "1"}},
    "webhooks": [{"clientConfig": {"caBundle": "x"}}, {"name": "no-config"}]}


@pytest.mark.parametrize("expr,paths", [
    (".spec.replicas", [("spec", "replicas")]),
    ('.metadata.annotations["a.b/c"]', [("metadata", "annotations", "a.b/c")]),
    ('.metadata.annotations."a.b/c"', [("metadata", "annotations", "a.b/c")]),
    (".webhooks[]?.clientConfig.caBundle", [("webhooks", 0, "clientConfig", "caBundle")]),
    ('.spec.template.spec.initContainers[] | select(.name == "istio-init")',
     [("spec", "template", "spec", "initContainers", 1)]),
    ('.spec.template.spec.containers[].env[] | select(.name | startswith("OTEL_"))',
     [("spec", "template", "spec", "containers", 0, "env", 0)]),
    ('.spec.template.spec.initContainers[] | select(.image != null and (.name | test("^ist")))'
     ' | .image', [("spec", "template", "spec", "initContainers", 1, "image")]),
    ('.spec.template.spec.initContainers[] | select(.name == "init" | not)',
     [("spec", "template", "spec", "initContainers", 1)]),
    (".spec.template.spec.initContainers[-1].name",
     [("spec", "template", "spec", "initContainers", 1, "name")]),
    (".nothing.here", []),
])
def test_jq_paths(expr, paths):
    assert compile_path(expr).paths(OBJ) == paths


@pytest.mark.parametrize("expr", [".a | length", "$ENV.HOME", "del(.a)", ".a[1:2]",
                                  "[.a]", ".a | env", "x" * 1001, ""])
def test_jq_beyond_paths_is_refused(expr):
    with pytest.raises(JqError):
        compile_path(expr)


def test_ignored_fields_are_left_out_and_keep_their_live_value():
    rule = parse_flag("Deployment/web:/spec/replicas")
    key = ObjectKey("Deployment", "default", "web")
    assert rule.matches(key) and not rule.matches(ObjectKey("Deployment", "default", "db"))
    jq = IgnoreRule("Deployment", jq_paths=(compile_path(
        '.spec.template.spec.initContainers[] | select(.name == "istio-init")'),))
    paths = ignored([rule, jq], key, OBJ)
    stripped = without(OBJ, paths)
    assert "replicas" not in stripped["spec"]
    assert stripped["spec"]["template"]["spec"]["initContainers"] == [{"name": "init"}]
    assert OBJ["spec"]["replicas"] == 3                 # the original is untouched
    desired = {"spec": {"replicas": 1, "template": {"spec": {"initContainers": [
        {"name": "init"}]}}}}
    kept = keep_live(desired, OBJ, paths, ignored([rule, jq], key, desired))
    assert kept["spec"]["replicas"] == 3
    assert [c["name"] for c in kept["spec"]["template"]["spec"]["initContainers"]] == \
        ["init", "istio-init"]


def test_fields_owned_by_named_managers_are_ignored():
    live = {"spec": {"replicas": 4, "paused": False}, "metadata": {"managedFields": [
        {"manager": "hpa-controller", "fieldsV1": {"f:spec": {"f:replicas": {}}}},
        {"manager": "gitops", "fieldsV1": {"f:spec": {"f:paused": {}}}}]}}
    rule = IgnoreRule("Deployment", managers=("hpa-controller",))
    assert ignored([rule], ObjectKey("Deployment", "default", "w"), live) == [
        ("spec", "replicas")]


def test_pointers_and_rule_files():
    assert pointer_path("/metadata/annotations/a~1b~0c") == ["metadata", "annotations", "a/b~c"]
    with pytest.raises(ValueError):
        pointer_path("spec/replicas")
    rules, errors = load_rules({"ignoreDifferences": [
        {"group": "apps", "kind": "Deployment", "jsonPointers": ["/spec/replicas"]},
        {"kind": "Service"}, {"kind": "X", "jsonPointers": ["x"], "color": "red"}]},
        "ignore.yaml", {"ignoreDifferences[2]": 7})
    assert [r.kind for r in rules] == ["Deployment"] and rules[0].group == "apps"
    assert [(e.path, e.line) for e in errors] == [
        ("ignoreDifferences[1]", 1), ("ignoreDifferences[2].color", 7),
        ("ignoreDifferences[2].jsonPointers[0]", 7)]
    assert not rules[0].matches(ObjectKey("Deployment", "default", "w"), "extensions/v1beta1")
    assert rules[0].matches(ObjectKey("Deployment", "default", "w"), "apps/v1")


# -- hook states, the wave gate, self-heal back-off, load balancers -------------------------
def job(condition: str | None) -> dict:
    conditions = [{"type": condition, "status": "True", "message": f"job {condition}"}] \
        if condition else []
    return {"kind": "Job", "metadata": {"name": "j"}, "status": {"conditions": conditions}}


@pytest.mark.parametrize("obj,state", [
    (job(None), RUNNING), (job("Complete"), SUCCEEDED), (job("Failed"), FAILED),
    ({"kind": "Pod", "metadata": {"name": "p"}, "status": {"phase": "Succeeded"}}, SUCCEEDED),
    ({"kind": "Pod", "metadata": {"name": "p"}, "status": {"phase": "Failed"}}, FAILED),
    ({"kind": "ConfigMap", "metadata": {"name": "c"}}, SUCCEEDED),
    (None, RUNNING),
])
def test_hook_states(obj, state):
    assert hook_state(obj)[0] == state


def test_a_failed_job_fails_for_good_a_running_one_does_not():
    assert failed_for_good(job("Failed")) == "job Failed"
    assert failed_for_good(job(None)) == "" and failed_for_good(None) == ""


def test_self_heal_backs_off_by_three_up_to_five_minutes():
    assert [heal_delay(2.0, n) for n in (1, 2, 3, 4, 5, 6)] == [2, 6, 18, 54, 162, 300]


def test_a_load_balancer_gets_the_node_address_once_its_node_ports_listen():
    svc = {"kind": "Service", "metadata": {"name": "web", "namespace": "default"},
           "spec": {"type": "LoadBalancer", "ports": [
               {"port": 80, "nodePort": 30080}, {"port": 53, "nodePort": 30053,
                                                 "protocol": "UDP"}]},
           "status": {"loadBalancer": {}}}
    key = ObjectKey("Service", "default", "web")
    assert load_balancer_statuses([svc], {("127.0.0.1", 30080)}, "127.0.0.1") == {}
    both = {("127.0.0.1", 30080), ("127.0.0.1", 30053, "UDP")}
    status = load_balancer_statuses([svc], both, "127.0.0.1")[key]
    assert status == {"loadBalancer": {"ingress": [{"ip": "127.0.0.1"}]}}
    published = {**svc, "status": status}
    assert load_balancer_statuses([published], both, "127.0.0.1") == {}
    # no longer listening (or no longer a LoadBalancer): the address goes
    assert load_balancer_statuses([published], set(), "127.0.0.1") == {key: {}}


def test_service_status_says_which_listener_cannot_bind():
    from gitops.model import ObjectKey
    from gitops.proxy.loadbalancer import bind_failure, service_statuses
    from gitops.proxy.services import listen_failures
    svc = {"kind": "Service", "metadata": {"name": "web", "namespace": "shop"},
           "spec": {"type": "NodePort", "ports": [{"name": "http", "port": 80,
                                                   "nodePort": 30080}]}}
    key = ObjectKey("Service", "shop", "web")
    failures = listen_failures({("127.0.0.1", 30080): "[Errno 98] address already in use"},
                               {("127.0.0.1", 30080): "shop/web:http"})
    assert failures == {key: "cannot listen on 127.0.0.1:30080 for port http: "
                             "[Errno 98] address already in use"}
    status = service_statuses([svc], set(), "127.0.0.1", failures, "2026-01-01T00:00:00Z")[key]
    [cond] = status["conditions"]
    assert (cond["type"], cond["status"], cond["reason"]) == \
        ("ProxyListening", "False", "BindFailed")
    assert bind_failure({}, status) == failures[key]           # new: a Warning event
    failed = {**svc, "status": status}
    assert service_statuses([failed], set(), "127.0.0.1", failures, "2026-01-01T00:01:00Z") \
        == {}                                                  # unchanged: nothing written
    assert bind_failure(status, status) is None                # and no second event
    assert service_statuses([failed], set(), "127.0.0.1", {}, "x") == {key: {}}   # bound
