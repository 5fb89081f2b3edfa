"""Side-by-side diff rows of git's copy of an object against the live one (pure).

Both sides are YAML of the views the sync itself compares (gitops.sync.diff's
compared_views), so a changed row is exactly a field the sync calls drift; Secrets are
masked before they get here."""

from __future__ import annotations

import difflib
from dataclasses import dataclass

import yaml


@dataclass(frozen=True)
class Row:
    tag: str            # equal | changed | removed (git only) | added (live only)
    left_no: int        # 1-based line numbers; 0 where the side has no line
    left: str
    right_no: int
    right: str


def to_yaml(obj: object) -> str:
    return yaml.safe_dump(obj, sort_keys=False, default_flow_style=False, width=100)


def side_by_side(desired: str, live: str, context: int = 3) -> list[Row]:
    """Rows of the two texts; unchanged runs longer than 2*context are cut to `context`
    lines around changes, marked by one row of tag "gap"."""
    left, right = desired.splitlines(), live.splitlines()
    rows: list[Row] = []
    matcher = difflib.SequenceMatcher(a=left, b=right, autojunk=False)
    for group in matcher.get_grouped_opcodes(context) if left != right else []:
        if rows:
            rows.append(Row("gap", 0, "", 0, ""))
        for op, i1, i2, j1, j2 in group:
            if op == "equal":
                rows += [Row("equal", i + 1, left[i], j + 1, right[j])
                         for i, j in zip(range(i1, i2), range(j1, j2))]
            elif op == "delete":
                rows += [Row("removed", i + 1, left[i], 0, "") for i in range(i1, i2)]
            elif op == "insert":
                rows += [Row("added", 0, "", j + 1, right[j]) for j in range(j1, j2)]
            else:
                n = max(i2 - i1, j2 - j1)
                for k in range(n):
                    i, j = i1 + k, j1 + k
                    rows.append(Row("changed", i + 1 if i < i2 else 0,
                                    left[i] if i < i2 else "", j + 1 if j < j2 else 0,
                                    right[j] if j < j2 else ""))
    return rows


def changed(rows: list[Row]) -> int:
    return sum(1 for r in rows if r.tag in ("changed", "removed", "added"))
