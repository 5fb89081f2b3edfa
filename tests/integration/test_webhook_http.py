"""Webhook routes over real HTTP on 127.0.0.1 (ephemeral port), one server per test."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
from collections.abc import AsyncIterator
from urllib.parse import urlencode

import aiohttp
import pytest
import structlog
from aiohttp import web

from gitops.api.server import ApiContext, make_app
from gitops.api.webhook import MAX_BODY, add_webhook_routes
from gitops.source.webhook import PushEvent

SECRET = b"hook-s3cret"
REPO = "git@git.example.invalid:team/app.git"
SHA = "3f786850e387550fdab836ed7e6dc881de23001b"


def run(coro, timeout: float = 30.0):
    return asyncio.run(asyncio.wait_for(coro, timeout))


def sign(body: bytes, secret: bytes = SECRET) -> str:
    return "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()


def push(repo: str = "https://git.example.invalid/team/app.git", ref: str = "refs/heads/main",
         **extra) -> bytes:
    return json.dumps({"ref": ref, "after": SHA, "repository": {"clone_url": repo},
                       **extra}).encode()


@contextlib.asynccontextmanager
async def serve(secret: bytes | None = SECRET, ref: str = "main", on_push=None,
                app: web.Application | None = None) -> AsyncIterator[tuple[str, list]]:
    """Base URL of a running server and the list of events its on_push saw."""
    seen: list[PushEvent] = []
    app = app or web.Application()
    add_webhook_routes(app, secret, REPO, ref, on_push or seen.append)
    runner = web.AppRunner(app)
    await runner.setup()
    try:
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        host, port = runner.addresses[0][:2]
        assert host == "127.0.0.1"
        yield f"http://127.0.0.1:{port}", seen
    finally:
        await runner.cleanup()


async def post(url: str, body: bytes = b"", **headers: str) -> tuple[int, dict]:
    hdrs = {k.replace("_", "-"): v for k, v in headers.items()}
    async with (aiohttp.ClientSession() as session,
                session.post(url, data=body, headers=hdrs) as resp):
        return resp.status, await resp.json(content_type=None)


def test_valid_github_push_triggers():
    async def go():
        async with serve() as (base, seen):
            body = push()
            status, data = await post(f"{base}/hooks/github", body, X_GitHub_Event="push",
                                      X_Hub_Signature_256=sign(body))
            assert (status, data) == (202, {"triggered": True})
            assert seen == [PushEvent("github", "refs/heads/main", SHA,
                                      ("https://git.example.invalid/team/app.git",))]
    run(go())


@pytest.mark.parametrize("headers", [
    {"X_Hub_Signature_256": sign(push(), b"wrong")},
    {"X_Hub_Signature_256": sign(push() + b" ")},
    {"X_Hub_Signature_256": sign(push())[7:]},
    {},
])
def test_bad_or_missing_signature_is_401_and_triggers_nothing(headers):
    async def go():
        async with serve() as (base, seen):
            status, data = await post(f"{base}/hooks/github", push(), X_GitHub_Event="push",
                                      **headers)
            assert status == 401 and "signature" in data["message"]
            assert seen == []
    run(go())


def test_gitea_gitlab_and_generic():
    async def go():
        async with serve() as (base, seen):
            body = push()
            assert (await post(f"{base}/hooks/gitea", body, X_Gitea_Event="push",
                               X_Gitea_Signature=sign(body)[7:]))[0] == 202
            gl = json.dumps({"object_kind": "push", "ref": "refs/heads/main",
                             "checkout_sha": SHA, "project": {
                                 "git_ssh_url": "git@git.example.invalid:team/app.git"}}).encode()
            assert (await post(f"{base}/hooks/gitlab", gl, X_Gitlab_Event="Push Hook",
                               X_Gitlab_Token="nope"))[0] == 401
            assert (await post(f"{base}/hooks/gitlab", gl, X_Gitlab_Event="Push Hook",
                               X_Gitlab_Token=SECRET.decode()))[0] == 202
            assert (await post(f"{base}/hooks/generic", b"",
                               X_Signature_256=sign(b"")))[0] == 202
            generic = b'{"ref": "refs/heads/main", "after": "%s"}' % SHA.encode()
            assert (await post(f"{base}/hooks/generic", generic,
                               X_Signature_256=sign(b"")))[0] == 401
            assert (await post(f"{base}/hooks/generic", generic,
                               X_Signature_256=sign(generic)))[0] == 202
            assert [e.provider for e in seen] == ["gitea", "gitlab", "generic", "generic"]
            assert seen[1].after == SHA and seen[2] == PushEvent("generic", None, None, ())
    run(go())


def test_github_form_encoded_payload_is_filtered_by_repo():
    async def go():
        async with serve() as (base, seen):
            for repo, expected in (("https://git.example.invalid/other/app", {"ignored"}),
                                   ("https://git.example.invalid/team/app", {"triggered"})):
                body = urlencode({"payload": push(repo).decode()}).encode()
                status, data = await post(
                    f"{base}/hooks/github", body, X_GitHub_Event="push",
                    Content_Type="application/x-www-form-urlencoded",
                    X_Hub_Signature_256=sign(body))
                assert status == 202 and set(data) == expected
            assert len(seen) == 1
    run(go())


@pytest.mark.parametrize("event, body, ref, reason", [
    ("ping", json.dumps({"zen": "Design for failure.", "hook_id": 1}).encode(), "main",
     "not a push event"),
    ("push", push(repo="https://git.example.invalid/team/other.git"), "main",
     "another repository"),
    ("push", push(ref="refs/heads/dev"), "main", "another repository or ref"),
    ("push", push(), SHA, "another repository or ref"),             # pinned to a commit
])
def test_signed_but_irrelevant_is_202_ignored(event, body, ref, reason):
    async def go():
        async with serve(ref=ref) as (base, seen):
            status, data = await post(f"{base}/hooks/github", body, X_GitHub_Event=event,
                                      X_Hub_Signature_256=sign(body))
            assert status == 202 and reason in data["ignored"]
            assert seen == []
    run(go())


def test_no_secret_configured_is_503_for_every_provider():
    async def go():
        async with serve(secret=None) as (base, seen):
            for provider in ("github", "gitea", "gitlab", "generic"):
                status, data = await post(f"{base}/hooks/{provider}", push(),
                                          X_Hub_Signature_256=sign(push()),
                                          X_Gitlab_Token=SECRET.decode())
                assert status == 503 and "disabled" in data["message"]
            assert seen == []
    run(go())


def test_oversize_body_is_413_with_or_without_content_length():
    async def chunks(total: int):
        for _ in range(total // 65536):
            yield b"x" * 65536

    async def go():
        async with serve() as (base, seen):
            big = b"x" * (MAX_BODY + 1)
            status, _ = await post(f"{base}/hooks/github", big, X_Hub_Signature_256=sign(big))
            assert status == 413
            async with (aiohttp.ClientSession() as session,       # chunked: no Content-Length
                        session.post(f"{base}/hooks/generic", data=chunks(2 * MAX_BODY),
                                     headers={"X-Signature-256": sign(b"")}) as resp):
                assert resp.status == 413
            assert seen == []
    run(go())


def test_large_signed_body_arriving_in_pieces_is_read_whole():
    body = push(commits=[{"id": SHA, "message": "m" * 1000}] * 800)
    assert MAX_BODY // 2 < len(body) <= MAX_BODY

    async def slowly():
        for i in range(0, len(body), 50_000):
            yield body[i:i + 50_000]
            await asyncio.sleep(0.01)

    async def go():
        async with serve() as (base, seen):
            async with (aiohttp.ClientSession() as session,
                        session.post(f"{base}/hooks/github", data=slowly(), headers={
                            "X-GitHub-Event": "push", "X-Hub-Signature-256": sign(body)}) as resp):
                assert resp.status == 202
            assert len(seen) == 1
    run(go())


def test_async_on_push_is_awaited_and_failures_are_500():
    async def go():
        done: list[str] = []

        async def record(event: PushEvent) -> None:
            await asyncio.sleep(0)
            done.append(event.after or "")

        async with serve(on_push=record) as (base, _):
            body = push()
            assert (await post(f"{base}/hooks/github", body,
                               X_Hub_Signature_256=sign(body)))[0] == 202
            assert done == [SHA]

        def boom(_: PushEvent) -> None:
            raise RuntimeError("sync loop gone")

        async with serve(on_push=boom) as (base, _):
            status, data = await post(f"{base}/hooks/github", body,
                                      X_Hub_Signature_256=sign(body))
            assert status == 500 and "sync" in data["message"]
    run(go())


def test_hooks_bypass_the_bearer_token_but_the_api_does_not():
    ctx = ApiContext(store=None, token="api-token", status=lambda: {"ok": True},
                     control=None, shutdown=lambda: None, logs=None)

    async def go():
        async with serve(app=make_app(ctx)) as (base, seen):
            body = push()
            assert (await post(f"{base}/hooks/github", body,
                               X_Hub_Signature_256=sign(body)))[0] == 202
            assert (await post(f"{base}/hooks/github", body))[0] == 401
            async with aiohttp.ClientSession() as session:
                async with session.get(f"{base}/gitops/v1/status") as resp:
                    assert resp.status == 401
                async with session.get(f"{base}/hooks/github") as resp:
                    assert resp.status == 405
                async with session.post(f"{base}/hooks/bitbucket", data=body) as resp:
                    assert resp.status == 404
            assert len(seen) == 1
    run(go())


def test_logs_never_carry_the_secret_or_a_signature():
    async def go():
        async with serve() as (base, _):
            body = push()
            await post(f"{base}/hooks/github", body, X_Hub_Signature_256=sign(body))
            await post(f"{base}/hooks/github", body, X_Hub_Signature_256=sign(body, b"bad"))
            await post(f"{base}/hooks/gitlab", body, X_Gitlab_Event="Push Hook",
                       X_Gitlab_Token="guess")

    with structlog.testing.capture_logs() as logs:
        run(go())
    events = [e["event"] for e in logs]
    assert "webhook_push" in events and events.count("webhook_rejected") == 2
    text = json.dumps(logs, default=str)
    for secret_ish in (SECRET.decode(), sign(push())[7:], sign(push(), b"bad")[7:], "guess"):
        assert secret_ish not in text
