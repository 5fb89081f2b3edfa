"""pods/eviction (what `kubectl drain` posts): a pod deleted only if its disruption budget
allows it, decided and done in one store transaction."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

from gitops.api.kube import status as st
from gitops.api.kube.deletes import delete_one
from gitops.api.kube.reads import key
from gitops.api.kube.request import Target
from gitops.api.kube.writes import body_of, dry_run
from gitops.controllers import disruption
from gitops.model import ObjectKey
from gitops.model.pods import has_finished

if TYPE_CHECKING:
    from gitops.api.kube.api import KubeApi

VIOLATES = "Cannot evict pod as it would violate the pod's disruption budget."


def evict(api: "KubeApi", request: web.Request, target: Target, raw: bytes) -> tuple[dict, int]:
    body = body_of(request, raw)
    if not isinstance(body, dict) or body.get("kind", "Eviction") != "Eviction":
        raise st.bad_request("the body must be a policy/v1 Eviction")
    name = (body.get("metadata") or {}).get("name", target.name)
    if name != target.name:
        raise st.bad_request(f"name in URL does not match name in Eviction object: "
                             f"{target.name} != {name}")
    opts = {"propagationPolicy": "Background", **(body.get("deleteOptions") or {})}
    if dry_run(request):
        opts["dryRun"] = ["All"]
    store = api.store
    with store.transaction():
        pod = store.get(key(target))
        if pod is None:
            raise st.not_found("pods", "", target.name)
        if not has_finished(pod) and not pod["metadata"].get("deletionTimestamp"):
            _check_budget(store, pod)
        delete_one(api, target, key(target), opts)
    return {**st.success(), "code": 201}, 201


def _check_budget(store, pod: dict) -> None:
    """A healthy pod needs a disruption to spare; one that is not healthy may go while
    the budget is met (unhealthyPodEvictionPolicy IfHealthyBudget, the default)."""
    pdbs = [p for p in store.list("PodDisruptionBudget", pod["metadata"]["namespace"])
            if disruption.covers(p, pod)]
    if not pdbs:
        return
    if len(pdbs) > 1:
        raise st.ApiError(500, "InternalError", "This pod has more than one "
                          "PodDisruptionBudget, which the eviction subresource does not "
                          "support.")
    pdb = pdbs[0]

    def lookup(kind: str, ns: str, name: str) -> dict | None:
        return store.get(ObjectKey(kind, ns, name))
    b = disruption.budget(pdb, store.list("Pod", pod["metadata"]["namespace"]), lookup)
    healthy = disruption.is_healthy(pod)
    always = (pdb.get("spec") or {}).get("unhealthyPodEvictionPolicy") == "AlwaysAllow"
    if (b.allowed > 0) if healthy else (always or b.healthy >= b.desired):
        return
    raise st.ApiError(429, "TooManyRequests", VIOLATES, {"causes": [{
        "reason": "DisruptionBudget",
        "message": f"The disruption budget {pdb['metadata']['name']} needs {b.desired} "
                   f"healthy pods and has {b.healthy} currently"}]})
