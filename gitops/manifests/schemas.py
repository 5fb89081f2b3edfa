"""Where kubernetes-validate's bundled JSON schemas are, found without importing it: its
package imports jsonschema (a third of a second of start-up) and we read its files only."""

from __future__ import annotations

import importlib.util
from pathlib import Path


def _package_dir(name: str) -> Path:
    spec = importlib.util.find_spec(name)     # locates the package; runs none of its code
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError(f"the {name} package is not installed", name=name)
    return Path(next(iter(spec.submodule_search_locations)))


SCHEMAS = _package_dir("kubernetes_validate") / "kubernetes-json-schema"
