"""A chart's dependencies, as `helm dependency build` would lay them out, from the repo only.

Chart.yaml's `dependencies` (requirements.yaml for apiVersion v1 charts) are each found:
- vendored in the chart's `charts/` (a directory whose Chart.yaml names it, or a
  `NAME-VERSION.tgz`), as Helm loads them; or
- `repository: file://PATH`: the chart at PATH (relative to the chart, inside the checkout)
  is copied into `charts/` of a private copy of the chart, recursively for its own
  file:// dependencies; the user's tree is never written.
Anything else (an https:// or oci:// repository not vendored) is a ManifestError naming the
dependency: nothing is fetched, and a chart is never rendered without a dependency it
declares (Helm's SDK would silently leave it out).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from gitops.errors import ManifestError

CHART_FILE = "Chart.yaml"
MAX_DEPTH = 10


@dataclass(frozen=True)
class Dependency:
    name: str
    repository: str = ""
    version: str = ""


@dataclass
class Built:
    chart: Path                              # what to render: the chart or its private copy
    sources: dict[str, Path] = field(default_factory=dict)   # copy prefix -> repo dir
    errors: list[ManifestError] = field(default_factory=list)


def declared(chart: Path, name: Callable[[Path], str]) -> tuple[list[Dependency],
                                                                  list[ManifestError]]:
    """The dependencies a chart declares (Chart.yaml, else requirements.yaml)."""
    for file in (chart / CHART_FILE, chart / "requirements.yaml"):
        if not file.is_file():
            continue
        try:
            data = yaml.safe_load(file.read_text("utf-8"))
        except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
            return [], [ManifestError(f"cannot read the chart: {exc}", name(file))]
        items = data.get("dependencies") if isinstance(data, dict) else None
        if not items:
            continue
        if not isinstance(items, list):
            return [], [ManifestError("dependencies: expected a list", name(file))]
        deps, errors = [], []
        for i, item in enumerate(items):
            if not isinstance(item, dict) or not isinstance(item.get("name"), str):
                errors.append(ManifestError(f"dependencies[{i}]: expected a map with a name",
                                            name(file)))
                continue
            deps.append(Dependency(item["name"], str(item.get("repository") or ""),
                                   str(item.get("version") or "")))
        return deps, errors
    return [], []


def vendored(chart: Path) -> set[str]:
    """Names of the charts in `charts/` (directories by their Chart.yaml's name, archives
    by their file name NAME-VERSION.tgz)."""
    found: set[str] = set()
    charts = chart / "charts"
    if not charts.is_dir():
        return found
    for entry in charts.iterdir():
        if entry.is_dir() and (entry / CHART_FILE).is_file():
            try:
                data = yaml.safe_load((entry / CHART_FILE).read_text("utf-8"))
            except (OSError, UnicodeDecodeError, yaml.YAMLError):
                data = None
            found.add(str(data.get("name")) if isinstance(data, dict) and data.get("name")
                      else entry.name)
        elif entry.name.endswith(".tgz"):
            found.add(entry.name[:-4].rsplit("-", 1)[0])
            found.add(entry.name[:-4])
    return found


@contextlib.contextmanager
def built(chart: Path, boundary: Path, name: Callable[[Path], str]) -> Iterator[Built]:
    """The chart with its file:// dependencies in place (a private copy when any is
    missing from charts/), or errors naming each dependency that cannot be had."""
    with tempfile.TemporaryDirectory(prefix="gitops-chart-") as tmp:
        result = Built(chart)
        copy = Path(tmp) / chart.name
        if _needs_build(chart, boundary, name, result.errors, set(), 0) and not result.errors:
            shutil.copytree(chart, copy, symlinks=False)
            result.chart = copy
            _build(copy, chart, boundary, name, result, "", 0)
        yield result


def _needs_build(chart: Path, boundary: Path, name: Callable[[Path], str],
                 errors: list[ManifestError], seen: set[Path], depth: int) -> bool:
    """Whether any file:// dependency (at any depth) is missing from charts/; errors for
    those that cannot be had at all."""
    deps, problems = declared(chart, name)
    errors += problems
    have = vendored(chart)
    needed = False
    for dep in deps:
        if dep.name in have:
            continue
        source = _file_source(chart, dep, boundary, name, errors)
        if source is None:
            continue
        needed = True
        if source in seen or depth >= MAX_DEPTH:
            errors.append(ManifestError(f"chart dependency {dep.name!r}: a cycle of file:// "
                                        "dependencies", name(chart / CHART_FILE)))
            continue
        _needs_build(source, boundary, name, errors, seen | {source}, depth + 1)
    return needed


def _file_source(chart: Path, dep: Dependency, boundary: Path, name: Callable[[Path], str],
                 errors: list[ManifestError]) -> Path | None:
    where = name(chart / CHART_FILE)
    if not dep.repository.startswith("file://"):
        repo = f" from {dep.repository}" if dep.repository else ""
        errors.append(ManifestError(
            f"chart dependency {dep.name!r}{repo} is missing from charts/: nothing is "
            "fetched; vendor it (`helm dependency build`, then commit charts/) or point "
            "it at a chart in the repo with repository: file://PATH", where))
        return None
    source = Path(os.path.realpath(chart / dep.repository.removeprefix("file://")))
    if not source.is_relative_to(boundary):
        errors.append(ManifestError(f"chart dependency {dep.name!r}: {dep.repository} lies "
                                    "outside the repository", where))
        return None
    if not (source / CHART_FILE).is_file():
        errors.append(ManifestError(f"chart dependency {dep.name!r}: no Chart.yaml at "
                                    f"{dep.repository}", where))
        return None
    return source


def _build(copy: Path, original: Path, boundary: Path, name: Callable[[Path], str],
           result: Built, prefix: str, depth: int) -> None:
    """Copy each missing file:// dependency of `original` into `copy`/charts/NAME."""
    deps, _ = declared(original, name)
    have = vendored(original)
    for dep in deps:
        if dep.name in have:
            continue
        source = _file_source(original, dep, boundary, name, result.errors)
        if source is None or depth >= MAX_DEPTH:
            continue
        target = copy / "charts" / dep.name
        shutil.copytree(source, target, symlinks=False, dirs_exist_ok=True)
        inner = f"{prefix}charts/{dep.name}/"
        result.sources[inner] = source
        _build(target, source, boundary, name, result, inner, depth + 1)
