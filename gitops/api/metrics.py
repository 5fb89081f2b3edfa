"""Prometheus /metrics for the agent: sync duration and results, objects by health, drift
records, proxy connections.

`attach(agent, app)` is the only hook: it wraps the sync engine's `sync_once` and the drift
recorder's `record` (so counting needs no change in them) and serves /metrics from a
registry of this agent's own (several agents in one test process never share series).
Objects and proxy connections are read when Prometheus scrapes, so they are never stale.
"""

from __future__ import annotations

import functools
import time
from collections import Counter as Tally
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram
from prometheus_client import generate_latest
from prometheus_client.core import GaugeMetricFamily, InfoMetricFamily
from prometheus_client.registry import Collector

SYNC_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)


class AgentMetrics:
    def __init__(self, objects: Callable[[], list[dict]],
                 connections: Callable[[], dict[str, int]],
                 info: Callable[[], dict[str, str]]) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.sync_seconds = Histogram(
            "gitops_sync_duration_seconds", "Time one sync (fetch, render, diff, apply) took.",
            ["result"], buckets=SYNC_BUCKETS, registry=self.registry)
        self.syncs = Counter("gitops_syncs", "Syncs by result and what triggered them.",
                             ["result", "trigger"], registry=self.registry)
        self.drift = Counter("gitops_drift_records", "Drift detected, by origin "
                             "(desired|runtime), type (modified|missing|extraneous) and action.",
                             ["origin", "type", "action"], registry=self.registry)
        self.registry.register(_Live(objects, connections, info))

    def observe_sync(self, result: str, trigger: str, seconds: float) -> None:
        self.sync_seconds.labels(result).observe(seconds)
        self.syncs.labels(result, trigger).inc()

    def observe_drift(self, origin: str, drift_type: str, action: str) -> None:
        self.drift.labels(origin, drift_type, action).inc()

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


class _Live(Collector):
    """Read at scrape time: object health, proxy connections, the applied revision."""

    def __init__(self, objects, connections, info) -> None:
        self._objects, self._connections, self._info = objects, connections, info

    def collect(self) -> Iterator[Any]:
        health = GaugeMetricFamily("gitops_objects", "Objects declared in git, by kind, "
                                   "health and sync status.", labels=["kind", "health", "sync"])
        for (kind, status, sync), n in sorted(Tally(
                (o["kind"], o["health"], o.get("sync") or "") for o in self._objects()).items()):
            health.add_metric([kind, status, sync], n)
        yield health
        conns = GaugeMetricFamily("gitops_proxy_connections", "Open client connections "
                                  "(TCP) or flows (UDP) per Service listener.",
                                  labels=["listener"])
        for name, n in sorted(self._connections().items()):
            conns.add_metric([name], n)
        yield conns
        info = InfoMetricFamily("gitops_agent", "The agent's source and applied revision.")
        info.add_metric([], self._info())
        yield info


def redact(url: str) -> str:
    """A source URL without credentials (/metrics needs no token, so it must carry none)."""
    parts = urlsplit(url)
    if parts.scheme and "@" in parts.netloc:
        host = parts.netloc.rsplit("@", 1)[1]
        return urlunsplit((parts.scheme, host, parts.path, parts.query, parts.fragment))
    return url


def _proxy_connections(proxy: Any) -> dict[str, int]:
    out: dict[str, int] = {}
    for listener in list(getattr(proxy, "_listeners", {}).values()):
        active = listener.active() if callable(listener.active) else listener.active
        out[listener.name] = out.get(listener.name, 0) + int(active)
    return out


def attach(agent: Any, app: web.Application) -> AgentMetrics:
    """Instrument a gitops.daemon.Agent and serve GET /metrics on its API app."""
    from gitops.api.server import object_health
    metrics = AgentMetrics(
        objects=lambda: object_health(agent.store, agent.informer),
        connections=lambda: _proxy_connections(agent.services.proxy),
        info=lambda: {"repo": redact(str(agent.source.url)), "ref": agent.config.ref or "",
                      "revision": agent.store.get_state("applied_revision") or ""})

    sync_once = agent.engine.sync_once

    @functools.wraps(sync_once)
    def timed_sync(trigger: str = "interval", **kw: Any):
        started = time.perf_counter()
        result = sync_once(trigger, **kw)
        metrics.observe_sync(result.result, trigger, time.perf_counter() - started)
        return result
    agent.engine.sync_once = timed_sync

    record = agent.drift.record

    @functools.wraps(record)
    def counted_record(**kw):
        metrics.observe_drift(kw.get("origin", ""), kw.get("drift_type", ""),
                              kw.get("action", ""))
        return record(**kw)
    agent.drift.record = counted_record

    async def serve(_: web.Request) -> web.Response:
        return web.Response(body=metrics.exposition(),
                            headers={"Content-Type": CONTENT_TYPE_LATEST})
    app.router.add_get("/metrics", serve)
    return metrics
