"""`up --wait` / `sync --wait`: follow the agent until the applied revision is healthy.

On a TTY the objects are a live rich table (health and what each one waits for); elsewhere
(CI logs) one plain line per change of an object's health. At the deadline every unhealthy
object is explained (gitops.cli.diagnose) with the last log lines of crash-looping containers,
and the outcome can be written as a JSON report.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import click

from gitops.cli.client import Client, resource_path
from gitops.cli.diagnose import CRASH_LOOP, NOT_READY, WAITING, Finding, explain
from gitops.errors import GitopsError
from gitops.model import KINDS

HEALTHY, TIMEOUT, REFUSED, ERROR = "healthy", "timeout", "refused", "error"
LOG_LINES = 5              # of a crash-looping container, in the timeout explanation
POLL = 0.5                 # seconds between status reads
POLL_FIRST = 0.1           # ... during the first FAST_FOR seconds: most `up`s end there
FAST_FOR = 10.0


@dataclass
class Outcome:
    result: str                                   # healthy | timeout | refused | error
    status: dict = field(default_factory=dict)
    elapsed: float = 0.0
    findings: dict[str, list[Finding]] = field(default_factory=dict)   # object id -> why
    message: str = ""

    @property
    def ok(self) -> bool:
        return self.result == HEALTHY

    def report(self) -> dict:
        """Every object's final health (what `--report FILE` writes)."""
        objects = []
        for o in self.status.get("objects", []):
            entry = {k: o.get(k) for k in ("kind", "namespace", "name", "file", "line", "sync",
                                           "health", "message")}
            entry["findings"] = [f.as_dict() for f in self.findings.get(object_id(o), [])]
            objects.append(entry)
        last = self.status.get("last_sync") or {}
        return {"result": self.result, "message": self.message,
                "elapsed_seconds": round(self.elapsed, 1),
                "revision": self.status.get("applied_revision"),
                "source": self.status.get("source"),
                "last_sync": {"result": last.get("result"), "message": last.get("message"),
                              "errors": last.get("errors", [])},
                "healthy": sum(1 for o in objects if o["health"] == "Healthy"),
                "total": len(objects), "objects": objects}


def object_id(o: dict) -> str:
    return "/".join(x for x in (o["kind"], o.get("namespace") or "", o["name"]) if x)


class _Plain:
    """One line per object whose health changed, prefixed with the elapsed time."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.seen: dict[str, tuple[str, str]] = {}
        self.revision = None
        self.started = False

    def update(self, st: dict, elapsed: float, timeout: float) -> None:
        if not self.started:
            self.started = True
            self._line(elapsed, f"waiting up to {timeout:.0f}s for "
                       f"{(st.get('source') or {}).get('repo', 'the source')} to be healthy")
        if st.get("applied_revision") != self.revision:
            self.revision = st.get("applied_revision")
            if self.revision:
                self._line(elapsed, f"revision {self.revision} applied")
        for o in st.get("objects", []):
            now = (o["health"], waiting_for(o) if o["health"] != "Healthy"
                   else o.get("message") or "")
            if self.seen.get(object_id(o)) != now:
                self.seen[object_id(o)] = now
                self._line(elapsed, f"{object_id(o)}: {now[0]}"
                           + (f" ({now[1]})" if now[1] else ""))

    def _line(self, elapsed: float, text: str) -> None:
        click.echo(f"[{elapsed:6.1f}s] {text}", file=self.stream)

    def close(self) -> None:
        pass


class _Live:
    """A rich table redrawn in place: every object, its health and what it waits for."""

    def __init__(self, stream: TextIO) -> None:
        from rich.console import Console
        from rich.live import Live
        self.console = Console(file=stream)
        self.live = Live(console=self.console, refresh_per_second=4, transient=False)
        self.live.start()

    def update(self, st: dict, elapsed: float, timeout: float) -> None:
        self.live.update(progress_table(st, elapsed, timeout))

    def close(self) -> None:
        self.live.stop()


_STYLE = {"Healthy": "green", "Progressing": "yellow", "Degraded": "red", "Missing": "red",
          "Suspended": "blue"}


def progress_table(st: dict, elapsed: float, timeout: float):
    """The live view: a title with the count and time, one row per object."""
    from rich.table import Table
    objects = st.get("objects", [])
    healthy = sum(1 for o in objects if o["health"] == "Healthy")
    rev = (st.get("applied_revision") or "")[:12] or "not applied yet"
    table = Table(title=f"{healthy}/{len(objects)} healthy · revision {rev} · "
                        f"{elapsed:.0f}s of {timeout:.0f}s", title_justify="left",
                  box=None, pad_edge=False)
    for col in ("KIND", "NAMESPACE", "NAME", "SYNC", "HEALTH", "WAITING FOR"):
        table.add_column(col, no_wrap=col != "WAITING FOR")
    for o in objects:
        style = _STYLE.get(o["health"], "")
        table.add_row(o["kind"], o.get("namespace") or "-", o["name"], o.get("sync", ""),
                      f"[{style}]{o['health']}[/]" if style else o["health"],
                      "" if o["health"] == "Healthy" else waiting_for(o))
    return table


def waiting_for(o: dict) -> str:
    """What an unhealthy object waits for: its health message, and what its pods show."""
    return "; ".join(x for x in (o.get("message") or "", o.get("hint") or "") if x)


class _Hints:
    """While waiting: the most telling pod finding per unhealthy workload (crash-loop,
    image-missing...), refreshed every few seconds; a workload's selector is read once."""

    EVERY = 2.0

    def __init__(self, client: Client) -> None:
        self.client = client
        self.objects: dict[str, dict | None] = {}
        self.hints: dict[str, str] = {}
        self.at = float("-inf")

    def apply(self, st: dict, now: float) -> dict:
        unhealthy = [o for o in st.get("objects", []) if o["health"] != "Healthy"]
        if unhealthy and now - self.at >= self.EVERY:
            self.at = now
            self.hints = self._compute(unhealthy)
        return {**st, "objects": [{**o, "hint": self.hints.get(object_id(o), "")}
                                  if o["health"] != "Healthy" else o
                                  for o in st.get("objects", [])]}

    def _compute(self, unhealthy: list[dict]) -> dict[str, str]:
        pods = _safe_get(self.client, "/api/v1/pods", {}).get("items", [])
        if not pods:
            return {}
        out = {}
        for o in unhealthy:
            oid = object_id(o)
            if oid not in self.objects:
                self.objects[oid] = _read_object(self.client, o)
            # a container not ready yet is normal while it starts: named only at the end
            telling = [f for f in explain(o, self.objects[oid], pods, replicasets_of(
                self.client, unhealthy))
                       if f.reason not in (WAITING, NOT_READY)]
            if telling:
                f = telling[0]
                out[oid] = f"pod {f.pod}: {f.reason}" + (
                    f" (+{len(telling) - 1} more)" if len(telling) > 1 else "")
        return out


def _read_object(client: Client, o: dict) -> dict | None:
    info = KINDS.get(o["kind"])
    if info is None:
        return None
    ns = o.get("namespace") or None if info.namespaced else None
    return _safe_get(client, resource_path(info.api_version, info.plural, ns, o["name"]), None)


def wait_healthy(client: Client, timeout: float, *, spent: float = 0.0,
                 stream: TextIO | None = None, tty: bool | None = None,
                 clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> Outcome:
    """Poll the agent until every object of the applied revision is healthy, the first
    sync was refused, or `timeout` seconds pass (then explain what is not healthy).
    `spent`: seconds of the timeout already used (starting the agent)."""
    stream = stream or sys.stderr
    tty = stream.isatty() if tty is None else tty
    view = _Live(stream) if tty else _Plain(stream)
    hints = _Hints(client)
    start = clock() - spent
    try:
        while True:
            elapsed = clock() - start
            try:
                st = with_apps(client.get("/gitops/v1/status"))
            except GitopsError as exc:
                return Outcome(ERROR, elapsed=elapsed, message=str(exc))
            view.update(hints.apply(st, elapsed), elapsed, timeout)
            last = st.get("last_sync") or {}
            objects = st.get("objects", [])
            if last.get("result") in ("failed", "refused") and not st.get("applied_revision"):
                return Outcome(REFUSED, st, elapsed, message=last.get("message", ""))
            # Unknown: nothing on this host reports on it (no ingress controller...)
            if st.get("applied_revision") and objects and all(
                    o["health"] in ("Healthy", "Unknown") for o in objects):
                return Outcome(HEALTHY, st, elapsed)
            if elapsed >= timeout:
                return Outcome(TIMEOUT, st, elapsed, _explain_all(client, st),
                               f"timed out after {timeout:.0f}s")
            sleep(POLL_FIRST if elapsed < FAST_FOR else POLL)
    finally:
        view.close()


def with_apps(st: dict) -> dict:
    """The status as one to wait on: the objects of every Application git declares too;
    applied once every automated app applied a revision, refused when one's first sync
    was (named after it)."""
    apps = st.get("apps") or []
    if not apps:
        return st
    objects = [*st.get("objects", []), *(o for a in apps for o in a.get("objects", []))]
    waiting = [a for a in apps if (a.get("policy") or {}).get("automated")
               and not a.get("applied_revision")]
    refused = next((a for a in waiting if (a.get("last_sync") or {}).get("result")
                    in ("failed", "refused")), None)
    last = st.get("last_sync")
    if refused is not None:
        last = {**refused["last_sync"], "message": f"application {refused['name']}: "
                f"{refused['last_sync'].get('message') or ''}".rstrip(": ")}
    return {**st, "objects": objects, "last_sync": last,
            "applied_revision": None if waiting else st.get("applied_revision")}


def _explain_all(client: Client, st: dict) -> dict[str, list[Finding]]:
    unhealthy = [o for o in st.get("objects", []) if o["health"] != "Healthy"]
    if not unhealthy:
        return {}
    pods = _safe_get(client, "/api/v1/pods", {}).get("items", [])
    rs = replicasets_of(client, unhealthy)
    return {object_id(o): [_with_logs(client, f) for f in explain(o, _read_object(client, o),
                                                                   pods, rs)]
            for o in unhealthy}


def replicasets_of(client: Client, objects: list[dict]) -> list[dict]:
    """The ReplicaSets, when a Deployment is among objects (its pods are theirs)."""
    if not any(o["kind"] == "Deployment" for o in objects):
        return []
    return _safe_get(client, "/apis/apps/v1/replicasets", {}).get("items", [])


def _with_logs(client: Client, f: Finding) -> Finding:
    if f.reason != CRASH_LOOP or not f.pod:
        return f
    # maskSecrets: the agent masks the values of the Secrets the pod reads (CI logs and
    # --report files are often public; the CLI never sees those values to mask them itself).
    base = (f"/api/v1/namespaces/{f.namespace or 'default'}/pods/{f.pod}/log"
            f"?tailLines={LOG_LINES}&container={f.container}&maskSecrets=true")
    text = _safe_get(client, base + "&previous=true", "") or _safe_get(client, base, "")
    lines = tuple(ln for ln in str(text).splitlines() if ln.strip())[-LOG_LINES:]
    return Finding(f.reason, f.message, f.pod, f.container, f.namespace, lines)


def _safe_get(client: Client, path: str, default: Any) -> Any:
    try:
        return client.get(path, timeout=10)
    except GitopsError:
        return default


def render_outcome(out: Outcome) -> str:
    """What the user reads at the end: success, or per unhealthy object why."""
    objects = out.status.get("objects", [])
    if out.ok:
        return (f"all {len(objects)} object(s) healthy at revision "
                f"{out.status.get('applied_revision')} ({out.elapsed:.0f}s)")
    if out.result == ERROR:
        return f"error: {out.message}"
    if out.result == REFUSED:
        last = out.status.get("last_sync") or {}
        return "\n".join([f"sync {last.get('result')}: {last.get('message', '')}".rstrip(),
                          *(f"  {e}" for e in last.get("errors", []))])
    bad = [o for o in objects if o["health"] != "Healthy"]
    lines = [f"{out.message}: {len(bad)} of {len(objects)} object(s) not healthy"]
    if not out.status.get("applied_revision"):
        lines.append("  no revision applied yet")
    for o in bad:
        lines.append(f"  {object_id(o)}: {o['health']}"
                     + (f": {o['message']}" if o.get("message") else "")
                     + (f"  ({o['file']}:{o['line']})" if o.get("file") else ""))
        for f in out.findings.get(object_id(o), []):
            where = f"pod {f.pod}" + (f" container {f.container}" if f.container else "") \
                if f.pod else ""
            lines.append(f"    {f.reason}: " + (f"{where}: " if where else "") + f.message)
            lines += [f"      | {ln}" for ln in f.logs]
    return "\n".join(lines)


def write_report(path: str | Path, out: Outcome) -> None:
    Path(path).write_text(json.dumps(out.report(), indent=2) + "\n")
