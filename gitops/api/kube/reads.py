"""get and list: one object, or a selected page of them, as objects or as a Table."""

from __future__ import annotations

from gitops.api.kube import status as st
from gitops.api.kube import tables
from gitops.api.kube.present import present
from gitops.api.kube.request import (Target, decode_continue, encode_continue, int_param,
                                     selection)
from gitops.model import ObjectKey
from gitops.store.base import Store


def key(target: Target, name: str | None = None) -> ObjectKey:
    r = target.resource
    return ObjectKey(r.kind, (target.namespace or "default") if r.namespaced else "",
                     name if name is not None else target.name)


def get_object(store: Store, target: Target) -> dict:
    obj = store.get(key(target))
    if obj is None:
        raise st.not_found(target.resource.plural, target.resource.group, target.name)
    return obj


def shaped_one(target: Target, obj: dict, shape: str, query) -> dict:
    if shape == "Table":
        return tables.table(target.resource.kind, [obj], include=query.get(
            "includeObject", "Metadata"), resource_version=obj["metadata"].get(
            "resourceVersion", ""))
    if shape == "PartialObjectMetadata":
        return tables.partial(obj)
    return obj


def read(store: Store, target: Target, shape: str, query, reveal: bool = False) -> dict:
    """One object as the API shows it; `reveal`: a Secret's values unmasked (a node
    reading one its pods use: NodeRestriction allowed that one alone)."""
    obj = get_object(store, target)
    return shaped_one(target, dict(obj) if reveal else present(obj), shape, query)


def list_page(store: Store, target: Target, query) -> tuple[int, list[dict], str, int]:
    """(resourceVersion, objects of this page, continue token, remaining count)."""
    r = target.resource
    chosen = selection(target, query)
    limit = max(0, int_param(query, "limit", 0) or 0)      # Kubernetes: <= 0 is no limit
    token = query.get("continue", "")
    after = None
    if token:
        token_rv, after = decode_continue(token)
        if token_rv < store.changes.floor:
            raise st.gone("The provided continue parameter is too old to display a consistent "
                          "list result. You can start a new list without the continue "
                          "parameter.")
    if chosen.labels is None and not chosen.fields:
        # Nothing to filter: the store seeks to the page (kubectl lists in pages of 500).
        rv, page, remaining = store.page(r.kind, chosen.namespace, after, limit or None)
        if remaining:
            last = page[-1]["metadata"]
            return rv, page, encode_continue(rv, last.get("namespace", ""), last["name"]), \
                remaining
        return rv, page, "", 0
    rv, objects = store.snapshot(r.kind, chosen.namespace)
    if after is not None:
        objects = [o for o in objects if (o["metadata"].get("namespace", ""),
                                          o["metadata"]["name"]) > after]
    selected = [o for o in objects if chosen(o)]
    if limit and len(selected) > limit:
        page, rest = selected[:limit], selected[limit:]
        last = page[-1]["metadata"]
        return rv, page, encode_continue(rv, last.get("namespace", ""), last["name"]), len(rest)
    return rv, selected, "", 0


def list_objects(store: Store, target: Target, shape: str, query) -> dict:
    r = target.resource
    rv, page, cont, remaining = list_page(store, target, query)
    page = [present(o) for o in page]
    if shape == "Table":
        return tables.table(r.kind, page, resource_version=str(rv), cont=cont,
                            include=query.get("includeObject", "Metadata"))
    meta: dict = {"resourceVersion": str(rv)}
    if cont:
        meta |= {"continue": cont, "remainingItemCount": remaining}
    if shape == "PartialObjectMetadata":
        return {"kind": "PartialObjectMetadataList", "apiVersion": "meta.k8s.io/v1",
                "metadata": meta, "items": [tables.partial(o) for o in page]}
    return {"kind": r.list_kind, "apiVersion": r.api_version, "metadata": meta, "items": page}
