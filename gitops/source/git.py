"""The only module that runs git: clone once into the data dir, then fetch and check out."""

from __future__ import annotations

import hashlib
import shutil
from dataclasses import dataclass
from pathlib import Path

import git
import structlog

from gitops.errors import TransientError
from gitops.source.base import Revision, redact_text, redact_url

log = structlog.get_logger(component="source")


@dataclass
class GitSource:
    url: str
    workdir: Path
    ref: str = ""       # branch, tag or commit; empty means the remote's default branch
    path: str = ""

    @property
    def checkout(self) -> Path:
        return self.workdir / hashlib.sha256(self.url.encode()).hexdigest()[:16]

    def fetch(self, pin: str | None = None) -> Revision:
        """Fetch, then check out `pin` or the ref's tip. History rewrites (force pushes) are
        followed: remote branches are force-updated and the checkout is detached. A clone
        that git can no longer use (bad config, refs, HEAD) is cloned afresh, but only once
        the remote answers: offline, the last good checkout is kept."""
        try:
            return self._fetch(pin)
        except TransientError as exc:
            if not isinstance(exc.__cause__, git.GitError) or not self.checkout.exists() \
                    or not self._remote_answers():
                raise
            log.warning("git_checkout_corrupt_recloning", checkout=str(self.checkout),
                        error=str(exc))
            shutil.rmtree(self.checkout)
            return self._fetch(pin)

    def _remote_answers(self) -> bool:
        try:
            git.cmd.Git().ls_remote("--heads", self.url, kill_after_timeout=60)
            return True
        except git.GitError:
            return False

    def _fetch(self, pin: str | None) -> Revision:
        try:
            repo = self._open_or_clone()
            repo.git.fetch("origin", "+refs/heads/*:refs/remotes/origin/*", "--tags", "--force",
                           "--prune")
            head = self._resolve(repo, self.ref or self._default_branch(repo))
            sha = self._resolve(repo, pin) if pin else head
            repo.git.checkout("--force", "--detach", sha)
            repo.git.clean("-fdxq")
            commit = repo.commit(sha)
        except git.GitCommandError as exc:
            detail = str(exc.stderr).strip() or str(exc)
            raise TransientError(self._redacted(f"git: {detail}"), retry_after=10) from exc
        except git.GitError as exc:         # e.g. InvalidGitRepositoryError from a bad .git
            raise TransientError(self._redacted(f"git: {exc}"), retry_after=10) from exc
        message = str(commit.message).strip().splitlines()
        return Revision(sha=commit.hexsha, root=self.checkout, path=self.path,
                        message=message[0] if message else "", head=head)

    def _redacted(self, text: str) -> str:
        """git's messages quote the URL (GitPython's quote the whole command line): no
        credential of it, nor of any other URL, may reach an error, a log or the status."""
        return redact_text(text, self.url)

    def _open_or_clone(self) -> git.Repo:
        if (self.checkout / ".git").is_dir():
            try:
                return git.Repo(self.checkout)
            except git.InvalidGitRepositoryError:
                log.warning("git_checkout_corrupt_recloning", checkout=str(self.checkout))
                shutil.rmtree(self.checkout)
        self.checkout.parent.mkdir(parents=True, exist_ok=True)
        log.info("git_clone", repo=redact_url(self.url))
        return git.Repo.clone_from(self.url, self.checkout, no_checkout=True)

    def _resolve(self, repo: git.Repo, ref: str) -> str:
        for candidate in (f"refs/remotes/origin/{ref}", f"refs/tags/{ref}", ref):
            try:
                return repo.git.rev_parse("--verify", "--quiet", f"{candidate}^{{commit}}")
            except git.GitCommandError:
                continue
        raise TransientError(f"git: ref {ref!r} not found in {redact_url(self.url)}",
                             retry_after=30)

    def _default_branch(self, repo: git.Repo) -> str:
        try:
            out = repo.git.ls_remote("--symref", "origin", "HEAD")
        except git.GitCommandError:
            out = ""
        for line in out.splitlines():
            if line.startswith("ref:"):
                return line.split()[1].removeprefix("refs/heads/")
        return "main"
