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
    api_host="0.0.0.0", public_metrics=True, api_port=8081, kube_port=6443,
    webhook_secret_env="HOOK",
    webhook_secret_file="/etc/hook", allow_remote_bases=True, allow_host_access=True,
    git_timeout=15.0, wave_timeout=10.0, prune=False, self_heal=False, self_heal_delay=5.0,
    sync_options=("PruneLast=true", "CreateNamespace=true"),
    ignore_differences=".gitops/ignore.yaml",
    ignore_difference=("Deployment/web:/spec/replicas", "Deployment:.spec.replicas"),
    allow_empty_prune=True, create_namespace=True, service_cidr="10.96.0.0/20",
    helm_values=("a.yaml", "b.yaml"),
    pod_subnet="10.213.5.0/24", node_address="10.0.0.1", interval=5.0, path="k8s",
    ref="main", decryption_key_file="/etc/gitops/age.key", release_name="web",
    dest_namespace="team", directory_recurse=False, directory_include="*.yaml",
    directory_exclude="alt/*", jsonnet_tla_str=("env=prod",), jsonnet_tla_code=("n=3",),
    jsonnet_ext_var_str=("region=eu",), jsonnet_ext_var_code=("debug=false",),
    jsonnet_libs=("vendor",), ui_read_only=True, advertise_address="10.77.0.1",
    node_name="h1", https_listen_port=7443, cluster_cidr="10.50.0.0/16",
    node_monitor_grace_period=10.0, default_unreachable_toleration_seconds=5,
    pod_network_backend="vxlan",
    datastore="etcd://10.77.0.1:2379,10.77.0.2:2379", leader_elect_lease_duration=4.0,
    leader_elect_renew_deadline=3.0, leader_elect_retry_period=0.5)


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


def test_the_decryption_key_file_comes_from_the_flag_or_the_environment(tmp_path,
                                                                       monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("GITOPS_AGE_KEY_FILE", "/run/secrets/age.key")
    assert parsed([]).decryption_key_file == "/run/secrets/age.key"
    assert parsed(["--decryption-key-file", "k.txt"]).decryption_key_file == "k.txt"
    argv = AgentOptions(decryption_key_file="k.txt").to_argv()     # a path, never the key
    assert argv[argv.index("--decryption-key-file") + 1] == str((tmp_path / "k.txt").resolve())


def test_the_daemon_config_gets_every_option():
    config = CHANGED.config("example-repo", Path("/data"))
    assert (config.repo, config.data_dir) == ("example-repo", Path("/data"))
    assert all(getattr(config, f.name) == getattr(CHANGED, f.name) for f in fields(CHANGED))


def test_run_takes_the_age_key_from_the_environment_and_keeps_it_from_children(monkeypatch):
    """GITOPS_AGE_KEY reaches the agent's config (never its repr) and leaves the process
    environment, so no child (git, kustomize, docker) inherits it."""
    import os

    from gitops import daemon
    from gitops import log as logsetup
    from gitops.cli.agent import run
    key = "AGE-SECRET-KEY-1XG3XFAXA9WYV2J0DDL8PJFHRG8EP9NSFKSZQMV0MREYL7M73TYQQL3SMHX"
    seen = []
    monkeypatch.setattr(daemon, "run_agent", seen.append)
    monkeypatch.setattr(logsetup, "configure", lambda *a, **kw: None)
    monkeypatch.setenv("GITOPS_AGE_KEY", key)
    monkeypatch.setenv("GITOPS_AGE_KEY_FILE", "/run/secrets/age.key")
    umask = os.umask(0o022)
    try:
        res = CliRunner().invoke(run, ["--repo", "example-repo"])
    finally:
        os.umask(umask)
    assert res.exit_code == 0, res.output
    [config] = seen
    assert config.age_key == key and config.decryption_key_file == "/run/secrets/age.key"
    assert key not in repr(config)
    assert "GITOPS_AGE_KEY" not in os.environ and "GITOPS_AGE_KEY_FILE" not in os.environ


def test_bad_sync_options_and_ignore_rules_are_refused_by_name():
    @click.command()
    @AgentOptions.click_options
    def command(agent: AgentOptions) -> None:
        pass
    res = CliRunner().invoke(command, ["--sync-option", "Prune=confirm"])
    assert res.exit_code == 2 and "Prune=confirm" in res.output
    res = CliRunner().invoke(command, ["--sync-option", "Replase=true"])
    assert res.exit_code == 2 and 'unknown sync option "Replase=true"' in res.output
    res = CliRunner().invoke(command, ["--ignore-difference", "Deployment:.spec | length"])
    assert res.exit_code == 2 and "unsupported jq" in res.output
    res = CliRunner().invoke(command, ["--ignore-difference", "/spec/replicas"])
    assert res.exit_code == 2 and "KIND[/NAME or /NAMESPACE/NAME]:PATH" in res.output


def test_up_names_the_options_a_running_agent_was_not_started_with():
    """`up` on a running agent: options left at their default, or equal to the agent's,
    pass; any other is named (the agent cannot take it while running)."""
    running = {"helm_values": ["a.yaml"], "prune": True, "release_name": ""}
    assert AgentOptions().differences(running) == []
    assert AgentOptions(helm_values=("a.yaml",)).differences(running) == []
    assert sorted(AgentOptions(helm_values=("b.yaml",), prune=False,
                               release_name="web").differences(running)) == [
        "--no-prune", "--release-name web", "--values b.yaml"]


def test_namespace_is_another_name_of_the_destination_namespace():
    assert parsed(["--namespace", "team"]).dest_namespace == "team"
    assert parsed(["--dest-namespace", "team"]).dest_namespace == "team"


def test_create_namespace_is_the_app_wide_create_namespace_sync_option():
    from gitops.daemon import AgentConfig, _app_sync_options
    from gitops.sync.options import app_options
    plain = AgentConfig(repo="r", data_dir=Path("d"), sync_options=("PruneLast=true",))
    assert not app_options(_app_sync_options(plain)).create_namespace
    flagged = AgentConfig(repo="r", data_dir=Path("d"), sync_options=("PruneLast=true",),
                          create_namespace=True)
    options = app_options(_app_sync_options(flagged))
    assert options.create_namespace and options.prune_last


def test_a_datastore_that_is_not_etcd_or_sqlite_is_refused_at_once():
    @click.command()
    @AgentOptions.click_options
    def command(agent: AgentOptions) -> None:
        pass
    res = CliRunner().invoke(command, ["--datastore", "http://10.0.0.1:2379"])
    assert res.exit_code == 2 and "etcd://host:port" in res.output
    assert parsed(["--datastore", "etcd://a:2379,b"]).datastore == "etcd://a:2379,b"
