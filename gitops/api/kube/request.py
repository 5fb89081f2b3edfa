"""Parse a Kubernetes API URL and its query into what it addresses (pure)."""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass

from aiohttp import web

from gitops.api.kube import status as st
from gitops.api.kube.registry import Resource, lookup
from gitops.api.kube.selection import Selection, parse_fields, parse_labels
from gitops.errors import PermanentError

_NAMESPACE_SUBS = ("status", "finalize")
# Field-validation warnings a handler collected, sent back as `Warning: 299` headers.
WARNINGS = web.RequestKey("warnings", list) if hasattr(web, "RequestKey") else "warnings"


@dataclass(frozen=True)
class Target:
    resource: Resource
    namespace: str | None = None      # None: every namespace (or cluster-scoped)
    name: str = ""
    sub: str = ""


def parse_path(path: str) -> Target | None:
    """/api/v1/namespaces/ns/pods/name/log -> Target; None when it is not a resource path."""
    parts = [p for p in path.split("/") if p]
    if parts[:2] == ["api", "v1"]:
        group, version, rest = "", "v1", parts[2:]
    elif parts[:1] == ["apis"] and len(parts) >= 3:
        group, version, rest = parts[1], parts[2], parts[3:]
    else:
        return None
    if not rest:
        return None
    namespace = None
    if rest[0] == "namespaces" and len(rest) >= 3 and not (
            len(rest) == 3 and rest[2] in _NAMESPACE_SUBS):
        namespace, rest = rest[1], rest[2:]
    if len(rest) > 3:
        return None
    resource = lookup(group, version, rest[0])
    if resource is None:
        raise st.ApiError(404, "NotFound", f"the server could not find the requested "
                          f"resource ({rest[0]})")
    name = rest[1] if len(rest) > 1 else ""
    sub = rest[2] if len(rest) > 2 else ""
    if sub and sub not in resource.subresources:
        raise st.ApiError(404, "NotFound", f"the server could not find the requested "
                          f"resource ({resource.plural}/{sub})")
    if not resource.namespaced:
        if namespace is not None:
            raise st.ApiError(404, "NotFound", f"the server could not find the requested "
                              f"resource: {resource.plural} is not namespaced")
    return Target(resource, namespace, name, sub)


# A field selector on a Secret's values would answer "is the password X?" for any X: only
# the fields Kubernetes selects Secrets by are served.
_SECRET_FIELDS = ("metadata.name", "metadata.namespace", "type")


def selection(target: Target, query) -> Selection:
    try:
        labels = parse_labels(query.get("labelSelector", ""))
        fields = parse_fields(query.get("fieldSelector", ""))
    except PermanentError as exc:
        raise st.bad_request(f"unable to parse requested selector: {exc}")
    if target.resource.kind == "Secret":
        for term in fields:
            if term.path not in _SECRET_FIELDS:
                raise st.bad_request(f"field label not supported: {term.path}")
    return Selection(target.namespace if target.resource.namespaced else None, labels, fields)


def encode_continue(rv: int, namespace: str, name: str) -> str:
    raw = json.dumps({"rv": rv, "after": [namespace, name]}).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_continue(token: str) -> tuple[int, tuple[str, str]]:
    try:
        data = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
        return int(data["rv"]), (str(data["after"][0]), str(data["after"][1]))
    except (ValueError, KeyError, IndexError, TypeError):
        raise st.bad_request("continue key is not valid")


def int_param(query, name: str, default: int | None = None) -> int | None:
    raw = query.get(name)
    if raw in (None, ""):
        return default
    try:
        return int(raw)
    except ValueError:
        raise st.bad_request(f"{name}: invalid value {raw!r}: must be an integer")


def bool_param(query, name: str) -> bool:
    return query.get(name, "").lower() in ("true", "1")


def media_params(accept: str) -> list[dict[str, str]]:
    """Each alternative of an Accept header as {"type": ..., "as": ..., "g": ..., "v": ...}."""
    out = []
    for part in accept.split(","):
        pieces = [p.strip() for p in part.split(";")]
        params = {"type": pieces[0].lower()}
        for p in pieces[1:]:
            if "=" in p:
                k, v = p.split("=", 1)
                params[k.strip()] = v.strip()
        out.append(params)
    return out


def wanted_shape(accept: str) -> str:
    """"Table", "PartialObjectMetadata" or "" (the objects themselves)."""
    for params in media_params(accept):
        if params.get("as") == "Table" and params.get("g") == "meta.k8s.io":
            return "Table"
        if params.get("as") in ("PartialObjectMetadata", "PartialObjectMetadataList") \
                and params.get("g") == "meta.k8s.io":
            return "PartialObjectMetadata"
        if params["type"] in ("application/json", "*/*", "application/yaml") or \
                "json" in params["type"]:
            return ""
    return ""


@dataclass(frozen=True)
class LogRequest:
    """A read of a container's log (pods/log), as the node serves it."""
    namespace: str
    pod: str
    container: str = ""
    tail: int = 100
    previous: bool = False
    follow: bool = False
