"""Loader: values, file:line for documents and fields, and every way input can be bad."""

from __future__ import annotations

import os
import textwrap
from pathlib import Path

import pytest

from gitops.manifests import loader, paths
from gitops.manifests.loader import SourceObject, load_path, load_text


def dedent(text: str) -> str:
    return textwrap.dedent(text).lstrip("\n")


MULTI = dedent("""
    # leading comment
    ---
    apiVersion: apps/v1
    kind: Deployment
    metadata:
      name: web
      labels:
        app.kubernetes.io/name: web
    spec:
      template:
        spec:
          containers:
          - name: web
            image: nginx
            ports:
            - containerPort: 80
          - name: side
            image: busybox
    ---
    ---

    apiVersion: v1
    kind: ConfigMap
    metadata: {name: cfg}
    data:
      key: |
        multi
        line
      after: x
    """)


def test_multi_document_values_and_document_lines():
    result = load_text(MULTI, "m.yaml")
    assert result.errors == []
    assert [(o.kind, o.name, o.file, o.line) for o in result.objects] == [
        ("Deployment", "web", "m.yaml", 3), ("ConfigMap", "cfg", "m.yaml", 22)]
    assert result.objects[1].body["data"] == {"key": "multi\nline\n", "after": "x"}


@pytest.mark.parametrize("index,path,line", [
    (0, "apiVersion", 3),
    (0, "metadata.name", 6),
    (0, 'metadata.labels["app.kubernetes.io/name"]', 8),
    (0, "spec.template.spec.containers", 12),
    (0, "spec.template.spec.containers[0]", 13),
    (0, "spec.template.spec.containers[0].image", 14),
    (0, "spec.template.spec.containers[0].ports[0].containerPort", 16),
    (0, "spec.template.spec.containers[1].image", 18),
    (1, "metadata.name", 24),  # flow mapping on one line
    (1, "data.after", 29),  # after a block scalar
])
def test_field_lines(index, path, line):
    obj = load_text(MULTI, "m.yaml").objects[index]
    assert obj.field_lines[path] == line
    assert obj.line_of(path) == line


@pytest.mark.parametrize("path,line", [
    ("spec.template.spec.containers[0].resources.limits", 13),  # longest existing prefix
    ("spec.template.spec.containers[7]", 12),
    ("spec.templates", 9),  # not a prefix of spec.template: falls back to spec
    ("nothing.here", 3),  # the object's own line
    ("", 3),
    ('metadata.labels["app.kubernetes.io/name"].deeper', 8),
])
def test_line_of_falls_back_to_longest_prefix(path, line):
    assert load_text(MULTI).objects[0].line_of(path) == line


@pytest.mark.parametrize("parts,path", [
    (["spec", "containers", 0, "image"], "spec.containers[0].image"),
    (["metadata", "labels", "app.kubernetes.io/name"], 'metadata.labels["app.kubernetes.io/name"]'),
    (["data", ""], 'data[""]'),
    (["data", 'a"b[c]'], 'data["a\\"b[c]"]'),
    ([0, "a"], "[0].a"),
])
def test_paths_are_unambiguous(parts, path):
    assert paths.join(parts) == path
    assert paths.prefixes(path)[0] == path
    assert paths.prefixes(path)[-1] == paths.join(parts[:1])
    assert len(paths.prefixes(path)) == len(parts)


# Fragments common to libyaml and PyYAML's pure-Python parser (the fallback).
SYNTAX = [
    ("a: [1\n", 2, "',' or ']'"),
    ("a: b\n  c: d\n", 2, "mapping values are not allowed"),
    ("apiVersion: v1\nkind: A\n---\nkey: 'unterminated\n", 5, "found unexpected end of stream"),
    ("a: b\n\tc: d\n", 2, ""),
    ("x: \x00", 1, "characters are not allowed"),
]


@pytest.mark.parametrize("text,line,message", SYNTAX)
def test_syntax_errors_carry_the_line(text, line, message):
    result = load_text(text, "bad.yaml")
    assert [(e.file, e.line) for e in result.errors] == [("bad.yaml", line)]
    assert message in result.errors[0].message
    assert result.errors[0].message.startswith("YAML syntax error")


def test_documents_before_a_syntax_error_are_kept():
    result = load_text("apiVersion: v1\nkind: A\n---\na: [\n", "f.yaml")
    assert [o.kind for o in result.objects] == ["A"]
    assert len(result.errors) == 1


BAD_DOCS = [
    # text, line, path, message fragment
    ("a: 1\nb: 2\na: 3\n", 3, "a", 'duplicate key "a" (first on line 1)'),
    ("m:\n  x: 1\n  y:\n    - z: 1\n      z: 2\n", 5, "m.y[0].z", 'duplicate key "z"'),
    ("- a\n- b\n", 1, "", "document is not a mapping (got a list)"),
    ("just text\n", 1, "", "document is not a mapping (got a string)"),
    ("42\n", 1, "", "document is not a mapping (got int 42)"),
    ("kind: A\n", 1, "apiVersion", 'required field "apiVersion" is missing'),
    ("apiVersion: v1\n", 1, "kind", 'required field "kind" is missing'),
    ("apiVersion: v1\nkind: 5\n", 2, "kind", "kind must be a non-empty string"),
    ("apiVersion: v1\nkind: ''\n", 2, "kind", "kind must be a non-empty string"),
    ("a: !Ref thing\n", 1, "a", "unsupported YAML tag !Ref"),
    ("a: !!set {x}\n", 1, "a", "unsupported YAML tag tag:yaml.org,2002:set"),
    ("a: !!int nope\n", 1, "a", "value is not a valid !!int (value not shown)"),
    ("? [a, b]\n: c\n", 1, "", "mapping keys must be plain strings"),
    ("a: &x [1, *x]\n", 1, "a[1]", "alias *x refers to itself"),
    ("a: *missing\n", 1, "a", "undefined alias *missing"),
    ("a: [1]\nb:\n  <<: 3\n", 3, "b", "<< needs a mapping"),
]


@pytest.mark.parametrize("text,line,path,message", BAD_DOCS)
def test_bad_documents(text, line, path, message):
    result = load_text(text, "f.yaml")
    assert result.objects == []
    assert len(result.errors) == 1, result.errors
    err = result.errors[0]
    assert (err.file, err.line, err.path) == ("f.yaml", line, path)
    assert message in err.message


def test_a_bad_document_does_not_hide_its_neighbours():
    text = "apiVersion: v1\nkind: A\n---\na: 1\na: 2\n---\napiVersion: v1\nkind: B\n"
    result = load_text(text)
    assert [(o.kind, o.line) for o in result.objects] == [("A", 1), ("B", 7)]
    assert [e.line for e in result.errors] == [5]


@pytest.mark.parametrize("text", ["", "---\n", "---\n---\n", "# only a comment\n", "~\n",
                                  "---\nnull\n...\n"])
def test_empty_documents_are_skipped_silently(text):
    assert load_text(text) == loader.LoadResult([], [])


LIST = dedent("""
    apiVersion: v1
    kind: List
    metadata: {}
    items:
    - apiVersion: v1
      kind: ConfigMap
      metadata:
        name: one
    - apiVersion: v1
      kind: Service
      metadata:
        name: two
      spec:
        ports:
        - port: 80
    """)


def test_list_expands_into_items_with_their_own_lines():
    objs = load_text(LIST, "l.yaml").objects
    assert [(o.kind, o.name, o.line) for o in objs] == [("ConfigMap", "one", 5),
                                                       ("Service", "two", 9)]
    assert objs[1].field_lines["spec.ports[0].port"] == 15
    assert objs[1].line_of("spec.ports[0].targetPort") == 15
    assert objs[0].field_lines["metadata.name"] == 8
    assert not any(k.startswith("items") for o in objs for k in o.field_lines)


@pytest.mark.parametrize("text,objects,errors", [
    ("apiVersion: v1\nkind: List\nitems: []\n", 0, []),
    ("apiVersion: v1\nkind: List\nitems:\n", 0, []),
    ("apiVersion: v1\nkind: List\nitems: 3\n", 0, [(3, "items")]),
    ("apiVersion: v1\nkind: List\nitems:\n- 1\n- apiVersion: v1\n  kind: A\n", 1,
     [(4, "items[0]")]),
    ("apiVersion: v1\nkind: ConfigMapList\nitems:\n- {apiVersion: v1, kind: ConfigMap}\n", 1, []),
])
def test_list_edge_cases(text, objects, errors):
    result = load_text(text)
    assert len(result.objects) == objects
    assert [(e.line, e.path) for e in result.errors] == errors


def test_scalars_follow_kubernetes_not_yaml_1_1_surprises():
    text = dedent("""
        apiVersion: v1
        kind: ConfigMap
        data:
          date: 2024-01-31
          time: 1:30
          eq: =
          bin: !!binary aGVsbG8=
          num: 0x10
          float: 1.5
          yes: yes
          80: http
          nil: ~
          quoted: "123"
        """)
    data = load_text(text).objects[0].body["data"]
    assert data == {"date": "2024-01-31", "time": "1:30", "eq": "=", "bin": "aGVsbG8=",
                    "num": 16, "float": 1.5, "yes": True, "80": "http", "nil": None,
                    "quoted": "123"}


def test_aliases_and_merge_keys_work_and_copies_are_independent():
    text = dedent("""
        apiVersion: v1
        kind: A
        base: &base {a: 1, b: {c: 2}}
        copy: *base
        merged:
          <<: *base
          a: 9
        """)
    obj = load_text(text).objects[0]
    assert obj.body["copy"] == {"a": 1, "b": {"c": 2}}
    assert obj.body["merged"] == {"a": 9, "b": {"c": 2}}
    assert obj.body["copy"]["b"] is not obj.body["base"]["b"]
    assert obj.line_of("merged.a") == 7 and obj.line_of("merged.b") == 6


def billion_laughs(levels: int = 10) -> str:
    lines = ["apiVersion: v1", "kind: ConfigMap", 'l0: &l0 ["lol","lol","lol","lol","lol"]']
    for i in range(1, levels):
        refs = ",".join([f"*l{i - 1}"] * 10)
        lines.append(f"l{i}: &l{i} [{refs}]")
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize("text,fragment", [
    (billion_laughs(), "aliases expand to more than"),
    ("a: " + "[" * 200_000 + "]" * 200_000 + "\n", "nesting deeper than"),
    ("a: " + "{b: " * 200_000 + "1" + "}" * 200_000 + "\n", "nesting deeper than"),
    ("".join(" " * i + "k:\n" for i in range(150)), "nesting deeper than"),
])
def test_bombs_are_refused_after_bounded_work(text, fragment, monkeypatch):
    # Quick because bounded: the loader stops reading at the depth limit (the input holds
    # 400,000 events) and copies no more than the alias budget (a billion laughs is 5e9).
    work = {"events": 0, "copies": 0}

    class CountingParser(loader._Parser):
        def get_event(self):
            work["events"] += 1
            return super().get_event()

    copy = loader._copy

    def counting_copy(value):          # _copy recurses through the module name: every value
        work["copies"] += 1
        return copy(value)

    monkeypatch.setattr(loader, "_Parser", CountingParser)
    monkeypatch.setattr(loader, "_copy", counting_copy)
    result = load_text(text, "bomb.yaml")
    assert work["events"] <= 2 * loader.MAX_DEPTH + 10
    assert work["copies"] <= loader.MAX_ALIAS_NODES
    assert result.objects == []
    assert len(result.errors) == 1 and fragment in result.errors[0].message


def test_moderate_alias_use_is_fine():
    result = load_text(billion_laughs(levels=3))  # 5 * 10 * 10 = 500 expanded values
    assert result.errors == [] and len(result.objects) == 1


# --- load_path -------------------------------------------------------------------------

def write(root: Path, rel: str, content: str | bytes) -> Path:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content)
    return path


def cm(name: str) -> str:
    return f"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\n"


def test_load_path_walks_sorted_and_skips_hidden_and_other_files(tmp_path):
    write(tmp_path, "b.yaml", cm("b"))
    write(tmp_path, "a/z.yml", cm("az"))
    write(tmp_path, "a/y.yaml", cm("ay") + "---\n" + cm("ay2"))
    write(tmp_path, ".git/config.yaml", cm("git"))
    write(tmp_path, ".hidden.yaml", "not: a manifest\n")
    write(tmp_path, "README.md", "# hi\n")
    write(tmp_path, "c/notes.txt", cm("txt"))
    result = load_path(tmp_path)
    assert result.errors == []
    assert [(o.file, o.line, o.name) for o in result.objects] == [
        ("a/y.yaml", 1, "ay"), ("a/y.yaml", 6, "ay2"), ("a/z.yml", 1, "az"), ("b.yaml", 1, "b")]
    assert load_path(str(tmp_path)).objects == result.objects


def test_load_path_single_file_uses_its_name(tmp_path):
    path = write(tmp_path, "deep/app.yaml", "\n" + cm("x"))
    result = load_path(path)
    assert [(o.file, o.line) for o in result.objects] == [("app.yaml", 2)]


def test_load_path_file_errors(tmp_path):
    write(tmp_path, "big.yaml", b"# " + b"x" * loader.MAX_FILE_BYTES + b"\n")
    write(tmp_path, "latin1.yaml", b"a: 1\nb: caf\xe9\n")
    write(tmp_path, "ok.yaml", "\ufeff" + cm("bom"))  # a BOM is fine
    errors = {e.file: e for e in load_path(tmp_path).errors}
    assert set(errors) == {"big.yaml", "latin1.yaml"}
    assert "larger than 5 MB" in errors["big.yaml"].message
    assert "not valid UTF-8" in errors["latin1.yaml"].message and errors["latin1.yaml"].line == 2


def test_load_path_refuses_symlinks_leaving_the_root(tmp_path):
    outside = write(tmp_path, "outside/secret.yaml", cm("secret"))
    repo = tmp_path / "repo"
    repo.mkdir()
    os.symlink(outside, repo / "link.yaml")
    os.symlink(write(repo, "real.yaml", cm("real")), repo / "inside.yaml")
    result = load_path(repo)
    assert sorted(o.file for o in result.objects) == ["inside.yaml", "real.yaml"]
    assert [(e.file, e.message) for e in result.errors] == [
        ("link.yaml", "symlink points outside the root")]


def test_load_path_missing_root(tmp_path):
    result = load_path(tmp_path / "nope")
    assert result.objects == [] and "no such file" in result.errors[0].message


def test_error_string_format():
    err = load_text("a: 1\na: 2\n", "x.yaml").errors[0]
    assert str(err) == 'x.yaml:2: -: a: duplicate key "a" (first on line 1)'


def test_source_object_kind_and_name_tolerate_junk():
    obj = SourceObject({"kind": 3, "metadata": {"name": ["x"]}}, "f", 1)
    assert (obj.kind, obj.name, obj.line_of("a.b")) == ("", "", 1)


def test_a_file_parsed_again_comes_from_the_cache_as_independent_copies():
    from gitops.manifests import loader
    text = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cached\ndata:\n  a: '1'\n"
    first = loader.load_text(text, "c.yaml")
    first.objects[0].body["data"]["a"] = "edited by a caller"
    first.errors.append("noise")
    calls = []
    real = loader._parse
    loader._parse = lambda *a: calls.append(a) or real(*a)
    try:
        again = loader.load_text(text, "c.yaml")
        other_name = loader.load_text(text, "d.yaml")
    finally:
        loader._parse = real
    assert [c[1] for c in calls] == ["d.yaml"]            # only the new name is parsed
    assert again.objects[0].body["data"]["a"] == "1" and again.errors == []
    assert again.objects[0].line_of("data.a") == 6 and other_name.objects[0].file == "d.yaml"
