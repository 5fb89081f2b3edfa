"""One error hierarchy: every exception class the agent defines derives from GitopsError.
Read from the source (importing every module would run GitPython's `git version`)."""

from __future__ import annotations

import ast
import builtins
from pathlib import Path

import gitops

PACKAGE = Path(gitops.__file__).parent


def _classes() -> dict[str, list[str]]:
    """Class name -> names of its bases (the last part of a dotted base: st.ApiError)."""
    found: dict[str, list[str]] = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.ClassDef):
                bases = [b.attr if isinstance(b, ast.Attribute) else getattr(b, "id", "")
                         for b in node.bases]
                found[f"{path.relative_to(PACKAGE.parent)}:{node.name}"] = bases
    return found


def _builtin_exception(name: str) -> bool:
    value = getattr(builtins, name, None)
    return isinstance(value, type) and issubclass(value, BaseException)


def test_every_exception_of_the_agent_is_a_gitops_error():
    classes = _classes()
    by_name = {where.rsplit(":", 1)[1]: bases for where, bases in classes.items()}

    def roots(name: str, seen: frozenset = frozenset()) -> set[str]:
        """The roots a class reaches through its bases: GitopsError, builtin exceptions."""
        if name == "GitopsError" or _builtin_exception(name) or name in seen:
            return {name}
        return {r for base in by_name.get(name, ()) for r in roots(base, seen | {name})}

    exceptions = {where: roots(where.rsplit(":", 1)[1]) for where in classes}
    exceptions = {w: r for w, r in exceptions.items()
                  if any(_builtin_exception(n) or n == "GitopsError" for n in r)}
    assert "gitops/agent/runtime.py:RuntimeFailure" in exceptions      # the scan sees them
    outside = sorted(w for w, r in exceptions.items() if "GitopsError" not in r)
    assert outside == []
