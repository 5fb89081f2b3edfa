"""The web UI's routes over real HTTP on 127.0.0.1 (ephemeral port), mounted on the API
app as the daemon mounts it, over a memory store holding a small app: login, cookies,
CSRF, read-only sessions, the security headers, and what each page shows."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import aiohttp
from aiohttp import web

from gitops.api.server import ApiContext, make_app
from gitops.model import ObjectKey
from gitops.store.base import InventoryEntry
from gitops.testing import memory_store
from gitops.ui import UiContext, add_ui_routes

TOKEN = "t" * 40
SECRET_VALUE = "hunter2-very-secret"
REPO = "https://github.com/acme/shop.git"
SHA_NEW, SHA_OLD = "a" * 40, "b" * 40


def run(coro, timeout: float = 30.0):
    return asyncio.run(asyncio.wait_for(coro, timeout))


def deployment(replicas: int = 2) -> dict:
    return {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "namespace": "default"},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": "web"}},
                     "template": {"metadata": {"labels": {"app": "web"}},
                                  "spec": {"containers": [{"name": "web",
                                                           "image": "gitops/busybox:1"}]}}}}


def secret() -> dict:
    return {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "db",
                                                              "namespace": "default"},
            "data": {"password": base64.b64encode(SECRET_VALUE.encode()).decode()}}


def populate(store) -> None:
    dep = store.create(deployment(replicas=3))          # live drifted: git says 2
    store.update_status(ObjectKey("Deployment", "default", "web"),
                        {"observedGeneration": 1, "replicas": 3, "updatedReplicas": 3,
                         "readyReplicas": 2, "availableReplicas": 2})
    rs = store.create({"apiVersion": "apps/v1", "kind": "ReplicaSet",
                       "metadata": {"name": "web-6d4b", "namespace": "default",
                                    "ownerReferences": [{"apiVersion": "apps/v1",
                                                         "kind": "Deployment", "name": "web",
                                                         "uid": dep["metadata"]["uid"],
                                                         "controller": True}]},
                       "spec": {"replicas": 3}})
    for name, state in (("web-6d4b-aaaaa", {"running": {}}),
                        ("web-6d4b-bbbbb", {"waiting": {"reason": "CrashLoopBackOff",
                                                        "message": "back-off 20s"}})):
        store.create({"apiVersion": "v1", "kind": "Pod",
                      "metadata": {"name": name, "namespace": "default",
                                   "ownerReferences": [{"apiVersion": "apps/v1",
                                                        "kind": "ReplicaSet", "name": "web-6d4b",
                                                        "uid": rs["metadata"]["uid"],
                                                        "controller": True}]},
                      "spec": {"containers": [{"name": "web", "image": "gitops/busybox:1"}]}})
        store.update_status(ObjectKey("Pod", "default", name), {
            "phase": "Running", "containerStatuses": [{"name": "web", "state": state,
                                                       "ready": "running" in state,
                                                       "restartCount": 4}]})
    store.create({"apiVersion": "v1", "kind": "Service",
                  "metadata": {"name": "web", "namespace": "default"},
                  "spec": {"selector": {"app": "web"}, "ports": [{"port": 80}],
                           "clusterIP": "10.96.0.10"}})
    store.create({"apiVersion": "v1", "kind": "Endpoints",
                  "metadata": {"name": "web", "namespace": "default"},
                  "subsets": [{"addresses": [{"ip": "10.213.0.5"}]}]})
    store.create(secret())
    store.set_inventory([
        InventoryEntry(ObjectKey("Deployment", "default", "web"), "apps/v1", "web.yaml", 1,
                       sync_status="OutOfSync"),
        InventoryEntry(ObjectKey("Service", "default", "web"), "v1", "web.yaml", 24),
        InventoryEntry(ObjectKey("Secret", "default", "db"), "v1", "secret.yaml", 1)])
    store.set_applied({ObjectKey("Deployment", "default", "web"): deployment(replicas=2),
                       ObjectKey("Secret", "default", "db"): secret()})
    store.record_sync({"result": "synced", "revision": SHA_OLD, "at": 1_800_000_000,
                       "created": 4, "configured": 0, "pruned": 0, "message": "",
                       "errors": []})
    store.record_sync({"result": "refused", "revision": SHA_NEW, "at": 1_800_000_100,
                       "message": "1 invalid manifest",
                       "errors": ["web.yaml:7: Deployment/web: spec.replicas: not a number"]})
    store.record_sync({"result": "synced", "revision": SHA_NEW, "at": 1_800_000_200,
                       "created": 0, "configured": 1, "pruned": 0, "message": "",
                       "errors": []})


@dataclass
class Agent:
    base: str
    store: object
    calls: list = field(default_factory=list)
    read_only: bool = False
    logs: object = None         # a test's own logs backend
    repo: str = REPO

    def app_logs(self, fn) -> None:
        self.logs = fn


@contextlib.asynccontextmanager
async def serve(read_only: bool = False) -> AsyncIterator[Agent]:
    store = memory_store()
    populate(store)
    agent = Agent("", store)

    def status() -> dict:
        return {"source": {"repo": agent.repo, "ref": "main", "path": "deploy"},
                "applied_revision": SHA_NEW, "fetched_revision": SHA_NEW, "pin": None,
                "suspended": False, "policy": {"self_heal": False, "prune": True},
                "last_sync": {"result": "refused", "revision": SHA_NEW, "at": 1_800_000_100,
                              "message": "1 invalid manifest",
                              "errors": ["web.yaml:7: Deployment/web: spec.replicas: bad"]},
                "objects": [], "conditions": [{"type": "Synced", "status": "False",
                                                "reason": "Refused", "message": ""}]}

    async def control(verb: str, params: dict) -> dict:
        agent.calls.append((verb, params))
        return {"result": "synced", "revision": params.get("to") or SHA_NEW, "message": ""}

    async def logs(req):
        if agent.logs is not None:
            return await agent.logs(req)
        return f"log of {req.pod}/{req.container or 'web'} previous={req.previous}\n"

    drift = [{"at": "2027-01-15T08:00:00Z", "last_seen": "2027-01-15T08:00:00Z",
              "trigger": "watch", "object": {"kind": "Deployment", "namespace": "default",
                                             "name": "web", "file": "web.yaml", "line": 1},
              "drift": {"type": "modified", "origin": "desired", "actor": "kubectl-scale",
                        "occurrences": 1, "fields": [{"path": "spec.replicas", "desired": 2,
                                                      "live": 3}]},
              "health": {"status": "Healthy"}, "action": "reported"}]
    app = make_app(ApiContext(store, TOKEN, status, control, lambda: None, logs))
    add_ui_routes(app, UiContext(store, status, control, logs, lambda: drift,
                                 read_only=read_only))
    runner = web.AppRunner(app)
    await runner.setup()
    try:
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        agent.base = f"http://127.0.0.1:{runner.addresses[0][1]}"
        yield agent
    finally:
        await runner.cleanup()


def browser() -> aiohttp.ClientSession:
    # unsafe: keep cookies of an IP address host, as a browser does
    return aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))


async def login(agent: Agent, session: aiohttp.ClientSession, read_only: bool = False) -> None:
    """Log in as `gitops ui` does: a code for the token, traded for the cookie."""
    async with session.post(f"{agent.base}/gitops/v1/ui/login-codes" +
                            ("?read_only=1" if read_only else ""),
                            headers={"Authorization": f"Bearer {TOKEN}"}) as resp:
        assert resp.status == 200
        path = (await resp.json())["path"]
    async with session.get(agent.base + path, allow_redirects=False) as resp:
        assert resp.status == 303 and resp.headers["Location"] == "/ui/"
        cookie = resp.headers["Set-Cookie"]
        assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/ui" in cookie


def csrf_of(page: str) -> str:
    return re.search(r'name="csrf" value="([^"]+)"', page).group(1)


async def get(session, url: str) -> tuple[int, str, dict]:
    async with session.get(url, allow_redirects=False) as resp:
        return resp.status, await resp.text(), dict(resp.headers)


def test_login_code_needs_the_token_and_works_once():
    async def go():
        async with serve() as agent, browser() as s:
            async with s.post(f"{agent.base}/gitops/v1/ui/login-codes") as resp:
                assert resp.status == 401
            async with s.post(f"{agent.base}/gitops/v1/ui/login-codes",
                              headers={"Authorization": f"Bearer {TOKEN}"}) as resp:
                path = (await resp.json())["path"]
            assert TOKEN not in path
            status, _, headers = await get(s, agent.base + path)
            assert status == 303
            status, page, _ = await get(s, agent.base + "/ui/")
            assert status == 200 and "Overview" in page
            async with browser() as other:          # the same link again: spent
                status, page, _ = await get(other, agent.base + path)
                assert status == 401 and "already used" in page
                status, _, _ = await get(other, agent.base + "/ui/")
                assert status == 401
    run(go())


def test_pages_need_a_session_and_carry_a_strict_csp():
    async def go():
        async with serve() as agent, browser() as s:
            for path in ("/ui/", "/ui/tree", "/ui/history", "/ui/object/Deployment/default/web",
                         "/ui/logs/default/web-6d4b-aaaaa", "/ui/events"):
                status, body, _ = await get(s, agent.base + path)
                assert status == 401, path
                assert "web-6d4b" not in body
            await login(agent, s)
            status, _, headers = await get(s, agent.base + "/ui/tree")
            assert status == 200
            csp = headers["Content-Security-Policy"]
            assert "default-src 'none'" in csp and "script-src 'self'" in csp
            assert "unsafe" not in csp and "frame-ancestors 'none'" in csp
            assert headers["Referrer-Policy"] == "no-referrer"
            assert headers["Cache-Control"] == "no-store"
            status, js, headers = await get(s, agent.base + "/ui/static/htmx.min.js")
            assert status == 200 and "htmx" in js
            assert headers["X-Content-Type-Options"] == "nosniff"
    run(go())


def test_actions_need_the_cookie_and_the_csrf_token():
    async def go():
        async with serve() as agent, browser() as s:
            async with aiohttp.ClientSession() as anonymous:
                async with anonymous.post(f"{agent.base}/ui/actions/sync",
                                          data={"csrf": "x"}) as resp:
                    assert resp.status == 401
            await login(agent, s)
            _, page, _ = await get(s, agent.base + "/ui/")
            token = csrf_of(page)
            for bad in ({}, {"csrf": "wrong"}, {"csrf": token[:-1]}):
                async with s.post(f"{agent.base}/ui/actions/sync", data=bad,
                                  allow_redirects=False) as resp:
                    assert resp.status == 403
            # another site's page posting with a leaked token is refused too
            async with s.post(f"{agent.base}/ui/actions/sync", data={"csrf": token},
                              headers={"Origin": "https://evil.example"}) as resp:
                assert resp.status == 403
            assert agent.calls == []
            async with s.post(f"{agent.base}/ui/actions/sync", data={"csrf": token},
                              allow_redirects=False) as resp:
                assert resp.status == 303
            async with s.post(f"{agent.base}/ui/actions/rollback",
                              data={"to": SHA_OLD}, headers={"X-CSRF-Token": token,
                                                             "HX-Request": "true"}) as resp:
                assert resp.status == 200
                assert "rollback: synced bbbbbbbbbbbb" in await resp.text()
            assert agent.calls == [("sync", {}), ("rollback", {"to": SHA_OLD})]
    run(go())


def test_a_read_only_session_sees_no_buttons_and_cannot_act():
    async def go():
        async with serve() as agent, browser() as s:
            await login(agent, s, read_only=True)
            _, page, _ = await get(s, agent.base + "/ui/history")
            assert "read-only" in page and "/ui/actions/" not in page
            _, page, _ = await get(s, agent.base + "/ui/object/Pod/default/web-6d4b-aaaaa")
            assert "Delete pod" not in page
            token = re.search(r'X-CSRF-Token&#34;: &#34;([^&]+)&#34;', page).group(1)
            for verb in ("sync", "rollback", "delete-pod"):
                async with s.post(f"{agent.base}/ui/actions/{verb}",
                                  data={"csrf": token, "namespace": "default",
                                        "name": "web-6d4b-aaaaa"}) as resp:
                    assert resp.status == 403, verb
            assert agent.calls == []
            assert agent.store.get(ObjectKey("Pod", "default", "web-6d4b-aaaaa")) is not None
    run(go())


def test_the_agents_read_only_flag_makes_every_session_read_only():
    async def go():
        async with serve(read_only=True) as agent, browser() as s:
            await login(agent, s)          # asked for a full session
            _, page, _ = await get(s, agent.base + "/ui/")
            assert "read-only" in page and "/ui/actions/" not in page
    run(go())


def test_tree_shows_children_health_and_reasons():
    async def go():
        async with serve() as agent, browser() as s:
            await login(agent, s)
            _, page, _ = await get(s, agent.base + "/ui/tree?view=tree")
            order = [page.index(x) for x in ('data-name="web-6d4b"', 'data-name="web-6d4b-aaaaa"',
                                             'data-name="web-6d4b-bbbbb"')]
            assert order == sorted(order)
            assert "CrashLoopBackOff: back-off 20s" in page       # the container's reason
            assert 'data-kind="Endpoints" data-name="web"' in page
            assert "web.yaml:1" in page and "OutOfSync" in page
            # filter by health keeps the path to what matches
            _, page, _ = await get(s, agent.base + "/ui/tree?health=Degraded&view=list")
            assert 'data-name="web-6d4b-bbbbb"' in page
            assert 'data-name="web-6d4b-aaaaa"' not in page and 'data-kind="Service"' not in page
            # a live refresh asks for the fragment only
            async with s.get(agent.base + "/ui/tree?view=tree",
                             headers={"HX-Request": "true", "HX-Target": "live"}) as resp:
                frag = await resp.text()
            assert "<html" not in frag and 'data-name="web-6d4b-bbbbb"' in frag
    run(go())


def test_object_page_diff_masks_secrets_and_links_history():
    async def go():
        async with serve() as agent, browser() as s:
            await login(agent, s)
            _, page, _ = await get(s, agent.base + "/ui/object/Deployment/default/web")
            assert re.search(r'<tr class="changed"><td class="no">\d+</td><td class="l">'
                             r'<pre>  replicas: 2</pre></td><td class="no">\d+</td>'
                             r'<td class="r"><pre>  replicas: 3</pre>', page)
            assert "kubectl-scale" in page                      # its drift record
            assert "web.yaml:1" in page
            _, page, _ = await get(s, agent.base + "/ui/object/Secret/default/db")
            encoded = base64.b64encode(SECRET_VALUE.encode()).decode()
            assert SECRET_VALUE not in page and encoded not in page and "***" in page
            _, page, _ = await get(s, agent.base + "/ui/object/Pod/default/web-6d4b-bbbbb")
            assert "declared at" in page and "Deployment/web" in page
            _, page, _ = await get(s, agent.base + "/ui/logs/default/web-6d4b-bbbbb?previous=1")
            assert "log of web-6d4b-bbbbb/web previous=True" in page
            _, page, _ = await get(s, agent.base + "/ui/history")
            assert "https://github.com/acme/shop/commit/" + SHA_OLD in page
            assert f'value="{SHA_OLD}"' in page                 # roll back to the older one
            assert "https://github.com/acme/shop/blob/" + SHA_NEW + "/deploy/web.yaml#L7" in page
            status, _, _ = await get(s, agent.base + "/ui/object/Deployment/default/nope")
            assert status == 404
    run(go())


def test_restart_and_delete_pod_write_through_the_registry():
    async def go():
        async with serve() as agent, browser() as s:
            await login(agent, s)
            _, page, _ = await get(s, agent.base + "/ui/object/Deployment/default/web")
            token = csrf_of(page)
            async with s.post(f"{agent.base}/ui/actions/restart", data={
                    "csrf": token, "namespace": "default", "name": "web"},
                    headers={"HX-Request": "true"}) as resp:
                assert resp.status == 200
            dep = agent.store.get(ObjectKey("Deployment", "default", "web"))
            ann = dep["spec"]["template"]["metadata"]["annotations"]
            assert "kubectl.kubernetes.io/restartedAt" in ann
            assert any(e["manager"] == "gitops-ui" for e in dep["metadata"]["managedFields"])
            async with s.post(f"{agent.base}/ui/actions/delete-pod", data={
                    "csrf": token, "namespace": "default", "name": "web-6d4b-aaaaa"},
                    headers={"HX-Request": "true"}) as resp:
                assert resp.status == 200
            assert agent.store.get(ObjectKey("Pod", "default", "web-6d4b-aaaaa")) is None
            async with s.post(f"{agent.base}/ui/actions/delete-pod", data={
                    "csrf": token, "namespace": "default", "name": "web-6d4b-aaaaa"},
                    headers={"HX-Request": "true"}) as resp:
                assert resp.status == 409 and "not found" in await resp.text()
    run(go())


def test_events_stream_signals_a_change_within_a_second():
    async def go():
        async with serve() as agent, browser() as s:
            await login(agent, s)
            async with s.get(agent.base + "/ui/events") as resp:
                assert resp.headers["Content-Type"].startswith("text/event-stream")
                agent.store.create({"apiVersion": "v1", "kind": "ConfigMap",
                                    "metadata": {"name": "c", "namespace": "default"}})
                lines = [await asyncio.wait_for(resp.content.readline(), 5) for _ in range(2)]
                assert lines[0].startswith(b"id: ") and lines[1] == b"event: change\n"
    run(go())


def test_a_change_between_render_and_connect_is_not_missed():
    async def go():
        async with serve() as agent, browser() as s:
            await login(agent, s)
            _, page, _ = await get(s, agent.base + "/ui/tree")
            since = re.search(r'sse-connect="/ui/events\?since=(\d+)"', page).group(1)
            agent.store.create({"apiVersion": "v1", "kind": "ConfigMap",     # no page listens
                                "metadata": {"name": "c", "namespace": "default"}})
            async with s.get(f"{agent.base}/ui/events?since={since}") as resp:
                lines = [await asyncio.wait_for(resp.content.readline(), 5) for _ in range(2)]
                assert lines[1] == b"event: change\n"
                now = int(lines[0].split()[1])
                assert now > int(since)
            # a reconnect that heard everything waits for the next change
            async with s.get(f"{agent.base}/ui/events", headers={"Last-Event-ID": str(now)}
                             ) as resp:
                with contextlib.suppress(asyncio.TimeoutError):
                    line = await asyncio.wait_for(resp.content.readline(), 1.5)
                    raise AssertionError(f"sent without a change: {line!r}")
    run(go())


def test_logout_ends_the_session():
    async def go():
        async with serve() as agent, browser() as s:
            await login(agent, s)
            _, page, _ = await get(s, agent.base + "/ui/")
            async with s.post(f"{agent.base}/ui/logout", data={"csrf": "wrong"}) as resp:
                assert resp.status == 403
            async with s.post(f"{agent.base}/ui/logout", data={"csrf": csrf_of(page)},
                              allow_redirects=False) as resp:
                assert resp.status == 303
            status, _, _ = await get(s, agent.base + "/ui/")
            assert status == 401
    run(go())


def test_a_followed_log_streams_lines_and_a_closed_page_ends_the_stream():
    async def go():
        ended = asyncio.Event()

        async def follow_logs(req):
            async def stream():
                try:
                    yield b"first <line>\n"
                    await asyncio.sleep(3600)        # a quiet container
                finally:
                    ended.set()
            if req.follow:
                return stream()
            return "earlier lines\n"
        async with serve() as agent, browser() as s:
            agent.app_logs(follow_logs)
            await login(agent, s)
            _, page, _ = await get(s, agent.base + "/ui/logs/default/web-6d4b-aaaaa?follow=1")
            assert "earlier lines" in page and 'sse-swap="line"' in page
            resp = await s.get(agent.base + "/ui/logs/default/web-6d4b-aaaaa/stream")
            assert await resp.content.readline() == b"event: line\n"
            assert await resp.content.readline() == b"data: first &lt;line&gt;\n"
            resp.close()                                 # the tab is closed
            await asyncio.wait_for(ended.wait(), 20)     # the log stream with it
    from gitops.ui import routes
    routes.KEEPALIVE, before = 0.2, routes.KEEPALIVE
    try:
        run(go())
    finally:
        routes.KEEPALIVE = before


def test_a_change_of_the_syncs_own_state_is_a_change_too():
    """Suspend, pin, a sync's result live in the store's state table, which its watch
    does not carry: the page hears of them all the same, and only of real changes."""
    from gitops.sync.status import SyncStatusBook

    async def go():
        async with serve() as agent, browser() as s:
            await login(agent, s)
            async with s.get(agent.base + "/ui/events") as resp:
                with contextlib.suppress(asyncio.TimeoutError):    # nothing changes: quiet
                    line = await asyncio.wait_for(resp.content.readline(), 1.5)
                    raise AssertionError(f"sent without a change: {line!r}")
                await asyncio.to_thread(SyncStatusBook(agent.store).set_suspended, True)
                lines = [await asyncio.wait_for(resp.content.readline(), 5) for _ in range(2)]
                assert lines[1] == b"event: change\n"
    run(go())


def test_no_rollback_button_for_a_local_directory():
    async def go():
        async with serve() as agent, browser() as s:
            agent.repo = "/srv/manifests"               # read as it is: no history
            await login(agent, s)
            _, page, _ = await get(s, agent.base + "/ui/history")
            assert "Roll back to" not in page and "<code>bbbbbbbbbbbb</code>" in page
    run(go())


def test_hostile_names_and_values_are_escaped_and_static_files_stay_in_place():
    async def go():
        async with serve() as agent, browser() as s:
            agent.store.create({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {
                "name": "evil", "namespace": "default",
                "annotations": {"x": '"><script>alert(1)</script>'}},
                "data": {"page": "<img src=x onerror=alert(2)>"}})
            agent.store.set_inventory([*agent.store.inventory().values(), InventoryEntry(
                ObjectKey("ConfigMap", "default", "evil"), "v1", "<b>evil</b>.yaml", 1)])
            await login(agent, s)
            for path in ("/ui/object/ConfigMap/default/evil", "/ui/tree?name=<script>",
                         "/ui/tree"):
                _, page, _ = await get(s, agent.base + path)
                assert "<script>alert" not in page and "<img src=x" not in page, path
                assert "<b>evil" not in page, path
            _, page, _ = await get(s, agent.base + "/ui/object/ConfigMap/default/evil")
            assert "&lt;img src=x onerror=alert(2)&gt;" in page
            for path in ("/ui/static/../routes.py", "/ui/static/%2e%2e/routes.py",
                         "/ui/static/..%2Froutes.py"):
                status, body, _ = await get(s, agent.base + path)
                assert status in (403, 404) and "add_ui_routes" not in body, path
    run(go())


def test_a_refused_action_from_the_page_is_a_message_not_a_page():
    async def go():
        async with serve(read_only=True) as agent, browser() as s:
            await login(agent, s)
            _, page, _ = await get(s, agent.base + "/ui/")
            token = re.search(r'X-CSRF-Token&#34;: &#34;([^&]+)&#34;', page).group(1)
            async with s.post(f"{agent.base}/ui/actions/sync", data={"csrf": token},
                              headers={"HX-Request": "true"}) as resp:
                body = await resp.text()
            assert resp.status == 403 and "<html" not in body
            assert 'role="alert"' in body and "read-only" in body
    run(go())


def test_a_malformed_object_never_blanks_a_page():
    async def go():
        async with serve() as agent, browser() as s:
            rs = agent.store.get(ObjectKey("ReplicaSet", "default", "web-6d4b"))
            agent.store.create({"apiVersion": "v1", "kind": "Pod", "metadata": {
                "name": "odd", "namespace": "default", "ownerReferences": [
                    {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-6d4b",
                     "uid": rs["metadata"]["uid"], "controller": True}]}})
            agent.store.update_status(ObjectKey("Pod", "default", "odd"), {
                "containerStatuses": [{"state": {"waiting": {"reason": "ErrImagePull"}}}]})
            await login(agent, s)
            status, page, _ = await get(s, agent.base + "/ui/tree?view=list")
            assert status == 200 and 'data-name="web-6d4b-aaaaa"' in page
            assert 'data-kind="Pod" data-name="odd" data-health="Unknown"' in page
            status, page, _ = await get(s, agent.base + "/ui/object/Pod/default/odd")
            assert status == 200 and "cannot assess: KeyError" in page
    run(go())
