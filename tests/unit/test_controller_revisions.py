"""ControllerRevision history of StatefulSets and DaemonSets: what `kubectl rollout
history|undo sts/... ds/...` read and restore."""

from __future__ import annotations

import random

import pytest

from gitops.controllers import daemonset, history, statefulset
from gitops.controllers.manager import ControllerManager
from gitops.model import ObjectKey
from gitops.model.actions import Create, Delete, Update
from gitops.testing import memory_store
from tests.unit.test_set_controllers import NOW, ds, node, sts


def revision(owner, name, number, uid="sts-uid"):
    return {"kind": "ControllerRevision",
            "metadata": {"name": name, "namespace": "default", "ownerReferences": [
                {"uid": uid, "controller": True, "kind": owner["kind"],
                 "name": owner["metadata"]["name"]}]},
            "data": {}, "revision": number}


def outcome(actions):
    """(created name and number, renumbered name and number, deleted names)."""
    created = [(a.obj["metadata"]["name"], a.obj["revision"]) for a in actions
               if isinstance(a, Create)]
    renumbered = [(a.obj["metadata"]["name"], a.obj["revision"]) for a in actions
                  if isinstance(a, Update)]
    deleted = [a.key.name for a in actions if isinstance(a, Delete)]
    return created, renumbered, deleted


@pytest.mark.parametrize("have, current, in_use, limit, want", [
    # the first template: revision 1
    ((), "web-a", set(), None, ([("web-a", 1)], [], [])),
    # a new template: max + 1
    ((("web-a", 1), ("web-b", 2)), "web-c", set(), None, ([("web-c", 3)], [], [])),
    # the newest already: nothing to write
    ((("web-a", 1), ("web-b", 2)), "web-b", set(), None, ([], [], [])),
    # an older template back (an undo): renumbered, no new revision
    ((("web-a", 1), ("web-b", 2)), "web-a", set(), None, ([], [("web-a", 3)], [])),
    # beyond the limit the oldest idle ones go; the current one and those in use stay
    ((("web-a", 1), ("web-b", 2), ("web-c", 3), ("web-d", 4)), "web-d", {"web-a"}, 1,
     ([], [], ["web-b"])),
    ((("web-a", 1), ("web-b", 2), ("web-c", 3)), "web-c", set(), 0,
     ([], [], ["web-a", "web-b"])),
])
def test_history(have, current, in_use, limit, want):
    owner = sts()
    if limit is not None:
        owner["spec"]["revisionHistoryLimit"] = limit
    revisions = [revision(owner, n, r) for n, r in have]
    revisions.append(revision(owner, "other-a", 7, uid="someone-else"))   # not ours
    assert outcome(history.reconcile(owner, revisions, current, "hash", in_use)) == want


def test_a_new_revision_holds_the_template_kubectl_undo_patches_back():
    owner = sts()
    rev = history.new_revision(owner, "web-abc", "abc", 4)
    assert rev["data"] == {"spec": {"template": {**owner["spec"]["template"],
                                                 "$patch": "replace"}}}
    assert rev["metadata"]["labels"] == {"app": "web", "controller-revision-hash": "abc"}
    assert rev["metadata"]["ownerReferences"][0]["uid"] == "sts-uid"
    assert rev["revision"] == 4


def test_reconcilers_keep_history_only_when_given_revisions():
    s, d = sts(replicas=1), ds()
    for actions in (statefulset.reconcile(s, [], [], NOW),
                    daemonset.reconcile(d, [], [node("n1")], NOW, random.Random(0))):
        assert not any(a.obj.get("kind") == "ControllerRevision" for a in actions
                       if isinstance(a, Create))
    [made] = [a.obj for a in statefulset.reconcile(s, [], [], NOW, revisions=[])
              if isinstance(a, Create) and a.obj["kind"] == "ControllerRevision"]
    assert made["metadata"]["name"] == statefulset.revision_name(
        s, statefulset.effective_template(s))
    [made] = [a.obj for a in daemonset.reconcile(d, [], [node("n1")], NOW, random.Random(0),
                                                 revisions=[])
              if isinstance(a, Create) and a.obj["kind"] == "ControllerRevision"]
    pod = next(a.obj for a in daemonset.reconcile(d, [], [node("n1")], NOW, random.Random(0))
               if isinstance(a, Create))
    assert made["metadata"]["name"] == f"{d['metadata']['name']}-" \
        f"{pod['metadata']['labels']['controller-revision-hash']}"


@pytest.mark.parametrize("make", [sts, ds])
def test_template_changes_and_reverts_through_the_store(tmp_path, make):
    store = memory_store()
    store.create(node("n1"))
    obj = make()
    obj["metadata"].pop("uid")
    obj = store.create(obj)
    key = ObjectKey(obj["kind"], "default", obj["metadata"]["name"])
    mgr = ControllerManager(store, random.Random(0))

    def numbers():
        return sorted((r["revision"], r["metadata"]["name"])
                      for r in store.list("ControllerRevision"))

    def set_image(image):
        live = store.get(key)
        live["spec"]["template"]["spec"]["containers"][0]["image"] = image
        store.update(live)
        mgr.run_once()

    mgr.run_once()
    [(one, first)] = numbers()
    set_image("img:2")
    assert one == 1 and [n for n, _ in numbers()] == [1, 2]
    second = numbers()[1][1]
    assert second != first
    set_image("img:1")                       # back: the first one is renumbered
    assert numbers() == [(2, second), (3, first)]
    store.delete(key)                        # and the history goes with its owner
    mgr.run_once()
    assert numbers() == []
    store.close()


def test_a_pod_below_the_partition_comes_back_from_its_revision():
    """No sibling left at the current revision: the ControllerRevision still has it."""
    old = sts(image="img:1")
    current = statefulset.revision_name(old, statefulset.effective_template(old))
    stored = history.new_revision(old, current, "h", 1)
    new = sts(image="img:2", strategy={"type": "RollingUpdate",
                                       "rollingUpdate": {"partition": 2}},
              current_revision=current)
    [pod] = [a.obj for a in statefulset.reconcile(new, [], [], NOW, revisions=[stored])
             if isinstance(a, Create) and a.obj["kind"] == "Pod"]
    assert pod["metadata"]["name"] == "web-0"
    assert pod["spec"]["containers"][0]["image"] == "img:1"
    assert pod["metadata"]["labels"]["controller-revision-hash"] == current
    # without the history (nor a sibling) it can only be the update revision
    [pod] = [a.obj for a in statefulset.reconcile(new, [], [], NOW)
             if isinstance(a, Create) and a.obj["kind"] == "Pod"]
    assert pod["spec"]["containers"][0]["image"] == "img:2"
