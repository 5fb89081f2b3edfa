"""Applications declared in git: several apps per agent, app-of-apps (pure).

A repo the agent syncs may declare apps, each synced on its own (its repo, ref, path,
rendering, destination namespace and sync policy), as Argo CD's Application and Flux's
Kustomization do:

    apiVersion: gitops.io/v1alpha1        # or argoproj.io/v1alpha1, read the same way
    kind: Application
    metadata: {name: web}
    spec:
      source: {repoURL: ..., targetRevision: main, path: apps/web,
               directory: {recurse: false, include: '*.yaml', exclude: '...',
                           jsonnet: {tlas: [{name, value, code}], extVars: [...], libs: []}},
               helm: {releaseName: web, valueFiles: [values-prod.yaml]}}
      destination: {namespace: web}
      syncPolicy: {automated: {prune: true, selfHeal: true}, syncOptions: [...]}
      ignoreDifferences: [...]

`repoURL` may be left out in a gitops.io Application: the declaring app's repo. Defaults
differ by kind: an argoproj.io Application is Argo CD's (no `automated`: manual sync only;
prune and selfHeal off; directory.recurse off), a gitops.io one is the agent's (automated,
prune and selfHeal on, recursion on) unless it says otherwise. Fields that
mean nothing on one host, or that would fetch from elsewhere than git, are refused by name
(a file:line error that refuses the revision, as any invalid manifest): spec.sources,
source.chart, source.kustomize, source.plugin, helm.parameters, a destination server other
than this one, and anything else not listed here. Ignored as harmless: spec.project (no
RBAC projects on one host), spec.info, spec.revisionHistoryLimit, syncPolicy.retry (every
poll retries), status.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from gitops.errors import ManifestError
from gitops.manifests.loader import SourceObject
from gitops.manifests.options import (DirectoryOptions, HelmOptions, JsonnetVar,
                                      RenderOptions)
from gitops.sync.ignore import IgnoreRule, load_rules
from gitops.sync.options import DEFAULT, SyncOptions, app_options

KIND = "Application"
API_VERSIONS = ("gitops.io/v1alpha1", "argoproj.io/v1alpha1")
ARGO = "argoproj.io/v1alpha1"
# Deleting an app with one of these deletes what it deployed (Argo CD's cascade).
CASCADE_FINALIZERS = ("resources-finalizer.argocd.argoproj.io", "gitops.io/resources")
IN_CLUSTER = ("https://kubernetes.default.svc", "https://kubernetes.default.svc/")
_NAME_CHARS = set("abcdefghijklmnopqrstuvwxyz0123456789-.")

_WHY = {
    "spec.sources": "several sources per app are not supported: declare one Application "
                    "per source",
    "spec.source.chart": "charts from a Helm repository are not fetched: keep the chart in "
                         "git (vendor it) and point `path` at it",
    "spec.source.kustomize": "kustomize options in the Application are not supported: put "
                             "them in the kustomization.yaml",
    "spec.source.plugin": "config management plugins are not supported",
    "spec.source.helm.parameters": "use a values file (valueFiles) instead of parameters",
    "spec.source.helm.fileParameters": "use a values file (valueFiles) instead",
    "spec.source.helm.values": "inline values are not supported: use a values file in git "
                               "(valueFiles)",
    "spec.source.helm.valuesObject": "inline values are not supported: use a values file "
                                     "in git (valueFiles)",
    "spec.syncPolicy.managedNamespaceMetadata": "not supported: declare the Namespace in git",
}
_KNOWN = {
    "spec": {"source", "destination", "syncPolicy", "ignoreDifferences", "project", "info",
             "revisionHistoryLimit"},
    "spec.source": {"repoURL", "targetRevision", "path", "directory", "helm", "ref", "name"},
    "spec.source.directory": {"recurse", "include", "exclude", "jsonnet"},
    "spec.source.directory.jsonnet": {"tlas", "extVars", "libs"},
    "spec.source.helm": {"releaseName", "valueFiles", "ignoreMissingValueFiles",
                         "passCredentials", "skipCrds", "version", "namespace"},
    "spec.destination": {"server", "name", "namespace"},
    "spec.syncPolicy": {"automated", "syncOptions", "retry"},
    "spec.syncPolicy.automated": {"prune", "selfHeal", "allowEmpty", "enabled"},
}


@dataclass(frozen=True)
class AppSpec:
    """One app as declared: where it comes from, how it renders, how it syncs."""
    name: str
    repo: str                       # "" for the declaring app's own repo
    ref: str = ""
    path: str = ""
    render: RenderOptions = field(default_factory=RenderOptions)
    automated: bool = True          # sync on its own (else only `gitops sync --app`)
    prune: bool = True
    self_heal: bool = True
    allow_empty: bool = False
    options: SyncOptions = DEFAULT
    ignore_differences: tuple[IgnoreRule, ...] = ()
    cascade: bool = False           # deleting the app deletes its objects
    file: str = ""                  # where it is declared
    line: int = 0
    repo_line: int = 0              # of spec.source.repoURL


def is_application(body: dict) -> bool:
    return body.get("kind") == KIND and body.get("apiVersion") in API_VERSIONS


def split(objects: list[SourceObject]) -> tuple[list[SourceObject], list[SourceObject]]:
    """(Applications, everything else)."""
    apps = [o for o in objects if is_application(o.body)]
    return apps, [o for o in objects if not is_application(o.body)]


def parse(obj: SourceObject) -> tuple[AppSpec | None, list[ManifestError]]:
    """An Application manifest into an AppSpec, or errors at its file, line and field."""
    errors: list[ManifestError] = []
    body = obj.body
    argo = body.get("apiVersion") == ARGO

    def err(where: str, message: str) -> None:
        errors.append(ManifestError(message, obj.file, obj.line_of(where), where,
                                    kind=KIND, name=obj.name))

    meta = body.get("metadata") if isinstance(body.get("metadata"), dict) else {}
    name = meta.get("name")
    if not isinstance(name, str) or not name or not set(name) <= _NAME_CHARS \
            or len(name) > 63:
        err("metadata.name", "an Application needs a name of lowercase letters, digits, "
                             "'-' and '.' (at most 63)")
        return None, errors
    spec = _map(body, "spec", err, required=True)
    _refuse_unknown(body, err)
    source = _map(spec, "spec.source", err, required="sources" not in spec)
    repo = _text(source, "repoURL", "spec.source", err)
    if argo and not repo:
        err("spec.source.repoURL", "required")
    directory = _map(source, "spec.source.directory", err)
    jsonnet = _map(directory, "spec.source.directory.jsonnet", err)
    helm = _map(source, "spec.source.helm", err)
    destination = _map(spec, "spec.destination", err)
    server = _text(destination, "server", "spec.destination", err)
    if server and server not in IN_CLUSTER:
        err("spec.destination.server", f"{server!r}: this agent deploys to its own host "
                                       f"only ({IN_CLUSTER[0]})")
    dest_name = _text(destination, "name", "spec.destination", err)
    if dest_name and dest_name != "in-cluster":
        err("spec.destination.name", f"{dest_name!r}: this agent deploys to its own host "
                                     "only (in-cluster)")
    policy = _map(spec, "spec.syncPolicy", err)
    automated = policy.get("automated")
    if automated is not None and not isinstance(automated, dict):
        err("spec.syncPolicy.automated", "expected a mapping")
        automated = {}
    try:
        options = app_options([str(o) for o in policy.get("syncOptions") or []])
    except ValueError as exc:
        err("spec.syncPolicy.syncOptions", str(exc))
        options = DEFAULT
    rules: list[IgnoreRule] = []
    if "ignoreDifferences" in spec:
        found, problems = load_rules(spec, obj.file, {
            k.removeprefix("spec."): v for k, v in obj.field_lines.items()})
        rules, errors = found, errors + problems
    render = RenderOptions(
        directory=DirectoryOptions(
            recurse=_flag(directory, "recurse", "spec.source.directory", err,
                          default=not argo),
            include=_text(directory, "include", "spec.source.directory", err),
            exclude=_text(directory, "exclude", "spec.source.directory", err),
            tlas=_vars(jsonnet, "tlas", err), ext_vars=_vars(jsonnet, "extVars", err),
            libs=tuple(_texts(jsonnet, "libs", "spec.source.directory.jsonnet", err))),
        helm=HelmOptions(values_files=tuple(_values_files(helm, err)),
                         release_name=_text(helm, "releaseName", "spec.source.helm", err)),
        namespace=_text(destination, "namespace", "spec.destination", err))
    auto = automated if isinstance(automated, dict) else {}
    app = AppSpec(
        name=name, repo=repo,
        ref=_text(source, "targetRevision", "spec.source", err).removeprefix("HEAD"),
        path=_text(source, "path", "spec.source", err).strip("/").removeprefix("./"),
        render=render,
        automated=(automated is not None or not argo) and auto.get("enabled") is not False,
        prune=_flag(auto, "prune", "spec.syncPolicy.automated", err, default=not argo),
        self_heal=_flag(auto, "selfHeal", "spec.syncPolicy.automated", err,
                        default=not argo),
        allow_empty=_flag(auto, "allowEmpty", "spec.syncPolicy.automated", err,
                          default=False),
        options=options, ignore_differences=tuple(rules),
        cascade=any(f in CASCADE_FINALIZERS for f in meta.get("finalizers") or []),
        file=obj.file, line=obj.line, repo_line=obj.line_of("spec.source.repoURL"))
    if ".." in app.path.split("/") or app.path.startswith("/"):
        err("spec.source.path", "a path inside the repository (no .., not absolute)")
    return (None if errors else app), errors


def _refuse_unknown(body: dict, err) -> None:
    for where, why in _WHY.items():
        if _get(body, where) is not None:
            err(where, f"not supported: {why}")
    for where, known in _KNOWN.items():
        value = _get(body, where)
        if not isinstance(value, dict):
            continue
        for key in value:
            child = f"{where}.{key}"
            if key not in known and child not in _WHY:
                err(child, "not supported by this agent (see README: Coming from Argo CD)")


def _get(body: dict, where: str) -> object:
    value: object = body
    for part in where.split("."):
        if not isinstance(value, dict):
            return None
        value = value.get(part)
    return value


def _map(parent: dict, where: str, err, required: bool = False) -> dict:
    value = parent.get(where.rsplit(".", 1)[-1])
    if value is None:
        if required:
            err(where, "required")
        return {}
    if not isinstance(value, dict):
        err(where, "expected a mapping")
        return {}
    return value


def _text(parent: dict, key: str, where: str, err) -> str:
    value = parent.get(key)
    if value is None:
        return ""
    if not isinstance(value, (str, int, float)) or isinstance(value, bool):
        err(f"{where}.{key}", "expected a string")
        return ""
    return str(value)


def _texts(parent: dict, key: str, where: str, err) -> list[str]:
    value = parent.get(key) or []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        err(f"{where}.{key}", "expected a list of strings")
        return []
    return value


def _flag(parent: dict, key: str, where: str, err, default: bool) -> bool:
    value = parent.get(key, default)
    if not isinstance(value, bool):
        err(f"{where}.{key}", "expected true or false")
        return default
    return value


def _vars(jsonnet: dict, key: str, err) -> tuple[JsonnetVar, ...]:
    where = f"spec.source.directory.jsonnet.{key}"
    items = jsonnet.get(key) or []
    if not isinstance(items, list):
        err(where, "expected a list of {name, value, code}")
        return ()
    out = []
    for i, item in enumerate(items):
        if not isinstance(item, dict) or not isinstance(item.get("name"), str):
            err(f"{where}[{i}]", "expected {name, value, code}")
            continue
        out.append(JsonnetVar(item["name"], str(item.get("value", "")),
                              item.get("code") is True))
    return tuple(out)


def _values_files(helm: dict, err) -> list[str]:
    files = _texts(helm, "valueFiles", "spec.source.helm", err)
    for i, f in enumerate(files):
        if f.startswith("/") or "://" in f:
            err(f"spec.source.helm.valueFiles[{i}]", "a values file in the repository, "
                                                     "relative to the chart")
    return files


def parse_all(objects: list[SourceObject]) -> tuple[list[AppSpec], list[ManifestError]]:
    """Every Application of a revision; two of one name are an error at the second."""
    apps: list[AppSpec] = []
    errors: list[ManifestError] = []
    seen: dict[str, AppSpec] = {}
    for obj in objects:
        app, problems = parse(obj)
        errors += problems
        if app is None:
            continue
        if app.name in seen:
            first = seen[app.name]
            errors.append(ManifestError(f"Application {app.name!r} is declared twice (first "
                                        f"at {first.file}:{first.line})", app.file, app.line,
                                        "metadata.name", kind=KIND, name=app.name))
            continue
        seen[app.name] = app
        apps.append(app)
    return apps, errors


_NETWORK_GIT = ("https://", "http://", "ssh://", "git@", "git://")


def source_errors(apps: list[AppSpec], declaring_repo: str) -> list[ManifestError]:
    """An app's repo is a network git URL or its declaring app's own: a repo may not make
    the agent read the host's directories or other local repositories (a local path or a
    file:// URL) that the operator did not point it at."""
    own = declaring_repo.rstrip("/")
    return [ManifestError(f"repoURL {app.repo!r}: an Application's repository is a git URL "
                          "(https://, ssh://, git@...) or the declaring app's own; a local "
                          "path or file:// URL is read only as the agent's own source",
                          app.file, app.repo_line or app.line, "spec.source.repoURL",
                          kind=KIND, name=app.name)
            for app in apps
            if app.repo and app.repo.rstrip("/") != own and not app.repo.startswith(_NETWORK_GIT)]
