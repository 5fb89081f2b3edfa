"""Table columns of custom resources: the CRD's additionalPrinterColumns, each a JSONPath
into the object, as kube-apiserver prints them (pure). Without any, NAME and AGE."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from gitops.api.kube.cells import age, since
from gitops.model import custom

Column = tuple[str, str, int]
Row = Callable[[dict, float], list]
_STEP = re.compile(r"""\.([A-Za-z0-9_\-/]+)|\[(\d+)\]|\[\?\(@\.([A-Za-z0-9_\-.]+)\s*==\s*
                       ["']([^"']*)["']\)\]|\[\*\]""", re.X)


def path_value(obj: Any, path: str) -> Any:
    """A printer column's JSONPath (`.spec.x`, `[0]`, `[*]`, `[?(@.type=="Ready")]`):
    the first value found, or None."""
    values = [obj]
    pos, path = 0, path.strip().removeprefix("{").removesuffix("}").removeprefix("$")
    while pos < len(path):
        step = _STEP.match(path, pos)
        if step is None:
            return None
        pos = step.end()
        field, index, key, want = step.groups()
        found = []
        for value in values:
            if field is not None and isinstance(value, dict) and field in value:
                found.append(value[field])
            elif index is not None and isinstance(value, list) and int(index) < len(value):
                found.append(value[int(index)])
            elif key is not None and isinstance(value, list):
                found += [v for v in value if isinstance(v, dict)
                          and str(path_value(v, "." + key)) == want]
            elif field is None and index is None and key is None and isinstance(value, list):
                found += value
        values = found
    return values[0] if values else None


def printer(kind: str) -> tuple[tuple[Column, ...], Row] | None:
    crd = custom.crd_for(kind)
    columns = custom.printer_columns(crd) if crd is not None else []
    if not columns:
        return None
    cols: tuple[Column, ...] = (("Name", "string", 0), *(
        (str(c.get("name", "")), str(c.get("type", "string")), int(c.get("priority") or 0))
        for c in columns))
    if not any(str(c.get("jsonPath")) == ".metadata.creationTimestamp" for c in columns):
        cols += (("Age", "date", 0),)
        columns = [*columns, {"type": "date", "jsonPath": ".metadata.creationTimestamp"}]

    def row(obj: dict, now: float) -> list:
        cells: list = [obj["metadata"]["name"]]
        for c in columns:
            value = path_value(obj, str(c.get("jsonPath", "")))
            if c.get("type") == "date":
                cells.append(since(value, now) if isinstance(value, str) else age(obj, now)
                             if c.get("jsonPath") == ".metadata.creationTimestamp" else "")
            else:
                cells.append("" if value is None else value)
        return cells
    return cols, row
