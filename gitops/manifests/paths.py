"""Field paths as users read them: ``spec.template.spec.containers[0].image``.

Keys that would make the dotted form ambiguous (dots, brackets, quotes, spaces, empty) are
written as ``["app.kubernetes.io/name"]`` so a path string maps back to exactly one field.
"""

from __future__ import annotations

import json
import re
from typing import Iterable

_PLAIN_KEY = re.compile(r'[^.\[\]"\s]+\Z')
# One path segment: a plain key, a list index, or a quoted key.
_SEGMENT = re.compile(r'\.?([^.\[\]"\s]+)|\[(\d+)\]|\[("(?:[^"\\]|\\.)*")\]')


def child(path: str, key: object) -> str:
    """Path of `key` (str -> mapping key, int -> list index) under `path`."""
    if isinstance(key, int) and not isinstance(key, bool):
        return f"{path}[{key}]"
    key = str(key)
    if _PLAIN_KEY.match(key):
        return f"{path}.{key}" if path else key
    return f"{path}[{json.dumps(key)}]"


def join(parts: Iterable[object]) -> str:
    path = ""
    for part in parts:
        path = child(path, part)
    return path


def prefixes(path: str) -> list[str]:
    """Every segment-boundary prefix of `path`, longest first (the path itself included)."""
    out = []
    pos = 0
    while pos < len(path):
        m = _SEGMENT.match(path, pos)
        if m is None or m.end() == pos:
            break
        pos = m.end()
        out.append(path[:pos])
    out.reverse()
    return out


def split(path: str) -> list[str | int]:
    """The keys and list indexes of a path, in order (the inverse of join)."""
    out: list[str | int] = []
    pos = 0
    while pos < len(path):
        m = _SEGMENT.match(path, pos)
        if m is None or m.end() == pos:
            break
        pos = m.end()
        plain, index, quoted = m.groups()
        out.append(plain if plain is not None else int(index) if index is not None
                   else json.loads(quoted))
    return out
