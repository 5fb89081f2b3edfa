"""The agent's options are defined once (gitops/cli/agent_options.py): the click options of
`run` and `up`, the argv `up` gives its background `run`, and the daemon's AgentConfig all
come from it, so none can drift from the others."""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path

import click
from click.testing import CliRunner

from gitops.cli.agent_options import AgentOptions

CHANGED = AgentOptions(
    api_host="0.0.0.0", public_metrics=True, api_port=8081, webhook_secret_env="HOOK",
    webhook_secret_file="/etc/hook", allow_remote_bases=True, allow_host_access=True,
    git_timeout=15.0, wave_timeout=10.0, prune=False, self_heal=False,
    allow_empty_prune=True, create_namespace=True, service_cidr="10.96.0.0/20",
    helm_values=("a.yaml", "b.yaml"),
    pod_subnet="10.213.5.0/24", node_address="10.0.0.1", interval=5.0, path="k8s",
    ref="main")


def parsed(argv: list[str]) -> AgentOptions:
    seen = []

    @click.command()
    @AgentOptions.click_options
    def command(agent: AgentOptions) -> None:
        seen.append(agent)
    res = CliRunner().invoke(command, argv)
    assert res.exit_code == 0, res.output
    return seen[0]


def test_every_field_differs_from_its_default_in_the_example():
    assert all(getattr(CHANGED, f.name) != f.default for f in fields(AgentOptions))


def test_argv_parses_back_to_the_same_options():
    assert parsed([]) == AgentOptions()
    assert parsed(AgentOptions().to_argv()) == AgentOptions()
    assert parsed(CHANGED.to_argv()) == CHANGED


def test_a_relative_secret_file_is_handed_on_absolute(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    argv = AgentOptions(webhook_secret_file="hook").to_argv()
    assert argv[argv.index("--webhook-secret-file") + 1] == str((tmp_path / "hook").resolve())


def test_the_daemon_config_gets_every_option():
    config = CHANGED.config("example-repo", Path("/data"))
    assert (config.repo, config.data_dir) == ("example-repo", Path("/data"))
    assert all(getattr(config, f.name) == getattr(CHANGED, f.name) for f in fields(CHANGED))
