"""serviceaccounts/token (TokenRequest) over HTTP(S): `kubectl create token` gives a token
the API accepts for that ServiceAccount; a token bound to a pod ends with the pod; what
Kubernetes refuses is refused in its words."""

from __future__ import annotations

import pytest

from gitops.api.kube.api import KubeBackends
from gitops.model import ObjectKey
from gitops.store import Registry, SqliteStore
from tests.kube_support import KubeServer

KEY = b"7c" * 32
TOKENS = "/api/v1/namespaces/default/serviceaccounts/{}/token"


@pytest.fixture
def api(tmp_path):
    store = Registry(SqliteStore(tmp_path / "state.db"))
    with KubeServer(store, tmp_path, kube=KubeBackends(token_key=KEY),
                    service_account_key=KEY) as server:
        yield server
    store.close()


def whoami(api, token: str) -> tuple[int, object]:
    status, _, body = api.request(
        "POST", "/apis/authentication.k8s.io/v1/selfsubjectreviews",
        {"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"},
        token=token, secure=True)
    return status, body


def test_kubectl_create_token_speaks_for_the_service_account(api):
    api.store.create({"apiVersion": "v1", "kind": "ServiceAccount",
                      "metadata": {"name": "builder", "namespace": "default"}})
    made = api.kubectl("create", "token", "builder", "--duration", "20m")
    assert made.returncode == 0, made.stderr
    status, review = whoami(api, made.stdout.strip())
    assert status == 201
    assert review["status"]["userInfo"]["username"] == \
        "system:serviceaccount:default:builder"
    missing = api.kubectl("create", "token", "nobody")
    assert missing.returncode != 0 and 'serviceaccounts "nobody" not found' in missing.stderr
    short = api.kubectl("create", "token", "builder", "--duration", "1m")
    assert short.returncode != 0 and "less than 600 seconds" in short.stderr


def test_a_token_bound_to_a_pod_ends_with_it(api):
    pod = api.store.create({"apiVersion": "v1", "kind": "Pod",
                            "metadata": {"name": "web", "namespace": "default"},
                            "spec": {"containers": [{"name": "a", "image": "i"}]}})
    status, _, body = api.request("POST", TOKENS.format("default"), {
        "apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
        "spec": {"expirationSeconds": 3607, "boundObjectRef": {
            "kind": "Pod", "apiVersion": "v1", "name": "web",
            "uid": pod["metadata"]["uid"]}}})
    assert status == 201, body
    assert body["spec"]["expirationSeconds"] == 3607 and body["status"]["expirationTimestamp"]
    token = body["status"]["token"]
    status, review = whoami(api, token)
    assert status == 201
    assert review["status"]["userInfo"]["extra"]["authentication.kubernetes.io/pod-name"] \
        == ["web"]
    api.store.delete(ObjectKey("Pod", "default", "web"))
    assert whoami(api, token)[0] == 401
    # a pod of another ServiceAccount, or one that is not there, gets no token
    api.store.create({"apiVersion": "v1", "kind": "Pod",
                      "metadata": {"name": "other", "namespace": "default"},
                      "spec": {"serviceAccountName": "builder",
                               "containers": [{"name": "a", "image": "i"}]}})
    for ref in ({"kind": "Pod", "name": "other"}, {"kind": "Pod", "name": "gone"}):
        status, _, _ = api.request("POST", TOKENS.format("default"), {
            "apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
            "spec": {"boundObjectRef": ref}})
        assert status in (400, 404)
