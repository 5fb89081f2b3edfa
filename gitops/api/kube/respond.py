"""JSON responses with the exact Content-Type Kubernetes clients key on."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web


def json_response(data: Any, status: int = 200, content_type: str = "application/json"
                  ) -> web.Response:
    return web.Response(body=json.dumps(data, separators=(",", ":")).encode(), status=status,
                        headers={"Content-Type": content_type})
