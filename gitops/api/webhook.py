"""Webhook endpoints: a push verified by signature triggers a sync at once.

The routes live under /hooks/, which the API's bearer-token middleware lets through:
providers cannot send our token, they sign the body with the shared secret instead.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable

import structlog
from aiohttp import web

from gitops.source.webhook import PROVIDERS, PushEvent, concerns, parse_push, verify

log = structlog.get_logger(component="webhook")

MAX_BODY = 1024 * 1024
_DELIVERY_HEADERS = ("X-GitHub-Delivery", "X-Gitea-Delivery", "X-Gitlab-Event-UUID",
                     "X-Request-Id")


async def _read_body(request: web.Request) -> bytes | None:
    """The whole body, or None past MAX_BODY. One read() may return only part of it."""
    if (request.content_length or 0) > MAX_BODY:
        return None
    chunks, size = [], 0
    while chunk := await request.content.read(64 * 1024):
        size += len(chunk)
        if size > MAX_BODY:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


def add_webhook_routes(app: web.Application, secret: bytes | None, repo_url: str, ref: str,
                       on_push: Callable[[PushEvent], Awaitable[None]]
                       | Callable[[PushEvent], None]) -> None:
    """POST /hooks/{github,gitea,gitlab,generic}; on_push runs for each relevant push."""

    async def handle(request: web.Request, provider: str) -> web.Response:
        if secret is None:
            return web.json_response({"message": "webhooks are disabled: start the agent with "
                                      "--webhook-secret-file or --webhook-secret-env"},
                                     status=503)
        body = await _read_body(request)
        if body is None:
            return web.json_response({"message": f"payload larger than {MAX_BODY} bytes"},
                                     status=413)
        delivery = next((request.headers[h] for h in _DELIVERY_HEADERS
                         if h in request.headers), "")
        if not verify(provider, request.headers, body, secret):
            log.warning("webhook_rejected", provider=provider, delivery=delivery,
                        remote=request.remote)
            return web.json_response({"message": "invalid or missing signature"}, status=401)
        event = parse_push(provider, request.headers, body)
        if event is None:
            log.info("webhook_ignored", provider=provider, delivery=delivery,
                     reason="not_a_push")
            return web.json_response({"ignored": "not a push event"}, status=202)
        if not concerns(event, repo_url, ref):
            log.info("webhook_ignored", provider=provider, delivery=delivery,
                     reason="other_repo_or_ref", ref=event.ref)
            return web.json_response({"ignored": "push for another repository or ref"},
                                     status=202)
        log.info("webhook_push", provider=provider, delivery=delivery, ref=event.ref,
                 after=event.after)
        try:
            result = on_push(event)
            if inspect.isawaitable(result):
                await result
        except Exception:               # the provider only needs to know it failed
            log.exception("webhook_trigger_failed", provider=provider, delivery=delivery)
            return web.json_response({"message": "could not trigger a sync"}, status=500)
        return web.json_response({"triggered": True}, status=202)

    for name in PROVIDERS:
        async def route(request: web.Request, _p: str = name) -> web.Response:
            return await handle(request, _p)
        app.router.add_post(f"/hooks/{name}", route)
