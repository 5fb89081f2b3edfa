"""Node policy checks at sync time, so a refused pod spec refuses the revision with
file:line instead of failing later on the node; and warnings for the fields the node
cannot honour (gitops.model.unhonoured), which refuse nothing."""

from __future__ import annotations

from collections.abc import Sequence

from gitops.errors import ManifestError
from gitops.manifests.loader import SourceObject
from gitops.model.podspec import host_access, pod_spec_of
from gitops.model.unhonoured import unhonoured


def check(objects: Sequence[SourceObject], allow_host_access: bool) -> list[ManifestError]:
    if allow_host_access:
        return []
    errors = []
    for obj in objects:
        found = pod_spec_of(obj.body)
        if found is None:
            continue
        base, spec = found
        for rel, message in host_access(spec):
            path = f"{base}.{rel}"
            errors.append(ManifestError(message, obj.file, obj.line_of(path), path,
                                        obj.kind, obj.name))
    return errors


def warnings(objects: Sequence[SourceObject]) -> list[ManifestError]:
    """One warning per pod spec field the node cannot honour, with file:line and field."""
    out = []
    for obj in objects:
        found = pod_spec_of(obj.body)
        if found is None:
            continue
        base, spec = found
        for rel, message in unhonoured(spec):
            path = f"{base}.{rel}"
            out.append(ManifestError(f"not honoured by this node: {message}", obj.file,
                                     obj.line_of(path), path, obj.kind, obj.name))
    return out
