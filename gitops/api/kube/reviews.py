"""Access reviews: the bearer token is the agent's only identity and may do everything,
so `kubectl auth can-i ...` is always yes and `kubectl auth whoami` names that user."""

from __future__ import annotations

import json

from aiohttp import web

from gitops.api.kube import status as st
from gitops.api.kube.registry import Resource

USER = {"username": "gitops-admin", "groups": ["system:masters", "system:authenticated"]}


async def body(request: web.Request) -> dict:
    """The review as sent; kubectl sends protobuf, which the answer does not depend on."""
    raw = await request.read()
    if "json" not in request.headers.get("Content-Type", ""):
        return {}
    try:
        return json.loads(raw or b"{}")
    except ValueError:
        raise st.bad_request("the request body is not valid JSON")


def answer(resource: Resource, body: object) -> dict:
    if not isinstance(body, dict):
        raise st.bad_request(f"the body must be a {resource.kind}")
    out = {"kind": resource.kind, "apiVersion": resource.api_version,
           "metadata": {"creationTimestamp": None}}
    if resource.kind == "SelfSubjectReview":
        out["status"] = {"userInfo": USER}
    else:
        out["spec"] = body.get("spec") or {}
        out["status"] = {"allowed": True, "reason": "the agent's token may do everything"}
    return out
