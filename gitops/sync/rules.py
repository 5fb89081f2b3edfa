"""What the sync asks of a manifest beyond Kubernetes' rules (pure): hook and option
annotations it understands, and a name for every object that is not a hook. Run by the
sync before a revision applies and by `gitops validate`, so both refuse the same input."""

from __future__ import annotations

from collections.abc import Sequence

from gitops.errors import ManifestError
from gitops.manifests.loader import SourceObject
from gitops.sync import hooks, options


def check(objects: Sequence[SourceObject]) -> list[ManifestError]:
    errors = []
    for obj in objects:
        body = obj.body if isinstance(obj.body, dict) else {}
        meta = body.get("metadata") if isinstance(body.get("metadata"), dict) else {}
        role, _, found = hooks.classify(body)
        found = [*found, *options.problems(body)]
        if role == "object" and not meta.get("name") and meta.get("generateName"):
            found.append(("metadata.generateName", hooks.UNNAMED))
        shown = obj.name or str(meta.get("generateName") or "")
        for path, message in found:
            errors.append(ManifestError(message, obj.file, obj.line_of(path), path,
                                        obj.kind, shown))
    return errors


def schema_checked(obj: SourceObject) -> bool:
    """False for an object that asks for Validate=false."""
    return options.options_of(obj.body if isinstance(obj.body, dict) else {}).validate
