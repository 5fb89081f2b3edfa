"""What the UI's buttons do, through the paths the CLI and kubectl take: the sync runner's
control verbs (`gitops sync|rollback|unpin|suspend|resume` POST the same), and the
registry's writes as the Kubernetes API makes them for `kubectl rollout restart` (a
template annotation, recorded under the UI's field manager) and `kubectl delete pod`."""

from __future__ import annotations

from gitops.api.kube import managed, openapi
from gitops.api.kube.registry import for_kind
from gitops.errors import GitopsError
from gitops.model import ObjectKey
from gitops.model.times import now_iso
from gitops.store.base import NotFound
from gitops.store.registry import DeleteOptions, Registry

FIELD_MANAGER = "gitops-ui"
RESTARTED_AT = "kubectl.kubernetes.io/restartedAt"
CONTROL_VERBS = ("sync", "rollback", "unpin", "suspend", "resume")
OBJECT_VERBS = ("restart", "delete-pod")


def restart(store: Registry, namespace: str, name: str) -> dict:
    """Roll a Deployment's pods as `kubectl rollout restart` does."""
    key = ObjectKey("Deployment", namespace, name)
    old = store.get(key)
    if old is None:
        raise NotFound(f"deployment {namespace}/{name} not found")
    new = {**old, "spec": {**old["spec"], "template": {**old["spec"]["template"]}}}
    tmeta = dict(new["spec"]["template"].get("metadata") or {})
    tmeta["annotations"] = {**(tmeta.get("annotations") or {}), RESTARTED_AT: now_iso()}
    new["spec"]["template"]["metadata"] = tmeta
    resource = for_kind("Deployment")
    schema = openapi.kind_schema(resource) if resource else None
    if schema is None:
        raise GitopsError("no schema for Deployment")
    return store.update(new, record_fields=lambda before, after: managed.record_update(
        before, after, FIELD_MANAGER, "apps/v1", schema))


def delete_pod(store: Registry, namespace: str, name: str) -> None:
    """`kubectl delete pod`: its node stops it gracefully; its controller makes another."""
    store.delete_with_options(ObjectKey("Pod", namespace, name), DeleteOptions())
