"""Custom kinds: what the CustomResourceDefinitions in the store (and, while git's revision
is checked, in the repo) declare (pure apart from the registry of kinds it keeps).

A CRD's kind joins the kinds registry (KINDS) under its storage version, so every part
that asks "is this kind namespaced, which group is it in" (store keys, the API's
discovery, git's sync) sees custom kinds as it sees built-in ones. One kind name is one
kind here (the store keys objects by kind, namespace and name), so a CRD whose kind is
already served, built in or by another group's CRD, is refused at admission.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Iterator

from gitops.model.kinds import KINDS, Kind

CRD = "CustomResourceDefinition"
_BUILT_IN = frozenset(KINDS)
_custom: dict[str, dict] = {}          # kind -> its CRD
_expected: dict[str, Kind] = {}        # kinds a revision being synced declares CRDs for
_generation = 0                        # moves whenever the custom kinds change


def generation() -> int:
    return _generation


def is_built_in(kind: str) -> bool:
    return kind in _BUILT_IN


def crd_for(kind: str) -> dict | None:
    return _custom.get(kind)


def custom_kinds() -> dict[str, dict]:
    return dict(_custom)


def names(crd: dict) -> dict:
    spec = crd.get("spec") if isinstance(crd.get("spec"), dict) else {}
    return spec.get("names") if isinstance(spec.get("names"), dict) else {}


def group(crd: dict) -> str:
    return str((crd.get("spec") or {}).get("group") or "")


def versions(crd: dict) -> list[dict]:
    listed = (crd.get("spec") or {}).get("versions")
    return [v for v in listed if isinstance(v, dict)] if isinstance(listed, list) else []


def storage_version(crd: dict) -> dict | None:
    found = [v for v in versions(crd) if v.get("storage")]
    return found[0] if found else next(iter(versions(crd)), None)


def served_versions(crd: dict) -> list[str]:
    return [str(v.get("name")) for v in versions(crd) if v.get("served", True)]


def version_of(crd: dict, name: str) -> dict | None:
    return next((v for v in versions(crd) if v.get("name") == name), None)


def schema_of(crd: dict, version: str = "") -> dict | None:
    found = version_of(crd, version) if version else storage_version(crd)
    schema = ((found or {}).get("schema") or {}).get("openAPIV3Schema")
    return schema if isinstance(schema, dict) else None


def kind_of(crd: dict) -> Kind | None:
    """The Kind a CRD declares (its storage version), or None when it is incomplete."""
    n, stored = names(crd), storage_version(crd)
    if not n.get("kind") or not n.get("plural") or not group(crd) or stored is None:
        return None
    return Kind(str(n["kind"]), f"{group(crd)}/{stored.get('name')}", str(n["plural"]),
                namespaced=(crd.get("spec") or {}).get("scope", "Namespaced") != "Cluster",
                apply_order=50, short_names=tuple(n.get("shortNames") or ()),
                categories=tuple(n.get("categories") or ()))


def declared(objects: Iterable[dict]) -> Iterator[dict]:
    """The CRDs among objects (a revision's)."""
    for obj in objects:
        if obj.get("kind") == CRD and str(obj.get("apiVersion", "")).startswith(
                "apiextensions.k8s.io/"):
            yield obj


def register(crds: Iterable[dict]) -> None:
    """Make exactly these CRDs' kinds known (the store's, after a CRD is written)."""
    global _generation
    wanted: dict[str, dict] = {}
    for crd in crds:
        kind = kind_of(crd)
        if kind is not None and kind.kind not in _BUILT_IN:
            wanted[kind.kind] = copy.deepcopy(crd)
    if {k: _fingerprint(c) for k, c in wanted.items()} == \
            {k: _fingerprint(c) for k, c in _custom.items()}:
        return
    for kind in set(_custom) - set(wanted):
        KINDS.pop(kind, None)
    _custom.clear()
    _custom.update(wanted)
    for crd in wanted.values():
        kind = kind_of(crd)
        assert kind is not None
        KINDS[kind.kind] = kind
    _generation += 1


def _fingerprint(crd: dict) -> str:
    return repr(crd.get("spec"))


def expect(crds: Iterable[dict]) -> None:
    """The kinds a revision declares CRDs for, before they are stored: their objects are
    keyed with the right scope (a cluster-scoped custom resource has no namespace)."""
    _expected.clear()
    for crd in crds:
        kind = kind_of(crd)
        if kind is not None and kind.kind not in _BUILT_IN:
            _expected[kind.kind] = kind


def lookup(kind: str) -> Kind | None:
    """A kind's registry entry: built in, stored CRD, or a revision's CRD."""
    return KINDS.get(kind) or _expected.get(kind)


def subresources(crd: dict) -> dict:
    stored = storage_version(crd) or {}
    subs = stored.get("subresources")
    return subs if isinstance(subs, dict) else {}


def printer_columns(crd: dict) -> list[dict]:
    stored = storage_version(crd) or {}
    cols = stored.get("additionalPrinterColumns")
    return [c for c in cols if isinstance(c, dict)] if isinstance(cols, list) else []
