"""Source protocol and the factory that picks git or a plain directory."""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol
from urllib.parse import unquote

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


# The rule for credentials in a source URL, applied wherever a URL is shown (status, logs,
# errors, history, drift records): over ssh the user name is the login (`git`) and stays
# readable, only a password is masked (ssh://git:***@host/...), and scp-like git@host:org/repo
# is kept whole. Over every other scheme (https, http, git+https...) the whole userinfo
# becomes ***: the user part is often the token itself (https://TOKEN@host,
# https://TOKEN:x-oauth-basic@host), as is the password (x-access-token:TOKEN, oauth2:TOKEN).
_SSH_SCHEMES = frozenset({"ssh", "git+ssh", "ssh+git"})
# scheme://userinfo@ up to the last "@" before the host ends (a raw "@" in a password too).
_USERINFO = re.compile(r"(?P<scheme>\b[a-z][a-z0-9+.-]*)://(?P<userinfo>[^/?#\s'\"<>]*)@",
                       re.IGNORECASE)


def _masked_userinfo(m: re.Match) -> str:
    scheme, userinfo = m["scheme"], m["userinfo"]
    if scheme.lower() in _SSH_SCHEMES:
        user, colon, _ = userinfo.partition(":")
        return f"{scheme}://{user}{':***' if colon else ''}@"
    return f"{scheme}://***@"


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
    """The URL fit for logs and status: its credentials masked (see the rule above)."""
    return _USERINFO.sub(_masked_userinfo, url)


def redact_text(text: str, url: str = "") -> str:
    """Free text (an error, git's stderr) with the credentials of every URL in it masked,
    and those of `url` also wherever they appear alone (decoded, or without the URL)."""
    text = redact_url(text)
    for secret in sorted(_credentials(url), key=len, reverse=True):
        text = text.replace(secret, "***")
    return text


def _credentials(url: str) -> set[str]:
    """The parts of url's userinfo that redact_url masks, as written and decoded."""
    m = _USERINFO.search(url)
    if m is None or m.start() != 0:
        return set()
    user, _, password = m["userinfo"].partition(":")
    parts = [password] if m["scheme"].lower() in _SSH_SCHEMES else [user, password]
    # Short parts (a user "x") would mask half the text; the URL form is masked anyway.
    return {form for p in parts for form in (p, unquote(p)) if len(form) >= 4}


def is_git_url(spec: str) -> bool:
    return spec.startswith(("file://", "https://", "http://", "ssh://", "git@", "git://"))
