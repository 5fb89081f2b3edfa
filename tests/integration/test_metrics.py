"""/metrics content: sync duration and counts, drift counters, objects by health and proxy
connections read at scrape time, served by the aiohttp route without a token."""

from __future__ import annotations

import asyncio
import types

from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from gitops.api import metrics


class FakeEngine:
    def __init__(self):
        self.calls = []

    def sync_once(self, trigger="interval"):
        self.calls.append(trigger)
        return types.SimpleNamespace(result="synced")


class FakeDrift:
    def record(self, **kw):
        return True


def fake_agent(objects, listeners):
    store = types.SimpleNamespace(get_state=lambda k: "abc123" if k == "applied_revision"
                                  else None)
    proxy = types.SimpleNamespace(_listeners={i: types.SimpleNamespace(name=n, active=a)
                                              for i, (n, a) in enumerate(listeners)})
    return types.SimpleNamespace(
        store=store, informer=None, engine=FakeEngine(), drift=FakeDrift(),
        services=types.SimpleNamespace(proxy=proxy), source=types.SimpleNamespace(url="/src"),
        config=types.SimpleNamespace(ref="main"), objects=objects)


def scrape(agent, monkeypatch) -> tuple[int, str, str]:
    monkeypatch.setattr("gitops.api.server.object_health", lambda store, live=None: agent.objects)

    async def go():
        app = web.Application()
        metrics.attach(agent, app)
        agent.engine.sync_once("webhook")
        agent.engine.sync_once()
        agent.drift.record(origin="runtime", drift_type="missing", action="corrected",
                           obj={})
        async with TestClient(TestServer(app)) as client:
            resp = await client.get("/metrics")
            return resp.status, resp.headers["Content-Type"], await resp.text()
    return asyncio.run(go())


def test_metrics_exposition(monkeypatch):
    agent = fake_agent([{"kind": "Deployment", "health": "Healthy", "sync": "Synced"},
                        {"kind": "Deployment", "health": "Progressing", "sync": "Synced"},
                        {"kind": "Service", "health": "Healthy", "sync": "Synced"}],
                       [("default/web:80", 2), ("default/web:80", 1), ("default/db:5000", 0)])
    status, ctype, text = scrape(agent, monkeypatch)
    assert status == 200 and ctype.startswith("text/plain")
    assert agent.engine.calls == ["webhook", "interval"]      # the wrapped engine still runs
    lines = set(text.splitlines())
    assert 'gitops_syncs_total{result="synced",trigger="webhook"} 1.0' in lines
    assert 'gitops_sync_duration_seconds_count{result="synced"} 2.0' in lines
    assert ('gitops_drift_records_total{action="corrected",origin="runtime",type="missing"} 1.0'
            in lines)
    assert 'gitops_objects{health="Healthy",kind="Deployment",sync="Synced"} 1.0' in lines
    assert 'gitops_objects{health="Progressing",kind="Deployment",sync="Synced"} 1.0' in lines
    assert 'gitops_proxy_connections{listener="default/web:80"} 3.0' in lines
    assert 'gitops_agent_info{ref="main",repo="/src",revision="abc123"} 1.0' in lines
