"""JSON responses with the exact Content-Type Kubernetes clients key on."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from gitops.model import jsoncodec


def json_response(data: Any, status: int = 200, content_type: str = "application/json"
                  ) -> web.Response:
    return web.Response(body=jsoncodec.dumps(data), status=status,
                        headers={"Content-Type": content_type})
