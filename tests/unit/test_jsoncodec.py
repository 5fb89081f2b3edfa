"""model.jsoncodec: the fast JSON of the hot paths reads and writes what the standard
library does, and falls back to it for what orjson refuses."""

from __future__ import annotations

import json
import math

import pytest

from gitops.model import jsoncodec

POD = {"apiVersion": "v1", "kind": "Pod",
       "metadata": {"name": "p", "labels": {"app": "é-ü"}, "generation": 1},
       "spec": {"containers": [{"name": "c", "args": ["a\nb", "\u2603"]}],
                "priority": -2**63, "overhead": None, "flag": True, "ratio": 0.25}}


def test_round_trips_as_the_standard_library():
    encoded = jsoncodec.dumps(POD)
    assert isinstance(encoded, bytes)
    assert json.loads(encoded) == POD
    assert jsoncodec.loads(json.dumps(POD)) == POD
    assert jsoncodec.loads(encoded.decode()) == POD


@pytest.mark.parametrize("value", [{1: "int key"}, {"big": 2**70}])
def test_what_orjson_cannot_write_is_written_by_the_standard_library(value):
    assert json.loads(jsoncodec.dumps(value)) == json.loads(json.dumps(value))


def test_nan_and_infinity_are_read_as_the_standard_library_reads_them():
    got = jsoncodec.loads('{"a": NaN, "b": Infinity}')
    assert math.isnan(got["a"]) and got["b"] == math.inf
