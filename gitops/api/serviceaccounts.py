"""Who is asking: the agent's own token (the administrator) or a ServiceAccount token the
node projected into a pod, accepted while its ServiceAccount and its pod still exist, as
Kubernetes accepts bound tokens."""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from gitops.errors import GitopsError
from gitops.model import ObjectKey, satoken
from gitops.private_files import PRIVATE_FILE, write_atomic
from gitops.store.base import Store

ADMIN = "gitops-admin"


@dataclass(frozen=True)
class User:
    name: str
    groups: tuple[str, ...]
    uid: str = ""
    extra: tuple[tuple[str, tuple[str, ...]], ...] = ()

    @property
    def is_admin(self) -> bool:
        return "system:masters" in self.groups

    def as_user_info(self) -> dict:
        """The userInfo of a TokenReview or SelfSubjectReview."""
        return {"username": self.name, "groups": list(self.groups),
                **({"uid": self.uid} if self.uid else {}),
                **({"extra": {k: list(v) for k, v in self.extra}} if self.extra else {})}


ADMIN_USER = User(ADMIN, ("system:masters", "system:authenticated"))


def authenticate(store: Store, key: bytes, token: str, now: float,
                 audience: str = satoken.AUDIENCE) -> User | None:
    """The ServiceAccount a token speaks for, or None: a bad signature, expired, for
    another audience, or its ServiceAccount or pod gone (or replaced: uids compared)."""
    claims = satoken.verify(key, token, now, audience)
    if claims is None:
        return None
    sa = store.get(ObjectKey("ServiceAccount", claims.namespace, claims.service_account))
    if sa is not None:
        if claims.service_account_uid and sa["metadata"].get("uid") != \
                claims.service_account_uid:
            return None
    elif claims.service_account != "default" or claims.service_account_uid:
        return None         # every namespace has "default"; any other must exist
    extra: list[tuple[str, tuple[str, ...]]] = []
    if claims.pod:
        pod = store.get(ObjectKey("Pod", claims.namespace, claims.pod))
        if pod is None or pod["metadata"].get("uid") != claims.pod_uid or \
                satoken.service_account_name(pod.get("spec", {})) != claims.service_account:
            return None
        extra = [("authentication.kubernetes.io/pod-name", (claims.pod,)),
                 ("authentication.kubernetes.io/pod-uid", (claims.pod_uid,))]
    return User(claims.username, claims.groups, claims.service_account_uid, tuple(extra))


def load_or_create_key(path: Path) -> bytes:
    """The data dir's ServiceAccount token key, made on first use; a short one is refused
    (someone else's doing: replacing it would void every token without a word)."""
    if not path.exists():
        write_atomic(path, secrets.token_hex(satoken.KEY_BYTES) + "\n")
    os.chmod(path, PRIVATE_FILE)
    text = path.read_text().strip()
    if len(text) < 2 * satoken.KEY_BYTES:
        raise GitopsError(f"the ServiceAccount key file {path} holds {len(text)} "
                          f"character(s), fewer than {2 * satoken.KEY_BYTES}: delete it and "
                          "a new one is made at start (pods' tokens are then remade)")
    return text.encode()
