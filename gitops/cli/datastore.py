"""`gitops backup`, `gitops restore`, `gitops migrate`: the store's content to a file and
back, and from the embedded SQLite file to etcd."""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

import click

from gitops.cli.common import DATA_DIR, fail
from gitops.paths import DataDir

DATASTORE = click.option(
    "--datastore", default="", metavar="URL", envvar="GITOPS_DATASTORE", show_envvar=True,
    help="etcd://host:2379,... (default: what the data dir's agent uses, else its SQLite "
         "file).")


def _backend(datastore: str, data_dir: str):
    from gitops.store.backup import check_datastore, open_backend
    dd = DataDir.at(data_dir)
    datastore = check_datastore(datastore or dd.recorded("datastore"))
    if not datastore and not dd.store.exists():
        fail(f"no store in {dd.root} (give --data-dir, or --datastore etcd://...)")
    return open_backend(datastore, dd.store), datastore or str(dd.store)


def _stop_agent_on(dd: DataDir) -> None:
    """Restore and migrate replace what the agent reads: stop it first (its containers keep
    running; `gitops up` starts it again), and refuse if it would not stop."""
    from gitops.cli.process import stop_agent
    stop_agent(dd)
    if not dd.lock_file.exists():
        return
    fd = os.open(dd.lock_file, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        fail(f"an agent is running on {dd.root}: stop it first")
    finally:
        os.close(fd)


def _said(verb: str, where: str, counts: dict) -> str:
    return (f"{verb} {counts['objects']} objects, {counts['inventory']} inventory entries, "
            f"{counts['history']} sync records ({where}, resourceVersion "
            f"{counts['resourceVersion']})")


@click.command()
@click.argument("file", type=click.Path(dir_okay=False))
@DATASTORE
@DATA_DIR
def backup(file: str, datastore: str, data_dir: str) -> None:
    """Write a consistent snapshot of the store (SQLite or etcd) to FILE (0600: it holds
    Secrets). Safe while the agent runs.

    \b
    Examples:
      gitops backup state.json
      gitops backup state.json --datastore etcd://10.77.0.1:2379,10.77.0.2:2379
    """
    from gitops.store.backup import backup as write
    store, where = _backend(datastore, data_dir)
    try:
        click.echo(_said("saved", where, write(store, Path(file))) + f" to {file}")
    finally:
        store.close()


@click.command()
@click.argument("file", type=click.Path(dir_okay=False))
@DATASTORE
@DATA_DIR
def restore(file: str, datastore: str, data_dir: str) -> None:
    """Replace the store's content with a backup (from either backend). The data dir's
    agent is stopped first (stop every other server too); start it again with `gitops up`.

    \b
    Examples:
      gitops restore state.json
      gitops restore state.json --datastore etcd://10.77.0.1:2379
    """
    from gitops.store.backup import read_backup, restore as load
    dd = DataDir.at(data_dir)
    _stop_agent_on(dd)
    read_backup(Path(file))                # a bad file: nothing is touched
    if not (datastore or dd.recorded("datastore")):
        dd.root.mkdir(parents=True, exist_ok=True, mode=0o700)
        dd.store.touch(mode=0o600)
    store, where = _backend(datastore, data_dir)
    try:
        click.echo(_said("restored", where, load(store, Path(file))))
    finally:
        store.close()


@click.command()
@click.option("--to", "target", required=True, metavar="URL",
              help="The etcd datastore: etcd://host:2379,host2:2379,...")
@click.option("--force", is_flag=True, help="Replace what the target already holds.")
@DATA_DIR
def migrate(target: str, force: bool, data_dir: str) -> None:
    """Move the data dir's SQLite store to etcd, every object with its uid, the inventory,
    history and state; checked after the copy. The data dir's agent is stopped first (its
    containers keep running): start it again with --datastore URL.

    \b
    Example:
      gitops migrate --to etcd://10.77.0.1:2379,10.77.0.2:2379,10.77.0.3:2379
    """
    from gitops.store.backup import check_datastore, migrate as move, open_backend
    from gitops.store.sqlite import SqliteStore
    dd = DataDir.at(data_dir)
    if not target.startswith("etcd://"):
        fail(f"--to {target!r}: expected etcd://host:port,...")
    check_datastore(target)
    if not dd.store.exists():
        fail(f"no SQLite store in {dd.root} (give --data-dir)")
    _stop_agent_on(dd)
    source, dest = SqliteStore(dd.store), open_backend(target, dd.store)
    try:
        click.echo(_said("migrated", target, move(source, dest, force)))
    finally:
        source.close()
        dest.close()
    click.echo(f"start the agent with --datastore {target}")


@click.command("simulate-nodes")
@click.argument("count", type=click.IntRange(min=1, max=100_000))
@click.option("--datastore", required=True, metavar="URL", envvar="GITOPS_DATASTORE",
              help="The servers' etcd: etcd://host:2379,...")
@click.option("--prefix", default="sim-node-", show_default=True, help="Node names' prefix.")
@click.option("--duration", default=0.0, type=click.FloatRange(min=0),
              help="Seconds to run (default: until interrupted).")
def simulate_nodes(count: int, datastore: str, prefix: str, duration: float) -> None:
    """Register COUNT simulated nodes (like kwok) that heartbeat their Leases and run the
    pods bound to them without containers (they go Running at once): for measuring the
    control plane at scale. Writes straight to the servers' etcd.

    \b
    Example:
      gitops simulate-nodes 1000 --datastore etcd://127.0.0.1:2379
    """
    import time

    from gitops.agent.simulated import SimulatedNodes
    from gitops.store import Registry
    from gitops.store.backup import check_datastore, open_backend
    if not datastore.startswith("etcd://"):
        fail("--datastore: simulated nodes share the servers' etcd (etcd://host:port,...)")
    check_datastore(datastore)
    store = Registry(open_backend(datastore, Path("unused")))
    nodes = SimulatedNodes(store, count, prefix=prefix)
    end = time.monotonic() + duration if duration else float("inf")
    try:
        nodes.register()
        click.echo(f"{count} simulated nodes registered ({prefix}00000...)")
        nodes.run(lambda: time.monotonic() >= end, interval=min(1.0, duration or 1.0))
    finally:
        store.close()
