"""What a list or watch selects: namespace, label selector, field selector (pure).

Field selectors are served generically: any dotted path into the object
(`metadata.name`, `status.phase`, `involvedObject.uid`, `spec.nodeName`) with `=`, `==`
and `!=`; a missing field compares as the empty string, as Kubernetes does.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from gitops.errors import PermanentError
from gitops.model.selectors import matches, parse

_FIELD_TERM = re.compile(r"^\s*([A-Za-z0-9_.\-/]+)\s*(==|!=|=)\s*(.*?)\s*$")


@dataclass(frozen=True)
class FieldTerm:
    path: str
    op: str          # "=" or "!="
    value: str


@dataclass(frozen=True)
class Selection:
    namespace: str | None = None
    labels: dict | None = None               # a LabelSelector dict, None: everything
    fields: tuple[FieldTerm, ...] = field(default_factory=tuple)

    def __call__(self, obj: dict) -> bool:
        meta = obj.get("metadata") or {}
        if self.namespace is not None and (meta.get("namespace") or "") != self.namespace:
            return False
        if self.labels is not None and not matches(self.labels, meta.get("labels")):
            return False
        return all((field_value(obj, t.path) == t.value) == (t.op == "=") for t in self.fields)


def parse_fields(text: str) -> tuple[FieldTerm, ...]:
    terms = []
    for raw in (t for t in text.split(",") if t.strip()):
        m = _FIELD_TERM.match(raw)
        if not m:
            raise PermanentError(f"invalid field selector term {raw!r}")
        terms.append(FieldTerm(m.group(1), "!=" if m.group(2) == "!=" else "=", m.group(3)))
    return tuple(terms)


def parse_labels(text: str) -> dict | None:
    return parse(text) if text.strip() else None


def field_value(obj: dict, path: str) -> str:
    cur: object = obj
    for part in path.split("."):
        if not isinstance(cur, dict):
            return ""
        cur = cur.get(part)
    if cur is None:
        return ""
    if isinstance(cur, bool):
        return "true" if cur else "false"
    return str(cur)
