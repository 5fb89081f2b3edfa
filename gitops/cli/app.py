"""The `gitops` group: its common behaviour (one-line errors, --debug, logging) and every
command, each from the module of its theme."""

from __future__ import annotations

import sys
import traceback

import click

from gitops.cli import access, agent, control, datastore, manifests, node, objects, rollout, ui
from gitops.cli.common import EXIT_ERROR, client_logging, fail, one_line


class GitopsGroup(click.Group):
    """Turns errors into one line on stderr and exit 2; `--debug` (or GITOPS_DEBUG=1) adds
    the traceback. Usage errors stay click's (exit 2 with the usage line)."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except (click.exceptions.ClickException, click.exceptions.Exit,
                click.exceptions.Abort, SystemExit):
            raise
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            sys.exit(130)
        except Exception as exc:   # noqa: BLE001 - the one place errors reach the user
            if ctx.params.get("debug"):       # --debug or GITOPS_DEBUG=1
                traceback.print_exc()
            fail(one_line(exc), EXIT_ERROR)


@click.group(cls=GitopsGroup, commands=[
    agent.run, agent.up, agent.down, agent.healthcheck, node.node_agent,
    control.sync, control.rollback, control.unpin, control.suspend, control.resume,
    control.status, control.history,
    objects.get, objects.describe, objects.events, objects.logs, rollout.rollout,
    access.port_forward, access.kubeconfig,
    manifests.validate, manifests.diff, manifests.age_keygen, ui.ui,
    datastore.backup, datastore.restore, datastore.migrate, datastore.simulate_nodes,
], context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(package_name="gitops")
@click.option("--debug", is_flag=True, envvar="GITOPS_DEBUG",
              help="Show tracebacks and debug logs.")
@click.pass_context
def main(ctx: click.Context, debug: bool) -> None:
    """Run Kubernetes manifests from git on a Docker host.

    \b
    Examples:
      gitops validate example-repo            # check manifests (exit 1 on problems)
      gitops up example-repo --wait           # deploy and wait until healthy
      gitops get pods -o wide                 # what runs
      gitops down --volumes                   # remove everything

    Exit codes: 0 ok, 1 problems found (invalid, diff present, unhealthy), 2 error.
    """
    if ctx.invoked_subcommand != "up":    # `up`: once its agent is starting (client_logging)
        client_logging(debug)


@main.command()
@click.argument("shell", type=click.Choice(["bash", "zsh", "fish"]))
def completion(shell: str) -> None:
    """Print a shell completion script.

    \b
    Examples:
      eval "$(gitops completion bash)"        # in ~/.bashrc
      gitops completion fish > ~/.config/fish/completions/gitops.fish
    """
    from click.shell_completion import get_completion_class
    cls = get_completion_class(shell)
    click.echo(cls(main, {}, "gitops", "_GITOPS_COMPLETE").source())

