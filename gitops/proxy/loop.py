"""The event loop the agent and port-forward run on: uvloop when installed (the proxy's
reader/writer callbacks and the DNS server's datagrams are markedly cheaper there), else
asyncio's own. GITOPS_EVENT_LOOP=asyncio forces the standard loop."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


def new_event_loop() -> asyncio.AbstractEventLoop:
    """A loop of the kind run() uses (for a server run on a thread of its own: tests)."""
    if os.environ.get("GITOPS_EVENT_LOOP", "") != "asyncio":
        try:
            import uvloop
        except ImportError:
            pass
        else:
            return uvloop.new_event_loop()
    return asyncio.new_event_loop()


def run(main: Coroutine[Any, Any, T]) -> T:
    if os.environ.get("GITOPS_EVENT_LOOP", "") != "asyncio":
        try:
            import uvloop
        except ImportError:
            pass
        else:
            return uvloop.run(main)
    return asyncio.run(main)
