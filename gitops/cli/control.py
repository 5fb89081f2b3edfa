"""Steering the running agent's sync: `sync`, `rollback`, `unpin`, `suspend`, `resume`,
and reading it: `status`, `history`."""

from __future__ import annotations

import json
import sys
import time

import click

from gitops.cli import output
from gitops.cli.client import Client, resource_path
from gitops.cli.common import (DATA_DIR, EXIT_OK, EXIT_PROBLEM, agent_client, fail,
                               wait_and_report)
from gitops.errors import GitopsError
from gitops.model import KINDS


def _control(data_dir: str, verb: str, query: str = "", wait: bool = False,
             timeout: float = 300) -> None:
    """POST a control verb, print the sync result, optionally wait for health."""
    client = agent_client(data_dir)
    try:
        res = client.post(f"/gitops/v1/{verb}{query}")
    except GitopsError as exc:
        fail(str(exc), 1)
    if "result" not in res:
        click.echo(json.dumps(res))
        return
    click.echo(f"{res.get('result')} {res.get('revision', '')} {res.get('message', '')}".strip())
    for err in res.get("errors", []):
        click.echo(err)
    ok = res.get("result") in ("synced", "unchanged")
    if ok and wait:
        wait_and_report(client, timeout, "")
    sys.exit(EXIT_OK if ok else EXIT_PROBLEM)


@click.command()
@DATA_DIR
@click.option("--wait", is_flag=True, help="Also wait until every object is healthy.")
@click.option("--timeout", default=300.0, show_default=True)
def sync(data_dir: str, wait: bool, timeout: float) -> None:
    """Sync now; print the result (exit 1 if it failed or, with --wait, is not healthy).

    \b
    Examples:
      gitops sync
      gitops sync --wait --timeout 120
    """
    _control(data_dir, "sync", wait=wait, timeout=timeout)


@click.command()
@click.option("--to", "sha", default="", help="Revision to go back to (default: the previous "
              "successfully applied one).")
@DATA_DIR
def rollback(sha: str, data_dir: str) -> None:
    """Pin the agent to an earlier revision until `gitops unpin` or a new commit.

    \b
    Examples:
      gitops rollback                  # the previous good revision
      gitops rollback --to 3f2c1ab
    """
    _control(data_dir, "rollback", f"?to={sha}" if sha else "")


@click.command()
@DATA_DIR
def unpin(data_dir: str) -> None:
    """Release a rollback pin: follow the tracked ref again.

    \b
    Example:
      gitops unpin
    """
    _control(data_dir, "unpin")


@click.command()
@DATA_DIR
def suspend(data_dir: str) -> None:
    """Stop syncing from git; what runs keeps running (and self-healing at runtime).

    \b
    Example:
      gitops suspend && gitops resume
    """
    _control(data_dir, "suspend")
    click.echo("syncing suspended")


@click.command()
@DATA_DIR
def resume(data_dir: str) -> None:
    """Resume syncing and sync now.

    \b
    Example:
      gitops resume
    """
    _control(data_dir, "resume")


@click.command()
@click.option("-o", "--output", "fmt", default="", type=click.Choice(["", "json"]),
              metavar="json", help="Output format (default: a tree).")
@DATA_DIR
def status(fmt: str, data_dir: str) -> None:
    """The source as a tree: objects with their sync and health, and the pods of workloads.

    Exit 1 when an object is not healthy or the last sync failed.

    \b
    Examples:
      gitops status
      gitops status -o json | jq '.objects[] | select(.health != "Healthy")'
    """
    client = agent_client(data_dir)
    st = client.get("/gitops/v1/status")
    if fmt == "json":
        click.echo(json.dumps(st, indent=2))
    else:
        click.echo(output.render_status(st, _workload_pods(client, st["objects"]),
                                        color=sys.stdout.isatty()))
    unhealthy = [o for o in st["objects"] if o["health"] not in ("Healthy", "Unknown")]
    sys.exit(EXIT_PROBLEM if unhealthy or (st.get("last_sync") or {}).get("result")
             in ("failed", "refused") else EXIT_OK)


def _workload_pods(client: Client, objects: list[dict]) -> dict[str, list[dict]]:
    """Object id -> the pods it owns, for the workloads among `objects`."""
    from gitops.cli.diagnose import pods_of
    from gitops.cli.progress import object_id, replicasets_of
    workloads = [o for o in objects if o["kind"] in
                 ("Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job")]
    if not workloads:
        return {}
    pods = client.get("/api/v1/pods")["items"]
    replicasets = replicasets_of(client, workloads)
    out = {}
    for o in workloads:
        info = KINDS[o["kind"]]
        try:
            obj = client.get(resource_path(info.api_version, info.plural, o["namespace"],
                                           o["name"]))
        except GitopsError:
            continue
        out[object_id(o)] = pods_of(obj, pods, replicasets)
    return out


@click.command()
@click.option("-o", "--output", "fmt", default="", type=click.Choice(["", "json"]),
              metavar="json", help="Output format (default: a table).")
@DATA_DIR
def history(fmt: str, data_dir: str) -> None:
    """Revisions applied (or refused), newest first.

    \b
    Examples:
      gitops history
      gitops history -o json
    """
    items = agent_client(data_dir).get("/gitops/v1/history")["items"]
    if fmt == "json":
        click.echo(json.dumps(items, indent=2))
        return
    rows = [[time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(e.get("at", 0))),
             (e.get("revision") or "-")[:12], e.get("result", ""),
             f"+{e.get('created', 0)} ~{e.get('configured', 0)} -{e.get('pruned', 0)}",
             e.get("message", "")] for e in items]
    click.echo(output.table(["TIME", "REVISION", "RESULT", "CHANGES", "MESSAGE"], rows))
