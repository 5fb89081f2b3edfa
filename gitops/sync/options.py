"""Sync and compare options, per object and per app, as Argo CD spells them (pure).

An object carries them in `argocd.argoproj.io/sync-options` (or `gitops.io/sync-options`):
`Prune=false,ServerSideApply=true`, whitespace trimmed; compare options in
`.../compare-options`. An app has the same list (`--sync-option`, or an Application's
`syncPolicy.syncOptions`); an object's option overrides the app's, one by one, as in
Argo CD. An option that cannot work on one host (`Prune=confirm`: nobody to confirm) or
that is unknown is an error naming the annotation, never silently ignored.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, fields, replace

from gitops.manifests import paths

SYNC_OPTIONS = ("gitops.io/sync-options", "argocd.argoproj.io/sync-options")
COMPARE_OPTIONS = ("gitops.io/compare-options", "argocd.argoproj.io/compare-options")
PRUNE_ANNOTATION = "gitops.io/prune"            # "false": ours, older than sync-options
HELM_RESOURCE_POLICY = "helm.sh/resource-policy"  # "keep": kept when the app is deleted
PROPAGATION = ("background", "foreground", "orphan")


@dataclass(frozen=True)
class SyncOptions:
    """What one object's sync may do. None: not said here (the app's policy decides)."""
    prune: bool | None = None           # Prune=false: never deleted by prune
    delete: bool = True                 # Delete=false: kept when its app is deleted
    replace: bool = False               # Replace=true: written whole (no three-way merge)
    force: bool = False                 # Force=true (with Replace): deleted and recreated
    server_side_apply: bool = False     # ServerSideApply=true: merged by field ownership
    validate: bool = True               # Validate=false: no schema validation
    create_namespace: bool = False      # CreateNamespace=true: its namespace is made
    prune_last: bool = False            # PruneLast=true: pruned after every wave is healthy
    prune_propagation: str = ""         # PrunePropagationPolicy=...
    ignore_extraneous: bool = False     # compare-options IgnoreExtraneous


DEFAULT = SyncOptions()

_BOOL = {"true": True, "false": False}
# Option name -> the field it sets. Options accepted for Argo CD repos that change nothing
# here map to "": ApplyOutOfSyncOnly (only changed objects are ever written),
# SkipDryRunOnMissingResource (no dry run), RespectIgnoreDifferences (always respected),
# ClientSideApplyMigration (git's field manager takes what it declares anyway).
_SYNC_FIELDS = {"Prune": "prune", "Delete": "delete", "Replace": "replace", "Force": "force",
                "ServerSideApply": "server_side_apply", "Validate": "validate",
                "CreateNamespace": "create_namespace", "PruneLast": "prune_last",
                "PrunePropagationPolicy": "prune_propagation", "ApplyOutOfSyncOnly": "",
                "SkipDryRunOnMissingResource": "", "RespectIgnoreDifferences": "",
                "ClientSideApplyMigration": ""}
_APP_ONLY = {"FailOnSharedResource"}    # one app per host: nothing to share
_COMPARE_FIELDS = {"IgnoreExtraneous": "ignore_extraneous", "ServerSideDiff": "",
                   "IncludeMutationWebhook": ""}
_CONFIRM = ("{name}=confirm waits for a person to confirm in Argo CD's UI; there is none "
            "here: use {name}=false and delete the object by hand when you mean to")


def parse(items: Iterable[str], compare: bool = False) -> tuple[dict, list[str]]:
    """Options as written ("Prune=false", ...) -> ({field: value}, problems)."""
    table = _COMPARE_FIELDS if compare else _SYNC_FIELDS
    out: dict = {}
    problems: list[str] = []
    for raw in items:
        item = raw.strip()
        if not item:
            continue
        # compare options are bare names
        name, sep, value = (part.strip() for part in
                            (item if "=" in item or not compare else item + "=true")
                            .partition("="))
        if name in _APP_ONLY and not compare:
            problems.append(f"{name} is an option of a whole app, not of one object")
            continue
        if name not in table or not sep:
            known = ", ".join(sorted(table))
            problems.append(f'unknown {"compare" if compare else "sync"} option "{item}" '
                            f"(known: {known})")
            continue
        if value.lower() == "confirm" and name in ("Prune", "Delete"):
            problems.append(_CONFIRM.format(name=name))
            continue
        if name == "PrunePropagationPolicy":
            if value.lower() not in PROPAGATION:
                problems.append(f'{name}="{value}": one of {", ".join(PROPAGATION)}')
            elif table[name]:
                out[table[name]] = value.lower()
            continue
        if value.lower() not in _BOOL:
            problems.append(f'{name}="{value}": true or false')
            continue
        if table[name]:
            out[table[name]] = _BOOL[value.lower()]
    return out, problems


def _annotations(body: dict | None) -> dict:
    meta = (body or {}).get("metadata")
    annotations = meta.get("annotations") if isinstance(meta, dict) else None
    return annotations if isinstance(annotations, dict) else {}


def _declared(body: dict | None) -> Iterator[tuple[str, str, bool]]:
    """(annotation, value, compare?) for each options annotation the object carries."""
    annotations = _annotations(body)
    for names, compare in ((SYNC_OPTIONS, False), (COMPARE_OPTIONS, True)):
        for name in names:
            value = annotations.get(name)
            if value is not None:
                yield name, value, compare


def problems(body: dict) -> list[tuple[str, str]]:
    """(field path, message) for every bad option an object declares (for validation)."""
    out = []
    for name, value, compare in _declared(body):
        where = paths.join(["metadata", "annotations", name])
        if not isinstance(value, str):
            out.append((where, "must be a string of comma-separated options"))
            continue
        out += [(where, p) for p in parse(value.split(","), compare)[1]]
    return out


def options_of(body: dict | None, app: SyncOptions = DEFAULT) -> SyncOptions:
    """The options in force for an object: the app's, overridden by its own (bad ones are
    refused at validation; here they are skipped)."""
    own: dict = {}
    for _name, value, compare in _declared(body):
        if isinstance(value, str):
            own.update(parse(value.split(","), compare)[0])
    annotations = _annotations(body)
    if str(annotations.get(PRUNE_ANNOTATION, "")).lower() == "false":
        own["prune"] = False
    if str(annotations.get(HELM_RESOURCE_POLICY, "")).lower() == "keep":
        own.setdefault("delete", False)
    return replace(app, **own) if own else app


def app_options(items: Iterable[str]) -> SyncOptions:
    """An app's options (`--sync-option`, an Application's syncOptions); raises ValueError
    naming the bad ones."""
    sync = [i for i in items if i.split("=")[0].strip() not in _COMPARE_FIELDS]
    compare = [i for i in items if i.split("=")[0].strip() in _COMPARE_FIELDS]
    own, bad = parse([i for i in sync if i.split("=")[0].strip() not in _APP_ONLY])
    more, bad_compare = parse(compare, compare=True)
    if bad or bad_compare:
        raise ValueError("; ".join(bad + bad_compare))
    return replace(DEFAULT, **own, **more)


def describe(options: SyncOptions) -> str:
    """The options that differ from the defaults, as Argo CD spells them (for logs)."""
    names = {v: k for k, v in {**_SYNC_FIELDS, **_COMPARE_FIELDS}.items() if v}
    out = []
    for f in fields(options):
        value = getattr(options, f.name)
        if value != getattr(DEFAULT, f.name):
            shown = str(value).lower() if isinstance(value, bool) else value
            out.append(f"{names[f.name]}={shown}")
    return ",".join(out)
