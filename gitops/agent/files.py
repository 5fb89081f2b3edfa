"""A pod's files on the node (PodFiles: its directory, projected volumes, resolv.conf),
and writing projected volume files atomically, the way the kubelet does.

Layout of one volume dir: `..<n>/` holds a full copy of the files, `..data` is a symlink to
the current copy, and each top-level name is a symlink through `..data`. An update writes a
new copy and swaps `..data` with one rename, so readers never see a half-written set.

The agent runs with umask 077 and the pod dirs above are 0700, so no other host user gets
in; the engine bind-mounts the volume dir itself, so inside the container only the volume's
own modes count. Those are set explicitly, as the kubelet does: dirs 0755, each file its
volume's defaultMode or item mode (0644 by default), so a container user that is not root
reads its Secret.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import structlog

from gitops.agent.runtime import RuntimeFailure
from gitops.agent.volumes import FileSet, Lookup, Tokens, file_sets
from gitops.model import volumepaths
from gitops.model.volumepaths import is_safe_uid

log = structlog.get_logger(component="agent")

TERMINATION_MESSAGE_MAX = 4096    # bytes of a termination message kept, as the kubelet keeps


class PodFiles:
    """The files a node keeps per pod under root/<uid>: its projected volumes and its
    resolv.conf. lookup(kind, namespace, name) reads the objects volumes project."""

    def __init__(self, root: Path, lookup: Lookup, tokens: Tokens | None = None) -> None:
        self.root = root
        self.lookup = lookup
        self.tokens = tokens        # serviceAccountToken sources (None: none can be made)

    def pod_dir(self, uid: str) -> Path:
        """Where a pod's files live; a uid that is not a plain name never becomes a path."""
        if not is_safe_uid(uid):
            raise RuntimeFailure(f"pod uid {uid[:80]!r} is not usable as a directory name",
                                 "CreateContainerConfigError")
        return self.root / uid

    def volumes_root(self, uid: str) -> Path:
        return self.pod_dir(uid) / "volumes"

    def write(self, pod: dict) -> None:
        """The pod's ConfigMap, Secret and downward API volumes, as their sources are now."""
        root = self.volumes_root(pod["metadata"]["uid"])
        for fs in file_sets(pod, self.lookup, self.tokens):
            if write_file_set(root, fs):
                log.info("volume_files_updated", pod=_name(pod), volume=fs.volume)

    def refresh(self, pod: dict) -> None:
        """ConfigMap/Secret changes reach running containers in place, as in Kubernetes;
        a source that disappeared leaves the last files where they are."""
        try:
            self.write(pod)
        except Exception as exc:      # running containers keep the files they have
            log.debug("volume_files_not_refreshed", pod=_name(pod),
                      error=str(exc) or type(exc).__name__)

    def write_resolv_conf(self, uid: str, text: str) -> Path:
        return self._write_small(self.pod_dir(uid) / "resolv.conf", text)

    def write_hosts(self, uid: str, text: str) -> Path:
        return self._write_small(self.pod_dir(uid) / "hosts", text)

    @staticmethod
    def _write_small(path: Path, text: str) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        if not path.exists() or path.read_text() != text:
            path.write_text(text)
            path.chmod(0o644)       # the agent's umask is 077; any container user reads it
        return path

    # -- termination messages --------------------------------------------------------
    def termination_log(self, uid: str, container: str) -> Path:
        """The file a container's terminationMessagePath is bound to (made empty, and
        writable by any user the container runs as, as the kubelet makes it)."""
        if not is_safe_uid(container):
            raise RuntimeFailure(f"container name {container[:80]!r} is not usable as a file "
                                 "name", "CreateContainerConfigError")
        path = self.pod_dir(uid) / "termination" / container
        path.parent.mkdir(parents=True, exist_ok=True)
        if not path.exists():
            path.touch()
        path.chmod(0o666)
        return path

    def termination_message(self, uid: str, container: str) -> str:
        """What the container wrote there (at most TERMINATION_MESSAGE_MAX bytes)."""
        if not is_safe_uid(uid) or not is_safe_uid(container):
            return ""
        try:
            with open(self.root / uid / "termination" / container, "rb") as f:
                return f.read(TERMINATION_MESSAGE_MAX).decode(errors="replace")
        except OSError:
            return ""

    def clear_termination_message(self, uid: str, container: str) -> None:
        """A new run of the container starts with an empty message."""
        if is_safe_uid(uid) and is_safe_uid(container):
            path = self.root / uid / "termination" / container
            if path.exists():
                path.write_bytes(b"")

    def remove(self, uid: str) -> None:
        """A pod is gone for good: its files go too."""
        if is_safe_uid(uid):
            shutil.rmtree(self.root / uid, ignore_errors=True)


def _name(pod: dict) -> str:
    return f"{pod['metadata']['namespace']}/{pod['metadata']['name']}"


def _refuse(fs: FileSet, message: str) -> RuntimeFailure:
    return RuntimeFailure(f'volume "{fs.volume}": {message}', "CreateContainerConfigError")


def check_file_set(root: Path, fs: FileSet) -> None:
    """The agent is root on the host: every path must stay inside the volume's directory,
    whatever validation let through (objects stored before a rule existed, bugs)."""
    if volumepaths.descending_path_problem(fs.volume) or "/" in fs.volume or \
            fs.volume in ("", ".") or not volumepaths.inside(root, root / fs.volume):
        raise _refuse(fs, "invalid volume name")
    dirs: set[str] = set()
    for rel in fs.files:
        problem = volumepaths.item_path_problem(rel)
        parts = rel.split("/")
        if problem is None and any(p in ("", ".") for p in parts):
            problem = "must be a normalized relative path"
        if problem:
            raise _refuse(fs, f'path "{rel[:200]}": {problem}')
        dirs.update("/".join(parts[:i]) for i in range(1, len(parts)))
    if clash := sorted(dirs & set(fs.files)):
        raise _refuse(fs, f'path "{clash[0]}" is both a file and a directory of other paths')


_DIR_MODE = 0o755


def _mkdirs(path: Path, top: Path) -> None:
    """mkdir -p `path`, a dir at or under `top`; from `top` down each is 0755 whatever the
    umask."""
    path.mkdir(parents=True, exist_ok=True)
    d = top
    os.chmod(d, _DIR_MODE)
    for part in path.relative_to(top).parts:     # never above `top`
        d = d / part
        os.chmod(d, _DIR_MODE)


def write_file_set(root: Path, fs: FileSet) -> bool:
    """Make `root/<volume>` hold exactly fs.files. Returns whether anything changed.
    Raises RuntimeFailure for a path that would leave the volume's directory."""
    check_file_set(root, fs)
    vdir = root / fs.volume
    data_link = vdir / "..data"
    if data_link.exists() and _same(data_link, fs.files):
        return False
    vdir.mkdir(parents=True, exist_ok=True)
    os.chmod(vdir, _DIR_MODE)
    current = os.readlink(data_link) if data_link.is_symlink() else None
    versions = [p for p in vdir.glob("..[0-9]*") if p.name[2:].isdigit()]
    for stale in versions:            # copies a failed write left behind
        if stale.name != current:
            shutil.rmtree(stale, ignore_errors=True)
    new = vdir / f"..{1 + max((int(p.name[2:]) for p in versions), default=0)}"
    try:
        _write_copy(new, fs)
    except BaseException:
        shutil.rmtree(new, ignore_errors=True)
        raise
    tmp_link = vdir / "..data_tmp"
    tmp_link.unlink(missing_ok=True)
    tmp_link.symlink_to(new.name)
    os.replace(tmp_link, data_link)
    tops = {Path(rel).parts[0] for rel in fs.files}
    for entry in vdir.iterdir():
        if not entry.name.startswith("..") and entry.name not in tops:
            entry.unlink()
    for top in tops:
        link = vdir / top
        if not link.is_symlink():
            link.symlink_to(f"..data/{top}")
    if current:
        shutil.rmtree(vdir / current, ignore_errors=True)
    return True


def _write_copy(new: Path, fs: FileSet) -> None:
    new.mkdir()
    _mkdirs(new, new)
    for rel, (content, mode) in fs.files.items():
        path = new / rel
        _mkdirs(path.parent, new)
        if not volumepaths.inside(new, path):       # a symlink on the way: never follow out
            raise _refuse(fs, f'path "{rel[:200]}" leaves the volume')
        try:
            path.write_bytes(content)
            os.chmod(path, mode & 0o777)            # never setuid/setgid/sticky
        except OSError as exc:
            raise _refuse(fs, f'cannot write "{rel[:200]}": {exc.strerror or exc}') from exc


def _same(data_link: Path, files: dict[str, tuple[bytes, int]]) -> bool:
    current = {str(p.relative_to(data_link.resolve())): p
               for p in data_link.resolve().rglob("*") if p.is_file()}
    if set(current) != set(files):
        return False
    return all(current[rel].read_bytes() == content and
               (current[rel].stat().st_mode & 0o7777) == mode & 0o777
               for rel, (content, mode) in files.items())
