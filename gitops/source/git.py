"""The only module that runs git: init once into the data dir, then fetch and check out.

Every git process is bounded: one fetch() shares a deadline (`timeout`, Flux's 60 s by
default) across all the git commands it runs, and the process tree is killed when it passes.
git never waits on a person either: no terminal prompt, no askpass program, ssh in batch mode.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import git
import structlog

from gitops.errors import TransientError
from gitops.source.base import Revision, redact_text, redact_url

log = structlog.get_logger(component="source")

DEFAULT_TIMEOUT = 60.0      # seconds for one fetch(), all its git commands together (Flux)
# Inside that budget, git and ssh give up on their own (with their own clearer message): an
# ssh connection and handshake taking STALL_SECONDS, an HTTP transfer slower than
# LOW_SPEED_BYTES per second for STALL_SECONDS.
STALL_SECONDS = 30
LOW_SPEED_BYTES = 1000

# A user's own settings win over ours: git reads GIT_SSH_COMMAND before core.sshCommand
# before GIT_SSH, so ours may only be added when none of them is set.
_USER_SETTINGS = r"^(core\.sshcommand|http\..*lowspeed(limit|time))$"


def git_environment(environ: Mapping[str, str], configured: frozenset[str]) -> dict[str, str]:
    """Variables for every git process (pure). `configured`: the lowercased git config keys
    matching _USER_SETTINGS that are set (core.sshcommand, http.lowspeedlimit...)."""
    env = {
        "GIT_TERMINAL_PROMPT": "0",     # no "Username for ...:" on a terminal
        # An empty GIT_ASKPASS stops git there: core.askPass and SSH_ASKPASS are not run
        # either (a desktop helper would wait for a click nobody makes).
        "GIT_ASKPASS": "",
        "SSH_ASKPASS": "", "SSH_ASKPASS_REQUIRE": "never",   # ssh itself, too
        "GCM_INTERACTIVE": "never",     # Git Credential Manager: never a dialog
    }
    if not ({"GIT_SSH_COMMAND", "GIT_SSH"} & environ.keys() or "core.sshcommand" in configured):
        env["GIT_SSH_COMMAND"] = f"ssh -o BatchMode=yes -o ConnectTimeout={STALL_SECONDS}"
    if not ({"GIT_HTTP_LOW_SPEED_LIMIT", "GIT_HTTP_LOW_SPEED_TIME"} & environ.keys()
            or any(k.startswith("http.") for k in configured)):
        env["GIT_HTTP_LOW_SPEED_LIMIT"] = str(LOW_SPEED_BYTES)
        env["GIT_HTTP_LOW_SPEED_TIME"] = str(STALL_SECONDS)
    return env


class GitTimeout(TransientError):
    """A git command ran past the fetch's deadline and was killed."""


class _Runner:
    """Runs the git commands of one fetch() with a shared deadline and the environment
    above; a command still running at the deadline is killed (with its children)."""

    def __init__(self, url: str, timeout: float, env: dict[str, str]) -> None:
        self.url, self.timeout, self.env = url, timeout, env
        self.deadline = time.monotonic() + timeout

    def __call__(self, g: git.cmd.Git, command: str, *args: str) -> str:
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise self._timed_out(command)
        try:
            return getattr(g, command.replace("-", "_"))(*args, kill_after_timeout=left,
                                                          env=self.env)
        except git.GitCommandError as exc:
            if time.monotonic() >= self.deadline:
                raise self._timed_out(command) from exc
            raise

    def _timed_out(self, command: str) -> GitTimeout:
        return GitTimeout(f"git {command} timed out after {self.timeout:g} s: "
                          f"{redact_url(self.url)}", retry_after=30)


@dataclass
class GitSource:
    url: str
    workdir: Path
    ref: str = ""       # branch, tag or commit; empty means the remote's default branch
    path: str = ""
    timeout: float = DEFAULT_TIMEOUT

    @property
    def checkout(self) -> Path:
        return self.workdir / hashlib.sha256(self.url.encode()).hexdigest()[:16]

    def fetch(self, pin: str | None = None) -> Revision:
        """Fetch, then check out `pin` or the ref's tip. History rewrites (force pushes) are
        followed: remote branches are force-updated and the checkout is detached. A clone
        that git can no longer use (bad config, refs, HEAD) is cloned afresh, but only once
        the remote answers: offline, the last good checkout is kept. All of it within
        `timeout` seconds."""
        run = _Runner(self.url, self.timeout, git_environment(os.environ, self._configured()))
        try:
            return self._fetch(run, pin)
        except GitTimeout:
            raise                       # the remote hangs: asking it again would hang too
        except TransientError as exc:
            if not isinstance(exc.__cause__, git.GitError) or not self.checkout.exists() \
                    or not self._remote_answers(run):
                raise
            log.warning("git_checkout_corrupt_recloning", checkout=str(self.checkout),
                        error=str(exc))
            shutil.rmtree(self.checkout)
            return self._fetch(run, pin)

    def _configured(self) -> frozenset[str]:
        """Which of _USER_SETTINGS the user's git configuration sets (local one included)."""
        cwd = self.checkout if (self.checkout / ".git").is_dir() else None
        try:
            out = git.cmd.Git(cwd).execute(
                ["git", "config", "--name-only", "--get-regexp", _USER_SETTINGS],
                kill_after_timeout=10)
        except git.GitCommandError:     # exit 1: none set (or a config git cannot read)
            return frozenset()
        return frozenset(line.strip().lower() for line in out.splitlines() if line.strip())

    def _remote_answers(self, run: _Runner) -> bool:
        try:
            run(git.cmd.Git(), "ls-remote", "--heads", self.url)
            return True
        except (GitTimeout, git.GitError):
            return False

    def _fetch(self, run: _Runner, pin: str | None) -> Revision:
        try:
            repo = self._open_or_init(run)
            run(repo.git, "fetch", "origin", "+refs/heads/*:refs/remotes/origin/*", "--tags",
                "--force", "--prune")
            head = self._resolve(run, repo, self.ref or self._default_branch(run, repo))
            sha = self._resolve(run, repo, pin) if pin else head
            run(repo.git, "checkout", "--force", "--detach", sha)
            run(repo.git, "clean", "-fdxq")
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

    def _open_or_init(self, run: _Runner) -> git.Repo:
        """The checkout's repository. A new one is `git init` + `remote add` and the usual
        fetch (as Argo CD does): `git clone` would run outside the deadline."""
        if (self.checkout / ".git").is_dir():
            try:
                return git.Repo(self.checkout)
            except git.InvalidGitRepositoryError:
                log.warning("git_checkout_corrupt_recloning", checkout=str(self.checkout))
                shutil.rmtree(self.checkout)
        created = not self.checkout.exists()    # else a leftover git refuses (a .git file)
        self.checkout.mkdir(parents=True, exist_ok=True)
        log.info("git_clone", repo=redact_url(self.url))
        try:
            run(git.cmd.Git(self.checkout), "init", "--quiet")
            repo = git.Repo(self.checkout)
            run(repo.git, "remote", "add", "origin", self.url)
        except BaseException:
            if created:
                shutil.rmtree(self.checkout, ignore_errors=True)
            raise
        return repo

    def _resolve(self, run: _Runner, repo: git.Repo, ref: str) -> str:
        for candidate in (f"refs/remotes/origin/{ref}", f"refs/tags/{ref}", ref):
            try:
                return run(repo.git, "rev-parse", "--verify", "--quiet",
                           f"{candidate}^{{commit}}")
            except git.GitCommandError:
                continue
        raise TransientError(f"git: ref {ref!r} not found in {redact_url(self.url)}",
                             retry_after=30)

    def _default_branch(self, run: _Runner, repo: git.Repo) -> str:
        try:
            out = run(repo.git, "ls-remote", "--symref", "origin", "HEAD")
        except git.GitCommandError:
            out = ""
        for line in out.splitlines():
            if line.startswith("ref:"):
                return line.split()[1].removeprefix("refs/heads/")
        return "main"

