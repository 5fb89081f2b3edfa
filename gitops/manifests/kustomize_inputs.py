"""What a kustomization may read, checked before kustomize runs.

Kustomize fetches whatever is not a local path: a URL, `github.com/org/repo//dir?ref=v1`,
`git@host:org/repo`, even a mistyped base that happens to parse as a repository (with git, or
an HTTP GET for a file). It also follows symlinks and `../` wherever they lead. So the rule is
"an existing local path inside the checkout, symlinks followed": every resource, base,
component, patch, generator input and transformer of every kustomization reachable from the
one being built must be one, or the build is refused with the file, line and field of the
entry. A remote entry passes only when the operator allows remote bases (then kustomize
fetches it and its own contents are kustomize's to restrict).

The walk reads YAML only (kustomization files, through the loader's limits); it runs nothing.
Files that plugin configs name (a generator's `files:` inside gen.yaml) are kustomize's own
load restrictor's (LoadRestrictionsRootOnly, its default: in or below the kustomization's
directory, symlinks followed); bases are what kustomize lets reach anywhere, and what this
walk confines.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gitops.errors import ManifestError
from gitops.manifests import paths
from gitops.manifests.loader import MAX_FILE_BYTES, load_mapping

KUSTOMIZATION_FILES = ("kustomization.yaml", "kustomization.yml", "Kustomization")
REMOTE_FLAG = "--allow-remote-bases"
MAX_KUSTOMIZATIONS = 1000      # kustomization directories one build may reach

# Lists of paths that may also be a directory holding a kustomization (or a remote one).
_UNITS = ("resources", "bases", "components", "generators", "transformers", "validators")
_FILES = ("crds", "configurations", "patchesStrategicMerge")
_ITEMS_WITH_PATH = ("patches", "patchesJson6902", "replacements")
_GENERATORS = ("configMapGenerator", "secretGenerator")
_MAY_BE_INLINE = {"generators", "transformers", "validators", "patchesStrategicMerge"}
_URL = re.compile(r"^[a-z][a-z0-9+.-]*://", re.IGNORECASE)
_HOST_FIRST = re.compile(r"^[\w-]+(\.[\w-]+)+(:\d+)?/")      # github.com/org/repo


@dataclass(frozen=True)
class _Input:
    field: str          # resources[2], patches[0].path, configMapGenerator[1].files[0]
    value: str          # the path as written


def kustomization_file(directory: Path) -> Path | None:
    for name in KUSTOMIZATION_FILES:
        candidate = directory / name
        if candidate.is_file():
            return candidate
    return None


def _inputs(spec: dict) -> Iterator[_Input]:
    """Every path a kustomization names (inline patches and generators excepted)."""
    for key in _UNITS + _FILES:
        for i, value in enumerate(_list(spec.get(key))):
            if not isinstance(value, str):
                continue
            if key in _MAY_BE_INLINE and "\n" in value:     # inline YAML, not a path
                continue
            yield _Input(paths.child(key, i), value)
    for key in _ITEMS_WITH_PATH:
        for i, item in enumerate(_list(spec.get(key))):
            if isinstance(item, dict) and isinstance(item.get("path"), str):
                yield _Input(paths.join([key, i, "path"]), item["path"])
    for key in _GENERATORS:
        for i, gen in enumerate(_list(spec.get(key))):
            if not isinstance(gen, dict):
                continue
            for field in ("files", "envs"):
                for j, value in enumerate(_list(gen.get(field))):
                    if isinstance(value, str):      # files: "key=path" or "path"
                        yield _Input(paths.join([key, i, field, j]), value.split("=", 1)[-1])
            if isinstance(gen.get("env"), str):
                yield _Input(paths.join([key, i, "env"]), gen["env"])
    openapi = spec.get("openapi")
    if isinstance(openapi, dict) and isinstance(openapi.get("path"), str):
        yield _Input("openapi.path", openapi["path"])


def _looks_remote(value: str) -> bool:
    return bool(_URL.match(value) or value.startswith("git@") or "?ref=" in value
                or "//" in value or _HOST_FIRST.match(value))


def check(unit: Path, boundary: Path, name: Callable[[Path], str],
          allow_remote: bool) -> list[ManifestError]:
    """Walk the kustomization graph from directory `unit` (resolved); `boundary` is the
    resolved checkout; `name` turns a path into the file name errors carry."""
    errors: list[ManifestError] = []
    for kfile, lines, entry, target in _reached(unit, boundary, name, errors):
        where = dict(file=name(kfile), line=lines.get(entry.field, 1), path=entry.field)
        if os.path.exists(target):
            if not _inside(target, boundary):
                errors.append(ManifestError(
                    f"{entry.value!r} resolves outside the repository (symlink or ../); "
                    "nothing outside the checkout is read", **where))
        elif allow_remote:
            continue            # remote (kustomize fetches it) or missing (it says so)
        elif _looks_remote(entry.value):
            errors.append(ManifestError(
                f"remote resource {entry.value!r} refused: kustomize would fetch it from "
                f"the network ({REMOTE_FLAG} allows remote bases)", **where))
        elif not _inside(target, boundary):
            errors.append(ManifestError(
                f"{entry.value!r} resolves outside the repository", **where))
        else:
            errors.append(ManifestError(
                f"{entry.value!r}: no such file or directory in the repository "
                f"(kustomize would try it as a remote base; {REMOTE_FLAG} allows those)",
                **where))
    return errors


@dataclass(frozen=True)
class InputFile:
    path: Path          # resolved, a regular file inside the checkout
    kustomization: Path
    field: str          # where the kustomization names it: secretGenerator[0].envs[0]
    line: int


def input_files(unit: Path, boundary: Path) -> list[InputFile]:
    """Every local file the kustomization graph from `unit` names (after `check` passed):
    what the SOPS step looks at before kustomize reads them."""
    found = []
    for kfile, lines, entry, target in _reached(unit, boundary, str, []):
        if os.path.isfile(target) and _inside(target, boundary):
            found.append(InputFile(Path(target), kfile, entry.field,
                                   lines.get(entry.field, 1)))
    return found


def _reached(unit: Path, boundary: Path, name: Callable[[Path], str], errors: list
             ) -> Iterator[tuple[Path, dict[str, int], _Input, str]]:
    """(kustomization file, its field lines, entry, resolved target) for every entry of every
    kustomization reachable from `unit` inside `boundary`; problems with the kustomization
    files themselves go to `errors`."""
    queue, seen = [unit], set()
    while queue and len(seen) < MAX_KUSTOMIZATIONS:
        directory = queue.pop()
        if directory in seen:
            continue
        seen.add(directory)
        kfile = kustomization_file(directory)
        if kfile is None:           # kustomize says so, in its own words
            continue
        if not _inside(kfile, boundary):
            errors.append(ManifestError("symlink points outside the repository", name(kfile)))
            continue
        spec, lines, problems = _load(kfile, name(kfile))
        errors += problems
        for entry in _inputs(spec):
            target = os.path.realpath(directory / entry.value)
            yield kfile, lines, entry, target
            if os.path.isdir(target) and _inside(target, boundary):
                queue.append(Path(target))
    if any(directory not in seen for directory in queue):
        errors.append(ManifestError(f"more than {MAX_KUSTOMIZATIONS} kustomizations reached",
                                    name(unit / KUSTOMIZATION_FILES[0])))


def _inside(path: Path | str, boundary: Path) -> bool:
    return Path(os.path.realpath(path)).is_relative_to(boundary)


def _list(value: Any) -> list:
    return value if isinstance(value, list) else []


def _load(kfile: Path, file: str) -> tuple[dict, dict[str, int], list[ManifestError]]:
    try:
        if kfile.stat().st_size > MAX_FILE_BYTES:
            return {}, {}, [ManifestError(
                f"file is larger than {MAX_FILE_BYTES // 2**20} MB", file)]
        text = kfile.read_text("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        return {}, {}, [ManifestError(f"cannot read: {exc}", file)]
    return load_mapping(text, file)
