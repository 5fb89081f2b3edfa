"""Offline checks of manifests, no agent needed: `validate`, and `diff` against the data
dir's store."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click

from gitops.cli import output
from gitops.cli.common import (ALLOW_REMOTE_BASES, DATA_DIR, EXIT_ERROR, EXIT_OK,
                               EXIT_PROBLEM, fail)
from gitops.errors import GitopsError
from gitops.paths import DataDir

if TYPE_CHECKING:
    from gitops.sync.diff import Desired, Plan


@click.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True))
@click.option("-o", "--output", "fmt", default="text",
              type=click.Choice(["text", "json", "junit"]),
              help="text (file:line lines) | json | junit (XML for CI test reports)")
@click.option("--allow-host-access", is_flag=True,
              help="Accept hostPath, privileged, hostNetwork, hostPID and hostIPC.")
@ALLOW_REMOTE_BASES
def validate(paths: tuple[str, ...], fmt: str, allow_host_access: bool,
             allow_remote_bases: bool) -> None:
    """Validate manifests; one line per problem: file:line: Kind/name: field: message.

    Exit 0 when every manifest is valid, 1 on any problem, 2 when it cannot run.

    \b
    Examples:
      gitops validate example-repo
      gitops validate -o junit k8s/ > validate.xml    # a PR check's test report
    """
    from gitops.errors import ManifestError
    from gitops.manifests import policy
    from gitops.manifests.loader import LoadResult
    from gitops.manifests.render import render_path
    from gitops.manifests.validate import validate as check
    from gitops.source.base import oversized
    results = []
    for p in paths:
        with output.working(f"rendering and validating {p}..."):
            problem = oversized(Path(p))
            loaded = (render_path(p, allow_remote_bases=allow_remote_bases) if not problem
                      else LoadResult(errors=[ManifestError(problem, p)]))
        errors = [*loaded.errors, *check(loaded.objects),
                  *policy.check(loaded.objects, allow_host_access)]
        results.append((p, loaded.objects, errors))
    errors = [e for _, _, errs in results for e in errs]
    count = sum(len(objs) for _, objs, _ in results)
    if fmt == "json":
        click.echo(json.dumps({"objects": count, "errors": [e.as_dict() for e in errors]},
                              indent=2))
    elif fmt == "junit":
        click.echo(output.render_junit(results))
    else:
        for e in errors:
            click.echo(str(e))
        click.echo(f"{count} object(s), {len(errors)} problem(s)", err=True)
    sys.exit(EXIT_PROBLEM if errors else EXIT_OK)


@click.command()
@click.argument("source")
@click.option("--ref", default="")
@click.option("--path", "subpath", default="")
@click.option("-o", "--output", "fmt", default="text",
              type=click.Choice(["text", "json", "markdown"]))
@click.option("--values", "helm_values", multiple=True, metavar="FILE",
              help="A Helm values file, relative to the chart (repeatable).")
@click.option("--create-namespace", is_flag=True,
              help="As the agent's flag: namespaces nothing declares would be created.")
@ALLOW_REMOTE_BASES
@DATA_DIR
def diff(source: str, ref: str, subpath: str, fmt: str, helm_values: tuple[str, ...],
         create_namespace: bool, allow_remote_bases: bool, data_dir: str) -> None:
    """Show what syncing SOURCE would change in the data dir's store (nothing is changed).

    Exit 0 when nothing would change, 1 when something would, 2 on an error (an invalid
    manifest, or a change the agent's admission would refuse, such as an immutable field).
    Against a data dir no agent has used, everything is a create.

    \b
    Examples:
      gitops diff example-repo
      gitops diff . -o markdown > diff.md          # a PR comment
      gitops diff https://git.example.com/team/app.git --ref my-branch -o json
    """
    import tempfile

    from gitops.source import make_source
    from gitops.source.base import redact_url
    from gitops.sync.engine import render
    try:
        with tempfile.TemporaryDirectory() as tmp, \
                output.working(f"reading {redact_url(source)}..."):
            revision = make_source(source, Path(tmp), ref, subpath).fetch()
            desired, errors = render(revision, helm_values=helm_values,
                                     allow_remote_bases=allow_remote_bases)
            if errors:
                for e in errors:
                    click.echo(str(e), err=True)
                sys.exit(EXIT_ERROR)
            plan, errors = _plan_against_data_dir(DataDir.at(data_dir), desired,
                                                  create_namespace)
            if errors:
                for e in errors:
                    click.echo(str(e), err=True)
                sys.exit(EXIT_ERROR)
    except GitopsError as exc:
        fail(str(exc))
    click.echo(output.render_plan(plan, fmt))
    sys.exit(EXIT_PROBLEM if plan.has_changes else EXIT_OK)


def _plan_against_data_dir(dd: DataDir, desired: list[Desired], create_namespace: bool
                           ) -> tuple[Plan, list[GitopsError]]:
    """The plan of syncing `desired` into the data dir's store, read only (an empty store
    when no agent has used the data dir), and what the agent's admission would refuse."""
    from gitops.model.addresses import SERVICE_CIDR
    from gitops.store.registry import Registry
    from gitops.store.sqlite import SqliteStore
    from gitops.sync import admission
    from gitops.sync.engine import plan_against
    store = SqliteStore(dd.store if dd.store.exists() else ":memory:")
    try:
        plan = plan_against(store, desired)
        registry = Registry(store, service_cidr=store.get_state("service_cidr")
                            or SERVICE_CIDR)          # reads only: admit writes nothing
        verdict = admission.judge(registry, plan, {d.key: d for d in desired},
                                  create_namespace)
        return plan, list(verdict.errors)
    finally:
        store.close()
