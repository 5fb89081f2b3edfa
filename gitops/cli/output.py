"""How the CLI shows things: kubectl-like tables, the status tree, plans and JUnit."""

from __future__ import annotations

import contextlib
import difflib
import io
import json
import shutil
import sys
import time
from collections.abc import Callable, Iterator

import yaml

from gitops.model.kinds import Kind
from gitops.model.pods import pod_display_status
from gitops.model.secrets import mask_secret, values_of
from gitops.model.times import parse_ts
from gitops.sync.diff import Plan, compared_views


@contextlib.contextmanager
def working(message: str):
    """A spinner with `message` on a terminal while long work runs; nothing elsewhere
    (CI logs get the result lines only)."""
    if not sys.stderr.isatty():
        yield
        return
    from rich.console import Console
    with Console(stderr=True).status(message):
        yield


def age(ts: str | None) -> str:
    if not ts:
        return "<unknown>"
    secs = int(time.time() - (parse_ts(ts) or time.time()))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if secs >= size * (2 if unit != "m" else 1):
            return f"{secs // size}{unit}"
    return f"{max(secs, 0)}s"


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
                str(st.get("updatedReplicas", 0)), str(st.get("availableReplicas", 0)),
                created] + (_template_columns(spec) if wide else [])
    if kind == "StatefulSet":
        return [meta["name"], f"{st.get('readyReplicas', 0)}/{spec.get('replicas', 1)}",
                created] + (_template_columns(spec)[:2] if wide else [])
    if kind == "DaemonSet":
        return [meta["name"], *(str(st.get(k, 0)) for k in (
            "desiredNumberScheduled", "currentNumberScheduled", "numberReady",
            "updatedNumberScheduled", "numberAvailable")), created]
    if kind == "ReplicaSet":
        return [meta["name"], str(spec.get("replicas", 0)), str(st.get("replicas", 0)),
                str(st.get("readyReplicas", 0)), created] + (
                    _template_columns(spec) if wide else [])
    if kind == "Service":
        ports = ",".join(f"{p['port']}" + (f":{p['nodePort']}" if p.get("nodePort") else "")
                         + f"/{p.get('protocol', 'TCP')}" for p in spec.get("ports", []) or [])
        selector = ",".join(f"{k}={v}" for k, v in (spec.get("selector") or {}).items())
        return [meta["name"], spec.get("type", "ClusterIP"), spec.get("clusterIP", "<none>"),
                "<none>", ports or "<none>", created] + ([selector or "<none>"] if wide else [])
    if kind == "PersistentVolumeClaim":
        return [meta["name"], st.get("phase", "Pending"),
                (st.get("capacity") or {}).get("storage", ""),
                ",".join(_ACCESS.get(m, m) for m in st.get("accessModes") or []), created]
    if kind == "Job":
        want = spec.get("completions", 1)
        return [meta["name"], _job_status(st), f"{st.get('succeeded', 0)}/{want}",
                _duration(st.get("startTime"), st.get("completionTime")), created] + (
                    _template_columns(spec) if wide else [])
    if kind == "CronJob":
        return [meta["name"], spec.get("schedule", ""), str(bool(spec.get("suspend"))),
                str(len(st.get("active") or [])),
                age(st["lastScheduleTime"]) if st.get("lastScheduleTime") else "<none>",
                created]
    if kind == "Endpoints":
        addrs = [f"{a['ip']}:{p['port']}" for sub in obj.get("subsets") or []
                 for a in sub.get("addresses") or [] for p in sub.get("ports") or []]
        shown = ",".join(addrs[:3]) + (f" + {len(addrs) - 3} more..." if len(addrs) > 3
                                       else "")
        return [meta["name"], shown or "<none>", created]
    if kind == "Namespace":
        return [meta["name"], st.get("phase", "Active"), created]
    if kind in ("ConfigMap", "Secret"):
        return [meta["name"], str(len(obj.get("data") or {})), created]
    if kind == "Node":
        ready = any(c["type"] == "Ready" and c["status"] == "True"
                    for c in st.get("conditions", []))
        state = ("Ready" if ready else "NotReady") + (
            ",SchedulingDisabled" if spec.get("unschedulable") else "")
        return [meta["name"], state, "<none>", created,
                st.get("nodeInfo", {}).get("kubeletVersion", "") or "<none>"]
    if kind == "Event":
        inv = obj.get("involvedObject") or {}
        return [age(obj.get("lastTimestamp")), obj.get("type", ""), obj.get("reason", ""),
                f"{str(inv.get('kind', '')).lower()}/{inv.get('name', '')}",
                obj.get("message", "")]
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
    "Node": ["NAME", "STATUS", "ROLES", "AGE", "VERSION"],
    "PersistentVolumeClaim": ["NAME", "STATUS", "CAPACITY", "ACCESS MODES", "AGE"],
    "Job": ["NAME", "STATUS", "COMPLETIONS", "DURATION", "AGE"],
    "CronJob": ["NAME", "SCHEDULE", "SUSPEND", "ACTIVE", "LAST SCHEDULE", "AGE"],
    "Event": ["LAST SEEN", "TYPE", "REASON", "OBJECT", "MESSAGE"],
    "Endpoints": ["NAME", "ENDPOINTS", "AGE"],
    "Namespace": ["NAME", "STATUS", "AGE"],
}
# -o wide adds these, as kubectl does
_WIDE = {"Pod": ["IP", "NODE"], "Deployment": ["CONTAINERS", "IMAGES", "SELECTOR"],
         "ReplicaSet": ["CONTAINERS", "IMAGES", "SELECTOR"], "Job": ["CONTAINERS", "IMAGES",
                                                                     "SELECTOR"],
         "StatefulSet": ["CONTAINERS", "IMAGES"], "Service": ["SELECTOR"]}
_ACCESS = {"ReadWriteOnce": "RWO", "ReadOnlyMany": "ROX", "ReadWriteMany": "RWX",
           "ReadWriteOncePod": "RWOP"}


def _template_columns(spec: dict) -> list[str]:
    containers = ((spec.get("template") or {}).get("spec") or {}).get("containers") or []
    sel = spec.get("selector") or {}
    selector = ",".join([f"{k}={v}" for k, v in (sel.get("matchLabels") or {}).items()]
                        + [f"{e.get('key')} {e.get('operator', '').lower()}"
                           + (f" ({','.join(e.get('values') or [])})" if e.get("values") else "")
                           for e in sel.get("matchExpressions") or []])
    return [",".join(c.get("name", "") for c in containers) or "<none>",
            ",".join(c.get("image", "") for c in containers) or "<none>", selector or "<none>"]


def _job_status(st: dict) -> str:
    for cond in st.get("conditions") or []:
        if cond.get("status") == "True" and cond.get("type") in ("Complete", "Failed",
                                                                  "Suspended"):
            return cond["type"]
    return "Running" if st.get("active") else "Pending"


def _duration(start: str | None, end: str | None) -> str:
    if not start:
        return "<none>"
    begin = parse_ts(start, time.time())
    finish = parse_ts(end, time.time())
    secs = max(int(finish - begin), 0)
    return f"{secs // 60}m{secs % 60}s" if secs >= 60 else f"{secs}s"


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
    if wide:
        headers += _WIDE.get(info.kind, [])
    rows = [_row(info.kind, o, wide) for o in items]
    if show_namespace:
        headers = ["NAMESPACE", *headers]
        rows = [[o["metadata"].get("namespace", ""), *r] for o, r in zip(items, rows)]
    return table(headers, rows)


def watch_lines(info: Kind, fetch: Callable[[], list[dict]], fmt: str, show_namespace: bool,
                sleep: Callable[[float], None] = time.sleep,
                interval: float = 1.0) -> Iterator[str]:
    """`get -w`: the table once, then a line for every object whose row changed (new,
    updated or gone), as `kubectl get -w` prints them; it ends when `fetch` raises
    StopIteration (the CLI stops on Ctrl-C)."""
    wide = fmt == "wide"

    def rows(items: list[dict]) -> dict[tuple[str, str], list[str]]:
        if fmt == "name":
            return {(o["metadata"].get("namespace", ""), o["metadata"]["name"]):
                    [f"{info.kind.lower()}/{o['metadata']['name']}"] for o in items}
        out = {}
        for o in items:
            row = _row(info.kind, o, wide)
            if show_namespace:
                row = [o["metadata"].get("namespace", ""), *row]
            out[(o["metadata"].get("namespace", ""), o["metadata"]["name"])] = row
        return out

    headers = [] if fmt == "name" else (["NAMESPACE"] if show_namespace else []) + list(
        _HEADERS.get(info.kind, ["NAME", "AGE"])) + (_WIDE.get(info.kind, []) if wide else [])
    seen = rows(fetch())
    widths = [max(len(str(x)) for x in col) for col in zip(*([headers] if headers else []),
                                                           *seen.values())] or [0]

    def line(row: list[str]) -> str:
        return "   ".join(str(v).ljust(w) for v, w in zip(row, widths + [0] * len(row))).rstrip()
    age_at = headers.index("AGE") if "AGE" in headers else -1

    def changed(a: list[str] | None, b: list[str]) -> bool:   # AGE ticks: not a change
        return a is None or [x for i, x in enumerate(a) if i != age_at] != \
            [x for i, x in enumerate(b) if i != age_at]
    if headers:
        yield line(headers)
    yield from (line(r) for r in seen.values())
    while True:
        sleep(interval)
        try:
            now = rows(fetch())
        except StopIteration:
            return
        for key, row in now.items():
            if changed(seen.get(key), row):
                yield line(row)
        seen = now


def render_status(st: dict, children: dict[str, list[dict]] | None = None,
                  color: bool = False, width: int = 0) -> str:
    """The source as a tree: source -> objects (sync, health, why) -> the pods of workloads
    (`children`: object id as gitops.cli.progress.object_id makes it -> its pods)."""
    from rich.console import Console
    from rich.tree import Tree

    from gitops.cli.progress import object_id
    src, last = st["source"], st.get("last_sync") or {}
    head = [f"Source:    {src['repo']}" + (f" @ {src['ref']}" if src.get("ref") else "")
            + (f" path {src['path']}" if src.get("path") else ""),
            f"Revision:  {st.get('applied_revision') or '<none applied>'}",
            f"Last sync: {last.get('result', '<never>')}"
            + (f" ({last['message']})" if last.get("message") else "")]
    head += [f"  {e}" for e in last.get("errors", [])]
    if st.get("pin"):
        head.append(f"Pinned:    {st['pin']['sha']} (rollback; until `gitops unpin` "
                    "or a new commit)")
    if st.get("suspended"):
        head.append("Suspended: yes (`gitops resume` to sync again)")
    if hooks := st.get("hooks"):
        head.append(f"Hooks:     {hooks.get('result')} for {(hooks.get('revision') or '')[:12]}")
        head += [f"  {h['phase']} {h['kind']}/{h['namespace'] + '/' if h.get('namespace') else ''}"
                 f"{h['name']}  {h['status']}" + ("  (deleted)" if h.get("deleted") else "")
                 + (f"  {h['message']}" if h.get("status") == "Failed" else "")
                 for h in hooks.get("hooks") or []]
    unmanaged = [[o["kind"], o["namespace"] or "-", o["name"], ",".join(o.get("managers", [])),
                  o["health"]] for o in st.get("unmanaged") or []]
    tail = "\n\n" + "\n".join([
        "Unmanaged (made through the Kubernetes API; git leaves them alone):",
        table(["KIND", "NAMESPACE", "NAME", "MANAGERS", "HEALTH"], unmanaged)]) if unmanaged else ""
    objects = st.get("objects", [])
    if not objects:
        return "\n".join(head) + tail
    healthy = sum(1 for o in objects if o["health"] == "Healthy")
    rev = (st.get("applied_revision") or "")[:12] or "-"
    tree = Tree(f"[bold]{src['repo']}[/] @ {rev}  ({healthy}/{len(objects)} healthy)")
    children = children or {}
    for o in objects:
        ns = f"{o['namespace']}/" if o.get("namespace") else ""
        style = _HEALTH_STYLE.get(o["health"], "")
        health = f"[{style}]{o['health']}[/]" if style else o["health"]
        msg = f"  {o['message']}" if o.get("message") and o["health"] != "Healthy" else ""
        node = tree.add(f"{o['kind']}/{ns}{o['name']}  {o.get('sync') or '-'}  {health}"
                        + _escape(msg))
        for pod in children.get(object_id(o), []):
            node.add(f"Pod/{pod['metadata']['name']}  {pod_display_status(pod)}")
    # Off a terminal, lines are never wrapped (logs and greps read them whole).
    width = width or (shutil.get_terminal_size().columns if color else 1000)
    console = Console(file=io.StringIO(), width=width, force_terminal=color,
                      no_color=not color, highlight=False)
    console.print(tree)
    return "\n".join(head) + "\n\n" + console.file.getvalue().rstrip() + tail


_HEALTH_STYLE = {"Healthy": "green", "Progressing": "yellow", "Degraded": "red",
                 "Missing": "red", "Suspended": "blue"}


def _escape(text: str) -> str:
    from rich.markup import escape
    return escape(text)


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
        before, after = _shown(c)
        body = list(difflib.unified_diff(_yaml(before), _yaml(after), "live", "desired",
                                         lineterm=""))
        if md:
            out += [f"<details><summary><code>{title}</code></summary>", "", "```diff",
                    *body, "```", "</details>", ""]
        else:
            out += [title, *body]
    if not md:
        out.append(f"Plan: {summary}")
    return "\n".join(out)


def _shown(c) -> tuple[dict | None, dict | None]:
    """(live, desired) as the diff shows them: an update only what git declares (with the
    API's defaults); a Secret masked on both sides, with the values of either side."""
    if c.action == "update":
        live, desired = compared_views(c.desired, c.live)
    else:
        live, desired = (None if c.action == "create" else c.live), c.desired
    values = set().union(*(values_of(o) for o in (c.live, c.desired)
                           if o and o.get("kind") == "Secret"))
    return mask_secret(live, values), mask_secret(desired, values)


def _yaml(obj: dict | None) -> list[str]:
    return yaml.safe_dump(obj, sort_keys=True).splitlines() if obj else []


def render_junit(results: list[tuple]) -> str:
    """JUnit XML for `validate -o junit`: one testsuite per path, one testcase per object
    (classname: its file), a <failure> per problem; problems no object owns (a file that
    does not parse) get a testcase of their own, named after the file. A result's optional
    fourth item lists files not read (SOPS-encrypted, no key): <skipped> testcases."""
    from xml.etree import ElementTree as ET
    top = ET.Element("testsuites", name="gitops validate")
    total_tests = total_failures = 0
    for root, objects, errors, *rest in results:
        suite = ET.SubElement(top, "testsuite", name=root)
        cases: dict[tuple[str, str, str], ET.Element] = {}
        for obj in objects:
            key = (obj.file, obj.kind, obj.name)
            if key not in cases:
                cases[key] = ET.SubElement(suite, "testcase", classname=obj.file,
                                           name=f"{obj.kind}/{obj.name}",
                                           file=obj.file, line=str(obj.line))
        failures = 0
        for err in errors:
            key = (err.file, err.kind, err.name)
            case = cases.get(key)
            if case is None:
                case = cases[key] = ET.SubElement(
                    suite, "testcase", classname=err.file or root,
                    name=f"{err.kind}/{err.name}" if err.kind or err.name else err.file or root,
                    file=err.file, line=str(err.line))
            failure = ET.SubElement(case, "failure", message=err.message, type="ManifestError")
            failure.text = str(err)
            failures += 1
        unread = rest[0] if rest else []   # files left encrypted: skipped, not failed
        for note in unread:
            case = ET.SubElement(suite, "testcase", classname=note.file or root,
                                 name=note.file or root, file=note.file, line=str(note.line))
            ET.SubElement(case, "skipped", message=note.message)
        suite.set("tests", str(len(cases) + len(unread)))
        suite.set("skipped", str(len(unread)))
        suite.set("failures", str(failures))
        suite.set("errors", "0")
        total_tests += len(cases)
        total_failures += failures
    top.set("tests", str(total_tests))
    top.set("failures", str(total_failures))
    top.set("errors", "0")
    ET.indent(top)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(top, encoding="unicode")
