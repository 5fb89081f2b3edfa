"""The web UI the agent serves at /ui on its API listener: server-rendered pages (Jinja2)
made live by htmx over server-sent events, every asset shipped in this package.

Pure parts: auth (login codes, sessions, CSRF), tree (the app as a tree of objects),
diffview (side-by-side diff rows). Reads go through the store and the API's own helpers;
actions through the same callables the CLI's verbs reach (the sync runner's control, the
registry's writes)."""

from gitops.ui.routes import UiContext, add_ui_routes

__all__ = ["UiContext", "add_ui_routes"]
