"""The background agent's process: `up` starts it and waits until it announces itself in
its data dir; `down` stops it (through its API, else by signal)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from gitops.cli.agent_options import AgentOptions
from gitops.cli.client import Client
from gitops.errors import GitopsError
from gitops.paths import DataDir

# `gitops up` hands the source to its background `gitops run` in this variable: a token in
# the URL would be on the command line otherwise, which `ps` shows to every local user.
REPO_ENV = "GITOPS_REPO"
STOP_GRACE = 20.0       # seconds the agent has to stop before it is killed


class AgentStartFailed(GitopsError):
    pass


def start_agent(dd: DataDir, source: str, agent: AgentOptions) -> subprocess.Popen:
    """`gitops run` in a session of its own, logging to the data dir."""
    from gitops.private_files import OWNER_ONLY_UMASK
    # The source goes in the environment (owner-only in /proc), not on the command line.
    cmd = [sys.executable, "-m", "gitops", "run", "--data-dir", str(dd.root),
           "--log-format", "json", "--log-file", str(dd.log_file), *agent.to_argv()]
    # Its stderr: a crash before its log is set up still lands where `up` shows it.
    fd = os.open(dd.startup_log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with open(fd, "wb") as startup:
        return subprocess.Popen(cmd, stdout=startup, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True,
                                env={**os.environ, REPO_ENV: source}, umask=OWNER_ONLY_UMASK)


def await_agent(dd: DataDir, proc: subprocess.Popen, timeout: float) -> None:
    """Return once the agent recorded itself in the data dir; AgentStartFailed (with the
    end of its logs) if it exits first or takes longer than `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        info = dd.read_agent()
        if info and info.get("pid") == proc.pid:
            return
        if proc.poll() is not None:
            tail = [*_tail(dd.log_file, 15), *_tail(dd.startup_log, 15)][-15:]
            raise AgentStartFailed("agent exited during start-up:\n  " + "\n  ".join(tail))
        time.sleep(0.02)    # a small file read: `up --wait` follows the agent's start closely
    raise AgentStartFailed(f"agent did not start within {timeout:.0f}s; see {dd.log_file} "
                           f"and {dd.startup_log}")


def _tail(path: Path, lines: int) -> list[str]:
    try:
        return path.read_text(errors="replace").splitlines()[-lines:]
    except FileNotFoundError:
        return []


def stop_agent(dd: DataDir) -> None:
    """Ask the data dir's agent to shut down (SIGTERM when its API does not answer) and
    wait for it to exit; SIGKILL past the grace period. No agent: nothing to do."""
    info = dd.read_agent()
    if not info:
        return
    try:
        if info.get("role") == "node":      # `gitops agent`: no API of its own to ask
            raise GitopsError("a node alone")
        Client(dd).post("/gitops/v1/shutdown", timeout=10)
    except GitopsError:
        os.kill(info["pid"], signal.SIGTERM)
    if not _wait_exit(info["pid"], STOP_GRACE):
        os.kill(info["pid"], signal.SIGKILL)
        _wait_exit(info["pid"], 5)


def _wait_exit(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except OSError:
            return True
        time.sleep(0.1)
    return False
