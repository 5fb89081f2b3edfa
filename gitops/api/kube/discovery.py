"""Discovery documents: /version, /api, /api/v1, /apis, /apis/<group>[/<version>] (pure).

Both forms kubectl understands are built: the classic APIResourceList per group/version,
and aggregated discovery (apidiscovery.k8s.io/v2), which gives kubectl every resource in
two requests instead of one per group/version.
"""

from __future__ import annotations

from gitops.api.kube.registry import Resource, group_versions, resources

AGGREGATED = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"
_SUB_VERBS = {"status": ["get", "patch", "update"], "scale": ["get", "patch", "update"],
              "log": ["get"], "exec": ["create", "get"], "portforward": ["create", "get"],
              "attach": ["create", "get"], "eviction": ["create"], "token": ["create"]}
_SUB_KIND = {"exec": ("", "v1", "PodExecOptions"),
             "attach": ("", "v1", "PodAttachOptions"),
             "portforward": ("", "v1", "PodPortForwardOptions"),
             "scale": ("autoscaling", "v1", "Scale"),
             "eviction": ("policy", "v1", "Eviction"),
             "token": ("authentication.k8s.io", "v1", "TokenRequest")}


def _sub_kind(r: Resource, sub: str) -> tuple[str, str, str]:
    return _SUB_KIND.get(sub, (r.group, r.version, r.kind))


def _api_resource(r: Resource) -> list[dict]:
    main = {"name": r.plural, "singularName": r.singular, "namespaced": r.namespaced,
            "kind": r.kind, "verbs": list(r.verbs)}
    if r.short_names:
        main["shortNames"] = list(r.short_names)
    if r.categories:
        main["categories"] = list(r.categories)
    out = [main]
    for sub in r.subresources:
        group, ver, kind = _sub_kind(r, sub)
        entry = {"name": f"{r.plural}/{sub}", "singularName": "", "namespaced": r.namespaced,
                 "kind": kind, "verbs": _SUB_VERBS[sub]}
        if group != r.group or ver != r.version:
            entry |= {"group": group, "version": ver}
        out.append(entry)
    return out


def resource_list(api_version: str) -> dict | None:
    listed = group_versions().get(api_version)
    if listed is None:
        return None
    return {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": api_version,
            "resources": [entry for r in listed for entry in _api_resource(r)]}


def core_versions(server_address: str) -> dict:
    return {"kind": "APIVersions", "versions": ["v1"],
            "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0",
                                            "serverAddress": server_address}]}


def _groups() -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for r in resources():
        if r.group and r.version not in out.setdefault(r.group, []):
            out[r.group].append(r.version)
    return dict(sorted(out.items()))


def api_group(name: str) -> dict | None:
    versions = _groups().get(name)
    if versions is None:
        return None
    listed = [{"groupVersion": f"{name}/{v}", "version": v} for v in versions]
    return {"kind": "APIGroup", "apiVersion": "v1", "name": name, "versions": listed,
            "preferredVersion": listed[0]}


def group_list() -> dict:
    return {"kind": "APIGroupList", "apiVersion": "v1",
            "groups": [{k: v for k, v in api_group(g).items() if k not in ("kind", "apiVersion")}
                       for g in _groups()]}


def _aggregated_resource(r: Resource) -> dict:
    out: dict = {"resource": r.plural,
                 "responseKind": {"group": r.group, "version": r.version, "kind": r.kind},
                 "scope": "Namespaced" if r.namespaced else "Cluster",
                 "singularResource": r.singular, "verbs": list(r.verbs)}
    if r.short_names:
        out["shortNames"] = list(r.short_names)
    if r.categories:
        out["categories"] = list(r.categories)
    subs = []
    for sub in r.subresources:
        group, ver, kind = _sub_kind(r, sub)
        subs.append({"subresource": sub,
                     "responseKind": {"group": group, "version": ver, "kind": kind},
                     "verbs": _SUB_VERBS[sub]})
    if subs:
        out["subresources"] = subs
    return out


def aggregated(core: bool) -> dict:
    """APIGroupDiscoveryList for /api (core) or /apis (every named group)."""
    items = []
    by_group: dict[str, dict[str, list[Resource]]] = {}
    for api_version, listed in group_versions().items():
        group = listed[0].group
        if (group == "") == core:
            by_group.setdefault(group, {})[listed[0].version] = listed
    for group, versions in by_group.items():
        items.append({"metadata": {"name": group, "creationTimestamp": None},
                      "versions": [{"version": v, "freshness": "Current",
                                    "resources": [_aggregated_resource(r) for r in listed]}
                                   for v, listed in versions.items()]})
    return {"kind": "APIGroupDiscoveryList", "apiVersion": "apidiscovery.k8s.io/v2",
            "metadata": {}, "items": items}


def wants_aggregated(accept: str) -> bool:
    """kubectl lists the aggregated form first in Accept when it can read it."""
    for part in accept.split(","):
        params = dict(p.strip().split("=", 1) for p in part.split(";")[1:] if "=" in p)
        if params.get("g") == "apidiscovery.k8s.io" and params.get("v") == "v2" \
                and params.get("as") == "APIGroupDiscoveryList":
            return True
    return False
