"""Label selectors: matchLabels + matchExpressions, and kubectl's `-l` syntax."""

from __future__ import annotations

import re

from gitops.errors import PermanentError


def matches(selector: dict | None, labels: dict | None) -> bool:
    """Kubernetes semantics: an empty selector matches everything, None matches nothing."""
    if selector is None:
        return False
    labels = labels or {}
    for k, v in (selector.get("matchLabels") or {}).items():
        if labels.get(k) != v:
            return False
    for expr in selector.get("matchExpressions") or []:
        key, op, values = expr.get("key"), expr.get("operator"), expr.get("values") or []
        if op == "In" and labels.get(key) not in values:
            return False
        if op == "NotIn" and key in labels and labels[key] in values:
            return False
        if op == "Exists" and key not in labels:
            return False
        if op == "DoesNotExist" and key in labels:
            return False
    return True


def service_matches(selector: dict | None, labels: dict | None) -> bool:
    """Services use a plain map; an empty or missing one selects nothing (manual Endpoints)."""
    if not selector:
        return False
    return matches({"matchLabels": selector}, labels)


_TERM = re.compile(r"^\s*([A-Za-z0-9._/-]+)\s*(==|=|!=)\s*([A-Za-z0-9._-]*)\s*$")
_SET = re.compile(r"^\s*([A-Za-z0-9._/-]+)\s+(in|notin)\s+\(([^)]*)\)\s*$")
_EXISTS = re.compile(r"^\s*(!?)([A-Za-z0-9._/-]+)\s*$")


def parse(text: str) -> dict:
    """Parse `app=web,tier!=db,env in (a,b),!legacy` into a LabelSelector dict."""
    match_labels: dict[str, str] = {}
    exprs: list[dict] = []
    for term in _split_terms(text):
        if m := _SET.match(term):
            values = [v.strip() for v in m.group(3).split(",") if v.strip()]
            exprs.append({"key": m.group(1), "operator": "In" if m.group(2) == "in" else "NotIn",
                          "values": values})
        elif m := _TERM.match(term):
            if m.group(2) == "!=":
                exprs.append({"key": m.group(1), "operator": "NotIn", "values": [m.group(3)]})
            else:
                match_labels[m.group(1)] = m.group(3)
        elif m := _EXISTS.match(term):
            exprs.append({"key": m.group(2),
                          "operator": "DoesNotExist" if m.group(1) else "Exists"})
        else:
            raise PermanentError(f"invalid label selector term {term!r}")
    return {"matchLabels": match_labels, "matchExpressions": exprs}


def _split_terms(text: str) -> list[str]:
    terms, depth, cur = [], 0, ""
    for ch in text:
        depth += ch == "("
        depth -= ch == ")"
        if ch == "," and depth == 0:
            terms.append(cur)
            cur = ""
        else:
            cur += ch
    if cur.strip():
        terms.append(cur)
    return terms
