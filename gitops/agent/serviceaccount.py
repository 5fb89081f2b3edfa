"""A pod's ServiceAccount token, as Kubernetes gives it: the projected volume the
ServiceAccount admission adds (token, ca.crt, namespace at
/var/run/secrets/kubernetes.io/serviceaccount, unless automountServiceAccountToken is
false), and the tokens projected into it (TokenIssuer), replaced at 80% of their life.

The node adds the volume to the pod as it runs it (the stored pod is left as written), and
mints each token bound to its pod and ServiceAccount with the data dir's key; the API
accepts it for that ServiceAccount while both exist (gitops.api.serviceaccounts).
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from gitops.agent.env import Lookup
from gitops.agent.runtime import RuntimeFailure
from gitops.model import satoken
from gitops.model.meta import stable_hash

ROOT_CA = "kube-root-ca.crt"      # the ConfigMap every namespace has, holding the API's CA
VOLUME_PREFIX = "kube-api-access-"


def token_volume_name(pod: dict) -> str:
    return VOLUME_PREFIX + stable_hash(pod["metadata"]["uid"], 5)


def with_token_volume(pod: dict, lookup: Lookup) -> dict:
    """The pod with its default token volume, when it gets one (a copy; else the pod)."""
    spec = pod.get("spec", {})
    sa = lookup("ServiceAccount", pod["metadata"]["namespace"],
                satoken.service_account_name(spec))
    if not satoken.automounts(spec, sa):
        return pod
    volume = {"name": token_volume_name(pod), "projected": {"defaultMode": 0o644, "sources": [
        {"serviceAccountToken": {"expirationSeconds": satoken.DEFAULT_EXPIRATION,
                                 "path": "token"}},
        {"configMap": {"name": ROOT_CA, "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
        {"downwardAPI": {"items": [{"path": "namespace",
                                    "fieldRef": {"fieldPath": "metadata.namespace"}}]}}]}}
    return {**pod, "spec": {**spec, "volumes": [*(spec.get("volumes") or []), volume]}}


def token_mount(pod: dict, container: dict) -> str | None:
    """The name of the token volume to mount at the standard path in this container: none
    when the pod has none or the container mounts something there itself."""
    name = token_volume_name(pod)
    if not any(v.get("name") == name for v in pod.get("spec", {}).get("volumes") or []):
        return None
    if any((m.get("mountPath") or "").rstrip("/") == satoken.MOUNT_PATH
           for m in container.get("volumeMounts") or []):
        return None
    return name


class TokenIssuer:
    """Tokens for projected serviceAccountToken sources, one per pod, audience and
    lifetime, kept until 80% of their life has passed (so a pass rewrites no file)."""

    def __init__(self, key: bytes, lookup: Lookup, clock: Callable[[], float]) -> None:
        self.key = key
        self.lookup = lookup
        self.clock = clock
        self._tokens: dict[tuple[str, str, str, int], tuple[float, str]] = {}
        self._lock = threading.Lock()

    def token(self, pod: dict, source: dict) -> bytes:
        meta, spec = pod["metadata"], pod.get("spec", {})
        name = satoken.service_account_name(spec)
        sa = self.lookup("ServiceAccount", meta["namespace"], name)
        if sa is None and name != "default":       # "default" exists in every namespace
            raise RuntimeFailure(f'serviceaccount "{name}" not found',
                                 "CreateContainerConfigError")
        sa_uid = (sa or {}).get("metadata", {}).get("uid", "")
        lifetime = satoken.expiration(source)
        audience = source.get("audience") or satoken.AUDIENCE
        key = (meta["uid"], f"{name}/{sa_uid}", audience, lifetime)
        now = self.clock()
        with self._lock:
            cached = self._tokens.get(key)
            if cached is not None and now < cached[0]:
                return cached[1].encode()
            issued = int(now)
            token = self._make(pod, name, sa_uid, audience, issued, lifetime)
            self._tokens[key] = (issued + lifetime * satoken.REFRESH_AT, token)
            return token.encode()

    def _make(self, pod: dict, service_account: str, sa_uid: str, audience: str,
              issued: int, lifetime: int) -> str:
        meta = pod["metadata"]
        return satoken.mint(self.key, satoken.Claims(
            namespace=meta["namespace"], service_account=service_account,
            service_account_uid=sa_uid, pod=meta["name"], pod_uid=meta["uid"],
            audiences=(audience,), issued_at=issued, expires_at=issued + lifetime))

    def forget(self, known: set[str]) -> None:
        """Drop the tokens of pods not in known (uids)."""
        with self._lock:
            self._tokens = {k: v for k, v in self._tokens.items() if k[0] in known}


# (namespace, ServiceAccount, TokenRequest body) -> the API's TokenRequest answer
TokenRequester = Callable[[str, str, dict], dict]


class RequestedTokens(TokenIssuer):
    """The tokens of a cluster's node: asked of the API server (TokenRequest bound to the
    pod, as the kubelet asks), which alone holds the signing key; kept as TokenIssuer keeps
    its own."""

    def __init__(self, request: TokenRequester, lookup: Lookup,
                 clock: Callable[[], float]) -> None:
        super().__init__(b"", lookup, clock)
        self.request = request

    def _make(self, pod: dict, service_account: str, sa_uid: str, audience: str,
              issued: int, lifetime: int) -> str:
        meta = pod["metadata"]
        try:
            answer = self.request(meta["namespace"], service_account, {
                "apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
                "spec": {"audiences": [audience], "expirationSeconds": lifetime,
                         "boundObjectRef": {"kind": "Pod", "apiVersion": "v1",
                                            "name": meta["name"], "uid": meta["uid"]}}})
        except Exception as exc:   # noqa: BLE001 - the pod waits and is retried, as kubelet's
            raise RuntimeFailure(f"ServiceAccount token: {exc}",
                                 "CreateContainerConfigError") from exc
        token = ((answer or {}).get("status") or {}).get("token")
        if not isinstance(token, str) or not token:
            raise RuntimeFailure("ServiceAccount token: the API server sent none",
                                 "CreateContainerConfigError")
        return token
