"""Subresources: status, scale (autoscaling/v1 Scale), pods/log, pods/exec, pods/attach,
pods/portforward, pods/eviction, serviceaccounts/token."""

from __future__ import annotations

import asyncio
import json
from typing import TYPE_CHECKING

from aiohttp import web

from gitops.api.kube import eviction, streams, tokenrequest, writes
from gitops.api.kube import patch as P
from gitops.api.kube import status as st
from gitops.api.kube.respond import json_response
from gitops.api.kube.present import present
from gitops.api.kube.reads import get_object, shaped_one
from gitops.api.kube.request import Target, bool_param, int_param, wanted_shape
from gitops.api.kube.custom_tables import path_value
from gitops.api.kube.tables import format_selector
from gitops.model import custom
from gitops.errors import GitopsError
from gitops.model import ObjectKey
from gitops.model.secrets import mask_text, values_used_by

if TYPE_CHECKING:
    from gitops.api.kube.api import KubeApi


async def handle(api: "KubeApi", request: web.Request, target: Target) -> web.StreamResponse:
    sub, method = target.sub, request.method
    if sub in ("log", "exec", "attach", "portforward") and api.backends.node_proxy:
        proxied = await api.backends.node_proxy(request, target)
        if proxied is not None:         # the pod runs on another node: its answer
            return proxied
    if sub == "status":
        if method == "GET":
            shape = wanted_shape(request.headers.get("Accept", ""))
            obj = present(await asyncio.to_thread(get_object, api.store, target))
            return json_response(shaped_one(target, obj, shape, request.query))
        if method == "PUT":
            return json_response(await writes.in_thread(writes.replace, api, request, target,
                                                  "status"))
        if method == "PATCH":
            obj, code = await writes.in_thread(writes.patch, api, request, target, "status")
            return json_response(obj, code)
    elif sub == "scale":
        if method == "GET":
            return json_response(scale_of(present(await asyncio.to_thread(
                get_object, api.store, target))))
        if method in ("PUT", "PATCH"):
            return json_response(await writes.in_thread(write_scale, api, request, target))
    elif sub == "log" and method == "GET":
        return await pod_log(api, request, target)
    elif sub in ("exec", "attach", "portforward") and method in ("GET", "POST"):
        return await streams.handle(api, request, target)
    elif sub == "token" and method == "POST":
        body, code = await writes.in_thread(tokenrequest.request_token, api, request, target)
        return json_response(body, code)
    elif sub == "eviction" and method == "POST":
        body, code = await writes.in_thread(eviction.evict, api, request, target)
        return json_response(body, code)
    raise st.method_not_allowed()


# -- scale -------------------------------------------------------------------------------
def scale_of(obj: dict) -> dict:
    meta = obj["metadata"]
    spec, status = obj.get("spec", {}), obj.get("status", {})
    shown = {"kind": "Scale", "apiVersion": "autoscaling/v1",
             "metadata": {k: meta[k] for k in ("name", "namespace", "uid", "resourceVersion",
                                               "creationTimestamp") if k in meta},
             "spec": {"replicas": spec.get("replicas", 1)},
             "status": {"replicas": status.get("replicas", 0),
                        "selector": format_selector(_label_selector(spec.get("selector")))
                        .replace("<none>", "")}}
    paths = _custom_scale(obj.get("kind", ""))
    if paths is not None:                 # a custom resource: where its CRD says
        replicas = path_value(obj, paths.get("specReplicasPath", ".spec.replicas"))
        seen = path_value(obj, paths.get("statusReplicasPath", ".status.replicas"))
        selector = path_value(obj, paths["labelSelectorPath"]) \
            if paths.get("labelSelectorPath") else ""
        shown["spec"] = {"replicas": replicas if isinstance(replicas, int) else 0}
        shown["status"] = {"replicas": seen if isinstance(seen, int) else 0,
                           "selector": selector if isinstance(selector, str) else ""}
    return shown


def _custom_scale(kind: str) -> dict | None:
    crd = custom.crd_for(kind)
    if crd is None:
        return None
    paths = custom.subresources(crd).get("scale")
    return paths if isinstance(paths, dict) else {}


def _set_replicas(obj: dict, replicas: int) -> None:
    paths = _custom_scale(obj.get("kind", ""))
    where = (paths or {}).get("specReplicasPath") or ".spec.replicas"
    node = obj
    *parents, last = [p for p in where.lstrip(".").split(".") if p]
    for name in parents:
        node = node.setdefault(name, {})
    node[last] = replicas


def _label_selector(selector: dict | None) -> dict | None:
    """A ReplicationController's selector is a plain map of labels."""
    if isinstance(selector, dict) and selector and \
            not {"matchLabels", "matchExpressions"} & selector.keys():
        return {"matchLabels": selector}
    return selector


def write_scale(api: "KubeApi", request: web.Request, target: Target, raw: bytes) -> dict:
    r = target.resource
    body = writes.body_of(request, raw)
    for attempt in range(writes.PATCH_RETRIES):
        old = get_object(api.store, target)
        current = scale_of(present(old))
        if request.method == "PUT":
            scale = body
            precondition = ((body.get("metadata") or {}).get("resourceVersion")
                            if isinstance(body, dict) and isinstance(body.get("metadata"), dict)
                            else None)
        else:
            kind = writes.content_type(request)
            if kind == P.APPLY:
                raise st.ApiError(415, "UnsupportedMediaType", "apply is not supported on "
                                  "the scale subresource")
            scale = writes.apply_patch(kind, current, body, None)
            precondition = None
        if not isinstance(scale, dict) or not isinstance(scale.get("spec") or {}, dict) or \
                not isinstance(scale.get("metadata") or {}, dict):
            raise st.bad_request("the body must be a Scale object")
        replicas = (scale.get("spec") or {}).get("replicas")
        if not isinstance(replicas, int) or isinstance(replicas, bool) or replicas < 0:
            raise st.invalid("Scale", "autoscaling", target.name,
                             [("spec.replicas", "must be a non-negative integer")])
        if precondition and precondition != old["metadata"]["resourceVersion"]:
            raise st.stale(r.plural, r.group, target.name)
        obj = json.loads(json.dumps(old))
        _set_replicas(obj, replicas)
        fields = writes.field_manager(request, target, "scale")
        if writes.dry_run(request):
            return scale_of(writes.dry_run_update(api, obj, old, fields))
        try:
            return scale_of(writes.stored_update(api, target, obj, fields))
        except st.ApiError as exc:
            if exc.code != 409 or precondition or attempt == writes.PATCH_RETRIES - 1:
                raise
    raise st.stale(r.plural, r.group, target.name)


# -- logs --------------------------------------------------------------------------------
MASK_SECRETS = "maskSecrets"


def _without_secret_values(api: "KubeApi", pod: dict, text: str) -> str:
    return mask_text(text, values_used_by(
        pod, lambda kind, ns, name: api.store.get(ObjectKey(kind, ns, name))))


async def pod_log(api: "KubeApi", request: web.Request, target: Target) -> web.StreamResponse:
    from gitops.api.kube.request import LogRequest
    if api.backends.logs is None:
        raise st.ApiError(503, "ServiceUnavailable", "logs are not available from this server")
    q = request.query
    pod = await asyncio.to_thread(api.store.get,
                                  ObjectKey("Pod", target.namespace or "default", target.name))
    if pod is None:
        raise st.not_found("pods", "", target.name)
    tail = int_param(q, "tailLines", -1)
    # gitops's own option (kubectl never sends it): the log with the values of the Secrets
    # the pod reads masked, for output that lands in CI logs (`up --wait`'s diagnosis).
    mask = bool_param(q, MASK_SECRETS)
    if mask and bool_param(q, "follow"):
        raise st.bad_request(f"{MASK_SECRETS} cannot be combined with follow")
    try:
        out = await api.backends.logs(LogRequest(
            target.namespace or "default", target.name, q.get("container", ""),
            -1 if tail is None else tail, bool_param(q, "previous"), bool_param(q, "follow")))
    except GitopsError as exc:
        raise st.bad_request(str(exc))
    if isinstance(out, str):
        if mask:
            out = await asyncio.to_thread(_without_secret_values, api, pod, out)
        return web.Response(text=out, content_type="text/plain")
    resp = web.StreamResponse(headers={"Content-Type": "text/plain; charset=utf-8"})
    resp.enable_chunked_encoding()
    await resp.prepare(request)
    try:
        async for chunk in out:
            if chunk:
                await resp.write(chunk)
            elif request.transport is None or request.transport.is_closing():
                return resp         # the client went away (an interrupted `logs -f`)
    except (ConnectionResetError, ConnectionError):
        return resp
    finally:
        closer = getattr(out, "aclose", None)
        if closer is not None:
            await closer()
    await resp.write_eof()
    return resp
