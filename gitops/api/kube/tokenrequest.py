"""POST .../serviceaccounts/NAME/token (authentication.k8s.io/v1 TokenRequest): a token
for a ServiceAccount, optionally bound to a pod, as `kubectl create token` asks for it and
as a cluster's nodes get their pods' projected tokens (a node holds no signing key)."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from aiohttp import web

from gitops.api.kube import status as st
from gitops.api.kube.request import Target
from gitops.api.kube.writes import body_of
from gitops.model import ObjectKey, satoken
from gitops.model.times import rfc3339

if TYPE_CHECKING:
    from gitops.api.kube.api import KubeApi

DEFAULT_SECONDS = 3600           # the API server's default for a TokenRequest


def request_token(api: "KubeApi", request: web.Request, target: Target,
                  raw: bytes) -> tuple[dict, int]:
    key = api.backends.token_key
    if not key:
        raise st.ApiError(503, "ServiceUnavailable", "this server signs no ServiceAccount "
                                                     "tokens")
    body = body_of(request, raw)
    if not isinstance(body, dict) or body.get("kind", "TokenRequest") != "TokenRequest":
        raise st.bad_request("the body must be an authentication.k8s.io/v1 TokenRequest")
    spec = body.get("spec") or {}
    ns, name = target.namespace or "default", target.name
    sa = api.store.get(ObjectKey("ServiceAccount", ns, name))
    if sa is None and name != "default":       # "default" exists in every namespace
        raise st.not_found("serviceaccounts", "", name)
    seconds = spec.get("expirationSeconds", DEFAULT_SECONDS)
    if not isinstance(seconds, int) or isinstance(seconds, bool) or \
            seconds < satoken.MIN_EXPIRATION:
        raise st.invalid("TokenRequest", "authentication.k8s.io", name, [(
            "spec.expirationSeconds", f"may not specify a duration less than "
                                      f"{satoken.MIN_EXPIRATION} seconds")])
    audiences = spec.get("audiences") or [satoken.AUDIENCE]
    if not isinstance(audiences, list) or not all(isinstance(a, str) for a in audiences):
        raise st.bad_request("spec.audiences must be a list of strings")
    pod = _bound_pod(api, ns, name, spec.get("boundObjectRef"))
    now = int(time.time())
    token = satoken.mint(key, satoken.Claims(
        namespace=ns, service_account=name,
        service_account_uid=((sa or {}).get("metadata") or {}).get("uid", ""),
        pod=pod["metadata"]["name"] if pod else "", pod_uid=pod["metadata"]["uid"] if pod
        else "", audiences=tuple(audiences), issued_at=now, expires_at=now + seconds))
    out = {"kind": "TokenRequest", "apiVersion": "authentication.k8s.io/v1",
           "metadata": {"name": name, "namespace": ns, "creationTimestamp": rfc3339(now)},
           "spec": {**spec, "audiences": audiences, "expirationSeconds": seconds},
           "status": {"token": token, "expirationTimestamp": rfc3339(now + seconds)}}
    return out, 201


def _bound_pod(api: "KubeApi", ns: str, service_account: str, ref: object) -> dict | None:
    """The pod the token is bound to (it stops being accepted once the pod is gone)."""
    if not ref:
        return None
    if not isinstance(ref, dict) or ref.get("kind") != "Pod":
        raise st.bad_request("spec.boundObjectRef: only a Pod is supported here")
    pod = api.store.get(ObjectKey("Pod", ns, str(ref.get("name", ""))))
    if pod is None or (ref.get("uid") and ref["uid"] != pod["metadata"].get("uid")):
        raise st.not_found("pods", "", str(ref.get("name", "")))
    if satoken.service_account_name(pod.get("spec") or {}) != service_account:
        raise st.bad_request(f'pod "{pod["metadata"]["name"]}" runs as another '
                             f"ServiceAccount than {service_account!r}")
    return pod
