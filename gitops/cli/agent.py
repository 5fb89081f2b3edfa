"""The agent's life: `run` (foreground), `up` (background, or sync the running one),
`down`, `healthcheck`."""

from __future__ import annotations

import dataclasses
import os
import time
from pathlib import Path

import click

from gitops.cli import output
from gitops.cli.agent_options import AgentOptions
from gitops.cli.client import Client
from gitops.cli.common import (DATA_DIR, EXIT_PROBLEM, client_logging, fail, one_line,
                               wait_and_report)
from gitops.cli.process import REPO_ENV, await_agent, start_agent
from gitops.errors import GitopsError
from gitops.manifests.age_keys import AGE_KEY_ENV, AGE_KEY_FILE_ENV, KeySource
from gitops.paths import DataDir
from gitops.source.base import is_git_url, redact_url


@click.command()
@click.option("--repo", "-r", required=True, envvar=REPO_ENV, show_envvar=True,
              help="Git URL or local directory (a URL with a token in it: prefer the "
                   "environment variable, which `ps` does not show).")
@AgentOptions.click_options
@DATA_DIR
@click.option("--log-format", default="auto", type=click.Choice(["auto", "json", "console"]))
@click.option("--log-level", default="info")
@click.option("--log-file", default=None, type=click.Path(dir_okay=False),
              help="Log to this file (0600, rotated at 10 MiB, 3 kept) instead of stderr.")
def run(repo: str, agent: AgentOptions, data_dir: str, log_format: str, log_level: str,
        log_file: str | None) -> None:
    """Run the agent in the foreground (Ctrl-C or SIGTERM stops it cleanly).

    \b
    Examples:
      gitops run --repo example-repo --interval 15 --log-format json
      gitops run --repo https://git.example.com/team/app.git --ref main --path k8s \\
        --webhook-secret-file /etc/gitops/hook-secret --api-port 8081
    """
    serve(repo, agent, data_dir, log_format, log_level, log_file)


def serve(repo: str, agent: AgentOptions, data_dir: str, log_format: str, log_level: str,
          log_file: str | None) -> None:
    """The agent in this process until it is stopped: `run`, and `up`'s forked child."""
    from gitops import log as logsetup
    from gitops.daemon import run_agent
    from gitops.private_files import OWNER_ONLY_UMASK
    os.umask(OWNER_ONLY_UMASK)          # the agent process: all it writes is its owner's
    os.environ.pop(REPO_ENV, None)      # read: no child (git, helm, kustomize) inherits it
    age_key = os.environ.pop(AGE_KEY_ENV, "")   # likewise: sops alone gets it, from memory
    os.environ.pop(AGE_KEY_FILE_ENV, None)
    if log_file:
        Path(log_file).parent.mkdir(parents=True, exist_ok=True)
    logsetup.configure(log_format, log_level, log_file=Path(log_file) if log_file else None)
    try:
        run_agent(dataclasses.replace(agent.config(repo, Path(data_dir)), age_key=age_key))
    except GitopsError as exc:
        _log_exit(log_file, "agent_failed", str(exc))
        fail(str(exc))
    except Exception as exc:    # noqa: BLE001 - logged where the agent's log is, then raised
        _log_exit(log_file, "agent_crashed", one_line(exc), exc_info=True)
        raise


def _log_exit(log_file: str | None, event: str, error: str, exc_info: bool = False) -> None:
    """Why the agent stops, in its log file too: stderr alone lands in agent.startup.log,
    where a user reading agent.log would not look."""
    if log_file:
        from gitops import log as logsetup
        logsetup.get("cli").error(event, error=error, exc_info=exc_info)


@click.command()
@click.argument("source")
@AgentOptions.click_options
@DATA_DIR
@click.option("--wait", is_flag=True, help="Return once every object is healthy "
              "(exit 1 on timeout, with why each unhealthy object is not).")
@click.option("--timeout", default=300.0, show_default=True, help="Seconds --wait waits.")
@click.option("--report", default="", type=click.Path(dir_okay=False),
              help="Write every object's final health as JSON to this file (implies --wait).")
def up(source: str, agent: AgentOptions, data_dir: str, wait: bool, timeout: float,
       report: str) -> None:
    """Start an agent in the background for SOURCE (directory or git URL).

    With an agent already running for the data dir, sync it now instead.
    Progress is a live table on a terminal and plain lines otherwise (CI logs).

    \b
    Examples:
      gitops up example-repo --wait --timeout 180
      gitops up https://git.example.com/team/app.git --ref main --path k8s
      gitops up . --wait --timeout 120 --report health.json   # CI
    """
    from gitops.private_files import make_private_dir
    dd = DataDir.at(data_dir)
    make_private_dir(dd.root)
    info = dd.read_agent()
    # agent.json keeps the source redacted: compare the redacted forms.
    if info and redact_url(info.get("repo", "")) != redact_url(_source_id(source)):
        fail(f"an agent for {redact_url(info.get('repo', ''))} already runs with data dir "
             f"{dd.root}; run `gitops down` first or use another --data-dir")
    started = time.monotonic()
    if info:
        client_logging()
        # Options are the agent's, from its start: one given now that differs is refused
        # (silently syncing with the old ones would look as if it applied).
        differing = agent.differences(info.get("options") or {})
        if differing:
            fail(f"the agent running for data dir {dd.root} was started with other options; "
                 f"it cannot take {', '.join(differing)} while running: `gitops down`, then "
                 "`gitops up` with them (or leave them out to sync it now)")
        Client(dd).post("/gitops/v1/sync")
    else:
        keys = KeySource(agent.decryption_key_file, os.environ.get(AGE_KEY_ENV, ""))
        try:                    # a key the agent would refuse: say so here, not in its log
            if keys:
                keys.load()
        except GitopsError as exc:
            fail(str(exc))
        pid = start_agent(dd, agent, lambda: serve(
            source, agent, str(dd.root), "json", "info", str(dd.log_file)))
        client_logging()        # structlog's import overlaps the agent's start
        with output.working("starting the agent (pod network, DNS, API)..."):
            try:
                await_agent(dd, pid, timeout=60)
            except GitopsError as exc:
                fail(str(exc))
        click.echo(f"agent started (pid {pid}), logs: {dd.log_file}")
        join = (dd.read_agent() or {}).get("join")
        if join:        # --advertise-address: other hosts may join
            click.echo(f"nodes join with: {join}")
    if wait or report:
        wait_and_report(Client(dd), timeout, report, spent=time.monotonic() - started)


def _source_id(source: str) -> str:
    return source if is_git_url(source) else str(Path(source).resolve())


@click.command()
@DATA_DIR
@click.option("--volumes", is_flag=True, help="Also remove the volumes of PersistentVolumeClaims.")
def down(data_dir: str, volumes: bool) -> None:
    """Stop the agent and remove every container, network and service address it created.

    Claims' volumes stay (the next `up` finds their data) unless --volumes is given.

    \b
    Examples:
      gitops down
      gitops down --volumes --data-dir /tmp/ci-env
    """
    from gitops.cli.teardown import tear_down
    with output.working("stopping the agent and removing what it created..."):
        try:
            removed = tear_down(DataDir.at(data_dir), volumes)
        except GitopsError as exc:
            fail(str(exc))
    if removed.volumes is not None:
        click.echo(f"removed {removed.volumes} volume(s)")
    click.echo(f"agent stopped; removed {removed.containers} container(s), the pod network "
               "and service addresses")


@click.command()
@DATA_DIR
@click.option("--timeout", default=5.0, show_default=True, help="Seconds to wait for /healthz.")
def healthcheck(data_dir: str, timeout: float) -> None:
    """Exit 0 when the agent for the data dir answers /healthz, else 1 (Docker HEALTHCHECK).

    \b
    Example:
      gitops healthcheck --data-dir /data
    """
    dd = DataDir.at(data_dir)
    info = dd.read_agent()
    if info is None:
        fail(f"no agent is running for data dir {dd.root}", EXIT_PROBLEM)
    import urllib.request
    try:
        with urllib.request.urlopen(info["url"] + "/healthz", timeout=timeout) as resp:
            body = resp.read().decode(errors="replace").strip()
    except OSError as exc:
        fail(f"agent at {info['url']} does not answer: {exc}", EXIT_PROBLEM)
    click.echo(f"{body} ({info['url']}, pid {info['pid']})")
