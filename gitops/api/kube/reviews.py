"""Access reviews (`kubectl auth whoami`, `kubectl auth can-i`): answered for the request's
user, the agent's token (may do everything) or a pod's ServiceAccount (RBAC decides)."""

from __future__ import annotations

import json

from aiohttp import web

from gitops.api.kube import status as st
from gitops.api.kube.access import allowed, review_attributes
from gitops.api.kube.registry import Resource
from gitops.api.serviceaccounts import User
from gitops.store.base import Store


async def body(request: web.Request) -> dict:
    """The review as sent; kubectl sends protobuf, which the answer does not depend on."""
    raw = await request.read()
    if "json" not in request.headers.get("Content-Type", ""):
        return {}
    try:
        return json.loads(raw or b"{}")
    except ValueError:
        raise st.bad_request("the request body is not valid JSON")


def answer(resource: Resource, body: object, user: User, store: Store) -> dict:
    if not isinstance(body, dict):
        raise st.bad_request(f"the body must be a {resource.kind}")
    out = {"kind": resource.kind, "apiVersion": resource.api_version,
           "metadata": {"creationTimestamp": None}}
    if resource.kind == "SelfSubjectReview":
        out["status"] = {"userInfo": user.as_user_info()}
    else:
        out["spec"] = body.get("spec") or {}
        if user.is_admin:
            out["status"] = {"allowed": True, "reason": "the agent's token may do everything"}
        elif allowed(store, user, review_attributes(out["spec"])):
            out["status"] = {"allowed": True, "reason": "allowed by RBAC"}
        else:
            out["status"] = {"allowed": False}
    return out
