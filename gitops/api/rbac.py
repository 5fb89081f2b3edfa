"""RBAC for ServiceAccount tokens: Roles, ClusterRoles and their bindings from the store,
evaluated as Kubernetes' RBAC authorizer does (pure over the objects given).

The agent's own token is the administrator and is never asked. Built in, as in a
cluster: cluster-admin, admin, edit and view (their aggregation labels included, the
resource lists approximated for the kinds served here), system:auth-delegator, and the
discovery and self-review rights every authenticated user has.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

_READ = ["get", "list", "watch"]
_WRITE = ["create", "delete", "deletecollection", "patch", "update"]
_CORE_READ = ["pods", "pods/log", "pods/status", "services", "services/status", "endpoints",
              "configmaps", "persistentvolumeclaims", "persistentvolumeclaims/status",
              "replicationcontrollers", "replicationcontrollers/scale",
              "replicationcontrollers/status", "serviceaccounts", "events", "limitranges",
              "resourcequotas", "resourcequotas/status", "namespaces", "namespaces/status",
              "bindings"]
_CORE_WRITE = ["pods", "pods/exec", "pods/attach", "pods/portforward", "pods/eviction",
               "services", "endpoints", "configmaps", "secrets", "persistentvolumeclaims",
               "replicationcontrollers", "replicationcontrollers/scale", "serviceaccounts",
               "events"]
_GROUPS = ["apps", "batch", "autoscaling", "policy", "networking.k8s.io", "discovery.k8s.io",
           "events.k8s.io"]


def _rule(groups: list[str], resources: list[str], verbs: list[str]) -> dict:
    return {"apiGroups": groups, "resources": resources, "verbs": verbs}


_VIEW = [_rule([""], _CORE_READ, _READ), _rule(_GROUPS, ["*"], _READ)]
_EDIT = [_rule([""], _CORE_WRITE + ["secrets"], _READ + _WRITE),
         _rule(_GROUPS, ["*"], _READ + _WRITE)]
_ADMIN = [_rule(["rbac.authorization.k8s.io"], ["roles", "rolebindings"], _READ + _WRITE),
          _rule(["authorization.k8s.io"], ["localsubjectaccessreviews"], ["create"])]
# Every authenticated user: discovery, version, OpenAPI, and questions about itself.
_EVERYONE = [{"nonResourceURLs": ["/api", "/api/*", "/apis", "/apis/*", "/version",
                                  "/version/", "/openapi", "/openapi/*", "/healthz",
                                  "/livez", "/readyz"], "verbs": ["get"]},
             _rule(["authorization.k8s.io"], ["selfsubjectaccessreviews",
                                              "selfsubjectrulesreviews"], ["create"]),
             _rule(["authentication.k8s.io"], ["selfsubjectreviews"], ["create"])]
BUILTIN: dict[str, list[dict]] = {
    "cluster-admin": [_rule(["*"], ["*"], ["*"]), {"nonResourceURLs": ["*"], "verbs": ["*"]}],
    "view": _VIEW,
    "edit": _EDIT,
    "admin": _ADMIN,
    "system:auth-delegator": [_rule(["authentication.k8s.io"], ["tokenreviews"], ["create"]),
                              _rule(["authorization.k8s.io"], ["subjectaccessreviews"],
                                    ["create"])],
}
# Built-in roles that include another's rules, as their aggregation makes them.
_INCLUDES = {"edit": "view", "admin": "edit"}
_AGGREGATE = "rbac.authorization.k8s.io/aggregate-to-"


@dataclass(frozen=True)
class Attributes:
    """What a request asks, as an authorizer sees it."""
    verb: str
    group: str = ""
    resource: str = ""              # plural, "" for a non-resource URL
    subresource: str = ""
    namespace: str = ""             # "" : cluster scope (or every namespace)
    name: str = ""
    path: str = ""                  # a non-resource URL

    def describe(self) -> str:
        """Kubernetes' 403 message, after `User "x" cannot `."""
        if not self.resource:
            return f'{self.verb} path "{self.path}"'
        what = self.resource + (f"/{self.subresource}" if self.subresource else "")
        where = (f'in the namespace "{self.namespace}"' if self.namespace
                 else "at the cluster scope")
        return f'{self.verb} resource "{what}" in API group "{self.group}" {where}'


# (kind, namespace, name) -> object; list(kind) -> objects
Lookup = Callable[[str, str, str], dict | None]
Lister = Callable[[str], list[dict]]


def _matches(values: Iterable[str], wanted: str) -> bool:
    values = list(values or [])
    return "*" in values or wanted in values


def _resource_matches(resources: Iterable[str], attrs: Attributes) -> bool:
    full = attrs.resource + (f"/{attrs.subresource}" if attrs.subresource else "")
    for r in resources or []:
        if r in ("*", full) or (attrs.subresource and r == f"*/{attrs.subresource}"):
            return True
    return False


def _path_matches(urls: Iterable[str], path: str) -> bool:
    for url in urls or []:
        if url == "*" or url == path or (url.endswith("*") and path.startswith(url[:-1])):
            return True
    return False


def rule_allows(rule: dict, attrs: Attributes) -> bool:
    if not _matches(rule.get("verbs"), attrs.verb):
        return False
    if not attrs.resource:
        return _path_matches(rule.get("nonResourceURLs"), attrs.path)
    if not _matches(rule.get("apiGroups"), attrs.group) or \
            not _resource_matches(rule.get("resources"), attrs):
        return False
    names = rule.get("resourceNames") or []
    return not names or attrs.name in names


def _labels_match(selector: dict, labels: dict) -> bool:
    return all(labels.get(k) == v for k, v in (selector.get("matchLabels") or {}).items())


def cluster_role_rules(name: str, lookup: Lookup, lister: Lister) -> list[dict]:
    """A ClusterRole's rules: the stored one (aggregated when it says so), else the
    built-in one with what is aggregated to it."""
    role = lookup("ClusterRole", "", name)
    roles = lister("ClusterRole")
    if role is not None:
        rules = list(role.get("rules") or [])
        for selector in (role.get("aggregationRule") or {}).get("clusterRoleSelectors") or []:
            for other in roles:
                if other is not role and _labels_match(
                        selector, other.get("metadata", {}).get("labels") or {}):
                    rules += other.get("rules") or []
        return rules
    if name not in BUILTIN:
        return []
    rules = list(BUILTIN[name])
    for other in roles:
        if (other.get("metadata", {}).get("labels") or {}).get(_AGGREGATE + name) == "true":
            rules += other.get("rules") or []
    if name in _INCLUDES:
        rules += cluster_role_rules(_INCLUDES[name], lookup, lister)
    return rules


def _subject_is(subject: dict, user: str, groups: Iterable[str], namespace: str) -> bool:
    kind, name = subject.get("kind"), subject.get("name")
    if kind == "ServiceAccount":
        ns = subject.get("namespace") or namespace
        return user == f"system:serviceaccount:{ns}:{name}"
    if kind == "User":
        return user == name
    if kind == "Group":
        return name in groups
    return False


def _binding_rules(binding: dict, lookup: Lookup, lister: Lister) -> list[dict]:
    ref = binding.get("roleRef") or {}
    if ref.get("kind") == "ClusterRole":
        return cluster_role_rules(ref.get("name", ""), lookup, lister)
    if ref.get("kind") == "Role":
        role = lookup("Role", binding["metadata"].get("namespace", ""), ref.get("name", ""))
        return list((role or {}).get("rules") or [])
    return []


def authorize(user: str, groups: Iterable[str], attrs: Attributes, lookup: Lookup,
              lister: Lister) -> bool:
    """Whether some binding of the user's grants the request (RBAC has no denials)."""
    groups = list(groups)
    if any(rule_allows(rule, attrs) for rule in _EVERYONE):
        return True
    for binding in lister("ClusterRoleBinding"):
        if any(_subject_is(s, user, groups, "") for s in binding.get("subjects") or []) and \
                any(rule_allows(r, attrs) for r in _binding_rules(binding, lookup, lister)):
            return True
    if not attrs.namespace:
        return False
    for binding in lister("RoleBinding"):
        ns = binding["metadata"].get("namespace", "")
        if ns != attrs.namespace:
            continue
        if any(_subject_is(s, user, groups, ns) for s in binding.get("subjects") or []) and \
                any(rule_allows(r, attrs) for r in _binding_rules(binding, lookup, lister)):
            return True
    return False


def forbidden_message(user: str, attrs: Attributes) -> str:
    """Kubernetes' words: `deployments.apps "web" is forbidden: User "..." cannot ...`."""
    head = attrs.resource + (f".{attrs.group}" if attrs.group else "")
    if attrs.resource and attrs.name:
        head = f'{head} "{attrs.name}"'
    prefix = f"{head} is forbidden: " if attrs.resource else "forbidden: "
    return f'{prefix}User "{user}" cannot {attrs.describe()}'
