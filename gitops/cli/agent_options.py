"""The agent's options, defined once.

Each field of AgentOptions carries its click option: `AgentOptions.click_options` puts them
on `run` and `up` and hands them to the command as one `agent: AgentOptions`; `to_argv`
turns them back into arguments for the background `run` that `up` starts; `config` makes
the daemon's AgentConfig, whose fields have the same names. Adding a flag is adding a field
here (and the AgentConfig field the daemon reads).
"""

from __future__ import annotations

import functools
import ipaddress
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from gitops.cli.common import (ALLOW_REMOTE_BASES_HELP, DECRYPTION_KEY_FILE_HELP,
                               POD_NETWORK_BACKEND_HELP, POD_NETWORK_BACKENDS)

if TYPE_CHECKING:
    from gitops.daemon import AgentConfig


def _check_cidr(ctx, param, value: str) -> str:
    if value:
        try:
            net = ipaddress.IPv4Network(value)
        except ValueError as exc:
            raise click.BadParameter(str(exc)) from exc
        if net.prefixlen > 28:
            raise click.BadParameter(f"{value} is too small for Services (at most /28)")
    return value


def _check_ip(value: str) -> str:
    if value:
        try:
            ipaddress.IPv4Address(value)
        except ValueError as exc:
            raise click.BadParameter(f"{value!r} is not an IPv4 address of this host") from exc
    return value


def _check_cluster_cidr(value: str) -> str:
    try:
        net = ipaddress.IPv4Network(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from exc
    if net.prefixlen > 23:
        raise click.BadParameter(f"{value} holds fewer than two /24 pod CIDRs")
    return value


def _check_sync_options(ctx, param, value: tuple[str, ...]) -> tuple[str, ...]:
    from gitops.sync.options import app_options
    try:
        app_options(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from exc
    return value


def _check_ignore_rules(ctx, param, value: tuple[str, ...]) -> tuple[str, ...]:
    from gitops.sync.ignore import parse_flag
    for item in value:
        try:
            parse_flag(item)
        except ValueError as exc:
            raise click.BadParameter(str(exc)) from exc
    return value


def _check_jsonnet_vars(ctx, param, value: tuple[str, ...]) -> tuple[str, ...]:
    from gitops.manifests.options import parse_var
    for item in value:
        try:
            parse_var(item)
        except ValueError as exc:
            raise click.BadParameter(str(exc)) from exc
    return value


def _option(flag: str, default: Any, aliases: tuple[str, ...] = (), **click_kw: Any) -> Any:
    """A field with its default and its click option (`flag` as click spells it, and other
    names it may be given by)."""
    return field(default=default, metadata={"flag": flag, "aliases": aliases,
                                            "click": click_kw})


def _check_datastore(ctx, param, value: str) -> str:
    from gitops.store.backup import BackupError, check_datastore
    try:
        return check_datastore(value)
    except BackupError as exc:
        raise click.BadParameter(str(exc)) from exc


@dataclass(frozen=True)
class AgentOptions:
    # In the order --help lists them.
    advertise_address: str = _option(
        "--advertise-address", "", metavar="ADDR", callback=lambda c, p, v: _check_ip(v),
        help="Let other hosts join this server as nodes: serve the API on "
             "ADDR:--https-listen-port (HTTPS), write the join token to DATA_DIR/node-token "
             "and give nodes pod CIDRs from --cluster-cidr (default: single host).")
    node_name: str = _option(
        "--node-name", "", help="This host's Node name (default: the host name).")
    https_listen_port: int = _option(
        "--https-listen-port", 6443, show_default=True, type=click.IntRange(0, 65535),
        help="Port of the API on --advertise-address.")
    cluster_cidr: str = _option(
        "--cluster-cidr", "10.42.0.0/16", show_default=True,
        callback=lambda c, p, v: _check_cluster_cidr(v),
        help="Range the nodes' pod CIDRs (a /24 each) come from, with --advertise-address.")
    node_monitor_grace_period: float = _option(
        "--node-monitor-grace-period", 40.0, show_default=True, type=click.FloatRange(min=1),
        help="Seconds a node may stay silent before it is NotReady and tainted unreachable.")
    default_unreachable_toleration_seconds: int = _option(
        "--default-unreachable-toleration-seconds", 300, show_default=True,
        type=click.IntRange(min=0),
        help="How long pods without their own toleration stay on an unreachable or "
             "NotReady node before they are evicted and replaced elsewhere.")
    pod_network_backend: str = _option(
        "--pod-network-backend", "auto", show_default=True,
        type=click.Choice(POD_NETWORK_BACKENDS), help=POD_NETWORK_BACKEND_HELP)
    datastore: str = _option(
        "--datastore", "", metavar="URL", callback=_check_datastore,
        envvar="GITOPS_DATASTORE", show_envvar=True,
        help="Where the cluster state lives: the data dir's SQLite file (default) or "
             "etcd://host:2379,host2:2379,... shared by several servers (HA).")
    leader_elect_lease_duration: float = _option(
        "--leader-elect-lease-duration", 15.0, show_default=True,
        type=click.FloatRange(min=1),
        help="With several servers (--datastore etcd://): seconds a leader's Lease lasts "
             "without renewal before another server takes over its loops.")
    leader_elect_renew_deadline: float = _option(
        "--leader-elect-renew-deadline", 10.0, show_default=True,
        type=click.FloatRange(min=0.1),
        help="Seconds a leader keeps trying to renew before it stops its loops.")
    leader_elect_retry_period: float = _option(
        "--leader-elect-retry-period", 2.0, show_default=True,
        type=click.FloatRange(min=0.1),
        help="Seconds between tries to take or renew a Lease.")
    api_host: str = _option(
        "--api-address", "127.0.0.1", show_default=True,
        help="Address the API listens on; beyond loopback it is HTTPS only, with a CA kept "
             "in the data dir.")
    public_metrics: bool = _option(
        "--public-metrics", False, is_flag=True,
        help="Serve /metrics without the API token (it names Services and the source).")
    ui_read_only: bool = _option(
        "--ui-read-only", False, is_flag=True,
        help="Every web UI session is read-only (a wall screen): no sync, rollback...")
    api_port: int = _option(
        "--api-port", 0, help="API and webhook port on 127.0.0.1 (default: any free one).")
    kube_port: int = _option(
        "--kube-port", 0,
        help="HTTPS port of the Kubernetes API kubectl uses (default: the one this data dir "
             "had last, else a free one; kept across restarts so kubeconfigs stay valid).")
    webhook_secret_env: str = _option(
        "--webhook-secret-env", "", help="Environment variable holding the webhook secret.")
    webhook_secret_file: str = _option(
        "--webhook-secret-file", "", type=click.Path(dir_okay=False),
        help="File holding the webhook secret (enables /hooks/...).")
    allow_remote_bases: bool = _option(
        "--allow-remote-bases", False, is_flag=True, help=ALLOW_REMOTE_BASES_HELP)
    decryption_key_file: str = _option(
        "--decryption-key-file", "", type=click.Path(dir_okay=False),
        envvar="GITOPS_AGE_KEY_FILE", show_envvar=True, help=DECRYPTION_KEY_FILE_HELP)
    allow_host_access: bool = _option(
        "--allow-host-access", False, is_flag=True,
        help="Allow hostPath, privileged, hostNetwork, hostPID and hostIPC.")
    git_timeout: float = _option(
        "--git-timeout", 60.0, show_default=True, type=click.FloatRange(min=1),
        help="Seconds one fetch of the repo may take (git is killed past it).")
    wave_timeout: float = _option(
        "--wave-timeout", 300.0, show_default=True,
        help="Seconds a sync wave may take to become healthy.")
    prune: bool = _option(
        "--prune/--no-prune", True, show_default=True, help="Delete objects removed from git.")
    self_heal: bool = _option(
        "--self-heal/--no-self-heal", True, show_default=True,
        help="Correct drift from git (off: report it only).")
    self_heal_delay: float = _option(
        "--self-heal-delay", 2.0, show_default=True, type=click.FloatRange(min=0),
        help="Seconds from a live change git does not declare to its correction (longer "
             "when something keeps changing it back).")
    sync_options: tuple[str, ...] = _option(
        "--sync-option", (), multiple=True, metavar="NAME=VALUE",
        callback=_check_sync_options,
        help="An Argo CD sync option for every object, e.g. PruneLast=true (repeatable; "
             "an object's own annotation wins).")
    ignore_differences: str = _option(
        "--ignore-differences", "", metavar="FILE",
        help="A file in the repo, relative to --path, with Argo CD's ignoreDifferences "
             "rules (read from each revision).")
    ignore_difference: tuple[str, ...] = _option(
        "--ignore-difference", (), multiple=True, metavar="KIND[/NAME]:PATH",
        callback=_check_ignore_rules,
        help="A field git does not fight over, e.g. Deployment/web:/spec/replicas (a JSON "
             "pointer) or Deployment:.spec.replicas (a jq path); repeatable.")
    allow_empty_prune: bool = _option(
        "--allow-empty-prune", False, is_flag=True,
        help="Allow a revision with zero objects to prune everything.")
    create_namespace: bool = _option(
        "--create-namespace", False, is_flag=True,
        help="Create the namespaces objects name when the repo declares none (as Argo "
             "CD's CreateNamespace=true); without it such a revision is refused.")
    service_cidr: str = _option(
        "--service-cidr", "", callback=_check_cidr,
        help="Range Service ClusterIPs come from (default: a free /20, kept per data dir).")
    helm_values: tuple[str, ...] = _option(
        "--values", (), multiple=True, metavar="FILE",
        help="A Helm values file, relative to the chart (repeatable; later files win).")
    release_name: str = _option(
        "--release-name", "", help="Helm release name (default: the chart's name).")
    dest_namespace: str = _option(
        "--dest-namespace", "", aliases=("--namespace",), metavar="NAMESPACE",
        help="Namespace of namespaced objects that name none (and of a Helm release); "
             "default: default.")
    directory_recurse: bool = _option(
        "--directory-recurse/--no-directory-recurse", True, show_default=True,
        help="Read manifests in subdirectories of --path too.")
    directory_include: str = _option(
        "--directory-include", "", metavar="GLOB",
        help="Only files matching, relative to --path, e.g. '{app.yaml,prod/*}'.")
    directory_exclude: str = _option(
        "--directory-exclude", "", metavar="GLOB",
        help="Leave out files matching, relative to --path, e.g. 'alt/*'.")
    jsonnet_tla_str: tuple[str, ...] = _option(
        "--jsonnet-tla-str", (), multiple=True, metavar="NAME=VALUE",
        callback=_check_jsonnet_vars, help="A Jsonnet top-level argument (repeatable).")
    jsonnet_tla_code: tuple[str, ...] = _option(
        "--jsonnet-tla-code", (), multiple=True, metavar="NAME=CODE",
        callback=_check_jsonnet_vars, help="A Jsonnet top-level argument as code.")
    jsonnet_ext_var_str: tuple[str, ...] = _option(
        "--jsonnet-ext-var-str", (), multiple=True, metavar="NAME=VALUE",
        callback=_check_jsonnet_vars, help="A Jsonnet external variable (std.extVar).")
    jsonnet_ext_var_code: tuple[str, ...] = _option(
        "--jsonnet-ext-var-code", (), multiple=True, metavar="NAME=CODE",
        callback=_check_jsonnet_vars, help="A Jsonnet external variable as code.")
    jsonnet_libs: tuple[str, ...] = _option(
        "--jsonnet-libs", (), multiple=True, metavar="DIR",
        help="A Jsonnet library directory in the repo, relative to --path (repeatable).")
    pod_subnet: str = _option(
        "--pod-subnet", "",
        help="Subnet of the pod network (default: a free /24 in 10.213.0.0/16, kept per "
             "data dir).")
    node_address: str = _option(
        "--node-address", "127.0.0.1", show_default=True,
        help="Address NodePort Services listen on.")
    interval: float = _option(
        "--interval", 60.0, show_default=True, help="Seconds between polls of the source.")
    path: str = _option("--path", "", help="Subdirectory holding manifests.")
    ref: str = _option("--ref", "", help="Branch, tag or commit to deploy.")

    @classmethod
    def click_options(cls, command: Callable) -> Callable:
        """Decorator: the options on a click command, which receives them as one
        `agent: AgentOptions` argument."""
        @functools.wraps(command)
        def with_agent_options(**params: Any) -> Any:
            agent = cls(**{f.name: params.pop(f.name) for f in fields(cls)})
            return command(agent=agent, **params)
        for f in reversed(fields(cls)):     # click lists the option applied last first
            option = click.option(f.metadata["flag"], *f.metadata["aliases"], f.name,
                                  default=f.default,
                                  **f.metadata["click"])
            with_agent_options = option(with_agent_options)
        return with_agent_options

    def to_argv(self) -> list[str]:
        """The same options as arguments of a background `gitops run` (empty ones left
        out). A file is given by its absolute path: the agent reads it again later."""
        argv: list[str] = []
        for f in fields(self):
            on, _, off = f.metadata["flag"].partition("/")
            value = getattr(self, f.name)
            if isinstance(value, bool):
                argv += [on] if value else [off] if off else []
            elif isinstance(value, tuple):
                argv += [arg for item in value for arg in (on, item)]
            elif value != "":
                if isinstance(f.metadata["click"].get("type"), click.Path):
                    value = Path(value).resolve()
                argv += [on, str(value)]
        return argv

    def differences(self, running: dict) -> list[str]:
        """The options given (not left at their default) that differ from those of the
        running agent (`running`: its options as agent.json records them), as flags."""
        out = []
        for f in fields(self):
            value = getattr(self, f.name)
            if value == f.default or f.name not in running:
                continue
            theirs = running[f.name]
            if (list(value) if isinstance(value, tuple) else value) != theirs:
                flag = f.metadata["flag"].partition("/")
                shown = " ".join(value) if isinstance(value, tuple) else value
                out.append(f"{flag[0] if value is not False else flag[2]}"
                           + ("" if isinstance(value, bool) else f" {shown}"))
        return out

    def config(self, repo: str, data_dir: Path) -> AgentConfig:
        from gitops.daemon import AgentConfig   # lazily: the daemon brings the whole agent
        return AgentConfig(repo=repo, data_dir=data_dir,
                           **{f.name: getattr(self, f.name) for f in fields(self)})
