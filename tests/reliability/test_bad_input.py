"""Hostile manifests against the sync engine with a real SQLite store.

Hypothesis writes one bad file next to a good repo whose ConfigMap also changes in the
same revision. Whatever the file holds (wrong types, huge values, deep nesting, unicode
names, duplicate keys, YAML bombs, binary junk), a sync must return instead of raising,
refuse the revision with an error that names the bad file, and leave the store exactly as
the last good revision left it: not the ConfigMap change, not a single object of the bad
file (never half-applied).
"""

from __future__ import annotations

import copy
import json
import shutil
import tempfile
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from structlog.testing import capture_logs

from gitops.model import ObjectKey
from gitops.source.base import DirSource
from gitops.store import Registry, SqliteStore
from gitops.sync.engine import SyncEngine

BAD = "zz-bad.yaml"
GOOD_CM = "apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: settings}}\ndata: {{v: \"{v}\"}}\n"
DEPLOYMENT = {
    "apiVersion": "apps/v1", "kind": "Deployment",
    "metadata": {"name": "web-bad", "labels": {"app": "web"}},
    "spec": {
        "replicas": 2,
        "selector": {"matchLabels": {"app": "web"}},
        "template": {
            "metadata": {"labels": {"app": "web"}},
            "spec": {"containers": [{
                "name": "main", "image": "gitops/busybox:1",
                "command": ["sh", "-c", "exec httpd -f -p 8080"],
                "ports": [{"containerPort": 8080, "name": "http"}],
                "env": [{"name": "A", "value": "1"}],
                "resources": {"limits": {"memory": "64Mi"}},
            }]},
        },
    },
}
SERVICE = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web-bad"},
           "spec": {"selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": 8080}]}}

# Field path -> the JSON type Kubernetes expects there.
TYPED_FIELDS = {
    ("spec", "replicas"): int,
    ("metadata", "name"): str,
    ("metadata", "labels"): dict,
    ("spec", "selector"): dict,
    ("spec", "template", "spec", "containers"): list,
    ("spec", "template", "spec", "containers", 0, "image"): str,
    ("spec", "template", "spec", "containers", 0, "name"): str,
    ("spec", "template", "spec", "containers", 0, "command"): list,
    ("spec", "template", "spec", "containers", 0, "ports", 0, "containerPort"): int,
    ("spec", "template", "spec", "containers", 0, "env"): list,
    ("spec", "template", "spec", "containers", 0, "env", 0, "value"): str,
    ("spec", "template", "spec", "containers", 0, "resources"): dict,
}

scalars = st.one_of(st.integers(-2**70, 2**70), st.booleans(),
                    st.floats(allow_nan=False, allow_infinity=False).filter(
                        lambda f: not f.is_integer()),
                    st.text(max_size=30))
anything = st.recursive(scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)),
    max_leaves=12)


def set_path(body: dict, path: tuple, value) -> dict:
    out = copy.deepcopy(body)
    node = out
    for step in path[:-1]:
        node = node[step]
    node[path[-1]] = value
    return out


def _type_of(value) -> type:
    return bool if isinstance(value, bool) else type(value)


@st.composite
def wrong_type(draw) -> str:
    path, expected = draw(st.sampled_from(sorted(TYPED_FIELDS.items(), key=str)))
    value = draw(anything.filter(lambda v: _type_of(v) is not expected))
    return yaml.safe_dump(set_path(DEPLOYMENT, path, value), allow_unicode=True)


@st.composite
def huge_value(draw) -> str:
    choice = draw(st.sampled_from(["replicas", "port", "name", "label", "env", "configmap"]))
    if choice == "replicas":
        body = set_path(DEPLOYMENT, ("spec", "replicas"), draw(st.integers(2**31, 10**40)))
    elif choice == "port":
        body = set_path(SERVICE, ("spec", "ports", 0, "port"), draw(st.integers(65536, 10**30)))
    elif choice == "name":
        body = set_path(DEPLOYMENT, ("metadata", "name"), "a" * draw(st.integers(254, 20000)))
    elif choice == "label":
        body = set_path(DEPLOYMENT, ("metadata", "labels"),
                        {"app": "web", "k": "v" * draw(st.integers(64, 5000))})
    elif choice == "env":
        body = set_path(DEPLOYMENT, ("spec", "template", "spec", "containers", 0, "env"),
                        [{"name": "x" * draw(st.integers(1, 3)) + "=", "value": "1"}] * 3)
    else:   # above the 1 MiB Kubernetes caps a ConfigMap at
        body = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "huge"},
                "data": {"blob": "x" * draw(st.integers(1024 * 1024 + 1, 3 * 1024 * 1024))}}
    return yaml.safe_dump(body)


@st.composite
def deep_nesting(draw) -> str:
    depth = draw(st.integers(101, 20000))
    flow = draw(st.booleans())
    if flow:
        nested = "[" * depth + "]" * depth
        return f"apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: deep}}\ndata:\n  x: {nested}\n"
    lines = ["apiVersion: v1", "kind: ConfigMap", "metadata: {name: deep}", "data:"]
    lines += [" " * (2 * (i + 1)) + f"k{i}:" for i in range(min(depth, 400))]
    return "\n".join(lines) + " end\n"


@st.composite
def unicode_name(draw) -> str:
    name = draw(st.text(st.characters(min_codepoint=0x80, max_codepoint=0x10FFFF,
                                      exclude_categories=("Cs",)), min_size=1, max_size=40))
    kind = draw(st.sampled_from([DEPLOYMENT, SERVICE]))
    return yaml.safe_dump(set_path(kind, ("metadata", "name"), name), allow_unicode=True)


@st.composite
def duplicate_keys(draw) -> str:
    key = draw(st.sampled_from(["name", "replicas", "image", "kind"]))
    if key == "kind":
        return "apiVersion: v1\nkind: ConfigMap\nkind: Secret\nmetadata: {name: dup}\n"
    if key == "name":
        return "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: dup\n  name: dup2\n"
    text = yaml.safe_dump(DEPLOYMENT)
    line = "  replicas: 2\n" if key == "replicas" else "    image: gitops/busybox:1\n"
    twice = {"replicas": "  replicas: 2\n  replicas: 3\n",
             "image": "    image: gitops/busybox:1\n    image: other:2\n"}[key]
    return text.replace(line, twice, 1) if line in text else text + "spec: {}\n"


@st.composite
def yaml_bomb(draw) -> str:
    width, levels = draw(st.integers(5, 12)), draw(st.integers(6, 12))
    rows = ["a0: &a0 [lol]"]
    for i in range(1, levels):
        rows.append(f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * width) + "]")
    body = "\n".join("  " + r for r in rows)
    return (f"apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: bomb}}\ndata:\n{body}\n"
            f"  top: *a{levels - 1}\n")


@st.composite
def junk(draw) -> bytes:
    return draw(st.one_of(
        st.binary(max_size=2000).map(lambda b: b"\x00" + b),   # NUL: never YAML
        st.just(b"\x00\x01\x02 binary \xff\xfe"),
        st.just(b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4),
        st.text(max_size=200).map(lambda t: ("kind: [\n" + t).encode())))


BAD_FILES = st.one_of(wrong_type(), huge_value(), deep_nesting(), unicode_name(),
                      duplicate_keys(), yaml_bomb(), junk())


def snapshot(store: Registry) -> tuple:
    objects = sorted(json.dumps(o, sort_keys=True) for o in store.all_objects())
    inventory = sorted((str(k), e.applied_hash) for k, e in store.inventory().items())
    return objects, inventory, store.get_state("applied_revision")


@pytest.fixture(scope="module")
def world():
    tmp = Path(tempfile.mkdtemp(prefix="gitops-badinput-"))
    repo = tmp / "repo"
    repo.mkdir()
    (repo / "settings.yaml").write_text(GOOD_CM.format(v="good"))
    good = [set_path(o, ("metadata", "name"), "web") for o in (DEPLOYMENT, SERVICE)]
    (repo / "app.yaml").write_text(yaml.safe_dump_all(good))
    store = Registry(SqliteStore(tmp / "state.db"))
    engine = SyncEngine(store, DirSource(str(repo)))
    assert engine.sync_once("manual").result == "synced"
    yield repo, store, engine
    store.close()
    shutil.rmtree(tmp, ignore_errors=True)


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                 HealthCheck.function_scoped_fixture])
@given(bad=BAD_FILES)
def test_bad_file_refuses_the_whole_revision_and_names_the_file(world, bad):
    repo, store, engine = world
    before = snapshot(store)
    (repo / "settings.yaml").write_text(GOOD_CM.format(v="changed"))
    target = repo / BAD
    target.write_bytes(bad if isinstance(bad, bytes) else bad.encode())
    try:
        with capture_logs() as logs:
            res = engine.sync_once("manual")      # must return, never raise
    finally:
        target.unlink()
        (repo / "settings.yaml").write_text(GOOD_CM.format(v="good"))
        if engine.store.get_state("applied_revision") != before[2]:
            engine.sync_once("manual")     # a revision got through: back to the good one
    assert res.result == "failed", (res.result, res.message)
    assert res.errors and all(e.file == BAD for e in res.errors), [str(e) for e in res.errors]
    assert all(str(e).startswith(BAD + ":") for e in res.errors)
    assert snapshot(store) == before              # nothing of the revision was applied
    assert "the last good revision keeps running" in res.message
    logged = [e for e in logs if e["event"] == "manifest_invalid"]
    assert logged and all(e["file"] == BAD for e in logged)


OTHER_KINDS = [
    {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "one", "labels": {"a": "b"}},
     "spec": {"restartPolicy": "Never", "containers": [
         {"name": "c", "image": "gitops/busybox:1", "args": ["true"],
          "readinessProbe": {"exec": {"command": ["true"]}, "periodSeconds": 5},
          "volumeMounts": [{"name": "v", "mountPath": "/v"}]}],
         "volumes": [{"name": "v", "emptyDir": {"sizeLimit": "1Mi"}}]}},
    {"apiVersion": "batch/v1", "kind": "CronJob", "metadata": {"name": "cron"},
     "spec": {"schedule": "*/5 * * * *", "jobTemplate": {"spec": {"backoffLimit": 2,
              "template": {"spec": {"restartPolicy": "OnFailure", "containers": [
                  {"name": "j", "image": "gitops/busybox:1", "args": ["date"]}]}}}}}},
    {"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "db"},
     "spec": {"serviceName": "db", "replicas": 1, "selector": {"matchLabels": {"app": "db"}},
              "template": {"metadata": {"labels": {"app": "db"}}, "spec": {"containers": [
                  {"name": "db", "image": "gitops/busybox:1"}]}},
              "volumeClaimTemplates": [{"metadata": {"name": "data"}, "spec": {
                  "accessModes": ["ReadWriteOnce"],
                  "resources": {"requests": {"storage": "1Gi"}}}}]}},
    {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "np"},
     "spec": {"type": "NodePort", "selector": {"app": "db"}, "sessionAffinity": "ClientIP",
              "ports": [{"name": "h", "port": 80, "targetPort": "h", "protocol": "UDP"}]}},
]


def _leaf_paths(node, path=()):
    if isinstance(node, dict):
        for k, v in node.items():
            yield path + (k,)
            yield from _leaf_paths(v, path + (k,))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield path + (i,)
            yield from _leaf_paths(v, path + (i,))


@st.composite
def mutated(draw) -> str:
    base = draw(st.sampled_from([DEPLOYMENT, SERVICE, *OTHER_KINDS]))
    body = base
    for _ in range(draw(st.integers(1, 3))):
        paths = [p for p in _leaf_paths(body) if p[0] not in ("kind", "apiVersion")]
        body = set_path(body, draw(st.sampled_from(paths)), draw(anything))
    return yaml.safe_dump(body, allow_unicode=True)


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(text=mutated())
def test_any_mutation_is_applied_whole_or_refused_whole(world, text):
    """Values anywhere, of any type (some happen to be valid): a sync never raises, and a
    revision is either applied whole (the ConfigMap change with it) or refused whole."""
    repo, store, engine = world
    before = snapshot(store)
    (repo / "settings.yaml").write_text(GOOD_CM.format(v="changed"))
    (repo / BAD).write_text(text)
    try:
        res = engine.sync_once("manual")
        settings_now = store.get(ObjectKey("ConfigMap", "default", "settings"))["data"]["v"]
        after = snapshot(store)
    finally:
        (repo / BAD).unlink()
        (repo / "settings.yaml").write_text(GOOD_CM.format(v="good"))
        engine.sync_once("manual")                  # back to the good revision
    if res.result == "failed":
        assert res.errors and all(e.file == BAD for e in res.errors), res.message
        assert after == before
    else:
        assert res.result == "synced", (res.result, res.message)
        assert settings_now == "changed"


def test_the_good_revision_still_syncs_after_the_storm(world):
    repo, store, engine = world
    (repo / "settings.yaml").write_text(GOOD_CM.format(v="later"))
    try:
        assert engine.sync_once("manual").result == "synced"
        assert store.get(ObjectKey("ConfigMap", "default", "settings"))["data"]["v"] == "later"
    finally:
        (repo / "settings.yaml").write_text(GOOD_CM.format(v="good"))
        engine.sync_once("manual")


# Regressions: each of these got through (or crashed the sync) before the fix it names.
REGRESSIONS = [
    # int32 fields were not range-checked: 10**20 replicas reached the controllers
    ("spec.replicas", "does not fit in int32",
     set_path(DEPLOYMENT, ("spec", "replicas"), 2**31)),
    # a list field holding a scalar crashed the host-access policy check (TypeError)
    ("spec.template.spec.containers", "expected array",
     set_path(DEPLOYMENT, ("spec", "template", "spec", "containers"), 1)),
    ("spec.template.spec.containers", "expected array",
     set_path(DEPLOYMENT, ("spec", "template", "spec", "containers"), "0")),
    # label values longer than 63 characters were accepted
    ("metadata.labels.k", "invalid label value",
     set_path(DEPLOYMENT, ("metadata", "labels"), {"app": "web", "k": "v" * 64})),
    ('spec.template.metadata.labels["bad key"]', "invalid label key",
     set_path(DEPLOYMENT, ("spec", "template", "metadata", "labels"),
              {"app": "web", "bad key": "x"})),
    # an environment variable name with "=" was accepted
    ("spec.template.spec.containers[0].env[0].name", "invalid environment variable name",
     set_path(DEPLOYMENT, ("spec", "template", "spec", "containers", 0, "env"),
              [{"name": "A=B", "value": "1"}])),
    # a ConfigMap over Kubernetes' 1 MiB cap was accepted
    ("data", "at most 1048576 allowed",
     {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "huge"},
      "data": {"blob": "x" * (1024 * 1024)}}),
    # Secret data that is not base64, and keys Kubernetes refuses, were accepted
    ("data.token", "not valid base64",
     {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"},
      "data": {"token": "plain text!"}}),
    ('data["bad key/"]', "invalid key",
     {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"},
      "data": {"bad key/": "x"}}),
]


@pytest.mark.parametrize("path,message,body", REGRESSIONS,
                         ids=[f"{p}:{m}" for p, m, _ in REGRESSIONS])
def test_regressions_found_by_the_fuzzer(path, message, body):
    from gitops.manifests import policy
    from gitops.manifests.loader import load_text
    from gitops.manifests.validate import validate
    loaded = load_text(yaml.safe_dump(body), BAD)
    errors = [*loaded.errors, *validate(loaded.objects), *policy.check(loaded.objects, False)]
    assert any(e.path == path and message in e.message
               for e in errors), [str(e) for e in errors]


SECRET_LEAKS = [
    {"data": {"password": 99999777}},                       # "got integer 99999777"
    {"data": {"password": True}},
    {"data": {"password": 1234.5678}},
    {"stringData": {"password": 99999777}},
    {"data": {"password": "not base64 99999777!"}},
    {"data": {"password": "x" * 3 + "99999777"}},           # length not a multiple of 4
    {"type": "Opaque", "stringData": {"k": ["99999777"], "j": {"x": "99999777"}}},
]


@pytest.mark.parametrize("fields", SECRET_LEAKS, ids=[str(i) for i in range(len(SECRET_LEAKS))])
def test_validation_errors_never_quote_a_secret_value(fields):
    """Regression: a wrong-typed Secret value was quoted in its error message."""
    from gitops.manifests.loader import load_text
    from gitops.manifests.validate import validate
    body = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}, **fields}
    loaded = load_text(yaml.safe_dump(body), BAD)
    errors = validate(loaded.objects)
    assert errors, "each of these is invalid"
    for e in errors:
        assert "99999777" not in str(e) and "1234.5678" not in str(e), str(e)
