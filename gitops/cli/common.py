"""What every command shares: the common options, the exit codes, how an error reaches the
user, and the client of the data dir's agent."""

from __future__ import annotations

import os
import sys
from typing import NoReturn

import click

from gitops.cli.client import AgentNotRunning, Client
from gitops.errors import GitopsError
from gitops.paths import DataDir


def client_logging(debug: bool | None = None) -> None:
    """Client verbs log to stderr, warnings only (debug with --debug). structlog costs
    most of a --help to import: `up` calls this once its agent process is starting, so
    the two imports overlap. debug=None: the group's --debug flag."""
    from gitops import log as logsetup
    if debug is None:
        ctx = click.get_current_context(silent=True)
        debug = bool(ctx and ctx.find_root().params.get("debug"))
    logsetup.configure("auto", "debug" if debug else "warning")

DATA_DIR = click.option("--data-dir", default=".gitops", show_default=True,
                        envvar="GITOPS_DATA_DIR", show_envvar=True,
                        type=click.Path(file_okay=False), help="Agent state directory.")
OUTPUT = click.option("-o", "--output", "fmt", default="",
                      type=click.Choice(["", "json", "yaml", "wide", "name"]),
                      metavar="json|yaml|wide|name", help="Output format (default: a table).")
NAMESPACE = click.option("-n", "--namespace", default="default", show_default=True)
# gitops.agent.podnet.Backend's values (that module is pure and small)
POD_NETWORK_BACKENDS = ("auto", "host-gw", "vxlan")
POD_NETWORK_BACKEND_HELP = (
    "How pods reach pods on other nodes: host-gw (a route via the node's address; hosts on "
    "one segment), vxlan (a tunnel device, gitops.vx), auto (a route when the node's "
    "address is on a directly connected subnet, else the tunnel).")
ALLOW_REMOTE_BASES_HELP = ("Let Kustomize fetch remote resources and bases (URLs, "
                           "github.com/..., git@...).")
ALLOW_REMOTE_BASES = click.option("--allow-remote-bases", is_flag=True,
                                  help=ALLOW_REMOTE_BASES_HELP)
DECRYPTION_KEY_FILE_HELP = ("age key file (owner-only) decrypting SOPS-encrypted manifests; "
                            "the key itself may come in GITOPS_AGE_KEY instead.")
DECRYPTION_KEY_FILE = click.option(
    "--decryption-key-file", default="", envvar="GITOPS_AGE_KEY_FILE", show_envvar=True,
    type=click.Path(dir_okay=False), help=DECRYPTION_KEY_FILE_HELP)
# Exit codes, the same for every verb (CI relies on them).
EXIT_OK, EXIT_PROBLEM, EXIT_ERROR = 0, 1, 2


def fail(message: str, code: int = EXIT_ERROR) -> NoReturn:
    click.echo(f"error: {_condense(message)}", err=True)
    sys.exit(code)


def _condense(text: str) -> str:
    """git's own reason (its `fatal:` line) instead of everything it printed."""
    lines = text.splitlines()
    fatal = [ln[ln.index("fatal:"):].strip(" '") for ln in lines if "fatal:" in ln]
    return f"{lines[0].split(':')[0]}: {fatal[0]}" if fatal else text


def one_line(exc: Exception) -> str:
    """What the user reads for an error: the cause in their terms, on one line if we can."""
    text = str(exc) or type(exc).__name__
    if type(exc).__module__.split(".")[0] == "docker":
        if "Error while fetching server API version" in text:
            host = os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"
            return (f"no Docker engine answers at {host} (scripts/start-docker.sh starts "
                    "one; set DOCKER_HOST to use another)")
        return text
    if not isinstance(exc, (GitopsError, OSError)):   # a bug: say so, in one line
        return f"{text.splitlines()[0]} ({type(exc).__name__}; --debug shows the traceback)"
    return text


def agent_client(data_dir: str) -> Client:
    """The client of the agent that owns `data_dir`; exit 2 when none runs."""
    try:
        return Client(DataDir.at(data_dir))
    except AgentNotRunning as exc:
        fail(str(exc))


def wait_and_report(agent: Client, timeout: float, report: str, spent: float = 0) -> NoReturn:
    """--wait: follow health to the end, explain failures, write --report; exit 0 or 1."""
    from gitops.cli import progress
    out = progress.wait_healthy(agent, timeout, spent=spent)
    click.echo(progress.render_outcome(out), err=not out.ok)
    if report:
        progress.write_report(report, out)
    sys.exit(EXIT_OK if out.ok else EXIT_PROBLEM)
