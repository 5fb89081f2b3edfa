"""The decryption step of the render path (render.py calls it; sops.py decrypts): files that
carry SOPS metadata are made clear in memory before they are loaded or handed to a renderer,
and what comes out is settled as the store keeps it.

- plain YAML: objects from the clear text, at the encrypted file's lines;
- Kustomize: every file the kustomization graph reads (resources, patches, generator envs and
  files, in bases too) is decrypted first; kustomize reads files, so it builds a private copy
  of the checkout in memory (/dev/shm, 0700) holding the clear files, removed afterwards. An
  object leaving the build still encrypted (a remote base) is decrypted as it is, as Flux
  decrypts Kustomize's output: without the MAC check kustomize's transformers would break;
- Helm: values files given with --values are decrypted and handed to Helm on stdin; the
  chart's own values.yaml must stay clear (Helm reads it as the chart's defaults).

A decrypted Secret is stored as the API server stores one (stringData folded into data); any
other kind decrypted is warned about, its values being shown by the API.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from gitops.errors import ManifestError
from gitops.manifests import kustomize_inputs, paths, sandbox, sops
from gitops.manifests.loader import LoadResult, SourceObject, load_mapping, load_text, read_text
from gitops.manifests.sops import Decryption

Name = Callable[[Path], str]     # a path as errors and objects name it (relative to the root)
COPY_PREFIX = "gitops-sops-"
# A private copy older than this was left by a process killed mid-build (a build lasts at most
# the tool budget, 60 s): the next build removes it, clear files and all.
STALE_COPY_SECONDS = 600


def load_file(text: str, file: str, decryption: Decryption,
              limits: sandbox.Limits) -> LoadResult:
    """An encrypted YAML file's objects, from its clear text, at the encrypted file's lines."""
    try:
        clear = decryption.decrypt(text, "yaml", file, limits)
    except sops.Unreadable:
        return LoadResult()
    except ManifestError as exc:
        return LoadResult(errors=[exc])
    loaded = load_text(clear, file)
    loaded.objects = [as_data(o) for o in pair_lines(load_text(text, file).objects,
                                                     loaded.objects)]
    for obj in loaded.objects:
        if obj.kind != "Secret":
            decryption.warn_visible(obj)
    return loaded


def kustomize_inputs_clear(unit: Path, boundary: Path, kfile_rel: str, name: Name,
                           decryption: Decryption, limits: sandbox.Limits
                           ) -> tuple[dict[Path, bytes], LoadResult | None]:
    """The clear content of every SOPS-encrypted file the kustomization graph from `unit`
    reads (resolved path -> bytes), or a LoadResult saying why it is not built."""
    clear: dict[Path, bytes] = {}
    errors: list[ManifestError] = []
    left_encrypted = False
    inputs = kustomize_inputs.input_files(unit, boundary)
    for item in inputs:
        if item.path in clear:
            continue
        rel = name(item.path)
        text = read_text(item.path, rel, LoadResult())   # unreadable: kustomize says why
        fmt = sops.format_for(item.path, "dotenv" if ".env" in item.field else "binary")
        if text is None or not sops.is_encrypted(text, fmt):
            continue
        try:
            clear[item.path] = decryption.decrypt_bytes(text, fmt, rel, limits)
        except sops.Unreadable:
            left_encrypted = True
            continue
        except ManifestError as exc:
            errors.append(exc)
            continue
        if item.field.startswith("configMapGenerator"):
            decryption.warnings.append(ManifestError(
                "decrypted from SOPS into a ConfigMap, whose values are shown by the API, "
                "`gitops get` and diffs; use a secretGenerator", name(item.kustomization),
                item.line, item.field))
    if errors:
        return clear, LoadResult(errors=errors)
    if left_encrypted:      # validate or diff without a key: its objects are unknown
        decryption.leave_unread(
            [kfile_rel, *(name(i.path) for i in inputs), *(name(i.kustomization)
                                                         for i in inputs)],
            ManifestError("not built: it reads SOPS-encrypted files and no decryption key "
                          "was given", kfile_rel, 1))
        return clear, LoadResult()
    return clear, None


def kustomize_output(built: LoadResult, decrypted: set[str], decryption: Decryption,
                     limits: sandbox.Limits) -> LoadResult:
    """Objects from decrypted files as stored; an object still encrypted (from a remote
    base) decrypted as built, without the MAC check (see the module doc)."""
    objects = []
    for obj in built.objects:
        if still_encrypted(obj.body):
            try:
                body = json.loads(decryption.decrypt(json.dumps(obj.body), "json", obj.file,
                                                     limits, line=obj.line, ignore_mac=True))
            except sops.Unreadable:
                continue
            except (ManifestError, ValueError) as exc:
                built.errors.append(ManifestError(str(getattr(exc, "message", exc)), obj.file,
                                                  obj.line, kind=obj.kind, name=obj.name))
                continue
            obj = SourceObject(body, obj.file, obj.line, obj.field_lines)
            decrypted = decrypted | {obj.file}
        if obj.file in decrypted:
            obj = as_data(obj)
            if obj.kind != "Secret":
                decryption.warn_visible(obj)
        objects.append(obj)
    built.objects = objects
    return built


def helm_values(chart: Path, value_paths: list[Path], name: Name, decryption: Decryption,
                limits: sandbox.Limits) -> tuple[dict[int, str], LoadResult | None]:
    """The clear text of each SOPS-encrypted values file, by its index in `value_paths`, or
    a LoadResult saying why the chart is not rendered."""
    own = chart / "values.yaml"
    text = read_text(own, name(own), LoadResult()) if own.is_file() else None
    if text is not None and sops.is_encrypted(text, "yaml"):
        return {}, LoadResult(errors=[ManifestError(
            "the chart's own values.yaml is SOPS-encrypted, but Helm reads it in clear as the "
            "chart's defaults; keep secret values in a values file of their own, given with "
            "--values (it is decrypted)", name(own), sops.metadata_line(text, "yaml"))])
    inline: dict[int, str] = {}
    errors: list[ManifestError] = []
    left_encrypted = False
    for index, path in enumerate(value_paths):
        problems = LoadResult()
        text = read_text(path, name(path), problems)
        fmt = sops.format_for(path, "yaml")
        if text is None or not sops.is_encrypted(text, fmt):
            errors += problems.errors
            continue
        try:
            inline[index] = decryption.decrypt(text, fmt, name(path), limits)  # JSON is YAML
        except sops.Unreadable:
            left_encrypted = True
        except ManifestError as exc:
            errors.append(exc)
    if errors:
        return inline, LoadResult(errors=errors)
    if left_encrypted:      # validate or diff without a key: its objects are unknown
        where = name(chart)
        decryption.leave_unread(
            ["" if where == "." else where + "/"],
            ManifestError("not rendered: a values file is SOPS-encrypted and no decryption "
                          "key was given", name(chart / "Chart.yaml")))
        return inline, LoadResult()
    return inline, None


def helm_output(result: LoadResult, value_paths: list[Path], inline: dict[int, str],
                decryption: Decryption) -> LoadResult:
    """A chart rendered with decrypted values: Secrets as stored, and a warning for any
    other object holding a value that was encrypted."""
    if not inline:
        return result
    leaves = set().union(*(encrypted_leaves(read_text(value_paths[i], "", LoadResult()) or "",
                                            clear, "") for i, clear in inline.items()))
    result.objects = [as_data(o) for o in result.objects]
    for obj in result.objects:
        if obj.kind != "Secret" and mentions(obj.body, leaves):
            decryption.warn_visible(obj)
    return result


def as_data(obj: SourceObject) -> SourceObject:
    """A decrypted Secret as the API server stores one: stringData folded into base64 data,
    so the clear text is kept nowhere (field lines follow the values)."""
    body = obj.body
    string_data = body.get("stringData")
    if body.get("kind") != "Secret" or not isinstance(string_data, dict) or not all(
            isinstance(v, str) for v in string_data.values()):
        return obj      # nothing to fold, or malformed: validation says so
    data = body.get("data") if isinstance(body.get("data"), dict) else {}
    folded = {**data, **{k: base64.b64encode(v.encode()).decode()
                         for k, v in string_data.items()}}
    new_body = {k: v for k, v in body.items() if k != "stringData"} | {"data": folded}
    lines = dict(obj.field_lines)
    for key in string_data:
        source = lines.get(paths.child("stringData", key))
        if source:
            lines[paths.child("data", key)] = source
    lines.setdefault("data", lines.get("stringData", obj.line))
    return SourceObject(new_body, obj.file, obj.line, lines)


def encrypted_leaves(encrypted: str, clear: str, file: str) -> set[str]:
    """The clear values of the leaves a YAML/JSON file held encrypted (ENC[...]): what must
    not show up in an object that is not a Secret."""
    before, _, _ = load_mapping(encrypted, file)
    after, _, _ = load_mapping(clear, file)
    found: set[str] = set()

    def walk(enc: Any, plain: Any) -> None:
        if isinstance(enc, dict) and isinstance(plain, dict):
            for key, value in enc.items():
                if key != "sops" and key in plain:
                    walk(value, plain[key])
        elif isinstance(enc, list) and isinstance(plain, list):
            for a, b in zip(enc, plain):
                walk(a, b)
        elif isinstance(enc, str) and enc.startswith("ENC[") and not isinstance(
                plain, (bool, type(None))):
            found.add(str(plain))
    walk(before, after)
    return {v for v in found if len(v.strip()) >= 4}   # a bool, "1", "abc": not telling


def mentions(body: Any, values: set[str]) -> bool:
    """Does any string in `body` contain one of `values`?"""
    if isinstance(body, dict):
        return any(mentions(v, values) for v in body.values())
    if isinstance(body, list):
        return any(mentions(v, values) for v in body)
    return isinstance(body, str) and any(v in body for v in values)


def pair_lines(encrypted: list[SourceObject], clear: list[SourceObject]) -> list[SourceObject]:
    """Decrypted objects placed at their lines in the encrypted file, the one in git (sops
    re-emits YAML: a multi-line value is one line there, so the clear text's lines differ)."""
    if len(encrypted) != len(clear):
        return clear
    return [SourceObject(c.body, e.file, e.line, e.field_lines) for e, c in zip(encrypted, clear)]


@contextmanager
def private_copy(boundary: Path, clear: dict[Path, bytes]) -> Iterator[Path]:
    """A copy of the checkout (.git left out) in memory (/dev/shm: tmpfs), readable by the
    agent's user alone, with each encrypted file (a resolved path inside `boundary`) replaced
    by its clear text; removed when the block ends. Kustomize reads files, so this is how
    it sees decrypted generator inputs and resources without the clear text touching a disk."""
    base = "/dev/shm" if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK) else None
    _sweep_stale(Path(base or tempfile.gettempdir()))
    holder = Path(tempfile.mkdtemp(prefix=COPY_PREFIX, dir=base))   # 0700
    try:
        copy = holder / "checkout"
        shutil.copytree(boundary, copy, symlinks=True,
                        ignore=lambda d, names: [".git"] if Path(d) == boundary else [])
        _repoint_links(copy, boundary)
        for path, data in clear.items():
            target = copy / path.relative_to(boundary)
            target.unlink(missing_ok=True)
            fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as f:
                f.write(data)
        yield copy
    finally:
        shutil.rmtree(holder, ignore_errors=True)


def _sweep_stale(base: Path) -> None:
    """Remove this user's private copies that a killed process left behind."""
    now = time.time()
    for entry in base.glob(COPY_PREFIX + "*"):
        try:
            st = entry.lstat()
        except OSError:
            continue
        if st.st_uid == os.geteuid() and now - st.st_mtime > STALE_COPY_SECONDS:
            shutil.rmtree(entry, ignore_errors=True)


def _repoint_links(copy: Path, boundary: Path) -> None:
    """An absolute symlink into the checkout points into the copy instead (relative ones
    already do), so kustomize reads the clear file through it too."""
    for dirpath, dirnames, filenames in os.walk(copy):
        for name in dirnames + filenames:
            link = Path(dirpath, name)
            if not link.is_symlink():
                continue
            target = Path(os.readlink(link))
            if target.is_absolute() and target.is_relative_to(boundary):
                link.unlink()
                link.symlink_to(copy / target.relative_to(boundary))


def still_encrypted(body: dict[str, Any]) -> bool:
    """An object that reached a renderer's output with its SOPS metadata."""
    meta = body.get("sops")
    return isinstance(meta, dict) and "mac" in meta
