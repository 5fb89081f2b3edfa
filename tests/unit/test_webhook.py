import hashlib
import hmac
import json

import pytest

from gitops.errors import GitopsError
from gitops.source.webhook import (PushEvent, concerns, load_secret, normalize_url,
                                   parse_push, verify)

SECRET = b"s3cret"
BODY = json.dumps({"ref": "refs/heads/main", "after": "a" * 40,
                   "repository": {"clone_url": "https://git.example.invalid/team/app.git"}}
                  ).encode()


def sign(body: bytes, secret: bytes = SECRET) -> str:
    return "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()


@pytest.mark.parametrize("provider, headers, body, ok", [
    ("github", {"X-Hub-Signature-256": sign(BODY)}, BODY, True),
    ("github", {"x-hub-signature-256": sign(BODY)}, BODY, True),           # any case
    ("github", {"X-Hub-Signature-256": sign(BODY, b"wrong")}, BODY, False),
    ("github", {"X-Hub-Signature-256": sign(BODY)}, BODY + b" ", False),    # tampered
    ("github", {}, BODY, False),
    ("github", {"X-Hub-Signature-256": sign(BODY)[7:]}, BODY, False),      # no sha256=
    ("gitea", {"X-Gitea-Signature": sign(BODY)[7:]}, BODY, True),
    ("gitea", {"X-Hub-Signature-256": sign(BODY)}, BODY, True),
    ("gitlab", {"X-Gitlab-Token": "s3cret"}, BODY, True),
    ("gitlab", {"X-Gitlab-Token": "nope"}, BODY, False),
    ("gitlab", {}, BODY, False),
    ("generic", {"X-Signature-256": sign(b"")}, b"", True),
    ("generic", {"X-Hub-Signature-256": sign(BODY)}, BODY, False),
    ("bitbucket", {"X-Hub-Signature-256": sign(BODY)}, BODY, False),
])
def test_verify(provider, headers, body, ok):
    assert verify(provider, headers, body, SECRET) is ok


def test_parse_push_per_provider():
    gh = parse_push("github", {"X-GitHub-Event": "push"}, BODY)
    assert gh == PushEvent("github", "refs/heads/main", "a" * 40,
                           ("https://git.example.invalid/team/app.git",))
    assert parse_push("github", {"X-GitHub-Event": "ping"}, b"{}") is None
    gl_body = json.dumps({"ref": "refs/heads/main", "checkout_sha": "b" * 40,
                          "project": {"git_ssh_url": "git@git.example.invalid:team/app.git"}})
    gl = parse_push("gitlab", {"X-Gitlab-Event": "Push Hook"}, gl_body.encode())
    assert gl.after == "b" * 40 and gl.repo_urls == ("git@git.example.invalid:team/app.git",)
    assert parse_push("gitlab", {"X-Gitlab-Event": "Issue Hook"}, b"{}") is None
    assert parse_push("generic", {}, b"") == PushEvent("generic", None, None, ())
    assert parse_push("generic", {}, b"[not json") == PushEvent("generic", None, None, ())


@pytest.mark.parametrize("a, b", [
    ("https://git.example.invalid/team/app.git", "git@git.example.invalid:team/app"),
    ("https://user@Git.Example.invalid/team/app/", "ssh://git@git.example.invalid/team/app.git"),
    ("http://git.example.invalid:3000/team/app", "https://git.example.invalid/team/app"),
])
def test_normalize_url_matches_equivalent_forms(a, b):
    assert normalize_url(a) == normalize_url(b)


@pytest.mark.parametrize("event_ref, urls, our_ref, ok", [
    ("refs/heads/main", ("https://git.example.invalid/team/app.git",), "", True),
    ("refs/heads/main", ("https://git.example.invalid/team/app.git",), "main", True),
    ("refs/heads/dev", ("https://git.example.invalid/team/app.git",), "main", False),
    ("refs/tags/v1", (), "v1", True),
    ("refs/heads/main", ("https://git.example.invalid/other/app.git",), "", False),
    ("refs/heads/main", (), "a" * 40, False),       # pinned to a commit
])
def test_concerns(event_ref, urls, our_ref, ok):
    event = PushEvent("github", event_ref, None, urls)
    assert concerns(event, "git@git.example.invalid:team/app.git", our_ref) is ok


def test_load_secret(tmp_path, monkeypatch):
    f = tmp_path / "secret"
    f.write_text("abc\n")
    assert load_secret(str(f)) == b"abc"
    monkeypatch.setenv("HOOK_SECRET", "xyz")
    assert load_secret(env="HOOK_SECRET") == b"xyz"
    assert load_secret() is None
    with pytest.raises(GitopsError):
        load_secret(env="UNSET_HOOK_SECRET_VAR")
    (tmp_path / "empty").write_text("")
    with pytest.raises(GitopsError):
        load_secret(str(tmp_path / "empty"))
