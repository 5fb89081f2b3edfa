"""A revision judged by the API server's rules before any of it is applied: the store's
registry admits each write (defaults, allocations, immutable fields: gitops.admission)
on a copy, so a revision it would refuse is refused whole, each problem at the file and
line of the field, and nothing of it is half-applied.

Namespaces, as Argo CD has them: an object's namespace must exist, or be declared by the
revision itself (the Namespace applies first, in the same or an earlier wave), or, with
the CreateNamespace=true sync option (the object's, or the app's: --create-namespace), is
made before the revision applies.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from gitops.admission.errors import Invalid, NamespaceNotFound, Refused
from gitops.errors import ManifestError
from gitops.model import ObjectKey
from gitops.model.meta import is_deleting
from gitops.store.registry import SYSTEM_NAMESPACES, Registry
from gitops.sync.apply import Writer
from gitops.sync.diff import Change, Desired, Plan
from gitops.sync.waves import waves

CREATE_NAMESPACE_HINT = ("declare the Namespace in the repo, or run the agent with "
                         "--create-namespace (or give the object the sync option "
                         "CreateNamespace=true)")


@dataclass
class Verdict:
    errors: list[ManifestError] = field(default_factory=list)
    namespaces: list[str] = field(default_factory=list)     # to create before applying


def judge(store: Registry, plan: Plan, desired: Mapping[ObjectKey, Desired],
          creates_namespace: Callable[[Change], bool] = lambda change: False,
          skip: frozenset[ObjectKey] = frozenset(), writer: Writer | None = None
          ) -> Verdict:
    """What the registry would refuse of this plan, each write as `writer` would make it.
    creates_namespace: whether a change's missing namespace is made for it; skip:
    changes that will not be applied (drift held while self-heal is off)."""
    writer = writer or Writer(store)
    verdict = Verdict()
    grouped = waves(plan.changes)
    declared = {c.key.name: wave for wave, changes in grouped for c in changes
                if c.key.kind == "Namespace"}
    # One transaction that writes nothing: the judgement sees one state of the store, and
    # the registry lists the Services the allocators check once, not once per Service.
    with store.transaction():
        for wave, changes in grouped:
            for change in changes:
                if change.action not in ("create", "update") or change.key in skip:
                    continue
                where = desired.get(change.key)
                if where is None:
                    continue
                problems = _namespace(store, change.key, wave, declared,
                                      creates_namespace(change), verdict.namespaces)
                if not problems:
                    problems = _admission(store, writer, change,
                                          [*declared, *verdict.namespaces])
                verdict.errors += [ManifestError(message, where.file, where.line_of(path),
                                                 path, change.key.kind, change.key.name)
                                   for path, message in problems]
    return verdict


def _namespace(store: Registry, key: ObjectKey, wave: int, declared: dict[str, int],
               create: bool, to_create: list[str]) -> list[tuple[str, str]]:
    ns = key.namespace
    if not ns or ns in SYSTEM_NAMESPACES or ns in to_create:
        return []
    if ns in declared:
        if declared[ns] > wave:
            return [("metadata.namespace", f'namespace "{ns}" is declared in sync wave '
                     f'{declared[ns]}, after this object\'s wave {wave}')]
        return []
    found = store.get(ObjectKey("Namespace", "", ns))
    if found is not None:
        if is_deleting(found):
            return [("metadata.namespace", f'unable to create new content in namespace {ns} '
                     "because it is being terminated")]
        return []
    if create:
        to_create.append(ns)
        return []
    return [("metadata.namespace", f'namespaces "{ns}" not found: {CREATE_NAMESPACE_HINT}')]


def _admission(store: Registry, writer: Writer, change: Change, namespaces: list[str]
               ) -> list[tuple[str, str]]:
    """The registry's verdict on the write this change makes, on a copy."""
    obj, old = writer.intended(change)
    try:
        store.admit(obj, old, namespaces)
    except Invalid as exc:
        return list(exc.causes)
    except NamespaceNotFound as exc:
        return [("metadata.namespace", f"{exc}: {CREATE_NAMESPACE_HINT}")]
    except Refused as exc:
        return [("", str(exc))]
    return []
