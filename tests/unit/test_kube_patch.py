"""Patch formats of the Kubernetes API: strategic merge with Kubernetes' merge keys, JSON
merge patch (RFC 7386), JSON patch (RFC 6902)."""

import pytest

from gitops.api.kube import patch as P
from gitops.api.kube.openapi import kind_schema
from gitops.api.kube.registry import for_kind

DEPLOY = kind_schema(for_kind("Deployment"))
POD = kind_schema(for_kind("Pod"))


def deploy(containers, **spec):
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "w"},
            "spec": {"template": {"spec": {"containers": containers}}, **spec}}


def containers(obj):
    return obj["spec"]["template"]["spec"]["containers"]


APP = {"name": "app", "image": "a:1", "env": [{"name": "A", "value": "1"},
                                              {"name": "B", "value": "2"}],
       "ports": [{"containerPort": 80}]}
SIDE = {"name": "side", "image": "s:1"}


@pytest.mark.parametrize("patch, expected", [
    # containers merge by name: only the named one changes, the other stays
    ({"spec": {"template": {"spec": {"containers": [{"name": "app", "image": "a:2"}]}}}},
     [{**APP, "image": "a:2"}, SIDE]),
    # env merges by name inside the container; a new entry is appended
    ({"spec": {"template": {"spec": {"containers": [
        {"name": "app", "env": [{"name": "B", "value": "9"}, {"name": "C", "value": "3"}]}]}}}},
     [{**APP, "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "9"},
                      {"name": "C", "value": "3"}]}, SIDE]),
    # $patch: delete removes one item by its key
    ({"spec": {"template": {"spec": {"containers": [{"name": "side", "$patch": "delete"}]}}}},
     [APP]),
    # a new container is appended; $setElementOrder puts it first
    ({"spec": {"template": {"spec": {
        "$setElementOrder/containers": [{"name": "new"}, {"name": "app"}, {"name": "side"}],
        "containers": [{"name": "new", "image": "n:1"}]}}}},
     [{"name": "new", "image": "n:1"}, APP, SIDE]),
    # null deletes a field; ports merge by containerPort
    ({"spec": {"template": {"spec": {"containers": [
        {"name": "app", "env": None, "ports": [{"containerPort": 80, "name": "http"}]}]}}}},
     [{"name": "app", "image": "a:1", "ports": [{"containerPort": 80, "name": "http"}]}, SIDE]),
    # $patch: replace on the list replaces it whole
    ({"spec": {"template": {"spec": {"containers": [{"$patch": "replace"}, SIDE]}}}}, [SIDE]),
])
def test_strategic_merge_uses_kubernetes_merge_keys(patch, expected):
    out = P.strategic_merge(deploy([APP, SIDE]), patch, DEPLOY)
    assert containers(out) == expected


def test_strategic_merge_directives_on_maps_and_primitive_lists():
    obj = {"apiVersion": "v1", "kind": "Pod",
           "metadata": {"name": "p", "labels": {"a": "1", "b": "2"}, "finalizers": ["x", "y"]},
           "spec": {"containers": [APP], "volumes": [{"name": "v", "emptyDir": {}}]}}
    out = P.strategic_merge(obj, {"metadata": {
        "labels": {"a": None, "c": "3"},
        "finalizers": ["z"], "$deleteFromPrimitiveList/finalizers": ["x"]}}, POD)
    assert out["metadata"]["labels"] == {"b": "2", "c": "3"}
    assert out["metadata"]["finalizers"] == ["y", "z"]          # a set: merged, not replaced
    # $retainKeys drops what the patch does not keep; $patch: replace on a map
    out = P.strategic_merge(obj, {"spec": {"volumes": [
        {"name": "v", "$retainKeys": ["name", "configMap"], "configMap": {"name": "c"}}]}}, POD)
    assert out["spec"]["volumes"] == [{"name": "v", "configMap": {"name": "c"}}]
    out = P.strategic_merge(obj, {"metadata": {"labels": {"$patch": "replace", "only": "1"}}},
                            POD)
    assert out["metadata"]["labels"] == {"only": "1"}
    # the input is never modified
    assert obj["metadata"]["labels"] == {"a": "1", "b": "2"}


def test_without_a_schema_lists_are_replaced():
    assert P.strategic_merge({"l": [1, 2], "m": {"a": 1}}, {"l": [3], "m": {"b": 2}}, None) == {
        "l": [3], "m": {"a": 1, "b": 2}}


@pytest.mark.parametrize("target, patch, expected", [       # RFC 7386 appendix A
    ({"a": "b"}, {"a": "c"}, {"a": "c"}),
    ({"a": "b"}, {"b": "c"}, {"a": "b", "b": "c"}),
    ({"a": "b"}, {"a": None}, {}),
    ({"a": [{"b": "c"}]}, {"a": [1]}, {"a": [1]}),
    (["a", "b"], ["c", "d"], ["c", "d"]),
    ({"a": "foo"}, "bar", "bar"),
    ({"e": None}, {"a": 1}, {"e": None, "a": 1}),
    ([1, 2], {"a": "b", "c": None}, {"a": "b"}),
    ({}, {"a": {"bb": {"ccc": None}}}, {"a": {"bb": {}}}),
])
def test_json_merge_patch(target, patch, expected):
    assert P.merge_patch(target, patch) == expected


def test_json_patch_and_replace_of_a_missing_member():
    obj = {"metadata": {"name": "w"}, "spec": {"replicas": 1, "items": [1, 2]}}
    out = P.json_patch(obj, [{"op": "replace", "path": "/spec/replicas", "value": 3},
                             {"op": "add", "path": "/spec/items/-", "value": 3},
                             {"op": "remove", "path": "/spec/items/0"},
                             {"op": "replace", "path": "/metadata/annotations",
                              "value": {"a": "1"}}])
    assert out == {"metadata": {"name": "w", "annotations": {"a": "1"}},
                   "spec": {"replicas": 3, "items": [2, 3]}}
    assert obj["spec"]["replicas"] == 1
    with pytest.raises(P.PatchError):
        P.json_patch(obj, [{"op": "test", "path": "/spec/replicas", "value": 2}])
    with pytest.raises(P.PatchError):
        P.json_patch(obj, [{"op": "remove", "path": "/spec/missing"}])
    with pytest.raises(P.PatchError):
        P.json_patch(obj, {"op": "add"})


SECRET = {"kind": "Secret", "metadata": {"name": "s"}, "data": {"password": "c3VwZXJzZWNyZXQ="}}


@pytest.mark.parametrize("op, message", [
    ({"op": "test", "path": "/data/password", "value": "guess"},
     "testing value /data/password failed: test failed"),
    ({"op": "add", "path": "/nope/deeper", "value": 1},
     'doc is missing path: "/nope/deeper": missing value'),
    ({"op": "add", "path": "/data/password/0", "value": 1},
     "the JSON patch does not apply: add at /data/password/0 is not possible here"),
    ({"op": "remove", "path": "/data/other"},
     "the JSON patch does not apply: remove at /data/other is not possible here"),
])
def test_a_failing_json_patch_never_quotes_the_document(op, message):
    """The library's messages quote the values compared and the whole document walked:
    from a Secret, that is its values in an API error."""
    with pytest.raises(P.PatchError) as caught:
        P.json_patch(SECRET, [op])
    assert str(caught.value) == message
