"""The kube-root-ca.crt ConfigMap in every namespace: the API server's CA, which pods
(and the service account volumes clients mount) use to trust it, as Kubernetes' root CA
publisher keeps it (pure)."""

from __future__ import annotations

from gitops.model import ObjectKey
from gitops.model.actions import Action, Create, Update
from gitops.model.meta import is_deleting

NAME = "kube-root-ca.crt"
_DESCRIPTION = ("Contains a CA bundle that can be used to verify the kube-apiserver when "
                "using internal endpoints such as the internal service IP or "
                "kubernetes.default.svc. No other usage is guaranteed across distributions "
                "of Kubernetes clusters.")


def reconcile(namespaces: list[dict], lookup, ca_pem: str) -> list[Action]:
    """lookup(key) -> the stored ConfigMap or None. A namespace being deleted gets none."""
    if not ca_pem:
        return []
    actions: list[Action] = []
    for ns in namespaces:
        if is_deleting(ns):
            continue
        name = ns["metadata"]["name"]
        want = {"apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": NAME, "namespace": name,
                             "annotations": {"kubernetes.io/description": _DESCRIPTION}},
                "data": {"ca.crt": ca_pem}}
        current = lookup(ObjectKey("ConfigMap", name, NAME))
        if current is None:
            actions.append(Create(want))
        elif current.get("data") != want["data"] or current.get("binaryData"):
            meta = current["metadata"]
            kept = {k: v for k, v in current.items() if k != "binaryData"}
            actions.append(Update({**kept, "data": want["data"],
                                   "metadata": {**meta, "annotations": {
                                       **(meta.get("annotations") or {}),
                                       **want["metadata"]["annotations"]}}}))
    return actions
