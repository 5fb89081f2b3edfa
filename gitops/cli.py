"""The `gitops` command: thin verbs over the agent's API, the store and the runtime."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import traceback
from pathlib import Path

import click

from gitops.client import AgentNotRunning, Client, resource_path
from gitops.errors import GitopsError
from gitops.model import KINDS, kind_for
from gitops.model.selectors import matches, parse
from gitops.paths import DataDir
from gitops.source.base import is_git_url, redact_url
from gitops import output

DATA_DIR = click.option("--data-dir", default=".gitops", show_default=True,
                        envvar="GITOPS_DATA_DIR", show_envvar=True,
                        type=click.Path(file_okay=False), help="Agent state directory.")
OUTPUT = click.option("-o", "--output", "fmt", default="",
                      type=click.Choice(["", "json", "yaml", "wide", "name"]),
                      metavar="json|yaml|wide|name", help="Output format (default: a table).")
# `gitops up` hands the source to its background `gitops run` in this variable: a token in
# the URL would be on the command line otherwise, which `ps` shows to every local user.
REPO_ENV = "GITOPS_REPO"
# Exit codes, the same for every verb (CI relies on them).
EXIT_OK, EXIT_PROBLEM, EXIT_ERROR = 0, 1, 2


def _fail(message: str, code: int = EXIT_ERROR) -> None:
    click.echo(f"error: {_condense(message)}", err=True)
    sys.exit(code)


def _condense(text: str) -> str:
    """git's own reason (its `fatal:` line) instead of everything it printed."""
    lines = text.splitlines()
    fatal = [ln[ln.index("fatal:"):].strip(" '") for ln in lines if "fatal:" in ln]
    return f"{lines[0].split(':')[0]}: {fatal[0]}" if fatal else text


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
            _fail(_one_line(exc), EXIT_ERROR)


def _one_line(exc: Exception) -> str:
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


def _complete_pods(ctx, param, incomplete: str) -> list[str]:
    """Pod names from the agent of the data dir given so far (or the default one)."""
    data_dir = ctx.params.get("data_dir") or os.environ.get("GITOPS_DATA_DIR") or ".gitops"
    namespace = ctx.params.get("namespace") or "default"
    try:
        items = Client(DataDir.at(data_dir)).get(
            f"/api/v1/namespaces/{namespace}/pods", timeout=2)["items"]
    except (GitopsError, OSError, KeyError, TypeError):
        return []
    return sorted(n for o in items if (n := o["metadata"]["name"]).startswith(incomplete))


def _complete_kinds(ctx, param, incomplete: str) -> list[str]:
    names = sorted({n for k in KINDS.values() for n in (k.plural, *k.short_names)})
    return [n for n in names if n.startswith(incomplete.lower())]


@click.group(cls=GitopsGroup, context_settings={"help_option_names": ["-h", "--help"],
                                                "max_content_width": 100})
@click.version_option(package_name="gitops")
@click.option("--debug", is_flag=True, envvar="GITOPS_DEBUG",
              help="Show tracebacks and debug logs.")
def main(debug: bool) -> None:
    """Run Kubernetes manifests from git on a Docker host.

    \b
    Examples:
      gitops validate example-repo            # check manifests (exit 1 on problems)
      gitops up example-repo --wait           # deploy and wait until healthy
      gitops get pods -o wide                 # what runs
      gitops down --volumes                   # remove everything

    Exit codes: 0 ok, 1 problems found (invalid, diff present, unhealthy), 2 error.
    """
    from gitops import log as logsetup     # lazily: structlog costs most of a --help
    logsetup.configure("auto", "debug" if debug else "warning")   # client verbs: stderr


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


# -- the agent ---------------------------------------------------------------------------
def _agent_options(f):
    f = click.option("--ref", default="", help="Branch, tag or commit to deploy.")(f)
    f = click.option("--path", "subpath", default="", help="Subdirectory holding manifests.")(f)
    f = click.option("--interval", default=60.0, show_default=True,
                     help="Seconds between polls of the source.")(f)
    f = click.option("--node-address", default="127.0.0.1", show_default=True,
                     help="Address NodePort Services listen on.")(f)
    f = click.option("--pod-subnet", default="", help="Subnet of the pod network "
                     "(default: a free /24 in 10.213.0.0/16, kept per data dir).")(f)
    f = click.option("--values", "helm_values", multiple=True, metavar="FILE",
                     help="A Helm values file, relative to the chart (repeatable; later "
                     "files win).")(f)
    f = click.option("--service-cidr", default="", callback=_check_cidr,
                     help="Range Service ClusterIPs come from "
                     "(default: a free /20, kept per data dir).")(f)
    f = click.option("--allow-empty-prune", is_flag=True,
                     help="Allow a revision with zero objects to prune everything.")(f)
    f = click.option("--self-heal/--no-self-heal", default=True, show_default=True,
                     help="Correct drift from git (off: report it only).")(f)
    f = click.option("--prune/--no-prune", default=True, show_default=True,
                     help="Delete objects removed from git.")(f)
    f = click.option("--wave-timeout", default=300.0, show_default=True,
                     help="Seconds a sync wave may take to become healthy.")(f)
    f = click.option("--git-timeout", default=60.0, show_default=True,
                     type=click.FloatRange(min=1),
                     help="Seconds one fetch of the repo may take (git is killed past it).")(f)
    f = click.option("--allow-host-access", is_flag=True,
                     help="Allow hostPath, privileged, hostNetwork, hostPID and hostIPC.")(f)
    f = _allow_remote_bases(f)
    f = click.option("--webhook-secret-file", default="", type=click.Path(dir_okay=False),
                     help="File holding the webhook secret (enables /hooks/...).")(f)
    f = click.option("--webhook-secret-env", default="",
                     help="Environment variable holding the webhook secret.")(f)
    f = click.option("--api-port", default=0,
                     help="API and webhook port on 127.0.0.1 (default: any free one).")(f)
    f = click.option("--public-metrics", is_flag=True,
                     help="Serve /metrics without the API token (it names Services and the "
                          "source).")(f)
    f = click.option("--api-address", default="127.0.0.1", show_default=True,
                     help="Address the API listens on; beyond loopback it is HTTPS only, "
                          "with a CA kept in the data dir.")(f)
    return f


_allow_remote_bases = click.option(
    "--allow-remote-bases", is_flag=True,
    help="Let Kustomize fetch remote resources and bases (URLs, github.com/..., git@...).")


def _check_cidr(ctx, param, value: str) -> str:
    if value:
        import ipaddress
        try:
            net = ipaddress.IPv4Network(value)
        except ValueError as exc:
            raise click.BadParameter(str(exc)) from exc
        if net.prefixlen > 28:
            raise click.BadParameter(f"{value} is too small for Services (at most /28)")
    return value


def _agent_flags(ref, subpath, interval, node_address, pod_subnet, allow_empty_prune,
                 self_heal, prune, wave_timeout, allow_host_access, webhook_secret_file,
                 webhook_secret_env, api_port, api_address="127.0.0.1",
                 service_cidr="", helm_values=(), git_timeout=60.0,
                 allow_remote_bases=False, public_metrics=False) -> list[str]:
    """The same options, as arguments for a background `gitops run`."""
    args = ["--interval", str(interval), "--node-address", node_address,
            "--api-port", str(api_port), "--api-address", api_address,
            "--wave-timeout", str(wave_timeout), "--git-timeout", str(git_timeout),
            "--self-heal" if self_heal else "--no-self-heal",
            "--prune" if prune else "--no-prune"]
    if webhook_secret_file:
        webhook_secret_file = str(Path(webhook_secret_file).resolve())
    for flag, value in (("--ref", ref), ("--path", subpath), ("--pod-subnet", pod_subnet),
                        ("--service-cidr", service_cidr),
                        ("--webhook-secret-file", webhook_secret_file),
                        ("--webhook-secret-env", webhook_secret_env)):
        if value:
            args += [flag, value]
    args += [arg for values in helm_values for arg in ("--values", values)]
    return args + (["--allow-empty-prune"] if allow_empty_prune else []) + (
        ["--allow-host-access"] if allow_host_access else []) + (
        ["--allow-remote-bases"] if allow_remote_bases else []) + (
        ["--public-metrics"] if public_metrics else [])


@main.command()
@click.option("--repo", "-r", required=True, envvar=REPO_ENV, show_envvar=True,
              help="Git URL or local directory (a URL with a token in it: prefer the "
                   "environment variable, which `ps` does not show).")
@_agent_options
@DATA_DIR
@click.option("--log-format", default="auto", type=click.Choice(["auto", "json", "console"]))
@click.option("--log-level", default="info")
@click.option("--log-file", default=None, type=click.Path(dir_okay=False),
              help="Log to this file (0600, rotated at 10 MiB, 3 kept) instead of stderr.")
def run(repo, ref, subpath, interval, node_address, pod_subnet, service_cidr, helm_values,
        allow_empty_prune, self_heal,
        prune, wave_timeout, git_timeout, allow_host_access, allow_remote_bases,
        webhook_secret_file, webhook_secret_env, api_port, public_metrics, api_address,
        data_dir, log_format, log_level, log_file) -> None:
    """Run the agent in the foreground (Ctrl-C or SIGTERM stops it cleanly).

    \b
    Examples:
      gitops run --repo example-repo --interval 15 --log-format json
      gitops run --repo https://git.example.com/team/app.git --ref main --path k8s \\
        --webhook-secret-file /etc/gitops/hook-secret --api-port 8081
    """
    from gitops import log as logsetup
    from gitops.daemon import AgentConfig, run_agent
    from gitops.private_files import OWNER_ONLY_UMASK
    os.umask(OWNER_ONLY_UMASK)          # the agent process: all it writes is its owner's
    os.environ.pop(REPO_ENV, None)      # read: no child (git, helm, kustomize) inherits it
    if log_file:
        Path(log_file).parent.mkdir(parents=True, exist_ok=True)
    logsetup.configure(log_format, log_level, log_file=Path(log_file) if log_file else None)
    try:
        run_agent(AgentConfig(repo=repo, data_dir=Path(data_dir), ref=ref, path=subpath,
                              interval=interval, node_address=node_address,
                              api_port=api_port, api_host=api_address,
                              pod_subnet=pod_subnet, service_cidr=service_cidr,
                              helm_values=tuple(helm_values),
                              allow_empty_prune=allow_empty_prune, self_heal=self_heal,
                              prune=prune, wave_timeout=wave_timeout,
                              allow_host_access=allow_host_access,
                              allow_remote_bases=allow_remote_bases,
                              webhook_secret_file=webhook_secret_file,
                              webhook_secret_env=webhook_secret_env,
                              git_timeout=git_timeout, public_metrics=public_metrics))
    except GitopsError as exc:
        _log_exit(log_file, "agent_failed", str(exc))
        _fail(str(exc))
    except Exception as exc:    # noqa: BLE001 - logged where the agent's log is, then raised
        _log_exit(log_file, "agent_crashed", _one_line(exc), exc_info=True)
        raise


def _log_exit(log_file: str | None, event: str, error: str, exc_info: bool = False) -> None:
    """Why the agent stops, in its log file too: stderr alone lands in agent.startup.log,
    where a user reading agent.log would not look."""
    if log_file:
        from gitops import log as logsetup
        logsetup.get("cli").error(event, error=error, exc_info=exc_info)


def _source_id(source: str) -> str:
    return source if is_git_url(source) else str(Path(source).resolve())


@main.command()
@click.argument("source")
@_agent_options
@DATA_DIR
@click.option("--wait", is_flag=True, help="Return once every object is healthy "
              "(exit 1 on timeout, with why each unhealthy object is not).")
@click.option("--timeout", default=300.0, show_default=True, help="Seconds --wait waits.")
@click.option("--report", default="", type=click.Path(dir_okay=False),
              help="Write every object's final health as JSON to this file (implies --wait).")
def up(source, ref, subpath, interval, node_address, pod_subnet, service_cidr, helm_values,
       allow_empty_prune, self_heal,
       prune, wave_timeout, git_timeout, allow_host_access, allow_remote_bases,
       webhook_secret_file, webhook_secret_env, api_port, public_metrics, api_address,
       data_dir, wait, timeout, report) -> None:
    """Start an agent in the background for SOURCE (directory or git URL).

    With an agent already running for the data dir, sync it now instead.
    Progress is a live table on a terminal and plain lines otherwise (CI logs).

    \b
    Examples:
      gitops up example-repo --wait --timeout 180
      gitops up https://git.example.com/team/app.git --ref main --path k8s
      gitops up . --wait --timeout 120 --report health.json   # CI
    """
    from gitops.private_files import OWNER_ONLY_UMASK, make_private_dir
    dd = DataDir.at(data_dir)
    make_private_dir(dd.root)
    info = dd.read_agent()
    # agent.json keeps the source redacted: compare the redacted forms.
    if info and redact_url(info.get("repo", "")) != redact_url(_source_id(source)):
        _fail(f"an agent for {redact_url(info.get('repo', ''))} already runs with data dir "
              f"{dd.root}; run `gitops down` first or use another --data-dir")
    started = time.monotonic()
    if info:
        Client(dd).post("/gitops/v1/sync")
    else:
        # The source goes in the environment (owner-only in /proc), not on the command line.
        cmd = [sys.executable, "-m", "gitops", "run", "--data-dir", str(dd.root),
               "--log-format", "json", "--log-file", str(dd.log_file),
               *_agent_flags(ref, subpath, interval, node_address, pod_subnet,
                             allow_empty_prune, self_heal, prune, wave_timeout,
                             allow_host_access, webhook_secret_file, webhook_secret_env,
                             api_port, api_address, service_cidr, helm_values,
                             git_timeout, allow_remote_bases, public_metrics)]
        # Its stderr: a crash before its log is set up still lands where `up` shows it.
        fd = os.open(dd.startup_log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with open(fd, "wb") as startup:
            proc = subprocess.Popen(cmd, stdout=startup, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL, start_new_session=True,
                                    env={**os.environ, REPO_ENV: source},
                                    umask=OWNER_ONLY_UMASK)
        with output.working("starting the agent (pod network, DNS, API)..."):
            _await_agent(dd, proc, timeout=60)
        click.echo(f"agent started (pid {proc.pid}), logs: {dd.log_file}")
    if wait or report:
        _wait_and_report(Client(dd), timeout, report, spent=time.monotonic() - started)


def _wait_and_report(client: Client, timeout: float, report: str, spent: float = 0) -> None:
    """--wait: follow health to the end, explain failures, write --report; exit 0 or 1."""
    from gitops import progress
    out = progress.wait_healthy(client, timeout, spent=spent)
    click.echo(progress.render_outcome(out), err=not out.ok)
    if report:
        progress.write_report(report, out)
    sys.exit(EXIT_OK if out.ok else EXIT_PROBLEM)


def _await_agent(dd: DataDir, proc: subprocess.Popen, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        info = dd.read_agent()
        if info and info.get("pid") == proc.pid:
            return
        if proc.poll() is not None:
            tail = [*_tail(dd.log_file, 15), *_tail(dd.startup_log, 15)][-15:]
            _fail("agent exited during start-up:\n  " + "\n  ".join(tail))
        time.sleep(0.1)
    _fail(f"agent did not start within {timeout:.0f}s; see {dd.log_file} and "
          f"{dd.startup_log}")


def _tail(path: Path, lines: int) -> list[str]:
    try:
        return path.read_text(errors="replace").splitlines()[-lines:]
    except FileNotFoundError:
        return []


@main.command()
@DATA_DIR
@click.option("--volumes", is_flag=True, help="Also remove the volumes of PersistentVolumeClaims.")
def down(data_dir, volumes) -> None:
    """Stop the agent and remove every container, network and service address it created.

    Claims' volumes stay (the next `up` finds their data) unless --volumes is given.

    \b
    Examples:
      gitops down
      gitops down --volumes --data-dir /tmp/ci-env
    """
    with output.working("stopping the agent and removing what it created..."):
        _down(DataDir.at(data_dir), volumes)


def _down(dd: DataDir, volumes: bool) -> None:
    from gitops.agent.docker import DockerRuntime, docker_host
    info = dd.read_agent()
    if info:
        try:
            Client(dd).post("/gitops/v1/shutdown", timeout=10)
        except GitopsError:
            os.kill(info["pid"], signal.SIGTERM)
        if not _wait_exit(info["pid"], 20):
            os.kill(info["pid"], signal.SIGKILL)
            _wait_exit(info["pid"], 5)
    from gitops.agent.runtime import RuntimeUnavailable
    host = docker_host(dd.recorded("docker_host"))
    runtime = DockerRuntime(dd.instance, host=host)
    try:
        removed = runtime.cleanup(f"gitops-{dd.instance}")
    except RuntimeUnavailable:    # the engine is down: nothing removed, say so
        _fail(f"no Docker engine answers at {host} (scripts/start-docker.sh starts one; set "
              "DOCKER_HOST to use another); run `gitops down` again once it answers")
    except GitopsError as exc:
        _fail(f"{exc}; run `gitops down` again once the engine answers")
    if cidr := dd.recorded("service_cidr"):
        from gitops.proxy.vip import LoopbackVips
        LoopbackVips(cidr=cidr, label=f"lo:g{dd.instance}").remove_all()
    if volumes:
        removed_volumes = runtime.remove_volumes()
        click.echo(f"removed {removed_volumes} volume(s)")
    for suffix in ("", "-wal", "-shm"):
        Path(str(dd.store) + suffix).unlink(missing_ok=True)
    shutil.rmtree(dd.root / "pods", ignore_errors=True)   # files of pods that are gone now
    dd.agent_file.unlink(missing_ok=True)
    click.echo(f"agent stopped; removed {removed} container(s), the pod network and "
               "service addresses")


def _wait_exit(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except OSError:
            return True
        time.sleep(0.1)
    return False


@main.command()
@DATA_DIR
@click.option("--timeout", default=5.0, show_default=True, help="Seconds to wait for /healthz.")
def healthcheck(data_dir, timeout) -> None:
    """Exit 0 when the agent for the data dir answers /healthz, else 1 (Docker HEALTHCHECK).

    \b
    Example:
      gitops healthcheck --data-dir /data
    """
    dd = DataDir.at(data_dir)
    info = dd.read_agent()
    if info is None:
        _fail(f"no agent is running for data dir {dd.root}", EXIT_PROBLEM)
    import urllib.request
    try:
        with urllib.request.urlopen(info["url"] + "/healthz", timeout=timeout) as resp:
            body = resp.read().decode(errors="replace").strip()
    except OSError as exc:
        _fail(f"agent at {info['url']} does not answer: {exc}", EXIT_PROBLEM)
    click.echo(f"{body} ({info['url']}, pid {info['pid']})")


# -- reading state -----------------------------------------------------------------------
@main.command()
@click.argument("resource", shell_complete=_complete_kinds)
@click.argument("name", required=False)
@click.option("-n", "--namespace", default="default", show_default=True,
              help="Namespace to read.")
@click.option("-A", "--all-namespaces", is_flag=True, help="Every namespace.")
@click.option("-l", "--selector", default="", help="Label selector, e.g. app=web,tier!=db")
@click.option("-w", "--watch", is_flag=True,
              help="After the list, print objects again as they change (Ctrl-C stops).")
@OUTPUT
@DATA_DIR
def get(resource, name, namespace, all_namespaces, selector, watch, fmt, data_dir) -> None:
    """Show objects, like `kubectl get`: a table, or -o wide|json|yaml|name.

    RESOURCE is a kind, its plural or short name (pods, po, deploy, svc, cm, pvc...).

    \b
    Examples:
      gitops get pods -o wide
      gitops get deploy web -o yaml
      gitops get svc -A
      gitops get pods -l app=web,tier!=db -o name
      gitops get pods -w                       # follow changes
    """
    info = kind_for(resource)
    if info is None:
        _fail(f'the server doesn\'t have a resource type "{resource}"')
    if watch and fmt in ("json", "yaml"):
        raise click.UsageError("--watch prints tables (or -o wide|name), not json or yaml")
    client = _client(data_dir)
    ns = None if (all_namespaces or not info.namespaced) else namespace
    sel = parse(selector) if selector else None

    def fetch() -> list[dict]:
        if name:
            items = [client.get(resource_path(info.api_version, info.plural, ns, name))]
        else:
            items = client.get(resource_path(info.api_version, info.plural, ns))["items"]
        return [o for o in items if sel is None or matches(sel, o["metadata"].get("labels"))]
    show_ns = all_namespaces and info.namespaced
    try:
        if watch:
            for line in output.watch_lines(info, fetch, fmt, show_ns):
                click.echo(line)
            return
        items = fetch()
    except GitopsError as exc:
        _fail(str(exc), 1)
    except KeyboardInterrupt:
        return
    click.echo(output.render_objects(info, items, fmt, single=bool(name),
                                     show_namespace=show_ns))


@main.command()
@click.option("-o", "--output", "fmt", default="", type=click.Choice(["", "json"]),
              metavar="json", help="Output format (default: a tree).")
@DATA_DIR
def status(fmt, data_dir) -> None:
    """The source as a tree: objects with their sync and health, and the pods of workloads.

    Exit 1 when an object is not healthy or the last sync failed.

    \b
    Examples:
      gitops status
      gitops status -o json | jq '.objects[] | select(.health != "Healthy")'
    """
    client = _client(data_dir)
    st = client.get("/gitops/v1/status")
    if fmt == "json":
        click.echo(json.dumps(st, indent=2))
    else:
        click.echo(output.render_status(st, _workload_pods(client, st["objects"]),
                                        color=sys.stdout.isatty()))
    unhealthy = [o for o in st["objects"] if o["health"] != "Healthy"]
    sys.exit(EXIT_PROBLEM if unhealthy or (st.get("last_sync") or {}).get("result")
             in ("failed", "refused") else EXIT_OK)


def _workload_pods(client: Client, objects: list[dict]) -> dict[str, list[dict]]:
    """Object id -> the pods it owns, for the workloads among `objects`."""
    from gitops.diagnose import pods_of
    from gitops.progress import object_id
    workloads = [o for o in objects if o["kind"] in
                 ("Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job")]
    if not workloads:
        return {}
    pods = client.get("/api/v1/pods")["items"]
    out = {}
    for o in workloads:
        info = KINDS[o["kind"]]
        try:
            obj = client.get(resource_path(info.api_version, info.plural, o["namespace"],
                                           o["name"]))
        except GitopsError:
            continue
        out[object_id(o)] = pods_of(obj, pods)
    return out


@main.command()
@click.argument("pod", shell_complete=_complete_pods)
@click.option("-c", "--container", default="")
@click.option("-n", "--namespace", default="default", show_default=True)
@click.option("--tail", default=100, show_default=True)
@click.option("-f", "--follow", is_flag=True, help="Stream new output until the container stops.")
@click.option("-p", "--previous", is_flag=True, help="Output of the previous, terminated run.")
@DATA_DIR
def logs(pod, container, namespace, tail, follow, previous, data_dir) -> None:
    """Print a container's logs.

    \b
    Examples:
      gitops logs api-7d9c5b-x2kqf
      gitops logs api-7d9c5b-x2kqf -c api --tail 20 -f
      gitops logs db-5f6d7-abcde --previous        # the run before the last restart
    """
    path = f"/api/v1/namespaces/{namespace}/pods/{pod}/log?tailLines={tail}"
    if container:
        path += f"&container={container}"
    if previous:
        path += "&previous=true"
    client = _client(data_dir)
    try:
        if follow and not previous:
            for chunk in client.stream(path + "&follow=true"):
                sys.stdout.buffer.write(chunk)
                sys.stdout.flush()
        else:
            click.echo(client.get(path), nl=False)
    except GitopsError as exc:
        _fail(str(exc), 1)
    except KeyboardInterrupt:
        pass


def _control(data_dir: str, verb: str, query: str = "", wait: bool = False,
             timeout: float = 300) -> None:
    """POST a control verb, print the sync result, optionally wait for health."""
    client = _client(data_dir)
    try:
        res = client.post(f"/gitops/v1/{verb}{query}")
    except GitopsError as exc:
        _fail(str(exc), 1)
    if "result" not in res:
        click.echo(json.dumps(res))
        return
    click.echo(f"{res.get('result')} {res.get('revision', '')} {res.get('message', '')}".strip())
    for err in res.get("errors", []):
        click.echo(err)
    ok = res.get("result") in ("synced", "unchanged")
    if ok and wait:
        _wait_and_report(client, timeout, "")
    sys.exit(EXIT_OK if ok else EXIT_PROBLEM)


@main.command()
@DATA_DIR
@click.option("--wait", is_flag=True, help="Also wait until every object is healthy.")
@click.option("--timeout", default=300.0, show_default=True)
def sync(data_dir, wait, timeout) -> None:
    """Sync now; print the result (exit 1 if it failed or, with --wait, is not healthy).

    \b
    Examples:
      gitops sync
      gitops sync --wait --timeout 120
    """
    _control(data_dir, "sync", wait=wait, timeout=timeout)


@main.command()
@click.option("--to", "sha", default="", help="Revision to go back to (default: the previous "
              "successfully applied one).")
@DATA_DIR
def rollback(sha, data_dir) -> None:
    """Pin the agent to an earlier revision until `gitops unpin` or a new commit.

    \b
    Examples:
      gitops rollback                  # the previous good revision
      gitops rollback --to 3f2c1ab
    """
    _control(data_dir, "rollback", f"?to={sha}" if sha else "")


@main.command()
@DATA_DIR
def unpin(data_dir) -> None:
    """Release a rollback pin: follow the tracked ref again.

    \b
    Example:
      gitops unpin
    """
    _control(data_dir, "unpin")


@main.command()
@DATA_DIR
def suspend(data_dir) -> None:
    """Stop syncing from git; what runs keeps running (and self-healing at runtime).

    \b
    Example:
      gitops suspend && gitops resume
    """
    _control(data_dir, "suspend")
    click.echo("syncing suspended")


@main.command()
@DATA_DIR
def resume(data_dir) -> None:
    """Resume syncing and sync now.

    \b
    Example:
      gitops resume
    """
    _control(data_dir, "resume")


@main.command()
@click.option("-o", "--output", "fmt", default="", type=click.Choice(["", "json"]),
              metavar="json", help="Output format (default: a table).")
@DATA_DIR
def history(fmt, data_dir) -> None:
    """Revisions applied (or refused), newest first.

    \b
    Examples:
      gitops history
      gitops history -o json
    """
    items = _client(data_dir).get("/gitops/v1/history")["items"]
    if fmt == "json":
        click.echo(json.dumps(items, indent=2))
        return
    rows = [[time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(e.get("at", 0))),
             (e.get("revision") or "-")[:12], e.get("result", ""),
             f"+{e.get('created', 0)} ~{e.get('configured', 0)} -{e.get('pruned', 0)}",
             e.get("message", "")] for e in items]
    click.echo(output.table(["TIME", "REVISION", "RESULT", "CHANGES", "MESSAGE"], rows))


# -- kubectl ---------------------------------------------------------------------------
@main.command()
@click.option("-n", "--namespace", default="default", show_default=True,
              help="Namespace the kubeconfig's context uses.")
@DATA_DIR
def kubeconfig(namespace, data_dir) -> None:
    """Print a kubeconfig so kubectl talks to this agent (KUBECONFIG=FILE kubectl ...).

    \b
    Examples:
      gitops kubeconfig > kubeconfig.yaml
      KUBECONFIG=kubeconfig.yaml kubectl get pods -o wide
    """
    from gitops.api.kube.kubeconfig import kubeconfig as build
    try:
        click.echo(build(DataDir.at(data_dir), namespace), nl=False)
    except GitopsError as exc:
        _fail(str(exc))


# -- offline checks ----------------------------------------------------------------------
@main.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True))
@click.option("-o", "--output", "fmt", default="text",
              type=click.Choice(["text", "json", "junit"]),
              help="text (file:line lines) | json | junit (XML for CI test reports)")
@click.option("--allow-host-access", is_flag=True,
              help="Accept hostPath, privileged, hostNetwork, hostPID and hostIPC.")
@_allow_remote_bases
def validate(paths, fmt, allow_host_access, allow_remote_bases) -> None:
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


@main.command()
@click.argument("source")
@click.option("--ref", default="")
@click.option("--path", "subpath", default="")
@click.option("-o", "--output", "fmt", default="text",
              type=click.Choice(["text", "json", "markdown"]))
@click.option("--values", "helm_values", multiple=True, metavar="FILE",
              help="A Helm values file, relative to the chart (repeatable).")
@_allow_remote_bases
@DATA_DIR
def diff(source, ref, subpath, fmt, helm_values, allow_remote_bases, data_dir) -> None:
    """Show what syncing SOURCE would change in the data dir's store (nothing is changed).

    Exit 0 when nothing would change, 1 when something would, 2 on an error (e.g. an
    invalid manifest). Against a data dir no agent has used, everything is a create.

    \b
    Examples:
      gitops diff example-repo
      gitops diff . -o markdown > diff.md          # a PR comment
      gitops diff https://git.example.com/team/app.git --ref my-branch -o json
    """
    from gitops.source import make_source
    from gitops.store.sqlite import SqliteStore
    from gitops.sync.engine import plan_against, render
    dd = DataDir.at(data_dir)
    try:
        import tempfile
        from gitops.source.base import redact_url
        with tempfile.TemporaryDirectory() as tmp, \
                output.working(f"reading {redact_url(source)}..."):
            revision = make_source(source, Path(tmp), ref, subpath).fetch()
            desired, errors = render(revision, helm_values=tuple(helm_values),
                                     allow_remote_bases=allow_remote_bases)
            if errors:
                for e in errors:
                    click.echo(str(e), err=True)
                sys.exit(2)
            store = SqliteStore(dd.store if dd.store.exists() else ":memory:")
            plan = plan_against(store, desired)
    except GitopsError as exc:
        _fail(str(exc))
    click.echo(output.render_plan(plan, fmt))
    sys.exit(1 if plan.has_changes else 0)


# -- events and describe (rendering in gitops/describe.py) --------------------------------
def _list_fn(client: Client):
    def list_fn(kind: str, namespace: str | None) -> list[dict]:
        info = kind_for(kind)
        ns = namespace if info.namespaced else None
        return client.get(resource_path(info.api_version, info.plural, ns))["items"]
    return list_fn


@main.command()
@click.option("-n", "--namespace", default="default", show_default=True)
@click.option("-A", "--all-namespaces", is_flag=True)
@click.option("--for", "for_object", default="", help="Only events about KIND/NAME, "
              "e.g. pod/web-1 or deploy/web.")
@click.option("--types", default="", help="Comma-separated event types: Normal,Warning.")
@OUTPUT
@DATA_DIR
def events(namespace, all_namespaces, for_object, types, fmt, data_dir) -> None:
    """Show Events, like `kubectl events`: oldest first, repeats counted.

    \b
    Examples:
      gitops events -A
      gitops events --for deploy/web --types Warning
    """
    from gitops import describe as view
    kind = name = ""
    if for_object:
        kind_text, _, name = for_object.partition("/")
        info = kind_for(kind_text)
        if info is None or not name:
            _fail(f"--for must be KIND/NAME, got {for_object!r}")
        kind = info.kind
    client = _client(data_dir)
    try:
        items = _list_fn(client)("Event", None if all_namespaces else namespace)
    except GitopsError as exc:
        _fail(str(exc), 1)
    items = view.select_events(items, kind, name, [t for t in types.split(",") if t])
    if fmt in ("json", "yaml"):
        click.echo(output.render_objects(kind_for("Event"), items, fmt, single=False,
                                         show_namespace=False))
        return
    click.echo(view.render_events(items, time.time(), all_namespaces))


@main.command()
@click.argument("resource")
@click.argument("name", required=False)
@click.option("-n", "--namespace", default="default", show_default=True)
@DATA_DIR
def describe(resource, name, namespace, data_dir) -> None:
    """Show an object's key fields, conditions and events, like `kubectl describe`.
    RESOURCE NAME, RESOURCE/NAME, or RESOURCE alone for every object of that kind.

    \b
    Examples:
      gitops describe deploy web
      gitops describe pod/web-5d8f7c9b6d-x2x9q
    """
    from gitops import describe as view
    if name is None and "/" in resource:
        resource, _, name = resource.partition("/")
    info = kind_for(resource)
    if info is None:
        _fail(f'the server doesn\'t have a resource type "{resource}"')
    client = _client(data_dir)
    ns = namespace if info.namespaced else None
    list_fn = _list_fn(client)
    try:
        objs = [client.get(resource_path(info.api_version, info.plural, ns, name))] if name \
            else list_fn(info.kind, ns)
        evs = list_fn("Event", namespace if info.namespaced else "default")
        texts = [view.describe(o, evs, view.gather(o, list_fn), time.time()) for o in objs]
    except GitopsError as exc:
        _fail(str(exc), 1)
    if not texts:
        _fail(f"No resources found in {namespace} namespace.", 1)
    click.echo("\n\n\n".join(texts))


@main.group()
def rollout() -> None:
    """Read a Deployment's rollout: `status` (waits, like kubectl) and `history`.

    \b
    Examples:
      gitops rollout status deploy/web --timeout 120
      gitops rollout history deploy/web
    """


@rollout.command("status")
@click.argument("target")
@click.option("-n", "--namespace", default="default", show_default=True)
@click.option("--timeout", default=300.0, show_default=True)
@DATA_DIR
def rollout_status(target, namespace, timeout, data_dir) -> None:
    """Wait for deploy/NAME to finish rolling out; exit 1 on its progress deadline."""
    from gitops.controllers.rollout import RolloutFailed, rollout_status as check
    path = _deployment_path(target, namespace)
    client = _client(data_dir)
    deadline, last = time.monotonic() + timeout, ""
    while True:
        try:
            done, message = check(client.get(path))
        except RolloutFailed as exc:
            _fail(str(exc), 1)
        except GitopsError as exc:
            _fail(str(exc), 1)
        if message != last:
            click.echo(message)
            last = message
        if done:
            return
        if time.monotonic() >= deadline:
            _fail(f"timed out waiting for the rollout of {target}", 1)
        time.sleep(0.5)


@rollout.command("history")
@click.argument("target")
@click.option("-n", "--namespace", default="default", show_default=True)
@DATA_DIR
def rollout_history(target, namespace, data_dir) -> None:
    """Revisions of deploy/NAME from its ReplicaSets, as `kubectl rollout history`."""
    from gitops.controllers.rollout import CHANGE_CAUSE, rollout_history as history
    client = _client(data_dir)
    try:
        deploy = client.get(_deployment_path(target, namespace))
        rses = client.get(resource_path("apps/v1", "replicasets", namespace))["items"]
    except GitopsError as exc:
        _fail(str(exc), 1)
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
        _fail(f"expected deploy/NAME (Deployments only), got {target!r}")
    return resource_path("apps/v1", "deployments", namespace, name)


def _client(data_dir: str) -> Client:
    try:
        return Client(DataDir.at(data_dir))
    except AgentNotRunning as exc:
        _fail(str(exc))
        raise





# -- port-forward ------------------------------------------------------------------------
@main.command("port-forward")
@click.argument("target")
@click.argument("ports", nargs=-1, required=True)
@click.option("-n", "--namespace", default="default", show_default=True)
@click.option("--address", default="127.0.0.1", show_default=True,
              help="Local address to listen on.")
@DATA_DIR
def port_forward(target, ports, namespace, address, data_dir) -> None:
    """Forward local ports to a pod or Service: TARGET is pod/NAME or svc/NAME, each PORT
    LOCAL:REMOTE, PORT or :REMOTE. Runs until interrupted.

    \b
    Examples:
      gitops port-forward svc/web 8080:80
      gitops port-forward pod/db-0 :5432 --address 127.0.0.1
    """
    from gitops.proxy import portforward as pf
    try:
        tgt, specs = pf.parse_target(target), [pf.parse_port(p) for p in ports]
    except GitopsError as exc:
        _fail(str(exc))
    client = _client(data_dir)
    fetch = _forward_fetch(client, namespace, tgt, specs)
    try:
        first = fetch()
    except GitopsError as exc:
        _fail(str(exc), 1)
    if tgt.kind == "pod" and not all(first):
        _fail(f'pod "{tgt.name}" is not running or has no such port', 1)
    forwarder = pf.Forwarder(address, specs, fetch)

    def announce(port, spec):
        click.echo(f"Forwarding from {address}:{port} -> {spec.remote}")
    try:
        from gitops.proxy.loop import run
        run(pf.run(forwarder, announce))
    except GitopsError as exc:
        _fail(str(exc), 1)


def _forward_fetch(client: Client, namespace: str, tgt, specs):
    from gitops.proxy import portforward as pf
    base = f"/api/v1/namespaces/{namespace}"

    def fetch():
        if tgt.kind == "pod":
            pod = client.get(f"{base}/pods/{tgt.name}")
            return [pf.pod_targets(pod, s.remote) for s in specs]
        svc = client.get(f"{base}/services/{tgt.name}")
        try:
            eps = client.get(f"{base}/endpoints/{tgt.name}")
        except GitopsError:   # not made yet: no endpoints
            eps = None
        return [pf.service_targets(svc, eps, s.remote) for s in specs]
    return fetch
