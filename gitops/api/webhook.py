"""Webhook endpoints: a push verified by signature triggers a sync at once."""

from __future__ import annotations

import inspect
from collections.abc import Callable

import structlog
from aiohttp import web

from gitops.source.webhook import PROVIDERS, PushEvent, concerns, parse_push, verify

log = structlog.get_logger(component="webhook")

MAX_BODY = 1024 * 1024


def add_webhook_routes(app: web.Application, secret: bytes | None, repo_url: str, ref: str,
                       on_push: Callable[[PushEvent], object]) -> None:
    async def handle(request: web.Request) -> web.Response:
        provider = request.match_info["provider"]
        if provider not in PROVIDERS:
            raise web.HTTPNotFound()
        if secret is None:
            return web.json_response({"message": "webhooks are disabled: start the agent with "
                                                 "--webhook-secret-file or --webhook-secret-env"},
                                     status=503)
        if request.content_length and request.content_length > MAX_BODY:
            return web.json_response({"message": "payload too large"}, status=413)
        body = await request.content.read(MAX_BODY + 1)
        if len(body) > MAX_BODY:
            return web.json_response({"message": "payload too large"}, status=413)
        if not verify(provider, request.headers, body, secret):
            log.warning("webhook_rejected", provider=provider, remote=request.remote)
            return web.json_response({"message": "invalid or missing signature"}, status=401)
        event = parse_push(provider, request.headers, body)
        if event is None:
            return web.json_response({"ignored": "not a push event"}, status=202)
        if not concerns(event, repo_url, ref):
            log.info("webhook_ignored", provider=provider, ref=event.ref)
            return web.json_response({"ignored": "push for another repository or ref"},
                                     status=202)
        log.info("webhook_push", provider=provider, ref=event.ref, after=event.after)
        result = on_push(event)
        if inspect.isawaitable(result):
            await result
        return web.json_response({"triggered": True}, status=202)

    app.router.add_post("/hooks/{provider}", handle)
