"""Kubernetes resource quantities: "250m" CPUs, "64Mi" bytes, "1.5", "2e3", "100n".

The grammar is the API server's (apimachinery's resource.Quantity): a signed decimal number,
then one suffix: binary SI (Ki..Ei), decimal SI (n, u, m, "", k, M, G, T, P, E) or a
decimal exponent (e3, E-2). `64Mb` or `32MB` are not quantities, and are refused where
manifests are validated (`problem`), so nothing downstream ever sees one.
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

_SUFFIX = {"": 1, "n": Decimal("1e-9"), "u": Decimal("1e-6"), "m": Decimal("0.001"),
           "k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12, "P": 10**15, "E": 10**18,
           "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60}
_QUANTITY = re.compile(r"([+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+))"
                       r"(Ki|Mi|Gi|Ti|Pi|Ei|[numkMGTPE]|[eE][+-]?[0-9]+)?\Z")
# What the API server's error names as the expected form.
PATTERN = "^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$"


def parse(value: str | int | float) -> Decimal:
    """The quantity as a plain number (CPUs, or bytes). ValueError if malformed."""
    if isinstance(value, bool):
        raise ValueError(f"invalid quantity {value!r}")
    if isinstance(value, (int, float)):
        return Decimal(str(value))
    m = _QUANTITY.match(str(value))
    if not m:
        raise ValueError(f"invalid quantity {value!r}")
    number, suffix = m.group(1), m.group(2) or ""
    try:
        if suffix[:1] in ("e", "E"):
            return Decimal(number) * Decimal(10) ** int(suffix[1:])
        return Decimal(number) * _SUFFIX[suffix]
    except (InvalidOperation, ArithmeticError) as exc:     # decimal.Overflow too
        raise ValueError(f"invalid quantity {value!r}") from exc


def problem(value: object) -> str | None:
    """Why `value` is not a quantity the API server would store, or None."""
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        return "must be a quantity (a string such as \"64Mi\", or a number)"
    try:
        parse(value)
    except ValueError:
        return f"quantities must match the regular expression '{PATTERN}'"
    return None
