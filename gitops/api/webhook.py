"""Webhook endpoints: a push verified by signature triggers a sync at once.

The routes live under /hooks/, which the API's bearer-token middleware lets through:
providers cannot send our token, they sign the body with the shared secret instead. So
anyone can reach them, and what one request may cost is bounded before its body is read:
without a plausible signature header it is 401 at once; at most `concurrent_reads` bodies
are read at a time (beyond, 429 at once, as the Kubernetes API server's max-in-flight
limit answers); a body has `body_timeout` seconds to arrive (else 408). A verified delivery
seen before is acknowledged (202) without a second sync.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import structlog
from aiohttp import web

from gitops.source.webhook import (
    PROVIDERS,
    DeliveryLog,
    PushEvent,
    concerns,
    delivery_id,
    may_verify,
    parse_push,
    verify,
)

log = structlog.get_logger(component="webhook")

MAX_BODY = 1024 * 1024
# After refusing a body we did not read: stop reading, half-close, close this much later
# (Go's net/http does the same), so the client reads our answer rather than a reset.
_CLOSE_DELAY = 0.5

OnPush = Callable[[PushEvent], Awaitable[None]] | Callable[[PushEvent], None]


@dataclass(frozen=True)
class WebhookLimits:
    max_body: int = MAX_BODY            # also capped by the app's client_max_size
    body_timeout: float = 10.0          # GitHub itself gives up on an answer after 10 s
    concurrent_reads: int = 8           # bodies buffered at once: at most 8 MiB
    replay_window: float = 3600.0       # seconds a delivery id is remembered
    replay_capacity: int = 4096         # ids remembered at most (oldest forgotten first)


class ReadSlots:
    """A semaphore that never waits: a request finding no free slot is refused at once
    (waiting would hold its connection and buffers all the same)."""

    def __init__(self, size: int) -> None:
        self.size, self.in_use, self.peak = size, 0, 0

    def acquire(self) -> bool:
        if self.in_use >= self.size:
            return False
        self.in_use += 1
        self.peak = max(self.peak, self.in_use)
        return True

    def release(self) -> None:
        self.in_use -= 1


async def _read_body(request: web.Request, limit: int) -> bytes | None:
    """The whole body, or None past `limit`. One read() may return only part of it."""
    chunks, size = [], 0
    while chunk := await request.content.read(64 * 1024):
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


async def _refuse(request: web.Request, status: int, body: dict,
                  headers: dict[str, str] | None = None) -> web.StreamResponse:
    """Answer without reading (the rest of) the body, then close the connection: keeping
    it open would mean reading whatever the client still sends."""
    resp = web.json_response(body, status=status, headers=headers)
    resp.force_close()
    await resp.prepare(request)
    await resp.write_eof()
    transport = request.transport
    if transport is not None and not transport.is_closing():
        transport.pause_reading()
        if transport.can_write_eof():
            transport.write_eof()

        def close() -> None:
            transport.close()
            request.content.feed_eof()  # else aiohttp waits on it ("lingering") for 10 s
        asyncio.get_running_loop().call_later(_CLOSE_DELAY, close)
    return resp


class WebhookReceiver:
    """The /hooks/ handler and what it remembers: read slots and recent delivery ids."""

    def __init__(self, secret: bytes | None, repo_url: str, ref: str, on_push: OnPush,
                 limits: WebhookLimits = WebhookLimits(),
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.secret, self.repo_url, self.ref, self.on_push = secret, repo_url, ref, on_push
        self.limits = limits
        self.reads = ReadSlots(limits.concurrent_reads)
        self.deliveries = DeliveryLog(limits.replay_window, limits.replay_capacity, clock)

    async def handle(self, request: web.Request, provider: str) -> web.StreamResponse:
        secret = self.secret
        if secret is None:
            return await _refuse(request, 503, {
                "message": "webhooks are disabled: start the agent with "
                           "--webhook-secret-file or --webhook-secret-env"})
        delivery = delivery_id(provider, request.headers)
        blog = log.bind(provider=provider, delivery=delivery, remote=request.remote)
        if not may_verify(provider, request.headers, secret):
            blog.warning("webhook_rejected", reason="no_valid_signature_header")
            return await _refuse(request, 401, {"message": "invalid or missing signature"})
        limit = min(self.limits.max_body, request.client_max_size)
        if (request.content_length or 0) > limit:
            return await _refuse(request, 413, {"message": f"payload larger than {limit} bytes"})
        if not self.reads.acquire():
            blog.warning("webhook_busy", reading=self.reads.in_use)
            return await _refuse(request, 429, {"message": "too many webhook deliveries at "
                                                "once; retry later"}, {"Retry-After": "1"})
        try:
            async with asyncio.timeout(self.limits.body_timeout):
                body = await _read_body(request, limit)
        except TimeoutError:
            blog.warning("webhook_rejected", reason="body_timeout")
            return await _refuse(request, 408, {
                "message": f"body not received within {self.limits.body_timeout:g} s"})
        finally:
            self.reads.release()
        if body is None:
            return await _refuse(request, 413, {"message": f"payload larger than {limit} bytes"})
        if not verify(provider, request.headers, body, secret):
            blog.warning("webhook_rejected", reason="signature_mismatch")
            return web.json_response({"message": "invalid or missing signature"}, status=401)
        # Acknowledged, not refused: the event was handled when first delivered, and GitLab
        # disables a hook after repeated 4xx answers.
        if delivery and not self.deliveries.first_time(provider, delivery):
            blog.info("webhook_ignored", reason="duplicate_delivery")
            return web.json_response({"ignored": "duplicate delivery (already handled)"},
                                     status=202)
        return await self._dispatch(provider, request, body, delivery, blog)

    async def _dispatch(self, provider: str, request: web.Request, body: bytes,
                        delivery: str, blog) -> web.Response:
        event = parse_push(provider, request.headers, body)
        if event is None:
            blog.info("webhook_ignored", reason="not_a_push")
            return web.json_response({"ignored": "not a push event"}, status=202)
        if not concerns(event, self.repo_url, self.ref):
            blog.info("webhook_ignored", reason="other_repo_or_ref", ref=event.ref)
            return web.json_response({"ignored": "push for another repository or ref"},
                                     status=202)
        blog.info("webhook_push", ref=event.ref, after=event.after)
        try:
            result = self.on_push(event)
            if inspect.isawaitable(result):
                await result
        except Exception:               # the provider only needs to know it failed
            blog.exception("webhook_trigger_failed")
            if delivery:                # its redelivery must be able to succeed
                self.deliveries.forget(provider, delivery)
            return web.json_response({"message": "could not trigger a sync"}, status=500)
        return web.json_response({"triggered": True}, status=202)


def add_webhook_routes(app: web.Application, secret: bytes | None, repo_url: str, ref: str,
                       on_push: OnPush, limits: WebhookLimits = WebhookLimits(),
                       clock: Callable[[], float] = time.monotonic) -> WebhookReceiver:
    """POST /hooks/{github,gitea,gitlab,generic}; on_push runs for each relevant push."""
    receiver = WebhookReceiver(secret, repo_url, ref, on_push, limits, clock)
    for name in PROVIDERS:
        async def route(request: web.Request, _p: str = name) -> web.StreamResponse:
            return await receiver.handle(request, _p)
        app.router.add_post(f"/hooks/{name}", route)
    return receiver
