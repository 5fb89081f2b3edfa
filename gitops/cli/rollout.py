"""A Deployment's rollout, like `kubectl rollout`: `status` (waits) and `history`."""

from __future__ import annotations

import time

import click

from gitops.cli import output
from gitops.cli.client import resource_path
from gitops.cli.common import DATA_DIR, NAMESPACE, agent_client, fail
from gitops.errors import GitopsError
from gitops.model import kind_for


@click.group()
def rollout() -> None:
    """Read a Deployment's rollout: `status` (waits, like kubectl) and `history`.

    \b
    Examples:
      gitops rollout status deploy/web --timeout 120
      gitops rollout history deploy/web
    """


@rollout.command("status")
@click.argument("target")
@NAMESPACE
@click.option("--timeout", default=300.0, show_default=True)
@DATA_DIR
def rollout_status(target: str, namespace: str, timeout: float, data_dir: str) -> None:
    """Wait for deploy/NAME to finish rolling out; exit 1 on its progress deadline."""
    from gitops.controllers.rollout import RolloutFailed, rollout_status as check
    path = _deployment_path(target, namespace)
    client = agent_client(data_dir)
    deadline, last = time.monotonic() + timeout, ""
    while True:
        try:
            done, message = check(client.get(path))
        except RolloutFailed as exc:
            fail(str(exc), 1)
        except GitopsError as exc:
            fail(str(exc), 1)
        if message != last:
            click.echo(message)
            last = message
        if done:
            return
        if time.monotonic() >= deadline:
            fail(f"timed out waiting for the rollout of {target}", 1)
        time.sleep(0.5)


@rollout.command("history")
@click.argument("target")
@NAMESPACE
@DATA_DIR
def rollout_history(target: str, namespace: str, data_dir: str) -> None:
    """Revisions of deploy/NAME from its ReplicaSets, as `kubectl rollout history`."""
    from gitops.controllers.rollout import CHANGE_CAUSE, rollout_history as history
    client = agent_client(data_dir)
    try:
        deploy = client.get(_deployment_path(target, namespace))
        rses = client.get(resource_path("apps/v1", "replicasets", namespace))["items"]
    except GitopsError as exc:
        fail(str(exc), 1)
    uid = deploy["metadata"]["uid"]
    mine = [rs for rs in rses if any(r.get("uid") == uid and r.get("controller")
                                     for r in rs["metadata"].get("ownerReferences") or [])]
    rows = [[str(rev), (rs["metadata"].get("annotations") or {}).get(CHANGE_CAUSE, "<none>")]
            for rev, rs in history(mine)]
    click.echo(f"deployment.apps/{deploy['metadata']['name']}")
    click.echo(output.table(["REVISION", "CHANGE-CAUSE"], rows))


def _deployment_path(target: str, namespace: str) -> str:
    kind, _, name = target.partition("/")
    info = kind_for(kind)
    if info is None or info.kind != "Deployment" or not name:
        fail(f"expected deploy/NAME (Deployments only), got {target!r}")
    return resource_path("apps/v1", "deployments", namespace, name)
