"""Sync hooks: which objects are hooks, of which phases, and how they are cleaned up (pure).

Argo CD's `argocd.argoproj.io/hook` (or `gitops.io/hook`): PreSync, Sync, PostSync,
SyncFail, Skip, with `hook-delete-policy` HookSucceeded, HookFailed, BeforeHookCreation
(the default). Helm's `helm.sh/hook` maps as Argo CD maps it: pre-install/pre-upgrade ->
PreSync, post-install/post-upgrade -> PostSync, `helm.sh/hook-weight` is the wave,
`helm.sh/hook-delete-policy` maps name for name; `crd-install` is an ordinary object; test
hooks and the delete/rollback ones are never deployed by a sync. Argo CD's annotation wins
over Helm's. Hooks are not part of the inventory: prune and diff never look at them.
"""

from __future__ import annotations

import random
from collections import defaultdict
from dataclasses import dataclass

from gitops.manifests import paths
from gitops.model import KINDS
from gitops.sync.diff import Desired
from gitops.sync.waves import WAVE_ANNOTATIONS

HOOK_ANNOTATIONS = ("gitops.io/hook", "argocd.argoproj.io/hook")
DELETE_POLICY_ANNOTATIONS = ("gitops.io/hook-delete-policy",
                             "argocd.argoproj.io/hook-delete-policy")
HELM_HOOK, HELM_WEIGHT, HELM_DELETE_POLICY = (
    "helm.sh/hook", "helm.sh/hook-weight", "helm.sh/hook-delete-policy")
RUN_ANNOTATION = "gitops.io/hook-run"     # on a hook object: "<phase> <revision>"

PRE_SYNC, SYNC, POST_SYNC, SYNC_FAIL, SKIP = "PreSync", "Sync", "PostSync", "SyncFail", "Skip"
PHASES = (PRE_SYNC, SYNC, POST_SYNC, SYNC_FAIL)
# Argo CD runs these when an Application is deleted; a sync never does.
NOT_RUN_BY_SYNC = ("PreDelete", "PostDelete")
HOOK_SUCCEEDED, HOOK_FAILED, BEFORE_HOOK_CREATION = (
    "HookSucceeded", "HookFailed", "BeforeHookCreation")
DELETE_POLICIES = (HOOK_SUCCEEDED, HOOK_FAILED, BEFORE_HOOK_CREATION)

_HELM_PHASES = {"pre-install": PRE_SYNC, "pre-upgrade": PRE_SYNC,
                "post-install": POST_SYNC, "post-upgrade": POST_SYNC}
_HELM_NEVER = ("test", "test-success", "test-failure", "pre-delete", "post-delete",
               "pre-rollback", "post-rollback")
_HELM_POLICIES = {"hook-succeeded": HOOK_SUCCEEDED, "hook-failed": HOOK_FAILED,
                  "before-hook-creation": BEFORE_HOOK_CREATION}
UNNAMED = ("generateName is for hooks only: an object git keeps in sync needs a name to be "
           "found again")
_NAME_SUFFIX = "bcdfghjklmnpqrstvwxz2456789"    # Kubernetes' generateName alphabet


@dataclass(frozen=True)
class Hook:
    desired: Desired
    phases: tuple[str, ...]
    delete_policies: frozenset[str]
    wave: int = 0

    @property
    def kind(self) -> str:
        return str(self.desired.body.get("kind", ""))

    @property
    def namespace(self) -> str:
        info = KINDS.get(self.kind)
        if info is not None and not info.namespaced:
            return ""
        return str((self.desired.body.get("metadata") or {}).get("namespace") or "default")

    @property
    def name(self) -> str:
        """Its name, or its generateName prefix (a new name per run)."""
        meta = self.desired.body.get("metadata") or {}
        return str(meta.get("name") or meta.get("generateName") or "")

    @property
    def generated(self) -> bool:
        return not (self.desired.body.get("metadata") or {}).get("name")

    def __str__(self) -> str:
        ns = f"{self.namespace}/" if self.namespace else ""
        return f"{self.kind}/{ns}{self.name}{'*' if self.generated else ''}"


@dataclass(frozen=True)
class Split:
    """A revision's objects by role."""
    objects: list[Desired]            # synced, inventoried, pruned
    hooks: list[Hook]
    skipped: list[tuple[Desired, str]]   # never applied, with why

    def phase(self, name: str) -> list[Hook]:
        return [h for h in self.hooks if name in h.phases]


def _annotations(body: dict) -> dict:
    meta = body.get("metadata")
    annotations = meta.get("annotations") if isinstance(meta, dict) else None
    return annotations if isinstance(annotations, dict) else {}


def _field(name: str) -> str:
    return paths.join(["metadata", "annotations", name])


def _items(value: object) -> list[str]:
    return [v.strip() for v in str(value).split(",") if v.strip()]


def _first(annotations: dict, names: tuple[str, ...]) -> tuple[str, object] | None:
    for name in names:
        if name in annotations:
            return name, annotations[name]
    return None


def classify(body: dict) -> tuple[str, object, list[tuple[str, str]]]:
    """("object" | "hook" | "skip", (phases, delete policies, wave) or the reason skipped,
    [(field path, problem)])."""
    annotations = _annotations(body)
    problems: list[tuple[str, str]] = []
    argo = _first(annotations, HOOK_ANNOTATIONS)
    helm = annotations.get(HELM_HOOK)
    if argo is None and helm is None:
        return "object", None, []
    phases: list[str] = []
    if argo is not None:
        name, value = argo
        for item in _items(value):
            if item == SKIP:
                return "skip", f"{name}: Skip", []
            if item in NOT_RUN_BY_SYNC:
                continue
            if item not in PHASES:
                problems.append((_field(name), f'unknown hook "{item}" (one of '
                                 f'{", ".join([*PHASES, SKIP, *NOT_RUN_BY_SYNC])})'))
            elif item not in phases:
                phases.append(item)
        if not phases and not problems:
            return "skip", f"{name}: {value} (runs when an app is deleted, not on a sync)", []
    else:
        items = _items(helm)
        if items == ["crd-install"]:
            return "object", None, []
        for item in items:
            if item in _HELM_PHASES:
                if _HELM_PHASES[item] not in phases:
                    phases.append(_HELM_PHASES[item])
            elif item not in _HELM_NEVER and item != "crd-install":
                problems.append((_field(HELM_HOOK), f'unknown Helm hook "{item}" (one of '
                                 f'{", ".join([*_HELM_PHASES, *_HELM_NEVER])})'))
        if not phases and not problems:
            return "skip", f"{HELM_HOOK}: {helm} (never deployed by a sync)", []
    policies, more = _delete_policies(annotations, helm_only=argo is None)
    wave, wave_problems = _wave(annotations)
    problems += more + wave_problems
    if problems:
        return "hook", None, problems
    return "hook", (tuple(phases), policies or frozenset({BEFORE_HOOK_CREATION}), wave), []


def _delete_policies(annotations: dict, helm_only: bool) -> tuple[frozenset[str], list]:
    found = _first(annotations, DELETE_POLICY_ANNOTATIONS)
    out: set[str] = set()
    problems = []
    if found is not None:
        name, value = found
        for item in _items(value):
            if item in DELETE_POLICIES:
                out.add(item)
            else:
                problems.append((_field(name), f'unknown hook delete policy "{item}" '
                                 f'(one of {", ".join(DELETE_POLICIES)})'))
    elif HELM_DELETE_POLICY in annotations:
        for item in _items(annotations[HELM_DELETE_POLICY]):
            if item in _HELM_POLICIES:
                out.add(_HELM_POLICIES[item])
            else:
                problems.append((_field(HELM_DELETE_POLICY), f'unknown Helm hook delete '
                                 f'policy "{item}" (one of {", ".join(_HELM_POLICIES)})'))
    return frozenset(out), problems


def _wave(annotations: dict) -> tuple[int, list]:
    found = _first(annotations, (*WAVE_ANNOTATIONS, HELM_WEIGHT))
    if found is None:
        return 0, []
    name, value = found
    try:
        return int(str(value).strip()), []
    except ValueError:
        return 0, [(_field(name), f'"{value}" is not an integer')]


def split(desired: list[Desired]) -> Split:
    """A revision's objects by role. Objects with bad annotations are left out: validation
    (gitops.sync.rules) refuses the revision before anything is split."""
    objects: list[Desired] = []
    hooks: list[Hook] = []
    skipped: list[tuple[Desired, str]] = []
    for d in desired:
        role, what, found = classify(d.body)
        if found:
            continue
        if role == "object" and (d.body.get("metadata") or {}).get("name"):
            objects.append(d)
        elif role == "hook" and isinstance(what, tuple):
            hooks.append(Hook(d, *what))
        elif role == "skip":
            skipped.append((d, str(what)))
    return Split(objects, hooks, skipped)


def waves_of(hooks: list[Hook]) -> list[tuple[int, list[Hook]]]:
    """Hooks grouped by wave, lowest first; kind order within a wave."""
    grouped: dict[int, list[Hook]] = defaultdict(list)
    for hook in hooks:
        grouped[hook.wave].append(hook)
    rank = (lambda h: (KINDS[h.kind].apply_order if h.kind in KINDS else 100, h.kind,
                       h.namespace, h.name))
    return [(w, sorted(grouped[w], key=rank)) for w in sorted(grouped)]


def generated_name(prefix: str, rng: random.Random | None = None) -> str:
    """generateName's rule: the prefix (cut to leave room) and five random characters."""
    choice = (rng or random).choice
    return prefix[:58] + "".join(choice(_NAME_SUFFIX) for _ in range(5))
