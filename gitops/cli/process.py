"""The background agent's process: `up` forks it and waits until it announces itself in
its data dir; `down` stops it (through its API, else by signal)."""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path

from gitops.cli.agent_options import AgentOptions
from gitops.cli.client import Client
from gitops.errors import GitopsError
from gitops.paths import DataDir

# `gitops run` reads its source from this variable too: a token in the URL would be on the
# command line otherwise, which `ps` shows to every local user.
REPO_ENV = "GITOPS_REPO"
STOP_GRACE = 20.0       # seconds the agent has to stop before it is killed


class AgentStartFailed(GitopsError):
    pass


def start_agent(dd: DataDir, agent: AgentOptions, serve: Callable[[], None]) -> int:
    """`gitops run` in a session of its own, logging to the data dir; its pid.

    Forked, not executed anew: this process has already paid for the interpreter and most
    of the imports the agent needs, and the agent's start is what `up --wait` waits on
    first. The child runs `serve` (the `run` command's body) and never returns here. `up`
    has started no thread yet, so the fork copies nothing half-done."""
    from gitops.private_files import OWNER_ONLY_UMASK
    # Its stderr: a crash before its log is set up still lands where `up` shows it.
    startup = os.open(dd.startup_log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid:
        os.close(startup)
        return pid
    code = 1
    try:
        os.setsid()         # Ctrl-C on `up`'s terminal is not the agent's business
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        os.dup2(startup, 1)
        os.dup2(startup, 2)
        os.closerange(3, _max_fd())     # a pipe `up`'s caller reads is not held open
        os.umask(OWNER_ONLY_UMASK)
        # Its log is JSON lines in a file: structlog would import rich (tens of ms of the
        # agent's start) only for console tracebacks it never prints. None in sys.modules
        # makes `import rich` fail, which structlog takes as rich not installed.
        sys.modules.setdefault("rich", None)
        _title(["gitops", "run", "--data-dir", str(dd.root), *agent.to_argv()])
        serve()
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except BaseException:               # noqa: BLE001 - the child must never return to `up`
        import traceback
        traceback.print_exc()
    finally:
        import logging
        logging.shutdown()
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except (OSError, ValueError):
                pass
        os._exit(code)


def _max_fd() -> int:
    try:
        return os.sysconf("SC_OPEN_MAX")
    except (OSError, ValueError):
        return 1024


def _title(argv: list[str]) -> None:
    """What `ps` shows for the agent: `up`'s command line would name the source, and a
    URL may carry a token, which `ps` shows to every local user."""
    import setproctitle
    setproctitle.setproctitle(" ".join(argv))


def await_agent(dd: DataDir, pid: int, timeout: float) -> None:
    """Return once the agent recorded itself in the data dir; AgentStartFailed (with the
    end of its logs) if it exits first or takes longer than `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        info = dd.read_agent()
        if info and info.get("pid") == pid:
            return
        if _exited(pid):
            tail = [*_tail(dd.log_file, 15), *_tail(dd.startup_log, 15)][-15:]
            raise AgentStartFailed("agent exited during start-up:\n  " + "\n  ".join(tail))
        time.sleep(0.02)    # a small file read: `up --wait` follows the agent's start closely
    why = _warnings(dd.log_file, 3)
    _stop_child(pid)        # `up` failed: no agent stays behind waiting in the background
    raise AgentStartFailed(f"agent did not start within {timeout:.0f}s (stopped it)"
                           + (":\n  " + "\n  ".join(why) if why else "")
                           + f"\nsee {dd.log_file} and {dd.startup_log}")


def _stop_child(pid: int, grace: float = 10.0) -> None:
    """SIGTERM our forked agent, SIGKILL past `grace`, and reap it."""
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + grace
    while not _exited(pid):
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            return
        time.sleep(0.05)


def _warnings(log_file: Path, count: int) -> list[str]:
    """The agent's last warnings and errors, as `event: error` lines (what it waits on,
    such as an engine that does not answer)."""
    found = []
    for line in _tail(log_file, 200):
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict) and record.get("level") in ("warning", "error"):
            detail = record.get("error") or record.get("message") or ""
            found.append(f"{record.get('event')}: {detail}" if detail else
                         str(record.get("event")))
    return list(dict.fromkeys(reversed(found)))[:count][::-1]


def _exited(pid: int) -> bool:
    """Our child has ended (and is reaped)."""
    try:
        done, _ = os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        return True
    return done == pid


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
