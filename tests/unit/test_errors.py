"""One error hierarchy: every exception class the agent defines derives from GitopsError."""

from __future__ import annotations

import importlib
import pkgutil

import gitops
from gitops.errors import GitopsError


def _all_subclasses(cls: type) -> set[type]:
    found = set()
    for sub in cls.__subclasses__():
        found |= {sub} | _all_subclasses(sub)
    return found


def test_every_exception_of_the_agent_is_a_gitops_error():
    for mod in pkgutil.walk_packages(gitops.__path__, "gitops."):
        if mod.name != "gitops.__main__":       # runs the CLI when imported
            importlib.import_module(mod.name)
    ours = {cls for cls in _all_subclasses(BaseException)
            if cls.__module__.split(".")[0] == "gitops"}
    assert ours, "no exception class found: the walk imported nothing"
    outside = sorted(f"{c.__module__}.{c.__qualname__}" for c in ours
                     if not issubclass(c, GitopsError))
    assert outside == []
