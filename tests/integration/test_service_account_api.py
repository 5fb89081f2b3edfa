"""A pod's ServiceAccount token against the real API over HTTP(S): accepted for its
ServiceAccount (whoami, can-i, discovery), refused what RBAC does not grant with
Kubernetes' 403, never the agent's own verbs, and refused once its pod is gone."""

from __future__ import annotations

import time

import pytest

from gitops.agent.serviceaccount import TokenIssuer
from gitops.model import ObjectKey
from gitops.store import Registry, SqliteStore
from tests.kube_support import TOKEN, KubeServer, run_kubectl

KEY = b"9f" * 32


@pytest.fixture
def api(tmp_path):
    store = Registry(SqliteStore(tmp_path / "state.db"))
    with KubeServer(store, tmp_path, service_account_key=KEY) as server:
        yield server
    store.close()


def pod_token(store, name="web", sa="default") -> str:
    pod = store.create({"apiVersion": "v1", "kind": "Pod",
                        "metadata": {"name": name, "namespace": "default"},
                        "spec": {"serviceAccountName": sa,
                                 "containers": [{"name": "a", "image": "i"}]}})
    issuer = TokenIssuer(KEY, lambda k, ns, n: store.get(ObjectKey(k, ns, n)),
                         time.time)
    return issuer.token(pod, {}).decode()


def test_a_pods_token_speaks_for_its_service_account(api):
    token = pod_token(api.store)
    status, _, review = api.request(
        "POST", "/apis/authentication.k8s.io/v1/selfsubjectreviews",
        {"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"},
        token=token, secure=True)
    assert status == 201
    info = review["status"]["userInfo"]
    assert info["username"] == "system:serviceaccount:default:default"
    assert "system:serviceaccounts:default" in info["groups"]
    assert info["extra"]["authentication.kubernetes.io/pod-name"] == ["web"]
    assert api.request("GET", "/version", token=token)[0] == 200
    assert api.request("GET", "/apis", token=token)[0] == 200


def test_what_rbac_does_not_grant_is_forbidden_in_kubernetes_words(api):
    token = pod_token(api.store)
    status, _, body = api.request("GET", "/api/v1/namespaces/default/secrets", token=token)
    assert status == 403 and body["reason"] == "Forbidden"
    assert body["message"] == (
        'secrets is forbidden: User "system:serviceaccount:default:default" cannot list '
        'resource "secrets" in API group "" in the namespace "default"')
    status, _, body = api.request(
        "POST", "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews",
        {"apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectAccessReview",
         "spec": {"resourceAttributes": {"verb": "list", "resource": "secrets",
                                         "namespace": "default"}}}, token=token)
    assert status == 201 and body["status"]["allowed"] is False
    # never the agent's own verbs
    assert api.request("GET", "/gitops/v1/status", token=token)[0] == 403
    assert api.request("POST", "/gitops/v1/shutdown", token=token)[0] == 403
    # the agent's token still may do everything
    assert api.request("GET", "/api/v1/namespaces/default/secrets", token=TOKEN)[0] == 200


def test_kubectl_in_a_pod_sees_its_rights(api):
    token = pod_token(api.store)
    kubeconfig = (api.root / "kubeconfig").read_text().replace(TOKEN, token)
    (api.root / "pod-kubeconfig").write_text(kubeconfig)
    who = run_kubectl(api.root / "pod-kubeconfig", "auth", "whoami", "-o",
                      "jsonpath={.status.userInfo.username}")
    assert who.stdout == "system:serviceaccount:default:default", who.stderr
    denied = run_kubectl(api.root / "pod-kubeconfig", "get", "pods")
    assert denied.returncode != 0
    assert 'User "system:serviceaccount:default:default" cannot list resource "pods"' \
        in denied.stderr
    can = run_kubectl(api.root / "pod-kubeconfig", "auth", "can-i", "list", "pods")
    assert can.stdout.strip() == "no"


def test_a_token_outlives_neither_its_pod_nor_a_forged_signature(api):
    token = pod_token(api.store)
    head, body, _ = token.split(".")
    assert api.request("GET", "/version", token=f"{head}.{body}.forged")[0] == 401
    api.store.delete(ObjectKey("Pod", "default", "web"))
    assert api.request("GET", "/version", token=token)[0] == 401


def rbac_object(kind: str, name: str, body: dict, namespace: str | None = "default") -> dict:
    meta = {"name": name, **({"namespace": namespace} if namespace else {})}
    return {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": kind, "metadata": meta,
            **body}


def test_rbac_objects_from_git_grant_what_they_say(api):
    token = pod_token(api.store)
    sa = [{"kind": "ServiceAccount", "name": "default", "namespace": "default"}]
    # a RoleBinding to the built-in view role: pods readable, Secrets still not
    api.store.create(rbac_object("RoleBinding", "viewers", {
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                    "name": "view"}, "subjects": sa}))
    assert api.request("GET", "/api/v1/namespaces/default/pods", token=token)[0] == 200
    assert api.request("GET", "/api/v1/namespaces/default/secrets", token=token)[0] == 403
    assert api.request("DELETE", "/api/v1/namespaces/default/pods/web", token=token)[0] \
        == 403
    # a ClusterRole of the repo's own, bound cluster-wide
    api.store.create(rbac_object("ClusterRole", "secret-reader", {"rules": [
        {"apiGroups": [""], "resources": ["secrets"], "verbs": ["list"]}]}, None))
    api.store.create(rbac_object("ClusterRoleBinding", "read-secrets", {
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                    "name": "secret-reader"}, "subjects": sa}, None))
    assert api.request("GET", "/api/v1/namespaces/default/secrets", token=token)[0] == 200
    assert api.request("GET", "/api/v1/secrets", token=token)[0] == 200
