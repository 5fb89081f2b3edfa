"""Load Kubernetes manifests from YAML, keeping file:line for every field.

Values are built from parser *events*, not composed nodes: libyaml's composer recurses in C
(a 200 KB ``[[[[...`` segfaults it) and aliases expand without limit, while an event loop
can stop at a depth or alias budget before the work is done.
"""

from __future__ import annotations

import copy
import dataclasses
import os
import re
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

import yaml

from gitops.errors import ManifestError
from gitops.manifests import paths

_Parser = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

MAX_FILE_BYTES = 5 * 1024 * 1024
MAX_ALIAS_NODES = 10_000  # values produced by alias expansion, per document
MAX_DEPTH = 100  # nested collections; also keeps later recursive code far from the limit

_T = "tag:yaml.org,2002:"
_STR, _MAP, _SEQ, _MERGE = _T + "str", _T + "map", _T + "seq", _T + "merge"
_INT, _FLOAT = _T + "int", _T + "float"
_CONSTRUCTED = {_T + "null", _T + "bool", _INT, _FLOAT}
# Kept as written: Kubernetes wants strings there (dates in labels/data, base64 Secret data,
# a bare "="), and nobody writing `1:30` in a manifest means the sexagesimal number 90.
_AS_TEXT = {_T + "timestamp", _T + "binary", _T + "value"}
_SCALARS = yaml.constructor.SafeConstructor()
_NO_KEY, _MERGE_KEY = object(), object()
_ITEM = re.compile(r"items\[(\d+)\]")


@dataclass(frozen=True)
class SourceObject:
    body: dict
    file: str
    line: int
    field_lines: Mapping[str, int] = field(default_factory=dict, repr=False)

    def line_of(self, path: str) -> int:
        """Line of the longest prefix of `path` present in the source, else the object's."""
        for prefix in paths.prefixes(path):
            line = self.field_lines.get(prefix)
            if line:
                return line
        return self.line

    @property
    def kind(self) -> str:
        kind = self.body.get("kind")
        return kind if isinstance(kind, str) else ""

    @property
    def name(self) -> str:
        meta = self.body.get("metadata")
        name = meta.get("name") if isinstance(meta, dict) else None
        return name if isinstance(name, str) else ""


@dataclass
class LoadResult:
    objects: list[SourceObject] = field(default_factory=list)
    errors: list[ManifestError] = field(default_factory=list)

    def extend(self, other: LoadResult) -> None:
        self.objects.extend(other.objects)
        self.errors.extend(other.errors)


class _DocError(ManifestError):
    """Ends one document (fatal: the whole stream); _parse files it with the file name."""

    def __init__(self, message: str, line: int, path: str = "", fatal: bool = False) -> None:
        super().__init__(message, line=line, path=path)
        self.fatal = fatal


class _Frame:
    """An open mapping or sequence."""
    __slots__ = ("value", "path", "anchor", "start", "height", "key", "key_path", "keys",
                 "merges", "merge_line")

    def __init__(self, value: dict | list, path: str, anchor: str | None, start: int) -> None:
        self.value, self.path, self.anchor, self.start = value, path, anchor, start
        self.height = 0  # height of the tallest child
        self.key: Any = _NO_KEY  # mapping: key awaiting its value
        self.key_path = ""
        self.keys: dict[str, int] = {}  # explicit key -> line, for duplicate detection
        self.merges: list[dict] = []
        self.merge_line = 0


class _Document:
    """Turns one document's events into a plain value plus a field path -> line map."""

    def __init__(self, resolve: Any) -> None:
        self.resolve = resolve
        self.stack: list[_Frame] = []
        self.lines: dict[str, int] = {}
        self.anchors: dict[str, tuple[Any, int, int]] = {}  # name -> (value, size, height)
        self.open_anchors: set[str] = set()
        self.count = 0  # values produced, alias expansions included (sizes anchors)
        self.expanded = 0  # values produced by alias expansion (the bomb budget)
        self.root: Any = None
        self.root_line = 0
        self.error: _DocError | None = None

    def feed(self, ev: yaml.Event) -> None:
        if isinstance(ev, (yaml.MappingEndEvent, yaml.SequenceEndEvent)):
            self._close()
            return
        line = ev.start_mark.line + 1
        top = self.stack[-1] if self.stack else None
        if top is not None and top.key is _NO_KEY and isinstance(top.value, dict):
            self._key(ev, top, line)
            return
        path = self._slot(top, line)
        if isinstance(ev, yaml.ScalarEvent):
            value = self._scalar(ev, line, path)
            self.count += 1
            if ev.anchor:
                self.anchors[ev.anchor] = (value, 1, 0)
            self._put(value, 0)
        elif isinstance(ev, yaml.AliasEvent):
            self._put(*self._alias(ev.anchor, line, path))
        else:
            is_map = isinstance(ev, yaml.MappingStartEvent)
            if len(self.stack) >= MAX_DEPTH:  # stop before libyaml's quadratic deep nesting
                raise _DocError(f"nesting deeper than {MAX_DEPTH} levels", line, path, fatal=True)
            if ev.tag not in (None, "!", _MAP if is_map else _SEQ):
                raise _DocError(f"unsupported YAML tag {ev.tag}", line, path)
            self.count += 1
            if ev.anchor:
                self.open_anchors.add(ev.anchor)
            self.stack.append(_Frame({} if is_map else [], path, ev.anchor, self.count))

    def _slot(self, top: _Frame | None, line: int) -> str:
        """Path of the value about to start; records its line when it is a list item."""
        if top is None:
            self.root_line = line
            return ""
        if isinstance(top.value, list):
            path = paths.child(top.path, len(top.value))
            self.lines[path] = line
            return path
        return top.path if top.key is _MERGE_KEY else top.key_path

    def _key(self, ev: yaml.Event, top: _Frame, line: int) -> None:
        if not isinstance(ev, yaml.ScalarEvent):
            raise _DocError("mapping keys must be plain strings", line, top.path)
        tag = ev.tag
        if tag is None or tag == "!":
            tag = self.resolve(yaml.ScalarNode, ev.value, ev.implicit)
        if tag == _MERGE:
            top.key, top.merge_line = _MERGE_KEY, line
            return
        # Non-string keys (80:, true:) keep their source text, as the author wrote them.
        key = ev.value
        top.key_path = paths.child(top.path, key)
        if key in top.keys:
            raise _DocError(f'duplicate key "{key}" (first on line {top.keys[key]})',
                            line, top.key_path)
        top.keys[key] = line
        top.key = key
        self.lines[top.key_path] = line

    def _scalar(self, ev: yaml.ScalarEvent, line: int, path: str) -> Any:
        tag = ev.tag
        if tag is None or tag == "!":
            tag = self.resolve(yaml.ScalarNode, ev.value, ev.implicit)
        if tag == _STR or tag in _AS_TEXT or (tag in (_INT, _FLOAT) and ":" in ev.value):
            return ev.value
        if tag not in _CONSTRUCTED:
            raise _DocError(f"unsupported YAML tag {tag}", line, path)
        try:
            return _SCALARS.yaml_constructors[tag](_SCALARS, yaml.ScalarNode(tag, ev.value))
        except (ValueError, KeyError, yaml.YAMLError):
            # Never quote the value: the loader cannot know yet whether it is a Secret's
            # (kind may come later in the document); the path and line say where it is.
            raise _DocError(f"value is not a valid !!{tag.rsplit(':', 1)[-1]} (value not shown)",
                            line, path) from None

    def _alias(self, name: str, line: int, path: str) -> tuple[Any, int]:
        if name in self.open_anchors:
            raise _DocError(f"alias *{name} refers to itself", line, path)
        if name not in self.anchors:
            raise _DocError(f"undefined alias *{name}", line, path)
        value, size, height = self.anchors[name]
        self.expanded += size
        if self.expanded > MAX_ALIAS_NODES:
            raise _DocError(f"aliases expand to more than {MAX_ALIAS_NODES} values; "
                            "refusing (YAML bomb?)", line, path)
        if len(self.stack) + height > MAX_DEPTH:
            raise _DocError(f"nesting deeper than {MAX_DEPTH} levels", line, path)
        self.count += size
        return _copy(value), height  # a copy: later mutation of one place must not leak

    def _put(self, value: Any, height: int) -> None:
        if not self.stack:
            self.root = value
            return
        top = self.stack[-1]
        top.height = max(top.height, height)
        if isinstance(top.value, list):
            top.value.append(value)
        elif top.key is _MERGE_KEY:
            merged = value if isinstance(value, list) else [value]
            if not all(isinstance(m, dict) for m in merged):
                raise _DocError("<< needs a mapping or a list of mappings", top.merge_line,
                                top.path)
            top.merges.extend(merged)
            top.key = _NO_KEY
        else:
            top.value[top.key] = value
            top.key = _NO_KEY

    def _close(self) -> None:
        frame = self.stack.pop()
        if frame.merges:  # explicit keys win, then earlier merges (YAML merge-key rules)
            for merged in frame.merges:
                for key, value in merged.items():
                    if key not in frame.value:
                        frame.value[key] = value
                        self.lines.setdefault(paths.child(frame.path, key), frame.merge_line)
        height = frame.height + 1
        if frame.anchor:
            self.open_anchors.discard(frame.anchor)
            self.anchors[frame.anchor] = (frame.value, self.count - frame.start + 1, height)
        self._put(frame.value, height)


def _copy(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_copy(v) for v in value]
    return value


# Parsed files by (name, text): a sync re-reads every file of a revision, and a watched
# directory's edit changes one. Entries hold private copies; callers get fresh ones
# (rendering may edit bodies, e.g. strip Kustomize's origin annotation).
_CACHE: OrderedDict[tuple[str, str], LoadResult] = OrderedDict()
_CACHE_LOCK = threading.Lock()
CACHE_MAX_FILES = 4096
CACHE_MAX_BYTES = 64 * 2**20
_cache_bytes = 0


def _fresh(result: LoadResult) -> LoadResult:
    return LoadResult([dataclasses.replace(o, body=_copy(o.body)) for o in result.objects],
                      [copy.copy(e) for e in result.errors])


def load_text(text: str, file: str = "<stdin>") -> LoadResult:
    """Parse every document of `text`; problems come back as errors, never raised."""
    global _cache_bytes
    key = (file, text)
    with _CACHE_LOCK:
        cached = _CACHE.get(key)
        if cached is not None:
            _CACHE.move_to_end(key)
    if cached is not None:
        return _fresh(cached)
    result = _parse(text, file)
    with _CACHE_LOCK:
        if key not in _CACHE and len(text) <= CACHE_MAX_BYTES // 8:
            _CACHE[key] = _fresh(result)
            _cache_bytes += len(text)
            while len(_CACHE) > CACHE_MAX_FILES or _cache_bytes > CACHE_MAX_BYTES:
                (_, old_text), _old = _CACHE.popitem(last=False)
                _cache_bytes -= len(old_text)
    return result


def load_mapping(text: str, file: str) -> tuple[dict, dict[str, int], list[ManifestError]]:
    """The first document of `text` as a plain mapping and its field path -> line map, for YAML
    that is not a Kubernetes object (kustomization.yaml); the same limits as load_text."""
    docs: list[_Document] = []
    result = _parse(text, file, lambda doc, _file, _result: docs.append(doc))
    if result.errors or not docs or docs[0].root is None:
        return {}, {}, result.errors
    if not isinstance(docs[0].root, dict):
        return {}, {}, [ManifestError(f"document is not a mapping (got "
                                      f"{_type_name(docs[0].root)})", file, docs[0].root_line)]
    return docs[0].root, docs[0].lines, []


def _parse(text: str, file: str, emit: Callable[[_Document, str, LoadResult], None] | None = None
           ) -> LoadResult:
    result = LoadResult()
    parser = None
    doc: _Document | None = None
    try:
        parser = _Parser(text)  # the pure-Python reader already rejects bad characters here
        while True:
            ev = parser.get_event()
            if ev is None or isinstance(ev, yaml.StreamEndEvent):
                break
            if isinstance(ev, yaml.DocumentStartEvent):
                doc = _Document(parser.resolve)
            elif isinstance(ev, yaml.DocumentEndEvent):
                if doc is not None and doc.error is None:
                    (emit or _emit)(doc, file, result)
                doc = None
            elif doc is not None and doc.error is None:
                try:
                    doc.feed(ev)
                except _DocError as e:  # skip the rest of this document, keep the others
                    doc.error = e
                    result.errors.append(ManifestError(e.message, file, e.line, e.path))
                    if e.fatal:
                        break
    except yaml.YAMLError as e:
        result.errors.append(_syntax_error(e, file, text))
    finally:
        if parser is not None:
            parser.dispose()
    return result


def _syntax_error(e: yaml.YAMLError, file: str, text: str) -> ManifestError:
    mark = getattr(e, "problem_mark", None) or getattr(e, "context_mark", None)
    if mark is not None:
        line = mark.line + 1
    elif isinstance(getattr(e, "position", None), int):  # ReaderError: bad characters
        line = text.count("\n", 0, e.position) + 1
    else:
        line = 0
    problem = getattr(e, "problem", None) or getattr(e, "reason", None) or str(e)
    context = getattr(e, "context", None)
    message = f"YAML syntax error: {problem}"
    if context and e.context_mark is not None and e.context_mark.line + 1 != line:
        message += f" ({context} on line {e.context_mark.line + 1})"
    elif context:
        message += f" ({context})"
    return ManifestError(message, file, line)


def _emit(doc: _Document, file: str, result: LoadResult) -> None:
    body = doc.root
    if body is None:  # empty document or bare `null`: nothing to do
        return
    if not isinstance(body, dict):
        result.errors.append(ManifestError(
            f"document is not a mapping (got {_type_name(body)})", file, doc.root_line))
        return
    kind = body.get("kind")
    if isinstance(kind, str) and kind.endswith("List") and "items" in body:
        _emit_items(body, doc, file, result)
    else:
        _add_object(body, file, doc.root_line, doc.lines, result)


def _emit_items(body: dict, doc: _Document, file: str, result: LoadResult) -> None:
    items = body["items"]
    if items is None:
        return
    if not isinstance(items, list):
        result.errors.append(ManifestError(
            f"{body['kind']}.items must be a list", file, doc.lines.get("items", doc.root_line),
            "items", body["kind"]))
        return
    per_item: list[dict[str, int]] = [{} for _ in items]
    for path, line in doc.lines.items():  # one pass: rebase "items[3].spec" -> "spec"
        m = _ITEM.match(path)
        if m and int(m.group(1)) < len(items):
            rest = path[m.end():]
            per_item[int(m.group(1))][rest[1:] if rest.startswith(".") else rest] = line
    for i, item in enumerate(items):
        line = per_item[i].pop("", doc.root_line)
        if not isinstance(item, dict):
            result.errors.append(ManifestError(
                f"list item is not a mapping (got {_type_name(item)})", file, line, f"items[{i}]"))
        else:
            _add_object(item, file, line, per_item[i], result)


def _add_object(body: dict, file: str, line: int, lines: dict[str, int],
                result: LoadResult) -> None:
    obj = SourceObject(body, file, line, lines)
    for field_name in ("apiVersion", "kind"):
        value = body.get(field_name)
        if not isinstance(value, str) or not value:
            problem = (f'required field "{field_name}" is missing' if value is None
                       else f"{field_name} must be a non-empty string")
            result.errors.append(ManifestError(problem, file, obj.line_of(field_name),
                                               field_name, obj.kind, obj.name))
            return
    result.objects.append(obj)


def _type_name(value: Any) -> str:
    if isinstance(value, list):
        return "a list"
    return "a string" if isinstance(value, str) else f"{type(value).__name__} {value!r}"


def load_path(root: str | Path) -> LoadResult:
    """Load one file, or every *.yaml/*.yml under a directory (sorted, hidden entries skipped).

    `file` on each object and error is relative to `root` (for a single file: its name).
    """
    root = Path(root)
    result = LoadResult()
    if root.is_file():
        files = [(root, root.name)]
    elif root.is_dir():
        files = _walk(root, result)
    else:
        result.errors.append(ManifestError("no such file or directory", root.as_posix()))
        return result
    for path, rel in files:
        text = _read(path, rel, result)
        if text is not None:
            result.extend(load_text(text, rel))
    return result


def _walk(root: Path, result: LoadResult) -> list[tuple[Path, str]]:
    real_root = root.resolve()
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        for name in filenames:
            if name.startswith(".") or not name.endswith((".yaml", ".yml")):
                continue
            path = Path(dirpath, name)
            rel = path.relative_to(root).as_posix()
            if not path.resolve().is_relative_to(real_root):  # a repo must not read /etc
                result.errors.append(ManifestError("symlink points outside the root", rel))
                continue
            found.append((path, rel))
    found.sort(key=lambda item: item[1])
    return found


def read_text(path: Path, rel: str, result: LoadResult) -> str | None:
    """A manifest file's text (size-capped, UTF-8), or None with the problem in `result`."""
    return _read(path, rel, result)


def _read(path: Path, rel: str, result: LoadResult) -> str | None:
    try:
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            raise ValueError(f"file is larger than {MAX_FILE_BYTES // 2**20} MB ({size} bytes)")
        data = path.read_bytes()
        if len(data) > MAX_FILE_BYTES:  # grew since stat
            raise ValueError(f"file is larger than {MAX_FILE_BYTES // 2**20} MB")
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        result.errors.append(ManifestError(f"not valid UTF-8 (byte {e.start})", rel, line))
    except (OSError, ValueError) as e:
        result.errors.append(ManifestError(getattr(e, "strerror", None) or str(e), rel))
    return None
