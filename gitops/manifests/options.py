"""How one source is rendered: what an Argo CD Application's `source` says beyond repo, ref
and path (directory recursion and globs, Jsonnet arguments, Helm release and values), and
the destination namespace. One typed value handed from the flags or an Application down to
render_path; equal options render equal output (the sync engine caches on it).

Globs are Argo CD's (`directory.include` / `exclude`): matched against the file's path
relative to the manifest path, `*` crossing `/`, `{a,b}` alternatives, e.g.
`{app.yaml,prod/*}` or `*.libsonnet`.
"""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass, field

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@dataclass(frozen=True)
class JsonnetVar:
    """A top-level argument or external variable: a string, or Jsonnet code (`code`)."""
    name: str
    value: str
    code: bool = False


@dataclass(frozen=True)
class DirectoryOptions:
    recurse: bool = True            # Argo CD's default is false; this agent always recursed
    include: str = ""               # a glob (with {a,b}); "" takes every manifest file
    exclude: str = ""
    tlas: tuple[JsonnetVar, ...] = ()
    ext_vars: tuple[JsonnetVar, ...] = ()
    libs: tuple[str, ...] = ()      # Jsonnet library dirs, relative to the manifest path

    def selects(self, rel: str) -> bool:
        """Whether a file at `rel` (relative to the manifest path) is read."""
        if self.include and not glob_matches(self.include, rel):
            return False
        return not (self.exclude and glob_matches(self.exclude, rel))


@dataclass(frozen=True)
class HelmOptions:
    values_files: tuple[str, ...] = ()   # relative to the chart
    release_name: str = ""               # default: the chart's name


@dataclass(frozen=True)
class RenderOptions:
    directory: DirectoryOptions = field(default_factory=DirectoryOptions)
    helm: HelmOptions = field(default_factory=HelmOptions)
    namespace: str = ""     # destination: namespaced objects without one land here


def glob_matches(pattern: str, rel: str) -> bool:
    """Argo CD's include/exclude match, on the whole relative path: `{a,b}` alternatives,
    `*` crossing `/` (so `*.yaml` takes every YAML file, `config.yaml` only the top one)."""
    return any(fnmatch.fnmatchcase(rel, p) for p in expand_braces(pattern))


def expand_braces(pattern: str) -> list[str]:
    """`{a,b}c` -> [`ac`, `bc`] (nested braces too); an unclosed brace stays literal."""
    start = pattern.find("{")
    if start < 0:
        return [pattern]
    depth = 0
    for end in range(start, len(pattern)):
        depth += {"{": 1, "}": -1}.get(pattern[end], 0)
        if depth == 0:
            break
    else:
        return [pattern]
    parts, depth, last = [], 0, start + 1
    for i in range(start + 1, end):
        ch = pattern[i]
        depth += {"{": 1, "}": -1}.get(ch, 0)
        if ch == "," and depth == 0:
            parts.append(pattern[last:i])
            last = i + 1
    parts.append(pattern[last:end])
    head, tail = pattern[:start], pattern[end + 1:]
    return [x for part in parts for x in expand_braces(head + part + tail)]


def parse_var(text: str, code: bool = False) -> JsonnetVar:
    """`NAME=VALUE` (a flag) into a JsonnetVar; ValueError names what is wrong."""
    name, sep, value = text.partition("=")
    if not sep or not _NAME.match(name):
        raise ValueError(f"{text!r}: expected NAME=VALUE with NAME a Jsonnet identifier")
    return JsonnetVar(name, value, code)
