"""The `gitops` command: thin verbs over the agent's API, the store and the runtime."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import click

from gitops import log as logsetup
from gitops.client import AgentNotRunning, Client, resource_path
from gitops.errors import GitopsError
from gitops.model import kind_for
from gitops.model.selectors import matches, parse
from gitops.paths import DataDir
from gitops.source.base import is_git_url
from gitops import output

DATA_DIR = click.option("--data-dir", default=".gitops", show_default=True,
                        type=click.Path(file_okay=False), help="Agent state directory.")
OUTPUT = click.option("-o", "--output", "fmt", default="", help="json | yaml | wide | name")


def _fail(message: str, code: int = 2) -> None:
    click.echo(f"error: {message}", err=True)
    sys.exit(code)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="gitops")
def main() -> None:
    """Run Kubernetes manifests from git on a Docker host."""
    logsetup.configure("auto", "warning")   # client verbs: warnings only, on stderr


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
    f = click.option("--allow-empty-prune", is_flag=True,
                     help="Allow a revision with zero objects to prune everything.")(f)
    f = click.option("--self-heal/--no-self-heal", default=True, show_default=True,
                     help="Correct drift from git (off: report it only).")(f)
    f = click.option("--prune/--no-prune", default=True, show_default=True,
                     help="Delete objects removed from git.")(f)
    f = click.option("--wave-timeout", default=300.0, show_default=True,
                     help="Seconds a sync wave may take to become healthy.")(f)
    f = click.option("--allow-host-access", is_flag=True,
                     help="Allow hostPath, privileged, hostNetwork, hostPID and hostIPC.")(f)
    f = click.option("--webhook-secret-file", default="", type=click.Path(dir_okay=False),
                     help="File holding the webhook secret (enables /hooks/...).")(f)
    f = click.option("--webhook-secret-env", default="",
                     help="Environment variable holding the webhook secret.")(f)
    f = click.option("--api-port", default=0,
                     help="API and webhook port on 127.0.0.1 (default: any free one).")(f)
    return f


def _agent_flags(ref, subpath, interval, node_address, pod_subnet, allow_empty_prune,
                 self_heal, prune, wave_timeout, allow_host_access, webhook_secret_file,
                 webhook_secret_env, api_port) -> list[str]:
    """The same options, as arguments for a background `gitops run`."""
    args = ["--interval", str(interval), "--node-address", node_address,
            "--api-port", str(api_port),
            "--wave-timeout", str(wave_timeout),
            "--self-heal" if self_heal else "--no-self-heal",
            "--prune" if prune else "--no-prune"]
    if webhook_secret_file:
        webhook_secret_file = str(Path(webhook_secret_file).resolve())
    for flag, value in (("--ref", ref), ("--path", subpath), ("--pod-subnet", pod_subnet),
                        ("--webhook-secret-file", webhook_secret_file),
                        ("--webhook-secret-env", webhook_secret_env)):
        if value:
            args += [flag, value]
    return args + (["--allow-empty-prune"] if allow_empty_prune else []) + (
        ["--allow-host-access"] if allow_host_access else [])


@main.command()
@click.option("--repo", "-r", required=True, help="Git URL or local directory.")
@_agent_options
@DATA_DIR
@click.option("--log-format", default="auto", type=click.Choice(["auto", "json", "console"]))
@click.option("--log-level", default="info")
def run(repo, ref, subpath, interval, node_address, pod_subnet, allow_empty_prune, self_heal,
        prune, wave_timeout, allow_host_access, webhook_secret_file, webhook_secret_env,
        api_port, data_dir, log_format, log_level) -> None:
    """Run the agent in the foreground."""
    from gitops.daemon import AgentConfig, run_agent
    logsetup.configure(log_format, log_level)
    try:
        run_agent(AgentConfig(repo=repo, data_dir=Path(data_dir), ref=ref, path=subpath,
                              interval=interval, node_address=node_address,
                              api_port=api_port, pod_subnet=pod_subnet,
                              allow_empty_prune=allow_empty_prune, self_heal=self_heal,
                              prune=prune, wave_timeout=wave_timeout,
                              allow_host_access=allow_host_access,
                              webhook_secret_file=webhook_secret_file,
                              webhook_secret_env=webhook_secret_env))
    except GitopsError as exc:
        _fail(str(exc))


def _source_id(source: str) -> str:
    return source if is_git_url(source) else str(Path(source).resolve())


@main.command()
@click.argument("source")
@_agent_options
@DATA_DIR
@click.option("--wait", is_flag=True, help="Return once every object is healthy.")
@click.option("--timeout", default=300.0, show_default=True, help="Seconds --wait waits.")
def up(source, ref, subpath, interval, node_address, pod_subnet, allow_empty_prune, self_heal,
       prune, wave_timeout, allow_host_access, webhook_secret_file, webhook_secret_env,
       api_port, data_dir, wait, timeout) -> None:
    """Start an agent in the background for SOURCE (directory or git URL)."""
    dd = DataDir.at(data_dir)
    dd.root.mkdir(parents=True, exist_ok=True)
    info = dd.read_agent()
    if info and info.get("repo") != _source_id(source):
        _fail(f"an agent for {info.get('repo')} already runs with data dir {dd.root}; "
              "run `gitops down` first or use another --data-dir")
    started = time.monotonic()
    if info:
        Client(dd).post("/gitops/v1/sync")
    else:
        cmd = [sys.executable, "-m", "gitops", "run", "--repo", source, "--data-dir",
               str(dd.root), "--log-format", "json",
               *_agent_flags(ref, subpath, interval, node_address, pod_subnet,
                             allow_empty_prune, self_heal, prune, wave_timeout,
                             allow_host_access, webhook_secret_file, webhook_secret_env,
                             api_port)]
        with open(dd.log_file, "ab") as logf:
            proc = subprocess.Popen(cmd, stdout=logf, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL, start_new_session=True)
        _await_agent(dd, proc, timeout=60)
        click.echo(f"agent started (pid {proc.pid}), logs: {dd.log_file}")
    if wait:
        ok = output.wait_healthy(Client(dd), timeout - (time.monotonic() - started))
        sys.exit(0 if ok else 1)


def _await_agent(dd: DataDir, proc: subprocess.Popen, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        info = dd.read_agent()
        if info and info.get("pid") == proc.pid:
            return
        if proc.poll() is not None:
            tail = dd.log_file.read_text(errors="replace").splitlines()[-15:]
            _fail("agent exited during start-up:\n  " + "\n  ".join(tail))
        time.sleep(0.1)
    _fail(f"agent did not start within {timeout:.0f}s; see {dd.log_file}")


@main.command()
@DATA_DIR
@click.option("--volumes", is_flag=True, help="Also remove the volumes of PersistentVolumeClaims.")
def down(data_dir, volumes) -> None:
    """Stop the agent and remove every container and network it created."""
    from gitops.agent.docker import DockerRuntime, docker_host
    dd = DataDir.at(data_dir)
    info = dd.read_agent()
    if info:
        try:
            Client(dd).post("/gitops/v1/shutdown", timeout=10)
        except GitopsError:
            os.kill(info["pid"], signal.SIGTERM)
        if not _wait_exit(info["pid"], 20):
            os.kill(info["pid"], signal.SIGKILL)
            _wait_exit(info["pid"], 5)
    runtime = DockerRuntime(dd.instance, host=docker_host(dd.recorded("docker_host")))
    try:
        removed = runtime.cleanup(f"gitops-{dd.instance}")
    except GitopsError as exc:    # the engine is down: nothing removed, say so
        _fail(f"{exc}; run `gitops down` again once the engine answers")
    if cidr := dd.recorded("service_cidr"):
        from gitops.proxy.vip import LoopbackVips
        LoopbackVips(cidr=cidr, label=f"lo:g{dd.instance}").remove_all()
    if volumes:
        removed_volumes = runtime.remove_volumes()
        click.echo(f"removed {removed_volumes} volume(s)")
    for suffix in ("", "-wal", "-shm"):
        Path(str(dd.store) + suffix).unlink(missing_ok=True)
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


# -- reading state -----------------------------------------------------------------------
@main.command()
@click.argument("resource")
@click.argument("name", required=False)
@click.option("-n", "--namespace", default="default", show_default=True)
@click.option("-A", "--all-namespaces", is_flag=True)
@click.option("-l", "--selector", default="", help="Label selector, e.g. app=web,tier!=db")
@OUTPUT
@DATA_DIR
def get(resource, name, namespace, all_namespaces, selector, fmt, data_dir) -> None:
    """Show objects, like `kubectl get`."""
    info = kind_for(resource)
    if info is None:
        _fail(f'the server doesn\'t have a resource type "{resource}"')
    client = _client(data_dir)
    ns = None if (all_namespaces or not info.namespaced) else namespace
    try:
        if name:
            items = [client.get(resource_path(info.api_version, info.plural, ns, name))]
        else:
            items = client.get(resource_path(info.api_version, info.plural, ns))["items"]
    except GitopsError as exc:
        _fail(str(exc), 1)
    if selector:
        sel = parse(selector)
        items = [o for o in items if matches(sel, o["metadata"].get("labels"))]
    click.echo(output.render_objects(info, items, fmt, single=bool(name),
                                     show_namespace=all_namespaces and info.namespaced))


@main.command()
@OUTPUT
@DATA_DIR
def status(fmt, data_dir) -> None:
    """Source, applied revision, last sync and the health of every object."""
    st = _client(data_dir).get("/gitops/v1/status")
    if fmt == "json":
        click.echo(json.dumps(st, indent=2))
        return
    click.echo(output.render_status(st))
    unhealthy = [o for o in st["objects"] if o["health"] != "Healthy"]
    sys.exit(1 if unhealthy or (st.get("last_sync") or {}).get("result") in ("failed", "refused")
             else 0)


@main.command()
@click.argument("pod")
@click.option("-c", "--container", default="")
@click.option("-n", "--namespace", default="default", show_default=True)
@click.option("--tail", default=100, show_default=True)
@click.option("-f", "--follow", is_flag=True, help="Stream new output until the container stops.")
@click.option("-p", "--previous", is_flag=True, help="Output of the previous, terminated run.")
@DATA_DIR
def logs(pod, container, namespace, tail, follow, previous, data_dir) -> None:
    """Print a container's logs."""
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
        ok = output.wait_healthy(client, timeout)
    sys.exit(0 if ok else 1)


@main.command()
@DATA_DIR
@click.option("--wait", is_flag=True, help="Also wait until every object is healthy.")
@click.option("--timeout", default=300.0, show_default=True)
def sync(data_dir, wait, timeout) -> None:
    """Sync now; print the result (exit 1 if it failed)."""
    _control(data_dir, "sync", wait=wait, timeout=timeout)


@main.command()
@click.option("--to", "sha", default="", help="Revision to go back to (default: the previous "
              "successfully applied one).")
@DATA_DIR
def rollback(sha, data_dir) -> None:
    """Pin the agent to an earlier revision until `gitops unpin` or a new commit."""
    _control(data_dir, "rollback", f"?to={sha}" if sha else "")


@main.command()
@DATA_DIR
def unpin(data_dir) -> None:
    """Release a rollback pin: follow the tracked ref again."""
    _control(data_dir, "unpin")


@main.command()
@DATA_DIR
def suspend(data_dir) -> None:
    """Stop syncing from git; what runs keeps running (and self-healing at runtime)."""
    _control(data_dir, "suspend")
    click.echo("syncing suspended")


@main.command()
@DATA_DIR
def resume(data_dir) -> None:
    """Resume syncing and sync now."""
    _control(data_dir, "resume")


@main.command()
@OUTPUT
@DATA_DIR
def history(fmt, data_dir) -> None:
    """Revisions applied (or refused), newest first."""
    items = _client(data_dir).get("/gitops/v1/history")["items"]
    if fmt == "json":
        click.echo(json.dumps(items, indent=2))
        return
    rows = [[time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(e.get("at", 0))),
             (e.get("revision") or "-")[:12], e.get("result", ""),
             f"+{e.get('created', 0)} ~{e.get('configured', 0)} -{e.get('pruned', 0)}",
             e.get("message", "")] for e in items]
    click.echo(output.table(["TIME", "REVISION", "RESULT", "CHANGES", "MESSAGE"], rows))


# -- offline checks ----------------------------------------------------------------------
@main.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True))
@click.option("-o", "--output", "fmt", default="text", type=click.Choice(["text", "json"]))
@click.option("--allow-host-access", is_flag=True,
              help="Accept hostPath, privileged, hostNetwork, hostPID and hostIPC.")
def validate(paths, fmt, allow_host_access) -> None:
    """Validate manifests; one line per problem: file:line: Kind/name: field: message."""
    from gitops.manifests import policy
    from gitops.manifests.render import render_path
    from gitops.manifests.validate import validate as check
    errors, count = [], 0
    for p in paths:
        loaded = render_path(p)
        count += len(loaded.objects)
        errors += [*loaded.errors, *check(loaded.objects),
                   *policy.check(loaded.objects, allow_host_access)]
    if fmt == "json":
        click.echo(json.dumps({"objects": count, "errors": [e.as_dict() for e in errors]},
                              indent=2))
    else:
        for e in errors:
            click.echo(str(e))
        click.echo(f"{count} object(s), {len(errors)} problem(s)", err=True)
    sys.exit(1 if errors else 0)


@main.command()
@click.argument("source")
@click.option("--ref", default="")
@click.option("--path", "subpath", default="")
@click.option("-o", "--output", "fmt", default="text",
              type=click.Choice(["text", "json", "markdown"]))
@DATA_DIR
def diff(source, ref, subpath, fmt, data_dir) -> None:
    """Show what syncing SOURCE would change in the data dir's store (nothing is changed)."""
    from gitops.source import make_source
    from gitops.store.sqlite import SqliteStore
    from gitops.sync.engine import plan_against, render
    dd = DataDir.at(data_dir)
    try:
        import tempfile
        with tempfile.TemporaryDirectory() as tmp:
            revision = make_source(source, Path(tmp), ref, subpath).fetch()
            desired, errors = render(revision)
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


def _client(data_dir: str) -> Client:
    try:
        return Client(DataDir.at(data_dir))
    except AgentNotRunning as exc:
        _fail(str(exc))
        raise



