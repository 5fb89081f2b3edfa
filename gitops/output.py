"""How the CLI shows things: kubectl-like tables, status, plans, and the --wait loop."""

from __future__ import annotations

import difflib
import json
import sys
import time
from datetime import datetime

import click
import yaml

from gitops.client import Client
from gitops.errors import GitopsError
from gitops.model.kinds import Kind
from gitops.sync.diff import Plan, declared_view, mask_secret


def age(ts: str | None) -> str:
    if not ts:
        return "<unknown>"
    secs = int(time.time() - datetime.fromisoformat(ts.replace("Z", "+00:00")).timestamp())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if secs >= size * (2 if unit != "m" else 1):
            return f"{secs // size}{unit}"
    return f"{max(secs, 0)}s"


def pod_display_status(pod: dict) -> str:
    if pod["metadata"].get("deletionTimestamp"):
        return "Terminating"
    st = pod.get("status", {})
    inits = st.get("initContainerStatuses") or []
    if any(not c.get("ready") for c in inits) and not any(
            "running" in c.get("state", {}) for c in st.get("containerStatuses") or []):
        for cs in inits:
            state = cs.get("state", {})
            if "waiting" in state and state["waiting"].get("reason") != "ContainerCreating":
                return f"Init:{state['waiting']['reason']}"
            if state.get("terminated", {}).get("exitCode", 0) != 0:
                return f"Init:{state['terminated'].get('reason', 'Error')}"
        return f"Init:{sum(1 for c in inits if c.get('ready'))}/{len(inits)}"
    for cs in st.get("containerStatuses", []) or []:
        state = cs.get("state", {})
        if "waiting" in state and state["waiting"].get("reason") != "ContainerCreating":
            return state["waiting"]["reason"]
        if "terminated" in state and st.get("phase") == "Running":
            return state["terminated"].get("reason", "Error")
    if st.get("phase") == "Pending" and st.get("containerStatuses"):
        return "ContainerCreating"
    return st.get("phase", "Pending")


def _row(kind: str, obj: dict, wide: bool) -> list[str]:
    meta, spec, st = obj["metadata"], obj.get("spec", {}), obj.get("status", {})
    created = age(meta.get("creationTimestamp"))
    if kind == "Pod":
        cs = st.get("containerStatuses", []) or []
        ready = f"{sum(1 for c in cs if c.get('ready'))}/{len(spec.get('containers', []))}"
        row = [meta["name"], ready, pod_display_status(obj),
               str(sum(c.get("restartCount", 0) for c in cs)), created]
        return row + ([st.get("podIP", "<none>"), spec.get("nodeName", "<none>")] if wide
                      else [])
    if kind == "Deployment":
        want = spec.get("replicas", 1)
        return [meta["name"], f"{st.get('readyReplicas', 0)}/{want}",
                str(st.get("updatedReplicas", 0)), str(st.get("availableReplicas", 0)), created]
    if kind == "StatefulSet":
        return [meta["name"], f"{st.get('readyReplicas', 0)}/{spec.get('replicas', 1)}", created]
    if kind == "DaemonSet":
        return [meta["name"], *(str(st.get(k, 0)) for k in (
            "desiredNumberScheduled", "currentNumberScheduled", "numberReady",
            "updatedNumberScheduled", "numberAvailable")), created]
    if kind == "ReplicaSet":
        return [meta["name"], str(spec.get("replicas", 0)), str(st.get("replicas", 0)),
                str(st.get("readyReplicas", 0)), created]
    if kind == "Service":
        ports = ",".join(f"{p['port']}" + (f":{p['nodePort']}" if p.get("nodePort") else "")
                         + f"/{p.get('protocol', 'TCP')}" for p in spec.get("ports", []) or [])
        return [meta["name"], spec.get("type", "ClusterIP"), spec.get("clusterIP", "<none>"),
                "<none>", ports or "<none>", created]
    if kind in ("ConfigMap", "Secret"):
        return [meta["name"], str(len(obj.get("data") or {})), created]
    if kind == "Node":
        ready = any(c["type"] == "Ready" and c["status"] == "True"
                    for c in st.get("conditions", []))
        return [meta["name"], "Ready" if ready else "NotReady", created]
    return [meta["name"], created]


_HEADERS = {
    "Pod": ["NAME", "READY", "STATUS", "RESTARTS", "AGE"],
    "Deployment": ["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"],
    "ReplicaSet": ["NAME", "DESIRED", "CURRENT", "READY", "AGE"],
    "StatefulSet": ["NAME", "READY", "AGE"],
    "DaemonSet": ["NAME", "DESIRED", "CURRENT", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"],
    "Service": ["NAME", "TYPE", "CLUSTER-IP", "EXTERNAL-IP", "PORT(S)", "AGE"],
    "ConfigMap": ["NAME", "DATA", "AGE"],
    "Secret": ["NAME", "DATA", "AGE"],
    "Node": ["NAME", "STATUS", "AGE"],
}


def table(headers: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(str(x)) for x in col) for col in zip(headers, *rows)]
    lines = ["   ".join(str(v).ljust(w) for v, w in zip(r, widths)).rstrip()
             for r in [headers, *rows]]
    return "\n".join(lines)


def render_objects(info: Kind, items: list[dict], fmt: str, single: bool,
                   show_namespace: bool) -> str:
    if fmt in ("json", "yaml"):
        data = items[0] if single and items else {
            "apiVersion": "v1", "kind": "List", "items": items}
        return json.dumps(data, indent=2) if fmt == "json" else yaml.safe_dump(data,
                                                                               sort_keys=False)
    if fmt == "name":
        return "\n".join(f"{info.kind.lower()}/{o['metadata']['name']}" for o in items)
    if not items:
        return "No resources found."
    wide = fmt == "wide"
    headers = list(_HEADERS.get(info.kind, ["NAME", "AGE"]))
    if wide and info.kind == "Pod":
        headers += ["IP", "NODE"]
    rows = [_row(info.kind, o, wide) for o in items]
    if show_namespace:
        headers = ["NAMESPACE", *headers]
        rows = [[o["metadata"].get("namespace", ""), *r] for o, r in zip(items, rows)]
    return table(headers, rows)


def render_status(st: dict) -> str:
    src, last = st["source"], st.get("last_sync") or {}
    lines = [f"Source:    {src['repo']}" + (f" @ {src['ref']}" if src.get("ref") else "")
             + (f" path {src['path']}" if src.get("path") else ""),
             f"Revision:  {st.get('applied_revision') or '<none applied>'}",
             f"Last sync: {last.get('result', '<never>')}"
             + (f" ({last['message']})" if last.get("message") else "")]
    lines += [f"  {e}" for e in last.get("errors", [])]
    if st.get("pin"):
        lines.append(f"Pinned:    {st['pin']['sha']} (rollback; until `gitops unpin` "
                     "or a new commit)")
    if st.get("suspended"):
        lines.append("Suspended: yes (`gitops resume` to sync again)")
    rows = [[o["kind"], o["namespace"] or "-", o["name"], o.get("sync", ""), o["health"],
             o["message"]] for o in st["objects"]]
    if rows:
        lines += ["", table(["KIND", "NAMESPACE", "NAME", "SYNC", "HEALTH", "MESSAGE"], rows)]
    unmanaged = [[o["kind"], o["namespace"] or "-", o["name"], ",".join(o.get("managers", [])),
                  o["health"]] for o in st.get("unmanaged") or []]
    if unmanaged:
        lines += ["", "Unmanaged (made through the Kubernetes API; git leaves them alone):",
                  table(["KIND", "NAMESPACE", "NAME", "MANAGERS", "HEALTH"], unmanaged)]
    return "\n".join(lines)


def render_plan(plan: Plan, fmt: str) -> str:
    if fmt == "json":
        return json.dumps({"changes": [
            {"action": c.action, "kind": c.key.kind, "namespace": c.key.namespace,
             "name": c.key.name, "file": c.file, "line": c.line,
             "fields": [{"path": f.path, "desired": f.desired, "live": f.live}
                        for f in c.fields]} for c in plan.changes]}, indent=2, default=str)
    summary = ", ".join(f"{plan.count(a)} to {a}" for a in ("create", "update", "prune"))
    summary = f"{summary}, {plan.count('unchanged')} unchanged."
    md = fmt == "markdown"
    out = ["### gitops diff", "", f"**Plan:** {summary}", ""] if md else []
    for c in plan.changes:
        if c.action in ("unchanged", "skip"):
            continue
        title = f"{c.action}: {c.key}" + (f"  ({c.file}:{c.line})" if c.file else "")
        body = list(difflib.unified_diff(_before(c), _yaml(mask_secret(c.desired))
                                         if c.action != "prune" else [],
                                         "live", "desired", lineterm=""))
        if md:
            out += [f"<details><summary><code>{title}</code></summary>", "", "```diff",
                    *body, "```", "</details>", ""]
        else:
            out += [title, *body]
    if not md:
        out.append(f"Plan: {summary}")
    return "\n".join(out)


def _before(c) -> list[str]:
    if c.action == "create":
        return []
    if c.action == "update":   # only what git declares: defaults are not noise
        return _yaml(mask_secret(declared_view(c.live, c.desired)))
    return _yaml(mask_secret(c.live))


def _yaml(obj: dict | None) -> list[str]:
    return yaml.safe_dump(obj, sort_keys=True).splitlines() if obj else []


def wait_healthy(client: Client, timeout: float) -> bool:
    """Poll the agent until the applied revision is healthy; explain what is not on timeout."""
    deadline = time.monotonic() + max(timeout, 0)
    last_line = ""
    while True:
        try:
            st = client.get("/gitops/v1/status")
        except GitopsError as exc:
            click.echo(f"error: {exc}", err=True)
            return False
        last = st.get("last_sync") or {}
        objects = st["objects"]
        pending = [o for o in objects if o["health"] != "Healthy"]
        if last.get("result") in ("failed", "refused") and not st.get("applied_revision"):
            click.echo(render_status(st), err=True)
            return False
        if st.get("applied_revision") and objects and not pending:
            click.echo(f"all {len(objects)} object(s) healthy at revision "
                       f"{st['applied_revision']}")
            return True
        line = f"waiting: {len(objects) - len(pending)}/{len(objects)} healthy" + (
            f"; {pending[0]['kind']}/{pending[0]['name']}: {pending[0]['health']} "
            f"{pending[0]['message']}" if pending else "")
        if line != last_line and not sys.stderr.isatty():
            click.echo(line, err=True)
        last_line = line
        if time.monotonic() >= deadline:
            click.echo(f"timed out after {timeout:.0f}s; not healthy:", err=True)
            click.echo(render_status(st), err=True)
            return False
        time.sleep(0.5)
