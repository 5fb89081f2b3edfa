from decimal import Decimal

import pytest

from gitops.model.quantity import parse


@pytest.mark.parametrize("text, value", [
    ("250m", Decimal("0.25")), ("2", 2), ("1.5", Decimal("1.5")), ("64Mi", 64 * 2**20),
    ("1Gi", 2**30), ("1G", 10**9), ("128k", 128_000), ("2e3", 2000), (3, 3)])
def test_parse(text, value):
    assert parse(text) == value


@pytest.mark.parametrize("text", ["", "abc", "1Xi", "m", "1.2.3"])
def test_parse_rejects(text):
    with pytest.raises(ValueError):
        parse(text)
