"""The web UI's speed in Debian's headless chromium (Selenium), against the UI served as the
agent serves it (the API's aiohttp app with gitops.ui mounted) over a SQLite store holding
a 500-object app: 125 Deployments (each with a ReplicaSet and a pod with its container),
Services (each with Endpoints), ConfigMaps and Secrets declared in git.

    python bench/ui_bench.py [--rounds 5]

- ui_first_paint_s: the overview page's first contentful paint (the browser's own paint
  timing), from navigation start, median of the rounds; target < 1 s.
- ui_tree_500_objects_s: the tree page of those 500 declared objects (1,500 nodes with
  their children) from navigation start until the browser has loaded and laid it out
  (loadEventEnd), median; target < 1 s ("usable without lag").
Extras: the server's render time of the tree alone, a live refresh of it (the fragment
an open page fetches on a change), and ui_live_update_s: from a write to the store to an
open page's event stream announcing it (changes are coalesced for 0.25 s). Traffic only
to 127.0.0.1; no Docker.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import statistics
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

N = 125     # of each declared kind: 4 kinds -> 500 declared objects


def fill(store) -> None:
    from gitops.model import ObjectKey
    from gitops.store.base import InventoryEntry
    entries = []
    for i in range(N):
        name = f"app-{i:03d}"
        dep = store.create({"apiVersion": "apps/v1", "kind": "Deployment",
                            "metadata": {"name": name, "namespace": "default"},
                            "spec": {"replicas": 1, "selector": {"matchLabels": {"app": name}},
                                     "template": {
                                         "metadata": {"labels": {"app": name}},
                                         "spec": {"containers": [
                                             {"name": "app", "image": "gitops/busybox:1"}]}}}})
        store.update_status(ObjectKey("Deployment", "default", name), {
            "observedGeneration": 1, "replicas": 1, "updatedReplicas": 1, "readyReplicas": 1,
            "availableReplicas": 1})
        rs = store.create({"apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": {
            "name": f"{name}-5d8f", "namespace": "default", "ownerReferences": [
                {"apiVersion": "apps/v1", "kind": "Deployment", "name": name,
                 "uid": dep["metadata"]["uid"], "controller": True}]},
            "spec": {"replicas": 1}})
        store.update_status(ObjectKey("ReplicaSet", "default", f"{name}-5d8f"),
                            {"replicas": 1, "readyReplicas": 1})
        pod = f"{name}-5d8f-x{i:04d}"
        store.create({"apiVersion": "v1", "kind": "Pod", "metadata": {
            "name": pod, "namespace": "default", "ownerReferences": [
                {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": f"{name}-5d8f",
                 "uid": rs["metadata"]["uid"], "controller": True}]},
            "spec": {"containers": [{"name": "app", "image": "gitops/busybox:1"}]}})
        store.update_status(ObjectKey("Pod", "default", pod), {
            "phase": "Running", "podIP": f"10.213.{i // 250}.{i % 250 + 2}",
            "conditions": [{"type": "Ready", "status": "True"}],
            "containerStatuses": [{"name": "app", "ready": True, "restartCount": 0,
                                   "state": {"running": {}}}]})
        store.create({"apiVersion": "v1", "kind": "Service", "metadata": {
            "name": name, "namespace": "default"}, "spec": {
            "selector": {"app": name}, "ports": [{"port": 80}], "clusterIP": f"10.96.1.{i}"}})
        store.create({"apiVersion": "v1", "kind": "Endpoints", "metadata": {
            "name": name, "namespace": "default"},
            "subsets": [{"addresses": [{"ip": "10.0.0.1"}]}]})
        store.create({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {
            "name": name, "namespace": "default"}, "data": {"k": "v" * 40}})
        store.create({"apiVersion": "v1", "kind": "Secret", "metadata": {
            "name": name, "namespace": "default"},
            "data": {"pw": base64.b64encode(b"secret").decode()}})
        for kind, api in (("Deployment", "apps/v1"), ("Service", "v1"), ("ConfigMap", "v1"),
                          ("Secret", "v1")):
            entries.append(InventoryEntry(ObjectKey(kind, "default", name), api,
                                          f"apps/{name}.yaml", 1))
    store.set_inventory(entries)


class Server:
    """The API app with the UI mounted, on 127.0.0.1, in a thread of its own."""

    def __init__(self, store) -> None:
        self.store = store
        self.url = ""
        self._ready = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> "Server":
        self._thread.start()
        self._ready.wait(30)
        return self

    def __exit__(self, *exc) -> None:
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(30)

    def _run(self) -> None:
        asyncio.run(self._serve())

    async def _serve(self) -> None:
        from aiohttp import web

        from gitops.api.server import ApiContext, make_app
        from gitops.ui import UiContext, add_ui_routes
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()

        def status() -> dict:
            return {"source": {"repo": "https://github.com/acme/shop.git", "ref": "main",
                               "path": ""}, "applied_revision": "a" * 40,
                    "fetched_revision": "a" * 40, "pin": None, "suspended": False,
                    "policy": {"self_heal": True, "prune": True}, "last_sync": {},
                    "conditions": []}      # the daemon's status(objects=False)

        async def control(verb, params):
            return {}

        async def logs(req):
            return ""
        app = make_app(ApiContext(self.store, "b" * 40, status, control, lambda: None, logs))
        add_ui_routes(app, UiContext(self.store, status, control, logs))
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        self.url = f"http://127.0.0.1:{runner.addresses[0][1]}"
        self._ready.set()
        await self._stop.wait()
        await runner.cleanup()

    def login_path(self) -> str:
        req = urllib.request.Request(self.url + "/gitops/v1/ui/login-codes", method="POST",
                                     headers={"Authorization": "Bearer " + "b" * 40})
        with urllib.request.urlopen(req, timeout=10) as resp:
            return json.loads(resp.read())["path"]


def _first_paint(driver) -> float | None:
    """The page's first contentful paint (seconds from navigation start); headless
    chromium may report it a moment after load, so it is awaited briefly."""
    return driver.execute_async_script("""
        const done = arguments[arguments.length - 1];
        const seen = performance.getEntriesByName('first-contentful-paint')[0];
        if (seen) { done(seen.startTime / 1000); return; }
        new PerformanceObserver(list => {
          for (const e of list.getEntries()) {
            if (e.name === 'first-contentful-paint') { done(e.startTime / 1000); }
          }
        }).observe({type: 'paint', buffered: true});
        setTimeout(() => done(null), 3000);
    """)


def _loaded(driver) -> float:
    return driver.execute_script(
        "return performance.getEntriesByType('navigation')[0].loadEventEnd / 1000;")


def _live_update(server: Server, store, cookie: str, n: int) -> float:
    """From a write to the store to an open page hearing of it (its event stream)."""
    import http.client
    from urllib.parse import urlsplit
    where = urlsplit(server.url)
    conn = http.client.HTTPConnection(where.hostname, where.port, timeout=30)
    try:
        conn.request("GET", "/ui/events", headers={"Cookie": f"gitops_ui={cookie}"})
        resp = conn.getresponse()
        time.sleep(0.2)                                 # the stream is open and waiting
        start = time.perf_counter()
        store.create({"apiVersion": "v1", "kind": "ConfigMap",
                      "metadata": {"name": f"live-{n}", "namespace": "default"}})
        while resp.fp.readline() != b"event: change\n":
            pass
        return time.perf_counter() - start
    finally:
        conn.close()


def run(quick: bool = False, rounds: int = 0) -> dict:
    from gitops.store.registry import Registry
    from gitops.store.sqlite import SqliteStore
    from tests.browser_support import chromium, have_browser
    if not have_browser():
        raise RuntimeError("no chromium/chromedriver/selenium: scripts/setup-browser.sh and "
                           "pip install -e '.[test]'")
    rounds = rounds or (3 if quick else 7)
    with tempfile.TemporaryDirectory(prefix="gitops-ui-bench-") as tmp:
        store = Registry(SqliteStore(Path(tmp) / "state.db"))
        fill(store)
        with Server(store) as server, chromium() as driver:
            driver.get(server.url + server.login_path())          # the session cookie
            paint, tree = [], []
            for _ in range(rounds):
                driver.get(server.url + "/ui/")
                if (fcp := _first_paint(driver)) is not None:
                    paint.append(fcp)
                driver.get(server.url + "/ui/tree?view=tree")
                tree.append(_loaded(driver))
                assert len(driver.find_elements("css selector", ".node")) >= 4 * N
            cookie = driver.get_cookie("gitops_ui")["value"]
            render, live = [], []
            for _ in range(rounds):
                for target, out in ((None, render), ("live", live)):
                    headers = {"Cookie": f"gitops_ui={cookie}"}
                    if target:
                        headers |= {"HX-Request": "true", "HX-Target": target}
                    req = urllib.request.Request(server.url + "/ui/tree?view=tree",
                                                 headers=headers)
                    start = time.perf_counter()
                    with urllib.request.urlopen(req, timeout=30) as resp:
                        resp.read()
                    out.append(time.perf_counter() - start)
            live_update = [_live_update(server, store, cookie, i) for i in range(rounds)]
        store.close()
    if not paint:
        raise RuntimeError("chromium reported no first contentful paint")
    return {"ui_first_paint_s": round(statistics.median(paint), 3),
            "ui_tree_500_objects_s": round(statistics.median(tree), 3),
            "ui_tree_500_server_render_s": round(statistics.median(render), 3),
            "ui_tree_500_live_refresh_s": round(statistics.median(live), 3),
            "ui_live_update_s": round(statistics.median(live_update), 3)}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    print(json.dumps(run(rounds=args.rounds), indent=2))
