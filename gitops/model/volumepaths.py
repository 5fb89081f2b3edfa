"""Paths a manifest may name inside a volume (pure): the API server's rules, kept in one
place because the node agent (root on the host) checks them again before it writes a file
or bind-mounts a path.

- `items[].path` of configMap / secret / downwardAPI / projected volumes: relative, no
  `..` element, not starting with `..` (the kubelet keeps `..data` and `..<n>` there).
- `volumeMounts[].subPath` and the expansion of `subPathExpr`: relative, no `..` element.
- ConfigMap and Secret keys, which become file names: not `.` or `..`, not `..`-prefixed.
"""

from __future__ import annotations

import os
from pathlib import Path

ABSOLUTE = "must be a relative path"
DOT_DOT = "must not contain '..'"
RESERVED = "must not start with '..'"
SAFE_UID_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-")


def descending_path_problem(path: str) -> str | None:
    """A subPath's rule: stays below the volume it names."""
    if path.startswith("/") or os.path.isabs(path):
        return ABSOLUTE
    if ".." in path.split("/"):
        return DOT_DOT
    return None


def item_path_problem(path: str) -> str | None:
    """An items[].path's rule: a subPath's, and clear of the kubelet's `..` names."""
    problem = descending_path_problem(path)
    if problem is None and path.startswith(".."):
        return RESERVED
    return problem


def config_key_problem(key: str) -> str | None:
    """A ConfigMap/Secret key is a file name in a volume."""
    if key in (".", ".."):
        return f"must not be '{key}'"
    if key.startswith(".."):
        return RESERVED
    return None


def is_safe_uid(uid: str) -> bool:
    """A uid the node may use as a directory name (the store generates UUIDs)."""
    return 0 < len(uid) <= 64 and set(uid) <= SAFE_UID_CHARS


def inside(root: Path, candidate: Path) -> bool:
    """Does `candidate`, symlinks resolved, stay within `root` (resolved)?"""
    return candidate.resolve().is_relative_to(root.resolve())
