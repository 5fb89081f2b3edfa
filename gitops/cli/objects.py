"""Reading objects, like kubectl: `get`, `describe`, `events`, `logs` (rendering in
gitops/cli/output.py and gitops/cli/describe.py)."""

from __future__ import annotations

import os
import sys
import time

import click

from gitops.cli import output
from gitops.cli.client import Client, resource_path
from gitops.cli.common import DATA_DIR, NAMESPACE, OUTPUT, agent_client, fail
from gitops.errors import GitopsError
from gitops.model import KINDS, kind_for
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

    RESOURCE is a kind, its plural or short name (pods, po, deploy, svc, cm, pvc...).

    \b
    Examples:
      gitops get pods -o wide
      gitops get deploy web -o yaml
      gitops get svc -A
      gitops get pods -l app=web,tier!=db -o name
      gitops get pods -w                       # follow changes
    """
    info = kind_for(resource)
    if info is None:
        fail(f'the server doesn\'t have a resource type "{resource}"')
    if watch and fmt in ("json", "yaml"):
        raise click.UsageError("--watch prints tables (or -o wide|name), not json or yaml")
    client = agent_client(data_dir)
    ns = None if (all_namespaces or not info.namespaced) else namespace
    sel = parse(selector) if selector else None

    def fetch() -> list[dict]:
        if name:
            items = [client.get(resource_path(info.api_version, info.plural, ns, name))]
        else:
            items = client.get(resource_path(info.api_version, info.plural, ns))["items"]
        return [o for o in items if sel is None or matches(sel, o["metadata"].get("labels"))]
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
    click.echo(output.render_objects(info, items, fmt, single=bool(name),
                                     show_namespace=show_ns))


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
    """Print a container's logs.

    \b
    Examples:
      gitops logs api-7d9c5b-x2kqf
      gitops logs api-7d9c5b-x2kqf -c api --tail 20 -f
      gitops logs db-5f6d7-abcde --previous        # the run before the last restart
    """
    path = f"/api/v1/namespaces/{namespace}/pods/{pod}/log?tailLines={tail}"
    if container:
        path += f"&container={container}"
    if previous:
        path += "&previous=true"
    client = agent_client(data_dir)
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
