"""Opening the datastore a server was given, and moving a store's content: backup to a
file, restore from one, migrate from SQLite to etcd. A backup is one JSON document, the
same for either backend, read at one instant (one transaction, one etcd revision), so a
backup of SQLite restores into etcd and back."""

from __future__ import annotations

import json
import os
from pathlib import Path

from gitops.errors import GitopsError
from gitops.store.sqlite import SqliteStore

FORMAT = "gitops-store-backup"
VERSION = 1


class BackupError(GitopsError):
    pass


def open_backend(datastore: str, sqlite_path: Path):
    """The backend of `--datastore`: empty or sqlite:// for the data dir's SQLite file,
    etcd://h1:2379,h2:2379,... for etcd."""
    if not datastore or datastore == "sqlite://":
        return SqliteStore(sqlite_path)
    if datastore.startswith("sqlite://"):
        return SqliteStore(datastore[len("sqlite://"):])
    if datastore.startswith("etcd://"):
        from gitops.store.etcd import EtcdStore
        return EtcdStore(datastore)
    raise BackupError(f"--datastore {datastore!r}: expected etcd://host:port,... or "
                      "sqlite://PATH")


def check_datastore(datastore: str) -> str:
    """A clear error now for a URL the agent could not open later."""
    if datastore and not datastore.startswith("sqlite://"):
        from gitops.store.etcd import parse_url
        try:
            parse_url(datastore)
        except ValueError as exc:
            raise BackupError(str(exc)) from exc
    return datastore


def backup(backend, path: Path) -> dict:
    """Write the store's content to path (owner-only: Secrets are in it); the summary."""
    data = {"format": FORMAT, "version": VERSION, **backend.dump()}
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        json.dump(data, out, separators=(",", ":"))
        out.flush()
        os.fsync(out.fileno())
    tmp.replace(path)
    return summary(data)


def read_backup(path: Path) -> dict:
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise BackupError(f"{path}: no such backup file") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise BackupError(f"{path}: not a gitops backup (invalid JSON: {exc})") from exc
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise BackupError(f"{path}: not a gitops backup (no \"format\": \"{FORMAT}\")")
    if data.get("version") != VERSION:
        raise BackupError(f"{path}: backup version {data.get('version')!r}, this gitops "
                          f"reads version {VERSION}")
    for field in ("objects", "inventory", "applied", "history"):
        if not isinstance(data.get(field, []), list):
            raise BackupError(f"{path}: field {field!r} is not a list")
    for i, obj in enumerate(data.get("objects", [])):
        meta = obj.get("metadata") if isinstance(obj, dict) else None
        if not isinstance(meta, dict) or not obj.get("kind") or not meta.get("name"):
            raise BackupError(f"{path}: objects[{i}] has no kind or metadata.name")
    return data


def restore(backend, path: Path) -> dict:
    """Replace the store's content with the backup's (checked whole before anything is
    written)."""
    data = read_backup(path)
    backend.load(data)
    return summary(data)


def migrate(source, target, force: bool = False) -> dict:
    """Copy everything from source to target, then check every object arrived."""
    if not force and next(iter(target.all_objects()), None) is not None:
        raise BackupError("the target datastore already holds objects (--force replaces "
                          "them)")
    data = source.dump()
    target.load(data)
    moved = {_ident(o) for o in target.all_objects()}
    missing = [i for i in map(_ident, data["objects"]) if i not in moved]
    if missing:
        raise BackupError(f"{len(missing)} objects did not arrive, e.g. {missing[0]}")
    return summary(data)


def _ident(obj: dict) -> tuple[str, str, str, str]:
    meta = obj["metadata"]
    return obj["kind"], meta.get("namespace", ""), meta["name"], meta.get("uid", "")


def summary(data: dict) -> dict:
    return {"objects": len(data.get("objects", [])),
            "inventory": len(data.get("inventory", [])),
            "history": len(data.get("history", [])),
            "resourceVersion": data.get("resourceVersion", 0)}
