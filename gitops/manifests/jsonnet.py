"""Jsonnet sources, as Argo CD renders them: every `.jsonnet` file of a directory source is
evaluated (`.libsonnet` files are libraries, only imported) with the official bindings
(`pip install gitops[jsonnet]`), its top-level arguments and external variables, and must
produce an object, a list of objects or a `kind: List`.

The evaluation runs in the render sandbox (sandbox.py: memory, time and output budgets).
Imports resolve beside the importing file, then in each library dir, and only inside the
checkout: `import '../../../etc/x'` fails the file. Objects that leave Jsonnet still
SOPS-encrypted (a `std.parseYaml(importstr 'secret.enc.yaml')`) are decrypted as Flux
decrypts what leaves kustomize. Objects point at line 1 of their .jsonnet file: Jsonnet keeps
no source position of its output.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
from pathlib import Path

from gitops.errors import ManifestError
from gitops.manifests import decrypt, sandbox
from gitops.manifests.loader import LoadResult, SourceObject
from gitops.manifests.options import DirectoryOptions
from gitops.manifests.sops import Decryption

JSONNET_MISSING = "Jsonnet files need `pip install gitops[jsonnet]` (the official bindings)"
_WHERE = re.compile(r"(/[^\s:]+):(\d+):\d+")      # /abs/file.jsonnet:3:5-17


def site_dir() -> str | None:
    """The directory the bindings (_jsonnet) are installed in, or None without them.
    Found, not imported: the agent never evaluates Jsonnet in its own process."""
    try:
        spec = importlib.util.find_spec("_jsonnet")
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.origin:
        return None
    return str(Path(spec.origin).parent)


def render_file(path: Path, rel: str, real_root: Path, boundary: Path,
                directory: DirectoryOptions, limits: sandbox.Limits,
                decryption: Decryption) -> LoadResult:
    """One .jsonnet file (`rel`: its name relative to the manifest root) into objects."""
    site = site_dir()
    if site is None:
        return LoadResult(errors=[ManifestError(JSONNET_MISSING, rel)])
    libs = []
    for lib in directory.libs:
        lib_path = Path(os.path.realpath(real_root / lib))
        if not lib_path.is_relative_to(boundary):
            return LoadResult(errors=[ManifestError(
                f"jsonnet library dir {lib!r} lies outside the repository", rel)])
        libs.append(str(lib_path))
    request = {"file": str(path), "boundary": str(boundary), "libs": libs,
               "tlas": [v.__dict__ for v in directory.tlas],
               "ext_vars": [v.__dict__ for v in directory.ext_vars]}
    outcome = sandbox.run_jsonnet(site, request, limits)
    if outcome.exceeded:
        return LoadResult(errors=[ManifestError(
            sandbox.budget_message("jsonnet", outcome.exceeded, limits), rel)])
    try:
        reply = json.loads(outcome.stdout) if outcome.returncode == 0 else None
    except ValueError:
        reply = None
    if not isinstance(reply, dict):
        why = outcome.stderr.strip()[-500:] or "no answer from the evaluator"
        return LoadResult(errors=[ManifestError(f"jsonnet: {why}", rel)])
    if "error" in reply:
        return LoadResult(errors=[_error(str(reply["error"]), rel, real_root)])
    result = objects_of(json.loads(reply["json"]), rel)
    return decrypt.kustomize_output(result, set(), decryption, limits)


def objects_of(value: object, rel: str) -> LoadResult:
    """Jsonnet's output as objects: one object, a list (nested lists flattened, as Argo CD
    does) or a `kind: List`; anything else is an error naming the file."""
    result = LoadResult()
    pending = [value]
    while pending:
        item = pending.pop(0)
        if isinstance(item, list):
            pending[:0] = item
        elif isinstance(item, dict) and item.get("kind") == "List" \
                and isinstance(item.get("items"), list):
            pending[:0] = item["items"]
        elif isinstance(item, dict) and item:
            result.objects.append(SourceObject(item, rel, 1))
        elif item not in (None, {}):
            result.errors.append(ManifestError(
                f"jsonnet output must be an object or a list of objects, not "
                f"{type(item).__name__}", rel))
    return result


def _error(message: str, rel: str, real_root: Path) -> ManifestError:
    """The evaluator's message, with paths named relative to the manifest root and the
    first place inside the repository as the error's file and line."""
    file, line = rel, 0
    for m in _WHERE.finditer(message):
        where = Path(m.group(1))
        if where.is_relative_to(real_root):
            file, line = where.relative_to(real_root).as_posix(), int(m.group(2))
            break
    text = message.replace(str(real_root) + "/", "").strip()
    first = text.splitlines()[0] if text else "jsonnet evaluation failed"
    return ManifestError(f"jsonnet: {first}", file, line)
