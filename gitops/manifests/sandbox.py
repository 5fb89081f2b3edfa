"""Run a renderer (kustomize, kubectl, a helm binary, Helm's SDK) in a child process it cannot
grow out of, so a hostile chart or kustomization fails its revision instead of the agent:

- memory: RLIMIT_DATA set in the child before the renderer starts (sandbox_child.py);
- time: past the budget the child's whole process group is killed (it runs in a session of
  its own, so a tool's own children go too);
- output: stdout is read up to a cap, then the group is killed (never an unbounded buffer);
  stderr keeps its first STDERR_KEEP bytes;
- environment: only PATH, HOME, TMPDIR and the locale reach the child (kustomize reads the
  value of an env-file line without `=` from its environment; the agent's must not leak);
- input: what a tool must not find on its command line (`ps` shows that to every local user),
  e.g. decrypted Helm values or a SOPS file, goes to its stdin; a key, to an inherited fd;
- network: `offline` runs the tool in a network namespace of its own (sops: a key it must not
  reach for, such as a cloud KMS, fails at once instead of dialing out).

Argo CD's repo server and Flux's controllers get the same from their pod's cgroup limits and
exec timeouts; an agent running on the host gets it from rlimits and a process group.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import selectors
import signal
import subprocess
import sys
import time
from pathlib import Path

import structlog

from gitops.manifests.sandbox_child import EXIT_OUT_OF_MEMORY

log = structlog.get_logger(component="manifests")

CHILD = str(Path(__file__).with_name("sandbox_child.py"))
STDERR_KEEP = 64 * 1024
_READ = 64 * 1024
_ENV_KEPT = ("PATH", "HOME", "TMPDIR", "LANG", "LC_ALL")
# What fetching a remote base needs (git over SSH or through a proxy); only when allowed.
_ENV_REMOTE = ("SSH_AUTH_SOCK", "GIT_SSH_COMMAND", "HTTPS_PROXY", "HTTP_PROXY", "NO_PROXY",
               "https_proxy", "http_proxy", "no_proxy")
# Go's runtime, or Python's, giving up under RLIMIT_DATA.
_OUT_OF_MEMORY = re.compile(r"^(fatal error|runtime): .*(out of memory|cannot allocate memory)"
                            r"|^MemoryError\b", re.MULTILINE)


@dataclasses.dataclass(frozen=True)
class Limits:
    memory_mib: int
    seconds: float
    output_mib: int


@dataclasses.dataclass
class Outcome:
    returncode: int | None
    stdout: bytes = b""
    stderr: str = ""
    exceeded: str = ""          # "" | "time" | "memory" | "output"

    @property
    def ok(self) -> bool:
        return not self.exceeded and self.returncode == 0

    def signal_name(self) -> str:
        if self.returncode is None or self.returncode >= 0:
            return ""
        try:
            return signal.Signals(-self.returncode).name
        except ValueError:
            return f"signal {-self.returncode}"


def budget_message(what: str, exceeded: str, limits: Limits) -> str:
    if exceeded == "time":
        return f"{what} exceeded its time budget of {limits.seconds:g} s"
    if exceeded == "memory":
        return f"{what} exceeded its memory budget of {limits.memory_mib} MiB"
    return f"{what}: rendered output larger than {limits.output_mib} MiB"


@dataclasses.dataclass(frozen=True)
class Extras:
    """What some tools get beyond the defaults (all empty: nothing)."""
    stdin: bytes = dataclasses.field(default=b"", repr=False)
    env: dict[str, str] = dataclasses.field(default_factory=dict)   # added to the child's
    pass_fds: tuple[int, ...] = ()
    offline: bool = False


def run_tool(argv: list[str], limits: Limits, *, remote_access: bool = False,
             extras: Extras = Extras()) -> Outcome:
    """Run the binary argv[0] (an absolute path) under `limits`."""
    return _run(["exec-offline" if extras.offline else "exec", *argv], limits, remote_access,
                extras)


def run_helm_sdk(site_dir: str, request: dict, limits: Limits, stdin: bytes = b"") -> Outcome:
    """Render a chart with helm-python-sdk (found in `site_dir`) under `limits`; stdout is
    sandbox_child.render_chart's JSON reply. `stdin`: its `inline_values` (JSON), values
    that must not be on a command line."""
    return _run(["helm", site_dir, json.dumps(request)], limits, False, Extras(stdin=stdin))


def _run(args: list[str], limits: Limits, remote_access: bool,
         extras: Extras = Extras()) -> Outcome:
    memory = limits.memory_mib * 2**20
    cpu = int(2 * limits.seconds) + 5
    cmd = [sys.executable, "-I", "-S", CHILD, str(memory), str(cpu), *args]
    started = time.monotonic()
    try:
        proc = subprocess.Popen(cmd, stdin=subprocess.PIPE if extras.stdin else
                                subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, start_new_session=True,
                                env={**_child_env(limits, remote_access), **extras.env},
                                pass_fds=extras.pass_fds)
    except OSError as exc:
        return Outcome(None, stderr=f"could not run: {exc.strerror or exc}")
    try:
        stdout, stderr, exceeded = _read_capped(proc, started + limits.seconds,
                                                limits.output_mib * 2**20, extras.stdin)
        if not exceeded and not _exited_by(proc, started + limits.seconds):
            exceeded = "time"
    finally:
        _kill_group(proc)       # the leader is not reaped yet: its group id is still ours
        proc.wait()
        proc.stdout.close()
        proc.stderr.close()
        if proc.stdin is not None:
            proc.stdin.close()
    err = stderr.decode("utf-8", "replace")
    if not exceeded and proc.returncode != 0 and (
            proc.returncode == EXIT_OUT_OF_MEMORY or _OUT_OF_MEMORY.search(err)):
        exceeded = "memory"
    outcome = Outcome(proc.returncode, bytes(stdout), err, exceeded)
    log.debug("render_tool_ran", tool=args[1] if args[0] != "helm" else "helm-sdk",
              returncode=proc.returncode, exceeded=exceeded or None,
              seconds=round(time.monotonic() - started, 3))
    return outcome


def _child_env(limits: Limits, remote_access: bool) -> dict[str, str]:
    names = _ENV_KEPT + (_ENV_REMOTE if remote_access else ())
    env = {k: os.environ[k] for k in names if k in os.environ}
    # A render is one goroutine's work: few Ps mean few OS threads (RLIMIT_DATA counts their
    # stacks) and no render takes every core; the soft limit makes Go collect before the hard
    # one kills it.
    env["GOMAXPROCS"] = "2"
    env["GOMEMLIMIT"] = f"{limits.memory_mib * 3 // 4}MiB"
    return env


def _read_capped(proc: subprocess.Popen, deadline: float, cap: int,
                 stdin: bytes = b"") -> tuple[bytearray, bytearray, str]:
    """Both pipes until EOF, the deadline ("time") or more than `cap` bytes of stdout
    ("output"); stderr beyond STDERR_KEEP is drained and dropped. `stdin` is written as the
    child reads it (never a blocking write: a child that stops reading cannot hang us)."""
    out, err = bytearray(), bytearray()
    assert proc.stdout is not None and proc.stderr is not None
    pending = memoryview(stdin)
    with selectors.DefaultSelector() as sel:
        sel.register(proc.stdout, selectors.EVENT_READ, out)
        sel.register(proc.stderr, selectors.EVENT_READ, err)
        if proc.stdin is not None:
            os.set_blocking(proc.stdin.fileno(), False)
            sel.register(proc.stdin, selectors.EVENT_WRITE, None)
        while sel.get_map():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return out, err, "time"
            for key, _ in sel.select(remaining):
                if key.data is None:            # stdin: room for more
                    pending = _feed(key, pending, sel)
                    continue
                chunk = os.read(key.fd, _READ)
                if not chunk:
                    sel.unregister(key.fileobj)
                elif key.data is out:
                    out += chunk
                    if len(out) > cap:
                        return out, err, "output"
                elif len(err) < STDERR_KEEP:
                    err += chunk[:STDERR_KEEP - len(err)]
    return out, err, ""


def _feed(key: selectors.SelectorKey, pending: memoryview,
          sel: selectors.BaseSelector) -> memoryview:
    """Write what the pipe takes now; close it once all is written or the child closed it."""
    try:
        pending = pending[os.write(key.fd, pending[:_READ]):]
    except (BrokenPipeError, BlockingIOError) as exc:
        if isinstance(exc, BlockingIOError):
            return pending
        pending = pending[len(pending):]
    if not pending:
        sel.unregister(key.fileobj)
        key.fileobj.close()
    return pending


def _exited_by(proc: subprocess.Popen, deadline: float) -> bool:
    """Wait for the child to exit without reaping it, so its group id stays ours to kill."""
    if not hasattr(os, "waitid"):       # not Linux: reap, and kill what is left by group
        try:
            proc.wait(max(0.0, deadline - time.monotonic()))
            return True
        except subprocess.TimeoutExpired:
            return False
    try:
        while os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is None:
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.005)
    except ChildProcessError:           # reaped elsewhere: it has exited
        pass
    return True


def _kill_group(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
