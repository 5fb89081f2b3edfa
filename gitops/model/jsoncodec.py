"""JSON on the hot paths (lists of thousands of objects read from the store and sent by
the API): orjson when installed, several times faster than the standard library both
ways, and the standard library otherwise or for what orjson refuses (NaN, non-string
keys, integers beyond 64 bits on the way out). Integers beyond 64 bits are read as
floats, as the Kubernetes API server reads them."""

from __future__ import annotations

import json
from typing import Any

try:
    import orjson
except ImportError:          # pragma: no cover - orjson is a dependency; stay correct without
    orjson = None


def loads(text: str | bytes) -> Any:
    if orjson is not None:
        try:
            return orjson.loads(text)
        except orjson.JSONDecodeError:
            pass             # NaN or Infinity, which the standard library accepts
    return json.loads(text)


def dumps(obj: Any) -> bytes:
    """Compact JSON, UTF-8."""
    if orjson is not None:
        try:
            return orjson.dumps(obj)
        except TypeError:
            pass
    return json.dumps(obj, separators=(",", ":")).encode()
