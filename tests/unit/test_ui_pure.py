"""The web UI's pure parts: the tree of an app, its filters, container health, the
side-by-side diff, login codes and sessions, commit links."""

from __future__ import annotations

import pytest

from gitops.health import Health
from gitops.model import ObjectKey
from gitops.testing import FakeClock
from gitops.ui.auth import CODE_TTL, SESSION_TTL, Sessions, csrf_ok
from gitops.ui.diffview import changed, side_by_side, to_yaml
from gitops.ui.tree import (Declared, Filter, build_tree, container_health, filter_tree,
                            flatten, health_counts)
from gitops.ui.views import commit_url, file_url, located_errors, web_url


def obj(kind: str, name: str, uid: str, owner: str = "", ns: str = "default", **rest) -> dict:
    meta = {"name": name, "namespace": ns, "uid": uid}
    if owner:
        meta["ownerReferences"] = [{"uid": owner, "controller": True, "kind": "X",
                                    "name": "x", "apiVersion": "v1"}]
    return {"kind": kind, "apiVersion": "v1", "metadata": meta, **rest}


def pod(name: str, uid: str, owner: str, waiting: str = "") -> dict:
    state = {"waiting": {"reason": waiting}} if waiting else {"running": {}}
    return obj("Pod", name, uid, owner, spec={"containers": [{"name": "app", "image": "i:1"}]},
               status={"phase": "Running", "containerStatuses": [
                   {"name": "app", "state": state, "ready": not waiting, "restartCount": 2}]})


def health_of(o: dict) -> Health:
    if o["kind"] == "Pod":
        waiting = o["status"]["containerStatuses"][0]["state"].get("waiting")
        return Health("Degraded", waiting["reason"]) if waiting else Health("Healthy")
    return Health("Healthy")


OBJECTS = [
    obj("Deployment", "web", "d1"), obj("ReplicaSet", "web-1", "r1", "d1"),
    pod("web-1-a", "p1", "r1"), pod("web-1-b", "p2", "r1", waiting="CrashLoopBackOff"),
    obj("Service", "web", "s1"), obj("Endpoints", "web", "e1"),
    obj("StatefulSet", "db", "ss1", spec={"volumeClaimTemplates": [{"metadata":
                                                                    {"name": "data"}}]}),
    pod("db-0", "p3", "ss1"), obj("PersistentVolumeClaim", "data-db-0", "c1"),
    obj("PersistentVolumeClaim", "data-dbx-0", "c2"),        # another set's claim
    obj("Event", "web.1", "ev1"), obj("ConfigMap", "stray", "cm9"),
]
DECLARED = {ObjectKey("Deployment", "default", "web"): Declared("web.yaml", 1, "Synced"),
            ObjectKey("Service", "default", "web"): Declared("web.yaml", 30, "OutOfSync"),
            ObjectKey("StatefulSet", "default", "db"): Declared("db.yaml", 1, "Synced"),
            ObjectKey("ConfigMap", "default", "gone"): Declared("cm.yaml", 3, "OutOfSync")}


def shape(nodes) -> list:
    return [(n.kind, n.name, shape(n.children)) if n.children else (n.kind, n.name)
            for n in nodes]


def test_tree_hangs_children_under_their_declared_root():
    tree = build_tree(OBJECTS, DECLARED, health_of)
    assert shape(tree) == [
        ("ConfigMap", "gone"),
        ("Service", "web", [("Endpoints", "web")]),
        ("Deployment", "web", [("ReplicaSet", "web-1", [
            ("Pod", "web-1-a", [("Container", "app")]),
            ("Pod", "web-1-b", [("Container", "app")])])]),
        ("StatefulSet", "db", [("Pod", "db-0", [("Container", "app")]),
                               ("PersistentVolumeClaim", "data-db-0")]),
    ]
    missing, service = tree[0], tree[1]
    assert (missing.health, missing.file, missing.line) == ("Missing", "cm.yaml", 3)
    assert (service.sync, service.line) == ("OutOfSync", 30)
    bad = tree[2].children[0].children[1]
    assert (bad.health, bad.message) == ("Degraded", "CrashLoopBackOff")
    assert bad.children[0].health == "Degraded"
    assert "2 restarts" in bad.children[0].detail and bad.children[0].pod == "web-1-b"


def test_an_owner_loop_does_not_recurse_forever():
    a = obj("ReplicaSet", "a", "u1", owner="u2")
    b = obj("ReplicaSet", "b", "u2", owner="u1")
    tree = build_tree([a, b], {ObjectKey("ReplicaSet", "default", "a"):
                               Declared("a.yaml", 1, "Synced")}, health_of)
    assert len(flatten(tree)) <= 3


@pytest.mark.parametrize("flt, names", [
    (Filter(health="Degraded"), ["web", "web-1", "web-1-b", "app"]),
    (Filter(kind="persistentvolumeclaim"), ["db", "data-db-0"]),
    (Filter(name="DB-0"), ["db", "db-0", "data-db-0"]),
    (Filter(kind="Pod", name="web-1-a"), ["web", "web-1", "web-1-a"]),
    (Filter(name="nothing"), []),
])
def test_filter_keeps_matches_and_their_path(flt, names):
    tree = build_tree(OBJECTS, DECLARED, health_of)
    assert [n.name for _, n in flatten(filter_tree(tree, flt))] == names


def test_counts_and_list_rows():
    tree = build_tree(OBJECTS, DECLARED, health_of)
    assert health_counts(tree) == {"Missing": 1, "Healthy": 3}
    rows = flatten(tree)
    assert [d for d, n in rows if n.name == "web-1-b"] == [2]
    assert len({n.id for _, n in rows}) == len(rows)        # ids are unique (focus kept)


@pytest.mark.parametrize("status, init, want", [
    (None, False, ("Progressing", "not started")),
    ({"state": {"running": {}}, "ready": True}, False, ("Healthy", "running")),
    ({"state": {"running": {}}, "ready": False}, False, ("Progressing", "running, not ready")),
    ({"state": {"waiting": {"reason": "ErrImagePull", "message": "no such image"}}}, False,
     ("Degraded", "ErrImagePull: no such image")),
    ({"state": {"waiting": {"reason": "ContainerCreating"}}}, False,
     ("Progressing", "ContainerCreating")),
    ({"state": {"terminated": {"exitCode": 3, "reason": "Error"}}}, False,
     ("Degraded", "Error (exit code 3)")),
    ({"state": {"terminated": {"exitCode": 0, "reason": "Completed"}}}, True,
     ("Healthy", "Completed")),
])
def test_container_health(status, init, want):
    h = container_health(status, init)
    assert (h.status, h.message) == want


def test_side_by_side_pairs_changed_lines_and_cuts_long_equal_runs():
    git = to_yaml({"spec": {"replicas": 2, **{f"k{i}": i for i in range(20)},
                            "image": "a:1"}})
    live = to_yaml({"spec": {"replicas": 3, **{f"k{i}": i for i in range(20)},
                             "image": "a:1", "extra": True}})
    rows = side_by_side(git, live, context=2)
    assert [r for r in rows if r.tag == "changed"][0].left == "  replicas: 2"
    assert [r for r in rows if r.tag == "changed"][0].right == "  replicas: 3"
    assert [r.right for r in rows if r.tag == "added"] == ["  extra: true"]
    assert any(r.tag == "gap" for r in rows)
    assert len(rows) < 15 and changed(rows) == 2
    assert side_by_side(git, git) == []


def test_a_login_code_works_once_and_not_after_it_expires():
    clock = FakeClock()
    sessions = Sessions(clock)
    code = sessions.issue_code(read_only=False)
    session = sessions.redeem(code)
    assert session is not None and not session.read_only
    assert sessions.redeem(code) is None                      # spent
    assert sessions.get(session.id) == session
    late = sessions.issue_code(read_only=True)
    clock.advance(CODE_TTL + 1)
    assert sessions.redeem(late) is None
    clock.advance(SESSION_TTL)
    assert sessions.get(session.id) is None                   # the session ended too
    assert sessions.redeem("") is None and sessions.get(None) is None


def test_sessions_are_read_only_when_asked_or_when_the_agent_says_so():
    assert Sessions().redeem(Sessions().issue_code(True)) is None   # another agent's code
    s = Sessions()
    assert s.redeem(s.issue_code(read_only=True)).read_only
    wall = Sessions(all_read_only=True)
    assert wall.redeem(wall.issue_code(read_only=False)).read_only


def test_csrf_token_must_match_exactly():
    s = Sessions()
    session = s.redeem(s.issue_code(False))
    assert csrf_ok(session, session.csrf)
    assert not csrf_ok(session, None) and not csrf_ok(session, "")
    assert not csrf_ok(session, session.csrf + "x")
    other = s.redeem(s.issue_code(False))
    assert not csrf_ok(session, other.csrf)


@pytest.mark.parametrize("repo, web", [
    ("https://github.com/acme/shop.git", "https://github.com/acme/shop"),
    ("git@github.com:acme/shop.git", "https://github.com/acme/shop"),
    ("https://user:***@gitlab.com/g/sub/app", "https://gitlab.com/g/sub/app"),
    ("ssh://git@git.example.org/team/app.git", "https://git.example.org/team/app"),
    ("file:///srv/repo", ""), ("/home/me/repo", ""),
])
def test_web_links_only_for_web_hosts(repo, web):
    assert web_url(repo) == web


def test_commit_and_file_links():
    repo = "https://github.com/acme/shop.git"
    assert commit_url(repo, "abc") == "https://github.com/acme/shop/commit/abc"
    assert commit_url("/srv/repo", "abc") == ""
    assert file_url(repo, "abc", "deploy/", "web.yaml", 7) == \
        "https://github.com/acme/shop/blob/abc/deploy/web.yaml#L7"
    located = located_errors(["web.yaml:7: Deployment/web: spec: bad", "no location"],
                             repo, "abc", "")
    assert (located[0].file, located[0].line) == ("web.yaml", 7)
    assert located[0].url.endswith("/blob/abc/web.yaml#L7")
    assert located[1].url == "" and located[1].file == ""
