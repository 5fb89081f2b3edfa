import hashlib
import hmac
import json
from urllib.parse import quote

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gitops.errors import GitopsError
from gitops.source.webhook import (
    PushEvent,
    concerns,
    load_secret,
    normalize_url,
    parse_push,
    verify,
)

SECRET = b"s3cret"
SHA = "3f786850e387550fdab836ed7e6dc881de23001b"
REPO = "https://git.example.invalid/team/app.git"

# Trimmed but faithful shapes of what each provider sends for a branch push.
GITHUB_PUSH = json.dumps({
    "ref": "refs/heads/main", "before": "0" * 40, "after": SHA, "created": False,
    "deleted": False, "forced": False,
    "repository": {"id": 1, "name": "app", "full_name": "team/app",
                   "html_url": "https://git.example.invalid/team/app",
                   "url": "https://git.example.invalid/team/app",
                   "git_url": "git://git.example.invalid/team/app.git",
                   "ssh_url": "git@git.example.invalid:team/app.git",
                   "clone_url": REPO, "default_branch": "main"},
    "pusher": {"name": "dev", "email": "dev@example.invalid"},
    "head_commit": {"id": SHA, "message": "bump"}}).encode()
GITEA_PUSH = json.dumps({
    "ref": "refs/heads/main", "before": "0" * 40, "after": SHA,
    "compare_url": "https://gitea.example.invalid/team/app/compare/000...3f7",
    "commits": [{"id": SHA, "message": "bump\n"}],
    "repository": {"id": 7, "full_name": "team/app",
                   "html_url": "https://gitea.example.invalid/team/app",
                   "ssh_url": "git@gitea.example.invalid:team/app.git",
                   "clone_url": "https://gitea.example.invalid/team/app.git"},
    "pusher": {"login": "dev"}}).encode()
GITLAB_PUSH = json.dumps({
    "object_kind": "push", "event_name": "push", "before": "0" * 40, "after": SHA,
    "ref": "refs/heads/main", "checkout_sha": SHA, "user_username": "dev",
    "project": {"id": 15, "name": "app", "path_with_namespace": "team/app",
                "web_url": "https://gitlab.example.invalid/team/app",
                "git_ssh_url": "git@gitlab.example.invalid:team/app.git",
                "git_http_url": "https://gitlab.example.invalid/team/app.git"},
    "repository": {"name": "app", "url": "git@gitlab.example.invalid:team/app.git",
                   "homepage": "https://gitlab.example.invalid/team/app"}}).encode()
GITLAB_TAG = json.dumps({
    "object_kind": "tag_push", "ref": "refs/tags/v1.2.0", "after": SHA, "checkout_sha": SHA,
    "project": {"git_http_url": "https://gitlab.example.invalid/team/app.git"}}).encode()
GITHUB_PING = json.dumps({"zen": "Keep it logically awesome.", "hook_id": 1,
                          "repository": {"clone_url": REPO}}).encode()


def sign(body: bytes, secret: bytes = SECRET) -> str:
    return "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()


B = GITHUB_PUSH


@pytest.mark.parametrize("provider, headers, body, ok", [
    ("github", {"X-Hub-Signature-256": sign(B)}, B, True),
    ("github", {"x-hub-signature-256": sign(B)}, B, True),                  # any case
    ("github", {"X-HUB-SIGNATURE-256": sign(B).upper().replace("SHA256=", "sha256=")}, B,
     True),                                                                 # hex case
    ("github", {"X-Hub-Signature-256": sign(B, b"wrong")}, B, False),       # wrong secret
    ("github", {"X-Hub-Signature-256": sign(B)}, B + b" ", False),          # tampered
    ("github", {}, B, False),                                               # missing
    ("github", {"X-Hub-Signature-256": ""}, B, False),
    ("github", {"X-Hub-Signature-256": sign(B)[7:]}, B, False),             # no sha256=
    ("github", {"X-Hub-Signature-256": "sha1=" + sign(B)[7:]}, B, False),   # wrong prefix
    ("github", {"X-Hub-Signature-256": sign(B)[:-2]}, B, False),            # truncated
    ("github", {"X-Hub-Signature-256": "sha256=\udcff\udcfe"}, B, False),   # odd bytes
    ("github", {"X-Gitea-Signature": sign(B)[7:]}, B, False),               # gitea's only
    ("gitea", {"X-Gitea-Signature": sign(B)[7:]}, B, True),
    ("gitea", {"x-gitea-signature": sign(B)[7:]}, B, True),
    ("gitea", {"X-Hub-Signature-256": sign(B)}, B, True),
    ("gitea", {"X-Hub-Signature-256": "sha256=00", "X-Gitea-Signature": sign(B)[7:]}, B,
     True),                                                                 # either one
    ("gitea", {"X-Gitea-Signature": sign(B, b"wrong")[7:]}, B, False),
    ("gitea", {"X-Gitea-Signature": sign(B)[7:]}, B[:-1], False),
    ("gitea", {"X-Gitea-Signature": sign(B)}, B, False),                    # no prefix here
    ("gitea", {}, B, False),
    ("gitlab", {"X-Gitlab-Token": "s3cret"}, B, True),
    ("gitlab", {"x-gitlab-token": "s3cret"}, B, True),
    ("gitlab", {"X-Gitlab-Token": "nope"}, B, False),
    ("gitlab", {"X-Gitlab-Token": "s3cre"}, B, False),
    ("gitlab", {"X-Gitlab-Token": "\udcff"}, B, False),
    ("gitlab", {"X-Hub-Signature-256": sign(B)}, B, False),
    ("gitlab", {}, B, False),
    ("generic", {"X-Signature-256": sign(b"")}, b"", True),
    ("generic", {"x-signature-256": sign(B)}, B, True),
    ("generic", {"X-Signature-256": sign(B)}, B + b"\n", False),
    ("generic", {"X-Signature-256": sign(B)[7:]}, B, False),
    ("generic", {"X-Hub-Signature-256": sign(B)}, B, False),                # wrong header
    ("bitbucket", {"X-Hub-Signature-256": sign(B)}, B, False),              # unknown
])
def test_verify(provider, headers, body, ok):
    assert verify(provider, headers, body, SECRET) is ok


def test_verify_refuses_an_empty_secret():
    assert not verify("github", {"X-Hub-Signature-256": sign(B, b"")}, B, b"")
    assert not verify("gitlab", {"X-Gitlab-Token": ""}, B, b"")


FORM = b"payload=" + quote(GITHUB_PUSH.decode()).encode()


@pytest.mark.parametrize("provider, headers, body, expected", [
    ("github", {"X-GitHub-Event": "push"}, GITHUB_PUSH,
     PushEvent("github", "refs/heads/main", SHA, (
         REPO, "https://git.example.invalid/team/app", "git@git.example.invalid:team/app.git",
         "git://git.example.invalid/team/app.git"))),
    ("github", {"x-github-event": "push", "Content-Type": "application/x-www-form-urlencoded"},
     FORM, PushEvent("github", "refs/heads/main", SHA, (
         REPO, "https://git.example.invalid/team/app", "git@git.example.invalid:team/app.git",
         "git://git.example.invalid/team/app.git"))),
    ("github", {"X-GitHub-Event": "ping"}, GITHUB_PING, None),
    ("github", {"X-GitHub-Event": "pull_request"}, b"{}", None),
    ("github", {}, b'{"ref": "refs/heads/x"}', PushEvent("github", "refs/heads/x", None, ())),
    ("gitea", {"X-Gitea-Event": "push", "X-GitHub-Event": "push"}, GITEA_PUSH,
     PushEvent("gitea", "refs/heads/main", SHA, (
         "https://gitea.example.invalid/team/app.git", "https://gitea.example.invalid/team/app",
         "git@gitea.example.invalid:team/app.git"))),
    ("gitea", {"X-Gitea-Event": "create"}, GITEA_PUSH, None),
    ("gitlab", {"X-Gitlab-Event": "Push Hook"}, GITLAB_PUSH,
     PushEvent("gitlab", "refs/heads/main", SHA, (
         "git@gitlab.example.invalid:team/app.git", "https://gitlab.example.invalid/team/app",
         "https://gitlab.example.invalid/team/app.git"))),
    ("gitlab", {"X-Gitlab-Event": "Tag Push Hook"}, GITLAB_TAG,
     PushEvent("gitlab", "refs/tags/v1.2.0", SHA,
               ("https://gitlab.example.invalid/team/app.git",))),
    ("gitlab", {"X-Gitlab-Event": "Merge Request Hook"}, b"{}", None),
    ("gitlab", {}, GITLAB_PUSH, None),
    ("generic", {}, b"", PushEvent("generic", None, None, ())),
    ("generic", {}, b'{"ref": "refs/heads/main", "after": "%s"}' % SHA.encode(),
     PushEvent("generic", "refs/heads/main", SHA, ())),
    ("generic", {}, b"[not json", PushEvent("generic", None, None, ())),
    ("generic", {}, b"[1, 2]", PushEvent("generic", None, None, ())),
    ("generic", {}, b'{"ref": 5, "after": null, "repository": "x"}',
     PushEvent("generic", None, None, ())),
])
def test_parse_push(provider, headers, body, expected):
    assert parse_push(provider, headers, body) == expected


@pytest.mark.parametrize("a, b", [
    ("https://git.example.invalid/team/app.git", "git@git.example.invalid:team/app"),
    ("https://user@Git.Example.invalid/team/app/", "ssh://git@git.example.invalid/team/app.git"),
    ("http://git.example.invalid:3000/team/app", "https://git.example.invalid/team/app"),
    ("ssh://git@git.example.invalid:2222/team/app.git", "git.example.invalid:team/app"),
    ("HTTPS://user:tok@git.example.invalid/Team/App.git", "https://git.example.invalid/team/app"),
    ("https://gitlab.example.invalid/group/sub/app.git",
     "git@gitlab.example.invalid:group/sub/app"),
    ("file:///srv/repos/app", "/srv/repos/app/"),
    ("http://[::1]:3000/team/app", "ssh://git@[::1]:22/team/app.git"),
])
def test_normalize_url_matches_equivalent_forms(a, b):
    assert normalize_url(a) == normalize_url(b)


@pytest.mark.parametrize("a, b", [
    ("https://git.example.invalid/team/app", "https://git.example.invalid/team/app2"),
    ("https://git.example.invalid/team/app", "https://other.example.invalid/team/app"),
    ("https://git.example.invalid/team/app", "https://git.example.invalid/other/app"),
    ("git@git.example.invalid:team/app", "git@git.example.invalid:group/team/app"),
])
def test_normalize_url_keeps_different_repos_apart(a, b):
    assert normalize_url(a) != normalize_url(b)


OURS = ("https://git.example.invalid/team/app.git",)


@pytest.mark.parametrize("event_ref, urls, our_ref, ok", [
    ("refs/heads/main", OURS, "", True),                   # default branch: any branch
    ("refs/heads/feature", OURS, "", True),
    ("refs/tags/v1", OURS, "", False),                     # a tag cannot move a branch
    ("refs/heads/main", OURS, "main", True),
    ("refs/heads/main", OURS, "refs/heads/main", True),
    ("refs/heads/dev", OURS, "main", False),
    ("refs/heads/main-old", OURS, "main", False),
    ("refs/tags/v1", (), "v1", True),
    ("refs/tags/v1", OURS, "v2", False),
    (None, OURS, "main", True),                            # no ref: let the sync decide
    (None, (), "", True),
    ("refs/heads/main", (), "main", True),                 # no URLs: assume ours
    ("refs/heads/main", ("https://git.example.invalid/other/app.git",), "", False),
    ("refs/heads/main", ("https://api.example.invalid/repos/team/app",
                         "git@git.example.invalid:team/app.git"), "main", True),  # any URL
    ("refs/heads/main", OURS, SHA, False),                 # pinned to a commit
    ("refs/heads/main", OURS, SHA.upper(), False),
    ("refs/heads/main", OURS, "a" * 64, False),            # sha256 repositories
    ("refs/heads/main", OURS, "a" * 39, False),            # short: a ref name, not ours
])
def test_concerns(event_ref, urls, our_ref, ok):
    event = PushEvent("github", event_ref, None, urls)
    assert concerns(event, "git@git.example.invalid:team/app.git", our_ref) is ok


def test_load_secret_from_file_or_env(tmp_path, monkeypatch):
    f = tmp_path / "secret"
    f.write_text("abc\n")
    assert load_secret(str(f)) == b"abc"
    (tmp_path / "crlf").write_bytes(b" a b\r\n")
    assert load_secret(str(tmp_path / "crlf")) == b" a b"     # only the newline goes
    monkeypatch.setenv("HOOK_SECRET", "xyz")
    assert load_secret(env="HOOK_SECRET") == b"xyz"
    assert load_secret() is None
    assert load_secret(None, None) is None


@pytest.mark.parametrize("setup, kwargs, message", [
    (lambda p: None, {"file": "missing"}, "missing"),
    (lambda p: (p / "empty").write_text(""), {"file": "empty"}, "empty"),
    (lambda p: (p / "blank").write_text("\n"), {"file": "blank"}, "empty"),
    (lambda p: (p / "dir").mkdir(), {"file": "dir"}, "dir"),
    (lambda p: None, {"env": "GITOPS_TEST_UNSET_VAR"}, "unset or empty"),
    (lambda p: None, {"env": "GITOPS_TEST_EMPTY_VAR"}, "unset or empty"),
    (lambda p: (p / "s").write_text("x"), {"file": "s", "env": "HOME"}, "not both"),
])
def test_load_secret_errors(tmp_path, monkeypatch, setup, kwargs, message):
    monkeypatch.delenv("GITOPS_TEST_UNSET_VAR", raising=False)
    monkeypatch.setenv("GITOPS_TEST_EMPTY_VAR", "")
    setup(tmp_path)
    if "file" in kwargs:
        kwargs = {**kwargs, "file": str(tmp_path / kwargs["file"])}
    with pytest.raises(GitopsError, match=message):
        load_secret(**kwargs)


@given(body=st.binary(max_size=512), secret=st.binary(min_size=1, max_size=64),
       provider=st.sampled_from(["github", "gitea", "generic"]), flip=st.integers(0, 511))
def test_verify_property_signed_body_passes_and_any_change_fails(body, secret, provider, flip):
    header = "X-Signature-256" if provider == "generic" else "X-Hub-Signature-256"
    assert verify(provider, {header: sign(body, secret)}, body, secret)
    changed = (body[:flip % len(body)] + bytes([body[flip % len(body)] ^ 1])
               + body[flip % len(body) + 1:]) if body else b"x"
    assert not verify(provider, {header: sign(body, secret)}, changed, secret)
