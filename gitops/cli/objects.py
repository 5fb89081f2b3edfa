"""Reading objects, like kubectl: `get`, `describe`, `events`, `logs` (rendering in
gitops/cli/output.py and gitops/cli/describe.py)."""

from __future__ import annotations

import os
import sys
import time

import click

from gitops.cli import output
from gitops.cli.client import AgentNotRunning, Client, resource_path
from gitops.cli.common import DATA_DIR, NAMESPACE, OUTPUT, agent_client, fail
from gitops.errors import GitopsError
from gitops.model import KINDS, Kind, kind_for
from gitops.model.selectors import matches, parse
from gitops.paths import DataDir


def _complete_pods(ctx, param, incomplete: str) -> list[str]:
    """Pod names from the agent of the data dir given so far (or the default one)."""
    data_dir = ctx.params.get("data_dir") or os.environ.get("GITOPS_DATA_DIR") or ".gitops"
    namespace = ctx.params.get("namespace") or "default"
    try:
        items = Client(DataDir.at(data_dir)).get(
            f"/api/v1/namespaces/{namespace}/pods", timeout=2)["items"]
    except (GitopsError, OSError, KeyError, TypeError):
        return []
    return sorted(n for o in items if (n := o["metadata"]["name"]).startswith(incomplete))


def _complete_kinds(ctx, param, incomplete: str) -> list[str]:
    names = sorted({n for k in KINDS.values() for n in (k.plural, *k.short_names)})
    return [n for n in names if n.startswith(incomplete.lower())]


@click.command()
@click.argument("resource", shell_complete=_complete_kinds)
@click.argument("name", required=False)
@click.option("-n", "--namespace", default="default", show_default=True,
              help="Namespace to read.")
@click.option("-A", "--all-namespaces", is_flag=True, help="Every namespace.")
@click.option("-l", "--selector", default="", help="Label selector, e.g. app=web,tier!=db")
@click.option("-w", "--watch", is_flag=True,
              help="After the list, print objects again as they change (Ctrl-C stops).")
@OUTPUT
@DATA_DIR
def get(resource: str, name: str | None, namespace: str, all_namespaces: bool, selector: str,
        watch: bool, fmt: str, data_dir: str) -> None:
    """Show objects, like `kubectl get`: a table, or -o wide|json|yaml|name.

    RESOURCE is a kind, its plural or short name (pods, po, deploy, svc, cm, pvc, hpa,
    a custom kind...), a comma list (svc,deploy), `all`, or TYPE/NAME.

    \b
    Examples:
      gitops get pods -o wide
      gitops get deploy web -o yaml
      gitops get svc -A
      gitops get pods -l app=web,tier!=db -o name
      gitops get pods -w                       # follow changes
      gitops get all
      gitops get svc,deploy -A
      gitops get widgets.example.com           # a custom kind its CRD serves
    """
    if watch and fmt in ("json", "yaml"):
        raise click.UsageError("--watch prints tables (or -o wide|name), not json or yaml")
    if name is None and "/" in resource:
        resource, _, name = resource.partition("/")
    unknown = [w for w in resource.split(",") if w.strip() and w.strip() != "all"
               and kind_for(w.strip()) is None]
    try:
        client = Client(DataDir.at(data_dir))
    except AgentNotRunning as exc:
        fail(f'the server doesn\'t have a resource type "{unknown[0]}" (no built-in kind; '
             f"custom kinds are asked of the agent: {exc})" if unknown else str(exc))
    try:
        kinds = resolve_kinds(client, resource)
    except GitopsError as exc:
        fail(str(exc), 1)
    if (watch or name) and len(kinds) > 1:
        raise click.UsageError("a name or --watch goes with one resource type")
    sel = parse(selector) if selector else None
    texts = []
    for info in kinds:
        ns = None if (all_namespaces or not info.namespaced) else namespace

        def fetch(info=info, ns=ns) -> list[dict]:
            if name:
                items = [client.get(resource_path(info.api_version, info.plural, ns, name))]
            else:
                items = client.get(resource_path(info.api_version, info.plural, ns))["items"]
            return [o for o in items
                    if sel is None or matches(sel, o["metadata"].get("labels"))]
        show_ns = all_namespaces and info.namespaced
        try:
            if watch:
                for line in output.watch_lines(info, fetch, fmt, show_ns):
                    click.echo(line)
                return
            items = fetch()
        except GitopsError as exc:
            fail(str(exc), 1)
        except KeyboardInterrupt:
            return
        if len(kinds) > 1 and not items:
            continue
        texts.append(output.render_objects(info, items, fmt, single=bool(name),
                                           show_namespace=show_ns,
                                           typed=len(kinds) > 1 and fmt not in (
                                               "json", "yaml", "name")))
    if not texts:
        where = "" if all_namespaces else f" in {namespace} namespace"
        click.echo(f"No resources found{where}.", err=True)
        return
    click.echo("\n\n".join(texts))


def resolve_kinds(client: Client, resource: str) -> list[Kind]:
    """`pods`, `svc,deploy`, `all` (the `all` category) or a custom kind the agent serves
    (from its discovery), in the order given."""
    out: list[Kind] = []
    for word in [w.strip() for w in resource.split(",") if w.strip()]:
        known = kind_for(word)
        found = [known] if known is not None else \
            [k for k in _served(client) if word.lower() in k.categories] or \
            [k for k in [_discovered(client, word)] if k is not None]
        if not found:
            raise GitopsError(f'the server doesn\'t have a resource type "{word}"')
        out += [k for k in found if k not in out]
    return out


def _served(client: Client) -> list[Kind]:
    """Every kind the agent serves, built-in and custom, as its discovery lists them."""
    kinds = list(KINDS.values())
    try:
        docs = [client.get("/apis")]
    except GitopsError:
        return kinds
    known = {k.kind for k in kinds}
    built_in = {k.group for k in kinds} | {"authentication.k8s.io", "authorization.k8s.io"}
    for group in docs[0].get("groups") or []:
        version = (group.get("preferredVersion") or {}).get("groupVersion")
        if not version or group.get("name") in built_in:
            continue
        for r in client.get(f"/apis/{version}").get("resources") or []:
            if "/" in r["name"] or r["kind"] in known:
                continue
            kinds.append(Kind(r["kind"], version, r["name"], namespaced=r["namespaced"],
                              short_names=tuple(r.get("shortNames") or ()),
                              categories=tuple(r.get("categories") or ())))
    return kinds


def _discovered(client: Client, word: str) -> Kind | None:
    low = word.lower()
    for k in _served(client):
        if low in (k.kind.lower(), k.plural, k.kind.lower() + "s", *k.short_names) or \
                low == f"{k.plural}.{k.group}":
            return k
    return None


def _list_fn(client: Client):
    def list_fn(kind: str, namespace: str | None) -> list[dict]:
        info = kind_for(kind)
        ns = namespace if info.namespaced else None
        return client.get(resource_path(info.api_version, info.plural, ns))["items"]
    return list_fn


@click.command()
@NAMESPACE
@click.option("-A", "--all-namespaces", is_flag=True)
@click.option("--for", "for_object", default="", help="Only events about KIND/NAME, "
              "e.g. pod/web-1 or deploy/web.")
@click.option("--types", default="", help="Comma-separated event types: Normal,Warning.")
@OUTPUT
@DATA_DIR
def events(namespace: str, all_namespaces: bool, for_object: str, types: str, fmt: str,
           data_dir: str) -> None:
    """Show Events, like `kubectl events`: oldest first, repeats counted.

    \b
    Examples:
      gitops events -A
      gitops events --for deploy/web --types Warning
    """
    from gitops.cli import describe as view
    kind = name = ""
    if for_object:
        kind_text, _, name = for_object.partition("/")
        info = kind_for(kind_text)
        if info is None or not name:
            fail(f"--for must be KIND/NAME, got {for_object!r}")
        kind = info.kind
    client = agent_client(data_dir)
    try:
        items = _list_fn(client)("Event", None if all_namespaces else namespace)
    except GitopsError as exc:
        fail(str(exc), 1)
    items = view.select_events(items, kind, name, [t for t in types.split(",") if t])
    if fmt in ("json", "yaml"):
        click.echo(output.render_objects(kind_for("Event"), items, fmt, single=False,
                                         show_namespace=False))
        return
    click.echo(view.render_events(items, time.time(), all_namespaces))


@click.command()
@click.argument("resource")
@click.argument("name", required=False)
@NAMESPACE
@DATA_DIR
def describe(resource: str, name: str | None, namespace: str, data_dir: str) -> None:
    """Show an object's key fields, conditions and events, like `kubectl describe`.
    RESOURCE NAME, RESOURCE/NAME, or RESOURCE alone for every object of that kind.

    \b
    Examples:
      gitops describe deploy web
      gitops describe pod/web-5d8f7c9b6d-x2x9q
    """
    from gitops.cli import describe as view
    if name is None and "/" in resource:
        resource, _, name = resource.partition("/")
    info = kind_for(resource)
    if info is None:
        fail(f'the server doesn\'t have a resource type "{resource}"')
    client = agent_client(data_dir)
    ns = namespace if info.namespaced else None
    list_fn = _list_fn(client)
    try:
        objs = [client.get(resource_path(info.api_version, info.plural, ns, name))] if name \
            else list_fn(info.kind, ns)
        evs = list_fn("Event", namespace if info.namespaced else "default")
        texts = [view.describe(o, evs, view.gather(o, list_fn), time.time()) for o in objs]
    except GitopsError as exc:
        fail(str(exc), 1)
    if not texts:
        fail(f"No resources found in {namespace} namespace.", 1)
    click.echo("\n\n\n".join(texts))


@click.command()
@click.argument("pod", shell_complete=_complete_pods)
@click.option("-c", "--container", default="")
@NAMESPACE
@click.option("--tail", default=100, show_default=True)
@click.option("-f", "--follow", is_flag=True, help="Stream new output until the container stops.")
@click.option("-p", "--previous", is_flag=True, help="Output of the previous, terminated run.")
@DATA_DIR
def logs(pod: str, container: str, namespace: str, tail: int, follow: bool, previous: bool,
         data_dir: str) -> None:
    """Print a container's logs. POD is a pod's name, pod/NAME, or a workload
    (deploy/NAME, sts/NAME, ds/NAME, rs/NAME, job/NAME): one of its pods, as kubectl picks.

    \b
    Examples:
      gitops logs api-7d9c5b-x2kqf
      gitops logs deploy/api --tail 20 -f
      gitops logs db-5f6d7-abcde --previous        # the run before the last restart
    """
    client = agent_client(data_dir)
    try:
        pod = pod_of(client, pod, namespace)
    except GitopsError as exc:
        fail(str(exc), 1)
    path = f"/api/v1/namespaces/{namespace}/pods/{pod}/log?tailLines={tail}"
    if container:
        path += f"&container={container}"
    if previous:
        path += "&previous=true"
    try:
        if follow and not previous:
            for chunk in client.stream(path + "&follow=true"):
                sys.stdout.buffer.write(chunk)
                sys.stdout.flush()
        else:
            click.echo(client.get(path), nl=False)
    except GitopsError as exc:
        fail(str(exc), 1)
    except KeyboardInterrupt:
        pass


_WORKLOADS = ("Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job",
              "ReplicationController")


def pod_of(client: Client, target: str, namespace: str) -> str:
    """The pod TARGET names: itself, or a workload's pod (running and ready first, then
    the newest), found through the workload's selector."""
    kind_text, sep, name = target.partition("/")
    if not sep:
        return target
    info = kind_for(kind_text)
    if info is not None and info.kind == "Pod":
        return name
    if info is None or info.kind not in _WORKLOADS:
        raise GitopsError(f'cannot get logs of {kind_text}/{name}: name a pod or one of '
                          "deploy, sts, ds, rs, job, rc")
    obj = client.get(resource_path(info.api_version, info.plural, namespace, name))
    selector = (obj.get("spec") or {}).get("selector") or {}
    if info.kind == "ReplicationController":
        selector = {"matchLabels": selector}
    if not selector:
        raise GitopsError(f"{info.kind.lower()}/{name} has no selector")
    pods = [p for p in client.get(resource_path("v1", "pods", namespace))["items"]
            if not p["metadata"].get("deletionTimestamp")
            and matches(selector, p["metadata"].get("labels"))]
    if not pods:
        raise GitopsError(f"no pods found for {info.kind.lower()}/{name}")

    def rank(p: dict) -> tuple:
        status = p.get("status") or {}
        ready = any(c.get("type") == "Ready" and c.get("status") == "True"
                    for c in status.get("conditions") or [])
        return (status.get("phase") == "Running", ready,
                p["metadata"].get("creationTimestamp") or "")
    return max(pods, key=rank)["metadata"]["name"]
