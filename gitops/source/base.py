"""Source protocol and the factory that picks git or a plain directory."""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from gitops.errors import PermanentError

# Files one revision may hold (.git excluded), a budget no real repo of manifests nears: a
# bigger checkout is refused before anything renders or hashes it.
REPO_MAX_MIB = 256


@dataclass(frozen=True)
class Revision:
    sha: str            # commit sha for git; content hash for a plain directory
    root: Path          # directory whose files make up this revision
    path: str = ""      # subdirectory inside root that holds the manifests
    message: str = ""
    head: str = ""      # tip of the tracked ref when fetched (differs from sha when pinned)

    @property
    def manifest_dir(self) -> Path:
        return self.root / self.path if self.path else self.root


class Source(Protocol):
    url: str
    ref: str
    path: str

    def fetch(self, pin: str | None = None) -> Revision:
        """Bring the source up to date; check out `pin` if given, else the ref's tip."""
        ...


@dataclass
class DirSource:
    """A directory on disk, read as it is. Its revision is a hash of the manifest files."""

    url: str
    ref: str = ""
    path: str = ""

    def fetch(self, pin: str | None = None) -> Revision:
        if pin:
            raise PermanentError("a local directory has no history: rollback needs a git source")
        root = Path(self.url).resolve()
        base = root / self.path if self.path else root
        digest = hashlib.sha256()
        # Every visible file under the root counts: Kustomize and Helm inputs are not only
        # YAML, and an overlay in `path` may use a base outside it (../../base).
        top = root if root.is_dir() else base
        if problem := oversized(top):
            raise PermanentError(problem)
        files = [base] if base.is_file() else sorted(
            p for p in top.rglob("*") if p.is_file()
            and not any(part.startswith(".") for part in p.relative_to(top).parts))
        for f in files:
            digest.update(str(f.relative_to(root)).encode() + b"\0")
            if Path(os.path.realpath(f)).is_relative_to(root):
                with f.open("rb") as content:       # streamed: memory stays flat
                    while chunk := content.read(2**20):
                        digest.update(chunk)
            elif f.is_symlink():    # out of the directory: never read (rendering refuses it)
                digest.update(os.readlink(f).encode())
            digest.update(b"\0")
        sha = "dir-" + digest.hexdigest()[:12]
        return Revision(sha=sha, root=root, path=self.path, head=sha)


def oversized(root: Path) -> str:
    """"" when the regular files under `root` (.git excluded, symlinks not followed) add up to
    at most REPO_MAX_MIB, else why not; counting stops once past it."""
    limit = REPO_MAX_MIB * 2**20
    total = root.stat().st_size if root.is_file() else 0
    pending = [root] if root.is_dir() else []
    while pending and total <= limit:
        try:
            entries = list(os.scandir(pending.pop()))
        except OSError:
            continue
        for entry in entries:
            if entry.is_dir(follow_symlinks=False):
                if entry.name != ".git":
                    pending.append(Path(entry.path))
            elif entry.is_file(follow_symlinks=False):
                total += entry.stat(follow_symlinks=False).st_size
    if total > limit:
        return (f"the repository holds more than {REPO_MAX_MIB} MiB of files (.git excluded), "
                "the most a revision may read; refusing to render it")
    return ""


def redact_url(url: str) -> str:
    """The URL fit for logs and status: a password or token in it becomes ***."""
    return re.sub(r"^([a-z][a-z0-9+.-]*://[^/@:]*):[^/@]*@", r"\1:***@", url,
                  flags=re.IGNORECASE)


def is_git_url(spec: str) -> bool:
    return spec.startswith(("file://", "https://", "http://", "ssh://", "git@", "git://"))


def make_source(spec: str, data_dir: Path, ref: str = "", path: str = "") -> Source:
    if is_git_url(spec):
        from gitops.source.git import GitSource
        return GitSource(url=spec, ref=ref, path=path, workdir=data_dir / "repos")
    return DirSource(url=str(Path(spec).resolve()), ref=ref, path=path)
