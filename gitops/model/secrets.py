"""A Secret's values never leave the store in anything shown or logged (pure).

Three views of that one rule:
- `mask_secret(obj)`: a Secret fit to show whole or field by field (diff, drift records,
  the API, describe): every data/stringData value is ***, and so is every annotation that
  copies the object (kubectl's last-applied-configuration) or quotes one of its values.
- `values_of(secret)` + `mask_text(text, values)`: free text (container logs, probe
  output, event messages) with each value replaced by ***, in every form it is printed in:
  plain, base64, and line by line for a multi-line value (a key file).
- `secrets_used_by(pod_spec)`, `values_used_by(pod, lookup)`: the Secrets whose values a
  pod's processes can print, and those values.
"""

from __future__ import annotations

import base64
import binascii
import copy
import json
import re
from collections.abc import Callable, Iterable
from typing import Any

MASK = "***"
LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"
# Annotations known to hold a JSON copy of the whole object.
COPY_ANNOTATIONS = frozenset({LAST_APPLIED})
VALUE_SECTIONS = ("data", "stringData", "binaryData")
MIN_SUBSTRING = 4      # shorter values are masked only as whole words
MIN_LINE = 8           # a line of a multi-line value masked on its own (a "}" would not be)


def mask_secret(obj: dict | None, also: Iterable[str] = ()) -> dict | None:
    """A copy of a Secret with its values masked; any other object is returned as is.
    also: values of another copy of the same Secret (the other side of a diff), masked
    in annotations too."""
    if obj is None or obj.get("kind") != "Secret":
        return obj
    return _masked(copy.deepcopy(obj), values_of(obj) | set(also))


def _masked(out: dict, values: set[str]) -> dict:
    """Mask `out` in place (a private copy) and return it."""
    for section in VALUE_SECTIONS:
        content = out.get(section)
        if isinstance(content, dict):
            out[section] = {k: MASK for k in content}
        elif content is not None:           # malformed (a list, a string): still a value
            out[section] = MASK
    meta = out.get("metadata")
    if isinstance(meta, dict) and isinstance(meta.get("annotations"), dict):
        meta["annotations"] = {k: _masked_annotation(k, v, values)
                               for k, v in meta["annotations"].items()}
    return out


def _masked_annotation(name: str, value: Any, values: set[str]) -> Any:
    if not isinstance(value, str):
        return MASK if value is not None else None
    try:
        copied = json.loads(value)
    except ValueError:
        copied = None
    if isinstance(copied, dict) and (name in COPY_ANNOTATIONS
                                     or any(s in copied for s in VALUE_SECTIONS)):
        # A copy of the object (whatever kind it claims): masked like the object.
        return json.dumps(_masked(copied, values | values_of(copied)), sort_keys=True)
    if name in COPY_ANNOTATIONS:
        return MASK                           # unreadable, so it cannot be shown safely
    return mask_text(value, values)


def values_of(secret: dict) -> set[str]:
    """Every value of a Secret in each form a process may print it: data as stored
    (base64) and decoded, stringData as written and base64-encoded, and each long line
    of a multi-line value."""
    found: set[str] = set()
    for section in VALUE_SECTIONS:
        content = secret.get(section)
        if not isinstance(content, dict):
            continue
        for raw in content.values():
            if raw is None or isinstance(raw, (dict, list)):
                continue
            text = str(raw).lower() if isinstance(raw, bool) else str(raw)
            found.add(text)
            if section == "stringData":
                found.add(base64.b64encode(text.encode()).decode())
            elif (decoded := _b64_text(text)) is not None:
                found.add(decoded)
    for value in list(found):
        if "\n" in value:
            found.update(line.strip() for line in value.splitlines()
                         if len(line.strip()) >= MIN_LINE)
    return {v for v in found if v.strip()}


def _b64_text(value: str) -> str | None:
    try:
        return base64.b64decode(value, validate=True).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None


def mask_text(text: str, values: Iterable[str]) -> str:
    """Replace secret values in free text: long values anywhere, short ones (under four
    characters) only as whole words, so a one-letter value does not eat the text."""
    for value in sorted(set(values), key=len, reverse=True):
        if not value.strip():
            continue
        if len(value) >= MIN_SUBSTRING:
            text = text.replace(value, MASK)
        else:
            text = re.sub(rf"(?<![\w]){re.escape(value)}(?![\w])", MASK, text)
    return text


def secrets_used_by(pod_spec: dict) -> set[str]:
    """Names of the Secrets a pod reads: env secretKeyRef, envFrom secretRef, secret
    volumes and projected secret sources (in the pod's namespace)."""
    names: set[str] = set()
    containers = [*(pod_spec.get("initContainers") or []), *(pod_spec.get("containers") or []),
                  *(pod_spec.get("ephemeralContainers") or [])]
    for c in containers:
        for var in c.get("env") or []:
            ref = ((var or {}).get("valueFrom") or {}).get("secretKeyRef") or {}
            names.add(ref.get("name") or "")
        for source in c.get("envFrom") or []:
            names.add(((source or {}).get("secretRef") or {}).get("name") or "")
    for vol in pod_spec.get("volumes") or []:
        names.add(((vol or {}).get("secret") or {}).get("secretName") or "")
        for source in ((vol or {}).get("projected") or {}).get("sources") or []:
            names.add(((source or {}).get("secret") or {}).get("name") or "")
    names.discard("")
    return names


def values_used_by(pod: dict, lookup: Callable[[str, str, str], dict | None]) -> set[str]:
    """The values of every Secret the pod reads; lookup(kind, namespace, name) -> object."""
    ns = (pod.get("metadata") or {}).get("namespace") or "default"
    return set().union(*(values_of(secret) for name in secrets_used_by(pod.get("spec") or {})
                         if (secret := lookup("Secret", ns, name)) is not None))
