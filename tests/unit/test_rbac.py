"""RBAC for ServiceAccount tokens, as Kubernetes' authorizer decides: bindings to Roles
and ClusterRoles, built-in roles and their aggregation, resourceNames, subresources, the
request's verb, and the 403 message."""

from __future__ import annotations

import pytest

from gitops.api import rbac
from gitops.api.kube.access import review_attributes, verb
from gitops.api.kube.registry import lookup
from gitops.api.kube.request import Target

ROBOT = "system:serviceaccount:apps:robot"
GROUPS = ("system:serviceaccounts", "system:serviceaccounts:apps", "system:authenticated")


def objects(*items):
    by_key = {(o["kind"], o["metadata"].get("namespace", ""), o["metadata"]["name"]): o
              for o in items}
    return (lambda k, ns, n: by_key.get((k, ns, n)),
            lambda k: [o for o in items if o["kind"] == k])


def role(name, rules, ns="apps", kind="Role", labels=None):
    meta = {"name": name, **({"namespace": ns} if kind == "Role" else {}),
            **({"labels": labels} if labels else {})}
    return {"kind": kind, "metadata": meta, "rules": rules}


def binding(name, role_kind, role_name, ns="apps", kind="RoleBinding", sa_ns="apps"):
    meta = {"name": name, **({"namespace": ns} if kind == "RoleBinding" else {})}
    return {"kind": kind, "metadata": meta, "roleRef": {"kind": role_kind, "name": role_name},
            "subjects": [{"kind": "ServiceAccount", "name": "robot", "namespace": sa_ns}]}


def can(attrs, *items) -> bool:
    return rbac.authorize(ROBOT, GROUPS, attrs, *objects(*items))


PODS = rbac.Attributes("list", "", "pods", namespace="apps")


def test_nothing_is_allowed_without_a_binding_but_discovery_and_self_reviews():
    assert not can(PODS)
    assert can(rbac.Attributes("get", path="/apis/apps/v1"))
    assert can(rbac.Attributes("create", "authorization.k8s.io", "selfsubjectaccessreviews"))


def test_a_role_binding_grants_its_role_in_its_namespace_only():
    items = (role("reader", [{"apiGroups": [""], "resources": ["pods"],
                              "verbs": ["get", "list"]}]),
             binding("read", "Role", "reader"))
    assert can(PODS, *items)
    assert not can(rbac.Attributes("list", "", "pods", namespace="other"), *items)
    assert not can(rbac.Attributes("delete", "", "pods", namespace="apps"), *items)
    assert not can(rbac.Attributes("get", "", "pods", "log", namespace="apps"), *items)
    # a binding naming another namespace's ServiceAccount is not the robot's
    assert not can(PODS, items[0], binding("read", "Role", "reader", sa_ns="other"))


def test_resource_names_and_subresources():
    items = (role("one", [{"apiGroups": [""], "resources": ["configmaps", "pods/log"],
                           "resourceNames": ["settings", "web"], "verbs": ["get"]}]),
             binding("b", "Role", "one"))
    assert can(rbac.Attributes("get", "", "configmaps", namespace="apps", name="settings"),
               *items)
    assert not can(rbac.Attributes("get", "", "configmaps", namespace="apps", name="x"),
                   *items)
    assert can(rbac.Attributes("get", "", "pods", "log", namespace="apps", name="web"),
               *items)


def test_built_in_cluster_roles_and_aggregation():
    view = binding("v", "ClusterRole", "view")
    assert can(PODS, view)
    assert not can(rbac.Attributes("get", "", "secrets", namespace="apps", name="s"), view)
    assert not can(rbac.Attributes("create", "", "pods", namespace="apps"), view)
    edit = binding("e", "ClusterRole", "edit")
    assert can(rbac.Attributes("create", "apps", "deployments", namespace="apps"), edit)
    assert can(PODS, edit)                   # edit includes view
    crds = role("crd-viewer", [{"apiGroups": ["example.com"], "resources": ["widgets"],
                                "verbs": ["list"]}], kind="ClusterRole",
                labels={"rbac.authorization.k8s.io/aggregate-to-view": "true"})
    widgets = rbac.Attributes("list", "example.com", "widgets", namespace="apps")
    assert can(widgets, view, crds) and not can(widgets, view)
    admin = binding("a", "ClusterRole", "cluster-admin", kind="ClusterRoleBinding")
    assert can(rbac.Attributes("delete", "", "nodes", name="n1"), admin)


def test_a_cluster_role_binding_grants_everywhere():
    items = (role("pod-reader", [{"apiGroups": [""], "resources": ["pods"],
                                  "verbs": ["list"]}], kind="ClusterRole"),
             binding("all", "ClusterRole", "pod-reader", kind="ClusterRoleBinding"))
    assert can(rbac.Attributes("list", "", "pods", namespace="other"), *items)
    assert can(rbac.Attributes("list", "", "pods"), *items)     # every namespace


def test_the_forbidden_message_is_kubernetes_own():
    attrs = rbac.Attributes("get", "", "secrets", namespace="apps", name="db")
    assert rbac.forbidden_message(ROBOT, attrs) == (
        'secrets "db" is forbidden: User "system:serviceaccount:apps:robot" cannot get '
        'resource "secrets" in API group "" in the namespace "apps"')
    assert rbac.forbidden_message(ROBOT, rbac.Attributes("list", "apps", "deployments")) == (
        'deployments.apps is forbidden: User "system:serviceaccount:apps:robot" cannot list '
        'resource "deployments" in API group "apps" at the cluster scope')
    assert rbac.forbidden_message(ROBOT, rbac.Attributes(
        "get", "", "pods", "log", namespace="apps", name="web")).startswith(
        'pods "web" is forbidden: User "system:serviceaccount:apps:robot" cannot get '
        'resource "pods/log"')


@pytest.mark.parametrize("method, name, sub, watching, expected", [
    ("GET", "web", "", False, "get"), ("GET", "", "", False, "list"),
    ("GET", "", "", True, "watch"), ("POST", "", "", False, "create"),
    ("PUT", "web", "", False, "update"), ("PATCH", "web", "", False, "patch"),
    ("DELETE", "web", "", False, "delete"), ("DELETE", "", "", False, "deletecollection"),
    ("GET", "web", "exec", False, "create"), ("GET", "web", "log", False, "get"),
])
def test_request_verbs(method, name, sub, watching, expected):
    target = Target(lookup("", "v1", "pods"), "apps", name, sub)
    assert verb(method, target, watching) == expected


def test_can_i_questions_become_attributes():
    attrs = review_attributes({"resourceAttributes": {
        "verb": "list", "group": "apps", "resource": "deployments", "namespace": "apps"}})
    assert attrs == rbac.Attributes("list", "apps", "deployments", namespace="apps")
    assert review_attributes({"nonResourceAttributes": {"verb": "get", "path": "/version"}}) \
        == rbac.Attributes("get", path="/version")
