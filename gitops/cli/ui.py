"""`gitops ui`: a login link to the agent's web UI."""

from __future__ import annotations

import webbrowser

import click

from gitops.cli.common import DATA_DIR, agent_client, fail
from gitops.errors import GitopsError


@click.command()
@click.option("--read-only", is_flag=True, help="A session that can look but not act "
              "(no sync, rollback, restart, delete).")
@click.option("--open", "open_browser", is_flag=True, help="Open it in the default browser.")
@DATA_DIR
def ui(read_only: bool, open_browser: bool, data_dir: str) -> None:
    """Print a one-time login URL for the web UI the agent serves at /ui.

    The URL works once, within two minutes: the browser trades it for a session cookie
    and is sent on to /ui/, so the link in its history is spent. The API token never
    goes into a URL.

    \b
    Examples:
      gitops ui                      # print the link; open it in a browser
      gitops ui --open
      gitops ui --read-only          # for a wall screen
    """
    client = agent_client(data_dir)
    try:
        res = client.post("/gitops/v1/ui/login-codes" + ("?read_only=1" if read_only else ""))
    except GitopsError as exc:
        fail(str(exc))
    url = client.url + res["path"]
    click.echo(url)
    if open_browser and not webbrowser.open(url):
        click.echo("no browser could be opened here; open the URL above", err=True)
