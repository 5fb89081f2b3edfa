"""managedFields: field sets in FieldsV1 form, Update ownership, server-side apply."""

import pytest

from gitops.api.kube import fields as F
from gitops.api.kube import managed
from gitops.api.kube.openapi import kind_schema
from gitops.api.kube.registry import for_kind

DEPLOY = kind_schema(for_kind("Deployment"))
CM = kind_schema(for_kind("ConfigMap"))


def deploy(image="a:1", replicas=None, labels=None):
    spec = {"selector": {"matchLabels": {"app": "w"}},
            "template": {"metadata": {"labels": {"app": "w"}},
                         "spec": {"containers": [{"name": "app", "image": image}]}}}
    if replicas is not None:
        spec["replicas"] = replicas
    meta = {"name": "w", "namespace": "default", "uid": "u", "resourceVersion": "3"}
    if labels:
        meta["labels"] = labels
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": meta, "spec": spec,
            "status": {"replicas": 1}}


def test_field_set_uses_list_keys_and_skips_server_fields():
    paths = F.field_set(deploy(replicas=2), DEPLOY)
    container = ("f:spec", "f:template", "f:spec", "f:containers", 'k:{"name":"app"}')
    assert container in paths and container + ("f:image",) in paths
    assert ("f:spec", "f:replicas") in paths
    assert not any(p[0] in ("f:status", "f:apiVersion") for p in paths)
    assert not any(p[:2] == ("f:metadata", "f:uid") for p in paths)
    assert F.field_set(deploy(), DEPLOY, status=True) == {("f:status", "f:replicas")}
    v1 = F.to_v1(paths)
    item = v1["f:spec"]["f:template"]["f:spec"]["f:containers"]['k:{"name":"app"}']
    assert item == {".": {}, "f:image": {}, "f:name": {}}
    assert F.from_v1(v1) == paths
    assert managed.display(container + ("f:image",)) == \
        '.spec.template.spec.containers[name="app"].image'


def test_update_moves_ownership_of_changed_fields():
    first = deploy(replicas=1)
    first["metadata"]["managedFields"] = managed.record_update(None, first, "git", "apps/v1",
                                                               DEPLOY)
    scaled = deploy(replicas=5)
    scaled["metadata"]["managedFields"] = managed.record_update(first, scaled, "kubectl-scale",
                                                                "apps/v1", DEPLOY)
    owners = {e["manager"]: F.from_v1(e["fieldsV1"]) for e in scaled["metadata"]["managedFields"]}
    assert owners["kubectl-scale"] == {("f:spec", "f:replicas")}
    assert ("f:spec", "f:replicas") not in owners["git"]
    assert ("f:spec", "f:selector", "f:matchLabels", "f:app") in owners["git"]
    # a write that changes nothing adds no entry
    again = managed.record_update(scaled, deploy(replicas=5) | {"metadata": {
        **scaled["metadata"]}}, "noop", "apps/v1", DEPLOY)
    assert [e["manager"] for e in again] == ["git", "kubectl-scale"]


def cm(data, manager_entries=None):
    meta = {"name": "c", "namespace": "default"}
    if manager_entries is not None:
        meta["managedFields"] = manager_entries
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta, "data": data}


def test_apply_conflicts_force_and_removal_of_dropped_fields():
    applied = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"},
               "data": {"a": "1", "b": "2"}}
    obj, fields = managed.apply(None, applied, "alice", "v1", CM, force=False)
    assert obj["data"] == {"a": "1", "b": "2"}
    live = {**obj, "metadata": {**obj["metadata"], "managedFields": fields}}
    # bob applies the same value for a: co-owned, no conflict
    obj, fields = managed.apply(live, {**applied, "data": {"a": "1"}}, "bob", "v1", CM, False)
    live = {**obj, "metadata": {**obj["metadata"], "managedFields": fields}}
    # bob sets another value for b: alice owns it -> conflict unless forced
    with pytest.raises(managed.ApplyConflict) as err:
        managed.apply(live, {**applied, "data": {"a": "1", "b": "9"}}, "bob", "v1", CM, False)
    assert [(c.manager, c.path) for c in err.value.conflicts] == [("alice", ("f:data", "f:b"))]
    assert 'conflict with "alice" using v1: .data.b' in str(err.value)
    obj, fields = managed.apply(live, {**applied, "data": {"a": "1", "b": "9"}}, "bob", "v1",
                                CM, force=True)
    owners = {e["manager"]: F.from_v1(e["fieldsV1"]) for e in fields}
    assert ("f:data", "f:b") in owners["bob"] and ("f:data", "f:b") not in owners["alice"]
    live = {**obj, "metadata": {**obj["metadata"], "managedFields": fields}}
    # alice stops declaring a: bob still owns it, so it stays; dropping b (bob's now) too
    obj, fields = managed.apply(live, {**applied, "data": {}}, "alice", "v1", CM, False)
    assert obj["data"] == {"a": "1", "b": "9"}
    live = {**obj, "metadata": {**obj["metadata"], "managedFields": fields}}
    # bob drops both: nobody owns them any more, so they are removed
    obj, _ = managed.apply(live, {**applied, "data": None} | {"data": {}}, "bob", "v1", CM,
                           False)
    assert "a" not in (obj.get("data") or {}) and "b" not in (obj.get("data") or {})


def test_apply_merges_keyed_lists_and_keeps_other_managers_items():
    base = deploy()
    base["metadata"]["managedFields"] = managed.record_update(None, base, "git", "apps/v1",
                                                              DEPLOY)
    sidecar = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "w"},
               "spec": {"template": {"spec": {"containers": [
                   {"name": "side", "image": "s:1"}]}}}}
    obj, _ = managed.apply(base, sidecar, "mesh", "apps/v1", DEPLOY, False)
    names = [c["name"] for c in obj["spec"]["template"]["spec"]["containers"]]
    assert names == ["app", "side"]
