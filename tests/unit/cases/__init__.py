"""Table-driven cases kept as YAML, one file per kind (as argoproj/gitops-engine keeps its
health fixtures): `load("health")` gives every case of cases/health/*.yaml as a pytest
parameter named `<file>: <case name>`."""

from __future__ import annotations

import datetime
from pathlib import Path

import pytest
import yaml

HERE = Path(__file__).parent


def load(folder: str) -> list:
    params = []
    for path in sorted((HERE / folder).glob("*.yaml")):
        with path.open(encoding="utf-8") as f:      # a YAML error then names the file
            cases = yaml.safe_load(f)
        for case in cases:
            _no_dates(case, f"{path.name}: {case['name']}")
            params.append(pytest.param(case, id=f"{path.stem}: {case['name']}"))
    return params


def _no_dates(value, where: str) -> None:
    """Objects carry RFC 3339 strings, never what YAML makes of an unquoted timestamp."""
    if isinstance(value, (datetime.date, datetime.datetime)):
        raise ValueError(f"{where}: quote the timestamp {value}")
    for item in value.values() if isinstance(value, dict) else \
            value if isinstance(value, list) else ():
        _no_dates(item, where)
