"""Validate manifests: Kubernetes OpenAPI schemas (strict), then the checks schemas miss.

Schemas come from kubernetes-validate's bundled files, but we locate and compile them
ourselves: its validate() re-reads the 1.8 MB definitions file on every call. Here each
(version, apiVersion, kind) compiles once and shares one registry per schema version.

Two engines per kind: jsonschema-rs (compiled Rust) answers "is it valid?" in microseconds,
which is all a valid manifest costs; only an invalid one goes through the pure-Python
jsonschema validator, whose detailed errors become the messages we print.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Sequence

import jsonschema_rs

from gitops.admission import custom as custom_rules
from gitops.errors import ManifestError
from gitops.manifests import checks, paths
from gitops.manifests.loader import SourceObject
from gitops.manifests.schemas import SCHEMAS
from gitops.model import custom

if TYPE_CHECKING:   # the precise validator is imported on the first invalid manifest only
    import jsonschema
    from referencing import Registry


_STRICT_DIR = re.compile(r"v(\d+)\.(\d+)\.(\d+)-local-strict\Z")
_VERSION = re.compile(r"v?(\d+)\.(\d+)(?:\.\d+)?\Z")
# Refuse odd kinds/apiVersions before they become file names (no "../" lookups).
_KIND = re.compile(r"[A-Za-z][A-Za-z0-9]*\Z")
_GROUP = re.compile(r"[a-z0-9]([-a-z0-9.]*[a-z0-9])?\Z")
_API_VERSION = re.compile(r"v\d+((alpha|beta)\d+)?\Z")
# Integer widths the schemas declare (replicas, ports, ...): Kubernetes refuses a value that
# does not fit, so a replicas of 10**20 must not reach the controllers.
_INT_BITS = {"int32": 32, "int64": 64}


@functools.lru_cache(maxsize=None)
def _formats() -> jsonschema.FormatChecker:
    import jsonschema
    checker = jsonschema.FormatChecker(formats=())
    for name, bits in _INT_BITS.items():
        checker.checks(name)(lambda v, b=bits: not isinstance(v, int) or isinstance(v, bool)
                             or -2 ** (b - 1) <= v < 2 ** (b - 1))
    return checker


def _bundled() -> dict[tuple[int, int], str]:
    """(major, minor) -> strict schema directory, newest patch release of each minor."""
    found: dict[tuple[int, int], tuple[int, str]] = {}
    try:
        for entry in SCHEMAS.iterdir():
            m = _STRICT_DIR.match(entry.name)
            if m:
                key, patch = (int(m[1]), int(m[2])), int(m[3])
                if key not in found or patch > found[key][0]:
                    found[key] = (patch, entry.name)
    except OSError:
        pass
    return {key: name for key, (_, name) in found.items()}


_DIRS = _bundled()
DEFAULT_VERSION = "%d.%d" % max(_DIRS) if _DIRS else "1.37"


@functools.lru_cache(maxsize=None)
def _schema_dir(kubernetes_version: str) -> str:
    """The newest bundled schemas not newer than the requested Kubernetes minor version."""
    m = _VERSION.match(kubernetes_version.strip())
    if not m:
        raise ValueError(f"invalid Kubernetes version {kubernetes_version!r} (want e.g. 1.30)")
    wanted = (int(m[1]), int(m[2]))
    usable = [v for v in _DIRS if v <= wanted]
    if not usable or wanted > max(_DIRS):
        have = ", ".join("%d.%d" % v for v in sorted(_DIRS)) or "none"
        raise ValueError(f"no bundled schemas for Kubernetes {kubernetes_version} (have {have})")
    return _DIRS[max(usable)]


@functools.lru_cache(maxsize=None)
def _registry(schema_dir: str) -> Registry:
    from referencing import Registry, Resource
    defs = _definitions(schema_dir)
    return Registry().with_resource(defs["$id"], Resource.from_contents(defs))


@functools.lru_cache(maxsize=None)
def _definitions(schema_dir: str) -> dict:
    return json.loads(SCHEMAS.joinpath(schema_dir, "_definitions.json").read_text())


@functools.lru_cache(maxsize=None)
def _fast_registry(schema_dir: str) -> jsonschema_rs.Registry:
    defs = _definitions(schema_dir)
    return jsonschema_rs.Registry([(defs["$id"], defs)])


class KindValidator:
    """One kind's schema: a fast yes/no check, and readable errors when the answer is no."""

    def __init__(self, schema: dict, schema_dir: str) -> None:
        self._schema = schema
        self._schema_dir = schema_dir
        try:
            self._fast = jsonschema_rs.validator_for(schema,
                                                     registry=_fast_registry(schema_dir))
        except Exception:   # noqa: BLE001 - a schema it cannot compile: precise path only
            self._fast = None
        self._precise: jsonschema.Validator | None = None

    def iter_errors(self, body: object):
        try:
            # The fast engine does not check int32/int64 widths: an integer beyond int32
            # anywhere sends the object to the precise validator, which does.
            if self._fast is not None and self._fast.is_valid(body) \
                    and not _has_wide_int(body):
                return iter(())
        except (ValueError, TypeError, OverflowError):
            pass    # e.g. an integer beyond 64 bits: let the precise validator describe it
        if self._precise is None:
            import jsonschema
            self._precise = jsonschema.Draft202012Validator(
                self._schema, registry=_registry(self._schema_dir), format_checker=_formats())
        return self._precise.iter_errors(body)


_INT32_MAX = 2 ** 31 - 1


def _has_wide_int(value: object) -> bool:
    if isinstance(value, dict):
        return any(_has_wide_int(v) for v in value.values())
    if isinstance(value, list):
        return any(_has_wide_int(v) for v in value)
    return isinstance(value, int) and not isinstance(value, bool) and \
        not -_INT32_MAX - 1 <= value <= _INT32_MAX


@functools.lru_cache(maxsize=None)
def _validator(schema_dir: str, api_version: str, kind: str) -> KindValidator | None:
    """Compiled validator for one kind, or None if Kubernetes has no such built-in kind."""
    group, _, version = api_version.rpartition("/")
    if not (_KIND.match(kind) and _API_VERSION.match(version)
            and (group == "" or _GROUP.match(group))) or api_version.count("/") > 1:
        return None
    # Same naming as kubernetes-validate: group's first label, e.g. rbac.authorization.k8s.io/v1
    # -> role-rbac-v1.json; the x-kubernetes-group-version-kind check below rejects look-alikes
    # such as apps.example.com/v1 or sub-schemas like DeploymentSpec.
    name = f"{kind.lower()}-{group.split('.')[0]}-{version}.json" if group else \
        f"{kind.lower()}-{version}.json"
    ref = SCHEMAS.joinpath(schema_dir, name)
    if not ref.is_file():
        return None
    schema = json.loads(ref.read_text())
    if {"group": group, "version": version, "kind": kind} not in \
            schema.get("x-kubernetes-group-version-kind", []):
        return None
    return KindValidator(schema, schema_dir)


def validate(objects: Sequence[SourceObject],
             kubernetes_version: str = DEFAULT_VERSION,
             schema: Callable[[SourceObject], bool] = lambda _obj: True) -> list[ManifestError]:
    """Every problem found, in input order; never raises for bad manifests. `schema(obj)`
    false skips the schema's field checks for obj (kubectl's --validate=false: Argo CD's
    Validate=false); its kind must still be one Kubernetes knows, and the API server's own
    rules still apply.

    Raises ValueError only for a Kubernetes version with no bundled schemas.
    """
    schema_dir = _schema_dir(kubernetes_version)
    errors: list[ManifestError] = []
    first_seen: dict[tuple[str, str, str, str], SourceObject] = {}
    crds = _known_crds(objects)
    for obj in objects:
        found: list[tuple[str, str]] = []
        try:
            found += _schema_problems(obj, schema_dir, fields=schema(obj), crds=crds)
            found += checks.run(obj)
        except RecursionError:  # the loader caps depth, but objects may come from elsewhere
            found.append(("", "object is nested too deeply to validate"))
        identity = checks.identity(obj)
        if identity is not None:
            if identity in first_seen:
                first = first_seen[identity]
                found.append(("metadata.name",
                              f"duplicate object, first defined at {first.file}:{first.line}"))
            else:
                first_seen[identity] = obj
        seen: set[tuple[str, str]] = set()
        for path, message in sorted(found, key=lambda f: obj.line_of(f[0])):
            if (path, message) not in seen:
                seen.add((path, message))
                errors.append(ManifestError(message, obj.file, obj.line_of(path), path,
                                            obj.kind, obj.name))
    return errors


def _known_crds(objects: Sequence[SourceObject]) -> dict[str, dict]:
    """Kind -> CRD: the store's (registered in this process) and the revision's own."""
    known = custom.custom_kinds()
    for crd in custom.declared(o.body for o in objects):
        kind = custom.kind_of(crd)
        if kind is not None and not custom.is_built_in(kind.kind):
            known[kind.kind] = crd
    return known


def _schema_problems(obj: SourceObject, schema_dir: str, fields: bool = True,
                     crds: dict[str, dict] | None = None) -> list[tuple[str, str]]:
    api_version, kind = obj.body.get("apiVersion"), obj.body.get("kind")
    if not isinstance(api_version, str) or not isinstance(kind, str):
        return [("kind", "apiVersion and kind must be strings")]
    validator = _validator(schema_dir, api_version, kind)
    if validator is None and kind in (crds or {}) and not custom.is_built_in(kind):
        found = custom_rules.check(obj.body, (crds or {})[kind])
        return found if fields else [f for f in found if f[0] == "kind"]
    if validator is None:
        group = api_version.rpartition("/")[0]
        hint = " (no CustomResourceDefinition in the repo or the store declares it)" \
            if "." in group and not group.endswith("k8s.io") else ""
        return [("kind", f"unknown kind {kind} in apiVersion {api_version}{hint}")]
    if not fields:
        return []
    problems = []
    for error in validator.iter_errors(obj.body):
        problems += _describe(error)
    if kind == "Secret":   # an error message must never echo a Secret's value
        problems = [(path, _masked(message)) if path.startswith(_SECRET_FIELDS) else
                    (path, message) for path, message in problems]
    return problems


_SECRET_FIELDS = ("data", "stringData", "binaryData")
_GOT_VALUE = re.compile(r"(, got (?:integer|number|boolean|string)) .*\Z", re.S)


def _masked(message: str) -> str:
    """A schema message about a Secret value with the value left out."""
    if _GOT_VALUE.search(message):
        return _GOT_VALUE.sub(r"\1 (value hidden)", message)
    return message if message.startswith(("unknown field", "required field", "expected ")) \
        else "invalid value (hidden: it is a Secret's)"


def _describe(error: jsonschema.ValidationError) -> list[tuple[str, str]]:
    """jsonschema error -> (dotted path, short message) pairs a person can act on."""
    path = paths.join(error.absolute_path)
    keyword, expected, instance = error.validator, error.validator_value, error.instance
    if keyword == "additionalProperties" and isinstance(instance, dict):
        known = error.schema.get("properties", {})
        return [(paths.child(path, key), f'unknown field "{key}"')
                for key in instance if key not in known]
    if keyword == "required" and isinstance(instance, dict):
        return [(path, f'required field "{key}" is missing')
                for key in expected if key not in instance]
    if keyword == "type":
        return [(path, f"expected {_types(expected)}, got {_show(instance)}")]
    if keyword in ("oneOf", "anyOf") and all("type" in s for s in expected):
        # IntOrString, Quantity: the alternatives are plain types
        return [(path, f"expected {_types([s['type'] for s in expected])}, got {_show(instance)}")]
    if keyword == "format" and expected in _INT_BITS:
        return [(path, f"{_show(instance)} does not fit in {expected} "
                       f"(at most {2 ** (_INT_BITS[expected] - 1) - 1})")]
    message = error.message if len(error.message) <= 160 else error.message[:157] + "..."
    return [(path, message)]


def _types(expected: Any) -> str:
    """["integer", "null"] -> "integer"; nested lists flattened; null dropped (means optional)."""
    flat: list[str] = []
    for t in expected if isinstance(expected, list) else [expected]:
        for name in t if isinstance(t, list) else [t]:
            if name != "null" and name not in flat:
                flat.append(name)
    return " or ".join(flat) or "null"


def _show(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"boolean {str(value).lower()}"
    if isinstance(value, int):
        return f"integer {value}"
    if isinstance(value, float):
        return f"number {value}"
    if isinstance(value, str):
        return "string " + json.dumps(value if len(value) <= 40 else value[:37] + "...")
    return {dict: "object", list: "array"}.get(type(value), type(value).__name__)
