"""The UI's HTTP routes on the API's aiohttp app.

Pages authenticate by the session cookie (gitops.ui.auth), not by the API's bearer token:
the API's middleware lets /ui/ through and every handler here checks the session. The
login code is issued at /gitops/v1/ui/login-codes, behind the bearer token like the rest
of the agent's API. Every action is a POST with the session's CSRF token."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import html
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode, urlsplit

import structlog
from aiohttp import web

from gitops.api.kube.request import LogRequest
from gitops.errors import GitopsError
from gitops.source.base import is_git_url
from gitops.model import ObjectKey
from gitops.store.registry import Registry
from gitops.sync.status import SyncStatusBook, health_condition
from gitops.ui import actions, views
from gitops.ui.auth import Session, Sessions, csrf_ok
from gitops.ui.diffview import changed
from gitops.ui.live import COALESCE, Changes
from gitops.ui.tree import Filter, filter_tree, flatten, health_counts, kinds_in

if TYPE_CHECKING:
    import jinja2

log = structlog.get_logger(component="ui")

HERE = Path(__file__).parent
COOKIE = "gitops_ui"
PREFIX = "/ui"
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
       "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
HEALTHS = ("Healthy", "Progressing", "Degraded", "Suspended", "Missing", "Unknown")
LIST_VIEW_AT = 300          # nodes: larger trees open as a list unless asked otherwise
KEEPALIVE = 15.0            # seconds between comments on a quiet event stream


@dataclass
class UiContext:
    store: Registry
    status: Callable[[], dict]         # the app as `gitops status` shows it, objects aside
    control: Callable[[str, dict], Awaitable[dict]]         # the CLI's control verbs
    logs: Callable[[LogRequest], Awaitable[str | AsyncIterator[bytes]]]
    drift: Callable[[], list[dict]] = lambda: []            # recent drift records
    read_only: bool = False                                 # every session (a wall screen)


UI = web.AppKey("ui", "_Ui")


class _Ui:
    def __init__(self, ctx: UiContext) -> None:
        self.ctx = ctx
        self.sessions = Sessions(all_read_only=ctx.read_only)
        book = SyncStatusBook(ctx.store)
        # Conditions left out: without stored ones, their times are "now" at every read.
        self.changes = Changes(ctx.store, lambda: {
            k: v for k, v in book.read().as_dict().items() if k != "conditions"})

    @functools.cached_property
    def jinja(self) -> jinja2.Environment:
        """Made at the first page: the agent's start does not wait on jinja2's import."""
        import jinja2
        env = jinja2.Environment(
            loader=jinja2.FileSystemLoader(HERE / "templates"), autoescape=True,
            trim_blocks=True, lstrip_blocks=True)
        env.filters["when"] = _when
        env.filters["short"] = lambda sha: (sha or "")[:12]
        env.filters["obj_url"] = object_url
        env.filters["tojson_compact"] = lambda v: json.dumps(v, default=str)
        env.globals["static"] = static_url
        return env


def add_ui_routes(app: web.Application, ctx: UiContext) -> None:
    ui = _Ui(ctx)
    app[UI] = ui
    r = app.router
    r.add_post("/gitops/v1/ui/login-codes", _issue_code)      # bearer token (API middleware)
    r.add_get(PREFIX, _to_overview)
    r.add_get(PREFIX + "/login", _login)
    r.add_post(PREFIX + "/logout", _logout)
    r.add_get(PREFIX + "/", _overview)
    r.add_get(PREFIX + "/tree", _tree)
    r.add_get(PREFIX + "/history", _history)
    r.add_get(PREFIX + "/object/{kind}/{namespace}/{name}", _object)
    r.add_get(PREFIX + "/logs/{namespace}/{pod}", _logs)
    r.add_get(PREFIX + "/logs/{namespace}/{pod}/stream", _logs_stream)
    r.add_get(PREFIX + "/events", _events)
    r.add_post(PREFIX + "/actions/{verb}", _action)
    r.add_static(PREFIX + "/static", HERE / "static")
    app.on_response_prepare.append(_security_headers)
    app.on_startup.append(lambda _app: ui.changes.start())
    app.on_shutdown.append(lambda _app: ui.changes.stop())


def is_ui_path(path: str) -> bool:
    """Paths the UI authenticates itself (by its cookie)."""
    return path == PREFIX or path.startswith(PREFIX + "/")


async def _security_headers(request: web.Request, response: web.StreamResponse) -> None:
    if not is_ui_path(request.path):
        return
    h = response.headers
    h["Content-Security-Policy"] = CSP
    h["X-Content-Type-Options"] = "nosniff"
    h["Referrer-Policy"] = "no-referrer"
    h["X-Frame-Options"] = "DENY"
    h["Cross-Origin-Opener-Policy"] = "same-origin"
    if not request.path.startswith(PREFIX + "/static/"):
        h["Cache-Control"] = "no-store"


async def _to_overview(_request: web.Request) -> web.Response:
    return _redirect(PREFIX + "/")


# -- login ----------------------------------------------------------------------------------
async def _issue_code(request: web.Request) -> web.Response:
    ui = request.app[UI]
    read_only = request.query.get("read_only", "") in ("1", "true")
    code = ui.sessions.issue_code(read_only)
    log.info("ui_login_code_issued", read_only=read_only or ui.ctx.read_only)
    return web.json_response({"path": f"{PREFIX}/login?{urlencode({'code': code})}",
                              "read_only": read_only or ui.ctx.read_only})


async def _login(request: web.Request) -> web.StreamResponse:
    ui = request.app[UI]
    session = ui.sessions.redeem(request.query.get("code", ""))
    if session is None:
        return _page(request, "denied.html", status=401, session=None,
                     reason="This login link was already used or has expired.")
    # Off the URL at once: the code is spent, and the address bar shows /ui/.
    resp = _redirect(PREFIX + "/")
    resp.set_cookie(COOKIE, session.id, path=PREFIX, httponly=True, samesite="Strict",
                    secure=request.secure, max_age=int(session.expires - time.time()))
    log.info("ui_session_started", read_only=session.read_only)
    return resp


async def _logout(request: web.Request) -> web.StreamResponse:
    session = _acting_session(request, dict(await request.post()))
    request.app[UI].sessions.end(session.id)
    resp = _redirect(PREFIX + "/")
    resp.del_cookie(COOKIE, path=PREFIX)
    return resp


def _session(request: web.Request) -> Session | None:
    return request.app[UI].sessions.get(request.cookies.get(COOKIE))


def _viewer(request: web.Request) -> Session:
    session = _session(request)
    if session is None:
        raise _denied(request, 401, "You are not logged in (or your session ended).")
    return session


def _acting_session(request: web.Request, form: dict | None = None) -> Session:
    """The session of a POST: logged in, CSRF token right, from this origin."""
    session = _session(request)
    if session is None:
        raise _denied(request, 401, "You are not logged in (or your session ended).")
    origin = request.headers.get("Origin")
    # The host alone: behind a TLS-terminating proxy the scheme seen here is http.
    if origin is not None and urlsplit(origin).netloc != request.host:
        raise _denied(request, 403, "The request came from another site.")
    given = request.headers.get("X-CSRF-Token") or (form or {}).get("csrf")
    if not csrf_ok(session, given):
        raise _denied(request, 403, "The form's CSRF token is missing or wrong; reload "
                                    "the page.")
    return session


def _denied(request: web.Request, status: int, reason: str) -> web.HTTPException:
    # An action's refusal lands in the page's message area; a page's is a page.
    template = "_flash.html" if request.headers.get("HX-Request") == "true" and \
        request.method == "POST" else "denied.html"
    body = _render(request, template, session=None, reason=reason, ok=False, message=reason)
    exc = web.HTTPUnauthorized if status == 401 else web.HTTPForbidden
    return exc(text=body, content_type="text/html")


# -- pages -----------------------------------------------------------------------------------
async def _overview(request: web.Request) -> web.Response:
    session = _viewer(request)
    ctx = request.app[UI].ctx
    st = await asyncio.to_thread(ctx.status)
    tree = await asyncio.to_thread(views.app_tree, ctx.store)
    repo, path = st["source"]["repo"], st["source"]["path"]
    last = st.get("last_sync") or {}
    errors = views.located_errors(last.get("errors") or [], repo,
                                  last.get("revision") or st.get("fetched_revision") or "",
                                  path)
    roots = [{"kind": n.kind, "name": n.name, "health": n.health, "message": n.message}
             for n in tree]
    st = {**st, "conditions": [*[c for c in st.get("conditions") or []
                                 if c.get("type") != "Healthy"],
                               health_condition(roots).as_dict()]}
    data = {"st": st, "counts": health_counts(tree), "total": len(tree),
            "unhealthy": [n for n in tree if n.health not in ("Healthy", "Unknown")],
            "out_of_sync": [n for n in tree if n.sync not in ("Synced", "")
                            and not n.sync.startswith("Synced")],
            "errors": errors, "last": last,
            "applied_url": views.commit_url(repo, st.get("applied_revision") or ""),
            "repo_url": views.web_url(repo)}
    return _page(request, "overview.html", session=session, nav="overview", **data)


async def _tree(request: web.Request) -> web.Response:
    session = _viewer(request)
    q = request.query
    flt = Filter(q.get("kind", ""), q.get("name", "").strip(), q.get("health", ""))
    full = await asyncio.to_thread(views.app_tree, request.app[UI].ctx.store)
    nodes = filter_tree(full, flt)
    rows = flatten(nodes)
    view = q.get("view") or ("list" if len(flatten(full)) > LIST_VIEW_AT else "tree")
    data = {"nodes": nodes, "rows": rows, "flt": flt, "view": view, "kinds": kinds_in(full),
            "healths": HEALTHS, "counts": health_counts(full), "shown": len(rows),
            "query": urlencode({k: v for k, v in q.items() if k in
                                ("kind", "name", "health", "view")})}
    return _page(request, "tree.html", session=session, nav="tree", **data)


async def _history(request: web.Request) -> web.Response:
    session = _viewer(request)
    ctx = request.app[UI].ctx
    st = await asyncio.to_thread(ctx.status)
    items = await asyncio.to_thread(ctx.store.history, 50)
    repo = st["source"]["repo"]
    for item in items:
        item["url"] = views.commit_url(repo, item.get("revision") or "")
        item["located"] = views.located_errors(item.get("errors") or [], repo,
                                               item.get("revision") or "",
                                               st["source"]["path"])
    # A local directory has no history to go back to (`gitops rollback` says the same).
    return _page(request, "history.html", session=session, nav="history", items=items,
                 st=st, drift=ctx.drift(), can_roll_back=is_git_url(repo))


async def _object(request: web.Request) -> web.Response:
    session = _viewer(request)
    m = request.match_info
    key = ObjectKey(m["kind"], "" if m["namespace"] == "_" else m["namespace"], m["name"])
    ctx = request.app[UI].ctx
    page = await asyncio.to_thread(views.object_page, ctx.store, key, ctx.drift())
    if page.live is None and not page.has_git_copy:
        raise web.HTTPNotFound(text=_render(request, "denied.html", session=None,
                                            reason=f"{key} is not in the store."),
                               content_type="text/html")
    return _page(request, "object.html", session=session, nav="tree", o=page,
                 changed=changed(page.diff))


async def _logs(request: web.Request) -> web.Response:
    session = _viewer(request)
    m, q = request.match_info, request.query
    req = LogRequest(m["namespace"], m["pod"], q.get("container", ""), tail=_tail(q),
                     previous=q.get("previous") == "1")
    try:
        text = await request.app[UI].ctx.logs(req)
        error = ""
    except GitopsError as exc:
        text, error = "", str(exc)
    if not isinstance(text, str):
        text = ""
    stream = f"{PREFIX}/logs/{m['namespace']}/{m['pod']}/stream?" + urlencode(
        {"container": req.container})
    return _page(request, "logs.html", session=session, nav="tree", ns=m["namespace"],
                 pod=m["pod"], container=req.container, previous=req.previous,
                 follow=q.get("follow") == "1" and not req.previous, text=text,
                 error=error, stream=stream)


def _tail(q: Any) -> int:
    try:
        return max(1, min(int(q.get("tail", "500")), 10000))
    except ValueError:
        return 500


async def _logs_stream(request: web.Request) -> web.StreamResponse:
    """A container's log, followed, as server-sent events of escaped text."""
    _viewer(request)
    m = request.match_info
    req = LogRequest(m["namespace"], m["pod"], request.query.get("container", ""), tail=0,
                     follow=True)
    resp = _sse_response()
    await resp.prepare(request)
    try:
        stream = await request.app[UI].ctx.logs(req)
    except GitopsError as exc:
        await resp.write(_sse("line", html.escape(f"[{exc}]\n")))
        return resp
    if isinstance(stream, str):
        await resp.write(_sse("line", html.escape(stream)))
        return resp

    async def relay() -> None:
        async for chunk in stream:
            await resp.write(_sse("line", html.escape(chunk.decode(errors="replace"))))
    task = asyncio.create_task(relay())
    try:
        # A quiet container sends nothing: a comment now and then finds out whether the
        # reader is still there, so a closed tab does not hold a log stream open.
        while not task.done():
            done, _ = await asyncio.wait({task}, timeout=KEEPALIVE)
            if not done:
                await resp.write(b": keep-alive\n\n")
    except ConnectionResetError:
        pass
    finally:
        task.cancel()                   # ends the stream: its reader thread is released
        with contextlib.suppress(asyncio.CancelledError, ConnectionResetError):
            await task
    return resp


async def _events(request: web.Request) -> web.StreamResponse:
    """One "change" event per burst of changes (coalesced): the page's live parts fetch
    themselves again. A comment every 15 s keeps proxies from closing the stream."""
    _viewer(request)
    changes = request.app[UI].changes
    resp = _sse_response()
    await resp.prepare(request)
    # What the page was rendered at (or last heard, on a reconnect): a change in between
    # is sent at once rather than missed.
    seen = _int(request.headers.get("Last-Event-ID") or request.query.get("since"),
                changes.generation)
    changes.listeners += 1
    try:
        while not changes.closed:
            now = await changes.wait(seen, timeout=KEEPALIVE)
            if changes.closed:
                break
            if now == seen:
                await resp.write(b": keep-alive\n\n")
                continue
            await asyncio.sleep(COALESCE)
            seen = changes.generation
            await resp.write(_sse("change", str(seen), event_id=str(seen)))
    except ConnectionResetError:       # the page went away
        pass
    finally:
        changes.listeners -= 1
    return resp


# -- actions ---------------------------------------------------------------------------------
async def _action(request: web.Request) -> web.StreamResponse:
    form = dict(await request.post())
    session = _acting_session(request, form)
    verb = request.match_info["verb"]
    if session.read_only:
        raise _denied(request, 403, "This session is read-only.")
    ctx = request.app[UI].ctx
    ns, name = str(form.get("namespace", "")), str(form.get("name", ""))
    try:
        if verb in actions.CONTROL_VERBS:
            params = {"to": str(form["to"])} if verb == "rollback" and form.get("to") else {}
            result = await ctx.control(verb, params)
            message = _result_text(verb, result)
        elif verb == "restart":
            await asyncio.to_thread(actions.restart, ctx.store, ns, name)
            message = f"deployment {ns}/{name} restarted"
        elif verb == "delete-pod":
            await asyncio.to_thread(actions.delete_pod, ctx.store, ns, name)
            message = f"pod {ns}/{name} deleted"
        else:
            raise web.HTTPNotFound(text=f"no such action {verb!r}")
        ok = True
    except GitopsError as exc:
        message, ok = str(exc), False
    log.info("ui_action", verb=verb, namespace=ns or None, name=name or None, ok=ok,
             message=message)
    if request.headers.get("HX-Request") == "true":
        return web.Response(text=_render(request, "_flash.html", session=session, ok=ok,
                                         message=message), content_type="text/html",
                            status=200 if ok else 409)
    back = str(form.get("next") or PREFIX + "/")
    return _redirect(back if is_ui_path(back) and "//" not in back else PREFIX + "/")


def _result_text(verb: str, result: dict) -> str:
    if "result" not in result:
        return {"suspend": "syncing suspended"}.get(verb, json.dumps(result))
    text = f"{verb}: {result.get('result')} {(result.get('revision') or '')[:12]}"
    return f"{text} {result.get('message') or ''}".strip()


# -- helpers ---------------------------------------------------------------------------------
@functools.cache
def static_url(name: str) -> str:
    """An asset's address with its content's hash: a new release is never served stale."""
    digest = hashlib.sha256((HERE / "static" / name).read_bytes()).hexdigest()[:12]
    return f"{PREFIX}/static/{name}?v={digest}"


def object_url(node_or_key: Any) -> str:
    kind = node_or_key.kind
    ns = node_or_key.namespace or "_"
    if kind == "Container":
        return f"{PREFIX}/object/Pod/{ns}/{node_or_key.pod}"
    return f"{PREFIX}/object/{kind}/{ns}/{node_or_key.name}"


def _when(ts: Any) -> str:
    if not ts:
        return "-"
    if isinstance(ts, (int, float)):
        return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ts))
    return str(ts).replace("T", " ").replace("Z", "")


def _render(request: web.Request, template: str, **data: Any) -> str:
    ui = request.app[UI]
    session = data.pop("session")
    fragment = request.headers.get("HX-Request") == "true" and \
        request.headers.get("HX-Target") == "live"
    return ui.jinja.get_template(template).render(
        session=session, fragment=fragment, csrf=session.csrf if session else "",
        read_only=session.read_only if session else True, nav=data.pop("nav", ""),
        generation=ui.changes.generation,
        path=request.path_qs, **data)


def _page(request: web.Request, template: str, status: int = 200, **data: Any) -> web.Response:
    return web.Response(text=_render(request, template, **data), content_type="text/html",
                        status=status)


def _redirect(location: str) -> web.Response:
    return web.Response(status=303, headers={"Location": location})


def _sse_response() -> web.StreamResponse:
    return web.StreamResponse(headers={"Content-Type": "text/event-stream",
                                       "Cache-Control": "no-store",
                                       "X-Accel-Buffering": "no"})


def _sse(event: str, data: str, event_id: str = "") -> bytes:
    lines = "".join(f"data: {line}\n" for line in data.split("\n"))
    head = f"id: {event_id}\n" if event_id else ""
    return f"{head}event: {event}\n{lines}\n".encode()


def _int(value: str | None, default: int) -> int:
    try:
        return int(value) if value else default
    except ValueError:
        return default
