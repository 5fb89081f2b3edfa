"""ServiceAccount tokens (pure): bound JWTs as Kubernetes projects them into pods, signed
with the data dir's key (HMAC-SHA256), and their verification.

A token names its ServiceAccount and the pod it was made for (uids included) and expires;
the API accepts it only while that ServiceAccount and that pod still exist, as Kubernetes
does with bound tokens. Clients read the claims without verifying them (client-go, the
Python client, kubectl in a pod), so the algorithm is the issuer's business; TokenReview
and the API verify them here.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from dataclasses import dataclass

ISSUER = "https://kubernetes.default.svc.cluster.local"
AUDIENCE = ISSUER                  # the API server's own audience, as kube-apiserver's
DEFAULT_EXPIRATION = 3607          # seconds, the kubelet's default projected token
MIN_EXPIRATION = 600               # Kubernetes refuses expirationSeconds below this
REFRESH_AT = 0.8                   # a token is replaced once 80% of its life has passed
MOUNT_PATH = "/var/run/secrets/kubernetes.io/serviceaccount"
KEY_BYTES = 32


@dataclass(frozen=True)
class Claims:
    namespace: str
    service_account: str
    service_account_uid: str
    pod: str = ""
    pod_uid: str = ""
    audiences: tuple[str, ...] = (AUDIENCE,)
    issued_at: int = 0
    expires_at: int = 0

    @property
    def username(self) -> str:
        return f"system:serviceaccount:{self.namespace}:{self.service_account}"

    @property
    def groups(self) -> tuple[str, ...]:
        return ("system:serviceaccounts", f"system:serviceaccounts:{self.namespace}",
                "system:authenticated")


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _sign(key: bytes, signing_input: str) -> str:
    return _b64(hmac.new(key, signing_input.encode(), hashlib.sha256).digest())


def mint(key: bytes, claims: Claims) -> str:
    """A signed JWT carrying claims as Kubernetes' bound tokens carry them."""
    payload = {
        "iss": ISSUER, "sub": claims.username, "aud": list(claims.audiences),
        "iat": claims.issued_at, "nbf": claims.issued_at, "exp": claims.expires_at,
        "kubernetes.io": {
            "namespace": claims.namespace,
            "serviceaccount": {"name": claims.service_account,
                               "uid": claims.service_account_uid},
            **({"pod": {"name": claims.pod, "uid": claims.pod_uid}} if claims.pod else {})},
    }
    head = _b64(json.dumps({"alg": "HS256", "typ": "JWT"}, separators=(",", ":")).encode())
    body = _b64(json.dumps(payload, separators=(",", ":"), sort_keys=True).encode())
    return f"{head}.{body}.{_sign(key, f'{head}.{body}')}"


def looks_like(token: str) -> bool:
    """Three dot-separated parts: worth verifying as a ServiceAccount token."""
    return token.count(".") == 2


def verify(key: bytes, token: str, now: float, audience: str = AUDIENCE) -> Claims | None:
    """The token's claims when the signature, the times and the audience hold; else None.
    Whether its ServiceAccount and pod still exist is the caller's question."""
    try:
        head, body, signature = token.split(".")
        if not hmac.compare_digest(signature, _sign(key, f"{head}.{body}")):
            return None
        if json.loads(_unb64(head)).get("alg") != "HS256":
            return None
        payload = json.loads(_unb64(body))
        k8s = payload["kubernetes.io"]
        audiences = payload.get("aud") or []
        audiences = [audiences] if isinstance(audiences, str) else list(audiences)
        claims = Claims(namespace=k8s["namespace"],
                        service_account=k8s["serviceaccount"]["name"],
                        service_account_uid=k8s["serviceaccount"].get("uid", ""),
                        pod=(k8s.get("pod") or {}).get("name", ""),
                        pod_uid=(k8s.get("pod") or {}).get("uid", ""),
                        audiences=tuple(audiences), issued_at=int(payload.get("iat", 0)),
                        expires_at=int(payload.get("exp", 0)))
    except (ValueError, KeyError, TypeError, AttributeError):
        return None
    if payload.get("iss") != ISSUER or audience not in claims.audiences:
        return None
    if not claims.issued_at - 60 <= now < claims.expires_at:
        return None
    return claims


def expiration(source: dict) -> int:
    """A serviceAccountToken source's expirationSeconds, within what Kubernetes allows."""
    value = source.get("expirationSeconds") or DEFAULT_EXPIRATION
    return max(MIN_EXPIRATION, int(value)) if isinstance(value, int) else DEFAULT_EXPIRATION


def automounts(pod_spec: dict, service_account: dict | None) -> bool:
    """Whether the pod gets the default token volume: the pod's automountServiceAccountToken
    wins, then the ServiceAccount's, then yes."""
    if pod_spec.get("automountServiceAccountToken") is not None:
        return bool(pod_spec["automountServiceAccountToken"])
    if service_account is not None and \
            service_account.get("automountServiceAccountToken") is not None:
        return bool(service_account["automountServiceAccountToken"])
    return True


def service_account_name(pod_spec: dict) -> str:
    return pod_spec.get("serviceAccountName") or pod_spec.get("serviceAccount") or "default"
