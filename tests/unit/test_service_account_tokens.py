"""ServiceAccount tokens: minting and verifying bound tokens, the token volume a pod gets
(or not: automountServiceAccountToken), projected volumes' files, and the API's
authentication of a pod's token against the store."""

from __future__ import annotations

import base64
import json

import pytest

from gitops.agent.runtime import RuntimeFailure
from gitops.agent.serviceaccount import (ROOT_CA, RequestedTokens, TokenIssuer, token_mount,
                                         with_token_volume)
from gitops.agent.volumes import file_sets
from gitops.api.serviceaccounts import authenticate
from gitops.model import ObjectKey, satoken
from gitops.testing import FakeClock, memory_store

KEY = b"k" * 64
NOW = 1_800_000_000


def claims(**over) -> satoken.Claims:
    base = dict(namespace="apps", service_account="robot", service_account_uid="sa-1",
                pod="web", pod_uid="pod-1", issued_at=NOW, expires_at=NOW + 3600)
    return satoken.Claims(**{**base, **over})


def payload(token: str) -> dict:
    body = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))


# -- tokens ---------------------------------------------------------------------------------
def test_a_token_carries_kubernetes_claims_and_verifies():
    token = satoken.mint(KEY, claims())
    p = payload(token)
    assert p["sub"] == "system:serviceaccount:apps:robot"
    assert p["kubernetes.io"] == {"namespace": "apps",
                                  "serviceaccount": {"name": "robot", "uid": "sa-1"},
                                  "pod": {"name": "web", "uid": "pod-1"}}
    assert p["aud"] == [satoken.AUDIENCE] and p["exp"] == NOW + 3600
    got = satoken.verify(KEY, token, NOW + 10)
    assert got == claims()
    assert got.groups == ("system:serviceaccounts", "system:serviceaccounts:apps",
                          "system:authenticated")


@pytest.mark.parametrize("why, token, now, audience", [
    ("expired", satoken.mint(KEY, claims()), NOW + 3600, satoken.AUDIENCE),
    ("not yet valid", satoken.mint(KEY, claims()), NOW - 120, satoken.AUDIENCE),
    ("another key", satoken.mint(b"x" * 64, claims()), NOW, satoken.AUDIENCE),
    ("another audience", satoken.mint(KEY, claims(audiences=("vault",))), NOW,
     satoken.AUDIENCE),
    ("garbage", "a.b.c", NOW, satoken.AUDIENCE),
])
def test_bad_tokens_are_refused(why, token, now, audience):
    assert satoken.verify(KEY, token, now, audience) is None, why


def test_a_tampered_payload_is_refused():
    head, _, sig = satoken.mint(KEY, claims()).split(".")
    forged = base64.urlsafe_b64encode(json.dumps(
        {**payload(satoken.mint(KEY, claims())), "sub": "system:masters"}).encode()).decode()
    assert satoken.verify(KEY, f"{head}.{forged.rstrip('=')}.{sig}", NOW) is None


@pytest.mark.parametrize("pod, sa, mounted", [
    ({}, None, True),
    ({"automountServiceAccountToken": False}, None, False),
    ({}, {"automountServiceAccountToken": False}, False),
    ({"automountServiceAccountToken": True}, {"automountServiceAccountToken": False}, True),
])
def test_automount_pod_wins_then_service_account_then_yes(pod, sa, mounted):
    assert satoken.automounts(pod, sa) is mounted


def test_expiration_is_kept_within_what_kubernetes_allows():
    assert satoken.expiration({}) == satoken.DEFAULT_EXPIRATION
    assert satoken.expiration({"expirationSeconds": 60}) == satoken.MIN_EXPIRATION
    assert satoken.expiration({"expirationSeconds": 7200}) == 7200


# -- the pod's token volume -----------------------------------------------------------------
def pod(**spec) -> dict:
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "web", "namespace": "apps", "uid": "pod-1"},
            "spec": {"containers": [{"name": "app", "image": "i"}], **spec}}


def lookup_of(objects: dict):
    return lambda kind, ns, name: objects.get((kind, ns, name))


def test_the_token_volume_is_added_unless_automount_is_off():
    sa_off = {("ServiceAccount", "apps", "robot"):
              {"metadata": {"name": "robot", "uid": "sa-1"},
               "automountServiceAccountToken": False}}
    with_volume = with_token_volume(pod(), lookup_of({}))
    names = [v["name"] for v in with_volume["spec"]["volumes"]]
    assert names == ["kube-api-access-" + names[0].rsplit("-", 1)[1]]
    assert token_mount(with_volume, with_volume["spec"]["containers"][0]) == names[0]
    assert "volumes" not in with_token_volume(
        pod(automountServiceAccountToken=False), lookup_of({}))["spec"]
    assert "volumes" not in with_token_volume(pod(serviceAccountName="robot"),
                                              lookup_of(sa_off))["spec"]
    # a container mounting its own volume at the standard path keeps it
    own = with_token_volume(pod(containers=[{"name": "app", "image": "i", "volumeMounts": [
        {"name": "mine", "mountPath": satoken.MOUNT_PATH}]}]), lookup_of({}))
    assert token_mount(own, own["spec"]["containers"][0]) is None


def test_the_token_volume_holds_token_ca_and_namespace():
    clock = FakeClock(NOW)
    objects = {("ConfigMap", "apps", ROOT_CA): {"data": {"ca.crt": "PEM"}},
               ("ServiceAccount", "apps", "robot"): {"metadata": {"name": "robot",
                                                                  "uid": "sa-1"}}}
    issuer = TokenIssuer(KEY, lookup_of(objects), clock)
    p = with_token_volume(pod(serviceAccountName="robot"), lookup_of(objects))
    (fs,) = file_sets(p, lookup_of(objects), issuer.token)
    assert set(fs.files) == {"token", "ca.crt", "namespace"}
    assert fs.files["ca.crt"] == (b"PEM", 0o644)
    assert fs.files["namespace"] == (b"apps", 0o644)
    token = fs.files["token"][0].decode()
    got = satoken.verify(KEY, token, clock())
    assert (got.service_account, got.service_account_uid, got.pod_uid) == \
        ("robot", "sa-1", "pod-1")
    # the same token until 80% of its life has passed, then a new one
    assert issuer.token(p, {}) == issuer.token(p, {})
    clock.advance(satoken.DEFAULT_EXPIRATION * 0.8 + 1)
    assert issuer.token(p, {}).decode() != token
    issuer.forget(set())
    assert not issuer._tokens


def test_a_token_for_a_missing_service_account_is_a_config_error():
    issuer = TokenIssuer(KEY, lookup_of({}), FakeClock(NOW))
    with pytest.raises(RuntimeFailure, match='serviceaccount "robot" not found') as exc:
        issuer.token(pod(serviceAccountName="robot"), {})
    assert exc.value.reason == "CreateContainerConfigError"
    assert issuer.token(pod(), {})          # "default" exists in every namespace


def test_projected_volume_sources_land_in_one_directory():
    objects = {("ConfigMap", "apps", "cfg"): {"data": {"a": "1", "b": "2"}},
               ("Secret", "apps", "creds"): {"data": {"pw": base64.b64encode(b"s3").decode()}}}
    issuer = TokenIssuer(KEY, lookup_of(objects), FakeClock(NOW))
    p = pod(volumes=[{"name": "all", "projected": {"defaultMode": 0o440, "sources": [
        {"configMap": {"name": "cfg", "items": [{"key": "a", "path": "conf/a"}]}},
        {"secret": {"name": "creds"}},
        {"downwardAPI": {"items": [{"path": "name",
                                    "fieldRef": {"fieldPath": "metadata.name"}}]}},
        {"serviceAccountToken": {"audience": "vault", "expirationSeconds": 900,
                                 "path": "vault-token"}}]}}])
    (fs,) = file_sets(p, lookup_of(objects), issuer.token)
    assert fs.files["conf/a"] == (b"1", 0o440)
    assert fs.files["pw"] == (b"s3", 0o440)
    assert fs.files["name"] == (b"web", 0o440)
    got = satoken.verify(KEY, fs.files["vault-token"][0].decode(), NOW, "vault")
    assert got.expires_at - got.issued_at == 900
    assert satoken.verify(KEY, fs.files["vault-token"][0].decode(), NOW) is None


def test_projected_volume_errors_name_the_source():
    p = pod(volumes=[{"name": "all", "projected": {"sources": [
        {"configMap": {"name": "missing"}}]}}])
    with pytest.raises(RuntimeFailure, match='configmap "missing" not found'):
        file_sets(p, lookup_of({}))
    p = pod(volumes=[{"name": "all", "projected": {"sources": [
        {"clusterTrustBundle": {"name": "x"}}]}}])
    with pytest.raises(RuntimeFailure, match="clusterTrustBundle is not supported"):
        file_sets(p, lookup_of({}))


# -- the API's side ---------------------------------------------------------------------
def test_the_api_accepts_a_token_while_its_pod_and_service_account_exist():
    store = memory_store()
    sa = store.create({"apiVersion": "v1", "kind": "ServiceAccount",
                       "metadata": {"name": "robot", "namespace": "default"}})
    p = store.create({"apiVersion": "v1", "kind": "Pod",
                      "metadata": {"name": "web", "namespace": "default"},
                      "spec": {"serviceAccountName": "robot",
                               "containers": [{"name": "a", "image": "i"}]}})
    issuer = TokenIssuer(KEY, lambda k, ns, n: store.get(ObjectKey(k, ns, n)), FakeClock(NOW))
    token = issuer.token(p, {}).decode()
    user = authenticate(store, KEY, token, NOW + 1)
    assert user.name == "system:serviceaccount:default:robot" and not user.is_admin
    assert user.uid == sa["metadata"]["uid"]
    assert dict(user.extra)["authentication.kubernetes.io/pod-name"] == ("web",)
    assert authenticate(store, KEY, token, NOW + 1, audience="vault") is None
    store.delete(ObjectKey("Pod", "default", "web"))
    assert authenticate(store, KEY, token, NOW + 1) is None       # its pod is gone


def test_a_token_of_a_replaced_service_account_is_refused():
    store = memory_store()
    store.create({"apiVersion": "v1", "kind": "ServiceAccount",
                  "metadata": {"name": "robot", "namespace": "default"}})
    token = satoken.mint(KEY, claims(namespace="default", pod="", pod_uid="",
                                     service_account_uid="an-older-uid"))
    assert authenticate(store, KEY, token, NOW + 1) is None


# -- a cluster's node: tokens asked of the API server ---------------------------------------
def test_a_node_asks_the_server_for_a_token_bound_to_the_pod_and_keeps_it():
    asked = []

    def request(namespace, service_account, body):
        asked.append((namespace, service_account, body))
        return {"status": {"token": f"token-{len(asked)}"}}

    clock = FakeClock(NOW)
    tokens = RequestedTokens(request, lookup_of({}), clock)
    web = pod()
    assert tokens.token(web, {}) == b"token-1"
    assert tokens.token(web, {}) == b"token-1"          # kept: no second request
    namespace, account, body = asked[0]
    assert (namespace, account) == ("apps", "default")
    assert body["kind"] == "TokenRequest"
    assert body["spec"]["boundObjectRef"] == {"kind": "Pod", "apiVersion": "v1",
                                              "name": "web", "uid": "pod-1"}
    assert body["spec"]["expirationSeconds"] == satoken.DEFAULT_EXPIRATION
    clock.advance(satoken.DEFAULT_EXPIRATION * satoken.REFRESH_AT + 1)
    assert tokens.token(web, {}) == b"token-2"          # renewed at 80% of its life


def test_a_token_the_server_refuses_is_the_pods_config_error():
    def refuse(namespace, service_account, body):
        raise OSError("403 Forbidden")

    with pytest.raises(RuntimeFailure) as err:
        RequestedTokens(refuse, lookup_of({}), FakeClock(NOW)).token(pod(), {})
    assert err.value.reason == "CreateContainerConfigError" and "403" in str(err.value)
