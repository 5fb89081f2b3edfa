"""Issue 13, item 5: one input never causes unbounded work.

Webhooks: a request without a plausible signature is refused before its body is read; at
most a few bodies are read at once, each within a deadline; a replayed delivery triggers no
second sync. git: every command runs against a deadline, never waits on a prompt, and a
remote that accepts and then hangs fails the sync with a clear error while what runs stays.

Everything runs against servers on 127.0.0.1 that the tests start themselves.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from gitops.api.server import ApiContext, make_app
from gitops.api.webhook import WebhookLimits, add_webhook_routes
from gitops.model import ObjectKey
from gitops.source.git import STALL_SECONDS, GitSource, git_environment
from gitops.source.webhook import DeliveryLog, PushEvent, may_verify
from gitops.store import Registry, SqliteStore
from gitops.sync.engine import SyncEngine

ROOT = Path(__file__).resolve().parents[2]
SECRET = b"hook-s3cret"
REPO_URL = "https://git.example.invalid/team/app.git"
SHA = "3f786850e387550fdab836ed7e6dc881de23001b"
MIB = 1024 * 1024


def run(coro, timeout: float = 60.0):
    return asyncio.run(asyncio.wait_for(coro, timeout))


def sign(body: bytes, secret: bytes = SECRET) -> str:
    return "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()


def push_body(after: str = SHA) -> bytes:
    return json.dumps({"ref": "refs/heads/main", "after": after,
                       "repository": {"clone_url": REPO_URL}}).encode()


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def agent_app() -> web.Application:
    """The API app as the agent builds it (bearer token, Kubernetes API), hooks added next."""
    return make_app(ApiContext(store=None, token="api-token", status=dict, control=None,
                               shutdown=lambda: None, logs=None))


@contextlib.asynccontextmanager
async def serve(on_push=None, limits: WebhookLimits = WebhookLimits(),
                clock=time.monotonic) -> AsyncIterator[tuple[int, list[PushEvent]]]:
    seen: list[PushEvent] = []
    app = agent_app()
    add_webhook_routes(app, SECRET, REPO_URL, "main", on_push or seen.append, limits, clock)
    runner = web.AppRunner(app)
    await runner.setup()
    try:
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        yield runner.addresses[0][1], seen
    finally:
        await runner.cleanup()


async def post(port: int, path: str, body: bytes, headers: dict[str, str]) -> tuple[int, dict]:
    async with (aiohttp.ClientSession() as session,
                session.post(f"http://127.0.0.1:{port}{path}", data=body,
                             headers=headers) as resp):
        return resp.status, await resp.json(content_type=None)


async def headers_only(port: int, path: str, headers: dict[str, str],
                       length: int = MIB) -> tuple[int, bytes]:
    """Send a request's headers announcing `length` bytes of body, send no body, and read
    the answer to its end (the server closes the connection)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        head = "".join(f"{k}: {v}\r\n" for k, v in {
            "Host": "127.0.0.1", "Content-Type": "application/json",
            "Content-Length": str(length), **headers}.items())
        writer.write(f"POST {path} HTTP/1.1\r\n{head}\r\n".encode())
        await writer.drain()
        answer = await reader.read()
        return int(answer.split(b" ", 2)[1]), answer
    finally:
        writer.close()


# -- webhooks: what is refused before the body is read ----------------------------------------

GOOD = "sha256=" + "ab" * 32


@pytest.mark.parametrize("provider, headers, plausible", [
    ("github", {"X-Hub-Signature-256": GOOD}, True),
    ("github", {"X-Hub-Signature-256": GOOD.upper().replace("SHA256", "sha256")}, True),
    ("github", {}, False),
    ("github", {"X-Hub-Signature-256": ""}, False),
    ("github", {"X-Hub-Signature-256": GOOD[7:]}, False),            # no sha256= prefix
    ("github", {"X-Hub-Signature-256": GOOD[:-2]}, False),           # too short
    ("github", {"X-Hub-Signature-256": "sha256=" + "zz" * 32}, False),
    ("github", {"X-Hub-Signature": "sha1=" + "ab" * 20}, False),     # SHA-1 is not enough
    ("github", {"X-Signature-256": GOOD}, False),                    # another provider's
    ("gitea", {"X-Gitea-Signature": GOOD[7:]}, True),
    ("gitea", {"X-Hub-Signature-256": GOOD}, True),
    ("gitea", {"X-Gitea-Signature": GOOD}, False),
    ("generic", {"X-Signature-256": GOOD}, True),
    ("generic", {"X-Signature-256": GOOD[7:]}, False),
    ("gitlab", {"X-Gitlab-Token": SECRET.decode()}, True),
    ("gitlab", {"X-Gitlab-Token": "guess"}, False),                  # checked in full
    ("gitlab", {}, False),
    ("bitbucket", {"X-Hub-Signature-256": GOOD}, False),
])
def test_signature_header_is_checked_before_the_body(provider, headers, plausible):
    assert may_verify(provider, headers, SECRET) is plausible


@pytest.mark.parametrize("provider, headers", [
    ("github", {"X-GitHub-Event": "push"}),
    ("github", {"X-Hub-Signature-256": "sha256=nothex"}),
    ("gitea", {"X-Gitea-Event": "push"}),
    ("gitlab", {"X-Gitlab-Event": "Push Hook", "X-Gitlab-Token": "guess"}),
    ("generic", {}),
])
def test_unsigned_request_is_401_at_once_and_its_body_never_read(provider, headers):
    """The body is announced (1 MiB) and never sent: the answer comes anyway, long before
    the body deadline (60 s here), and the connection is closed."""
    async def go():
        async with serve(limits=WebhookLimits(body_timeout=60)) as (port, seen):
            status, answer = await asyncio.wait_for(
                headers_only(port, f"/hooks/{provider}", headers), 10)
            assert status == 401 and b"signature" in answer
            assert seen == []
    run(go())


def test_slow_body_is_408_and_its_read_slot_is_freed():
    async def go():
        limits = WebhookLimits(body_timeout=0.5, concurrent_reads=1)
        async with serve(limits=limits) as (port, seen):
            status, answer = await asyncio.wait_for(
                headers_only(port, "/hooks/github", {"X-Hub-Signature-256": GOOD}), 10)
            assert status == 408 and b"not received" in answer
            body = push_body()                      # the one slot is free again
            assert (await post(port, "/hooks/github", body,
                               {"X-Hub-Signature-256": sign(body)}))[0] == 202
            assert len(seen) == 1
    run(go())


# -- webhooks: replayed deliveries ---------------------------------------------------------------

def test_delivery_log_forgets_after_its_window_and_past_its_capacity():
    clock = FakeClock()
    deliveries = DeliveryLog(window=60, capacity=3, clock=clock)
    assert deliveries.first_time("github", "d1")
    assert not deliveries.first_time("github", "d1")
    assert deliveries.first_time("gitea", "d1")             # ids are per provider
    clock.now += 61
    assert deliveries.first_time("github", "d1")            # the window has passed
    assert len(deliveries) == 1                             # expired ids are dropped
    for i in range(10):
        assert deliveries.first_time("github", f"x{i}")
    assert len(deliveries) == 3                             # bounded: the oldest go first
    assert not deliveries.first_time("github", "x9")
    assert deliveries.first_time("github", "x0")
    assert deliveries.first_time("generic", "y" * 8000) and len(deliveries) == 3
    deliveries.forget("generic", "y" * 8000)
    assert deliveries.first_time("generic", "y" * 8000)


def test_replayed_delivery_triggers_once():
    async def go():
        clock = FakeClock()
        async with serve(limits=WebhookLimits(replay_window=600), clock=clock) as (port, seen):
            body = push_body()
            signed = {"X-GitHub-Event": "push", "X-Hub-Signature-256": sign(body)}
            # Unsigned junk carrying the id first: it must not poison the memory.
            status, _ = await post(port, "/hooks/github", body,
                                   {**signed, "X-Hub-Signature-256": sign(body, b"forged"),
                                    "X-GitHub-Delivery": "d-1"})
            assert status == 401
            first = await post(port, "/hooks/github", body, {**signed, "X-GitHub-Delivery": "d-1"})
            replay = await post(port, "/hooks/github", body, {**signed, "X-GitHub-Delivery": "d-1"})
            assert first == (202, {"triggered": True})
            assert replay[0] == 202 and "duplicate delivery" in replay[1]["ignored"]
            assert len(seen) == 1
            # Another delivery of the same push (a new id) is a new trigger.
            assert (await post(port, "/hooks/github", body,
                               {**signed, "X-GitHub-Delivery": "d-2"}))[1] == {"triggered": True}
            clock.now += 601                    # past the window: remembered no longer
            assert (await post(port, "/hooks/github", body,
                               {**signed, "X-GitHub-Delivery": "d-1"}))[1] == {"triggered": True}
            # GitLab retries with the same Idempotency-Key.
            gitlab = {"X-Gitlab-Event": "Push Hook", "X-Gitlab-Token": SECRET.decode(),
                      "Idempotency-Key": "k-1", "X-Gitlab-Webhook-UUID": "attempt-1"}
            assert (await post(port, "/hooks/gitlab", body, gitlab))[1] == {"triggered": True}
            again = await post(port, "/hooks/gitlab", body,
                               {**gitlab, "X-Gitlab-Webhook-UUID": "attempt-2"})
            assert "duplicate delivery" in again[1]["ignored"]
            assert [e.provider for e in seen] == ["github", "github", "github", "gitlab"]
    run(go())


def test_a_delivery_that_failed_to_trigger_can_be_redelivered():
    calls: list[PushEvent] = []

    def flaky(event: PushEvent) -> None:
        calls.append(event)
        if len(calls) == 1:
            raise RuntimeError("sync loop busy")

    async def go():
        async with serve(on_push=flaky) as (port, _):
            body = push_body()
            headers = {"X-Hub-Signature-256": sign(body), "X-GitHub-Delivery": "d-9"}
            assert (await post(port, "/hooks/github", body, headers))[0] == 500
            assert (await post(port, "/hooks/github", body, headers)) == (202, {"triggered": True})
            assert "duplicate" in (await post(port, "/hooks/github", body, headers))[1]["ignored"]
            assert len(calls) == 2
    run(go())


# -- webhooks: 300 slow posts against the agent's server in its own process ----------------------

SERVER = """
import asyncio, sys
from pathlib import Path
from aiohttp import web
from gitops.api.server import ApiContext, make_app
from gitops.api.webhook import WebhookLimits, add_webhook_routes
from gitops.proxy.loop import run

async def main(port_file, reads, timeout):
    app = make_app(ApiContext(store=None, token="api-token", status=dict, control=None,
                              shutdown=lambda: None, logs=None))
    receiver = add_webhook_routes(app, b"hook-s3cret", "https://git.example.invalid/a.git",
                                  "main", lambda event: None,
                                  WebhookLimits(body_timeout=timeout, concurrent_reads=reads))
    async def slots(_):
        return web.json_response({"peak": receiver.reads.peak, "in_use": receiver.reads.in_use})
    app.router.add_get("/test/read-slots", slots)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    Path(port_file).write_text(str(runner.addresses[0][1]))
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)   # until closed
    await runner.cleanup()

run(main(sys.argv[1], int(sys.argv[2]), float(sys.argv[3])))
"""


def _rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def _fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


@contextlib.contextmanager
def webhook_server(tmp_path: Path, reads: int, timeout: float) -> Iterator[tuple[int, int]]:
    """(pid, port) of the webhook server running in a process of its own."""
    port_file = tmp_path / "port"
    with open(tmp_path / "server.log", "wb") as logf:
        proc = subprocess.Popen([sys.executable, "-c", SERVER, str(port_file), str(reads),
                                 str(timeout)], cwd=ROOT, stdin=subprocess.PIPE,
                                stdout=logf, stderr=subprocess.STDOUT)
    try:
        for _ in range(200):
            if port_file.exists() and port_file.read_text():
                break
            assert proc.poll() is None, (tmp_path / "server.log").read_text()
            time.sleep(0.05)
        yield proc.pid, int(port_file.read_text())
    finally:
        proc.stdin.close()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


async def _slow_post(port: int) -> int:
    """Headers with a plausible signature and 1 MiB announced; all of the body but its last
    byte sent as fast as the server takes it, then nothing. The status answered, once the
    server has closed the connection (0 if it closed without one)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)

    async def feed() -> None:
        chunk = b"x" * (64 * 1024)
        with contextlib.suppress(ConnectionError, OSError):
            for i in range(16):
                writer.write(chunk if i < 15 else chunk[:-1])
                await writer.drain()

    writer.write(b"POST /hooks/github HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                 b"Content-Type: application/json\r\nX-GitHub-Event: push\r\n"
                 b"X-Hub-Signature-256: " + GOOD.encode() + b"\r\n"
                 b"Content-Length: " + str(MIB).encode() + b"\r\n\r\n")
    feeder = asyncio.create_task(feed())
    try:
        answer = await reader.read()
        return int(answer.split(b" ", 2)[1]) if answer else 0
    finally:
        feeder.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await feeder
        writer.close()


def test_300_slow_posts_are_refused_or_cut_off_and_the_server_stays_small(tmp_path):
    reads, timeout, n = 4, 2.0, 300

    async def go(pid: int, port: int) -> tuple[list, int, dict]:
        async with aiohttp.ClientSession(headers={"Authorization": "Bearer api-token"}) as s:
            body = push_body()                                      # warm the paths up
            async with s.post(f"http://127.0.0.1:{port}/hooks/github", data=body,
                              headers={"X-Hub-Signature-256": sign(body)}) as resp:
                assert resp.status == 202
            baseline, peak = _rss(pid), 0
            sampling = True

            async def sample() -> None:
                nonlocal peak
                while sampling:
                    peak = max(peak, _rss(pid))
                    await asyncio.sleep(0.02)

            sampler = asyncio.create_task(sample())
            posts = [asyncio.create_task(_slow_post(port)) for _ in range(n)]
            done, pending = await asyncio.wait(posts, timeout=timeout + 20)
            sampling = False
            await sampler
            for task in pending:
                task.cancel()
            statuses = [t.result() for t in done if not t.exception()]
            async with s.get(f"http://127.0.0.1:{port}/test/read-slots") as resp:
                slots = await resp.json()
        return statuses, peak - baseline, slots

    with webhook_server(tmp_path, reads, timeout) as (pid, port):
        fds_before = _fds(pid)
        statuses, growth, slots = run(go(pid, port), timeout=60)
        # 300 posts of 1 MiB each would be 300 MiB read and held; at most `reads` bodies
        # are buffered at a time (aiohttp's own per-connection buffers come on top).
        assert growth < 64 * MIB, f"server grew by {growth / MIB:.0f} MiB"
        assert len(statuses) == n, "a connection was neither answered nor closed in time"
        assert set(statuses) <= {429, 408}, sorted(set(statuses))
        assert statuses.count(429) >= n - 4 * reads and statuses.count(408) >= 1
        assert slots == {"peak": reads, "in_use": 0}
        for _ in range(100):                     # every connection closed on its side too
            if _fds(pid) <= fds_before:
                break
            time.sleep(0.1)
        assert _fds(pid) <= fds_before


# -- git: no prompt, no hang ------------------------------------------------------------------

@pytest.mark.parametrize("environ, configured, ours", [
    ({}, frozenset(), True),
    ({"GIT_SSH_COMMAND": "ssh -i /keys/deploy"}, frozenset(), False),
    ({"GIT_SSH": "/usr/local/bin/my-ssh"}, frozenset(), False),
    ({}, frozenset({"core.sshcommand"}), False),
])
def test_git_never_prompts_and_the_users_ssh_command_is_kept(environ, configured, ours):
    env = git_environment({"SSH_ASKPASS": "/usr/bin/ksshaskpass", "GIT_ASKPASS": "/x/ask",
                           **environ}, configured)
    assert env["GIT_TERMINAL_PROMPT"] == "0"
    assert env["GIT_ASKPASS"] == "" and env["SSH_ASKPASS"] == ""
    assert env["SSH_ASKPASS_REQUIRE"] == "never"
    if ours:
        assert env["GIT_SSH_COMMAND"] == (f"ssh -o BatchMode=yes "
                                          f"-o ConnectTimeout={STALL_SECONDS}")
    else:
        assert "GIT_SSH_COMMAND" not in env          # theirs (or git's config) applies


def test_git_http_stall_limits_defer_to_the_users_own():
    assert git_environment({}, frozenset())["GIT_HTTP_LOW_SPEED_TIME"] == str(STALL_SECONDS)
    for environ, configured in (({"GIT_HTTP_LOW_SPEED_TIME": "5"}, frozenset()),
                                ({}, frozenset({"http.lowspeedlimit"})),
                                ({}, frozenset({"http.https://git.example.invalid/"
                                                ".lowspeedtime"}))):
        env = git_environment(environ, configured)
        assert "GIT_HTTP_LOW_SPEED_TIME" not in env and "GIT_HTTP_LOW_SPEED_LIMIT" not in env


@pytest.fixture
def silent_server() -> Iterator[int]:
    """A TCP port on 127.0.0.1 that accepts connections and never says a word."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(64)
    held: list[socket.socket] = []

    def accept() -> None:
        for _ in range(1000):
            try:
                conn, _ = srv.accept()
            except OSError:
                return
            held.append(conn)

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield srv.getsockname()[1]
    finally:
        srv.shutdown(socket.SHUT_RDWR)
        srv.close()
        thread.join(5)
        for conn in held:
            conn.close()


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True,
                          text=True).stdout.strip()


def _git_processes_for(port: int) -> list[str]:
    """Live git, git-remote-http or ssh processes talking to this port (orphans included)."""
    out = subprocess.run(["ps", "-eo", "args="], capture_output=True, text=True).stdout
    return [line for line in out.splitlines()
            if str(port) in line and ("git" in line or "ssh" in line) and "ps -eo" not in line]


def _sync_within(engine: SyncEngine, bound: float):
    result: list = []
    worker = threading.Thread(target=lambda: result.append(engine.sync_once()), daemon=True)
    worker.start()
    worker.join(bound)
    assert result, f"the sync did not end within {bound} s"
    return result[0]


@pytest.mark.parametrize("scheme", ["http", "git", "ssh"])
def test_remote_that_accepts_and_hangs_fails_the_sync_in_time_and_what_runs_stays(
        scheme, silent_server, repo, tmp_path, monkeypatch):
    (repo / "app.yaml").write_text("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: app}\n"
                                   "data: {v: '1'}\n")
    _git(repo, "add", "-A")
    _git(repo, "commit", "-q", "-m", "v1")
    good = _git(repo, "rev-parse", "HEAD")
    url = {"http": f"http://deploy:s3cr3t@127.0.0.1:{silent_server}/team/app.git",
           "git": f"git://127.0.0.1:{silent_server}/team/app",
           "ssh": f"ssh://git@127.0.0.1:{silent_server}/team/app"}[scheme]
    # First the URL leads to the real repository (the user's git config rewrites it)...
    config = tmp_path / "gitconfig"
    config.write_text(f'[url "file://{repo}"]\n\tinsteadOf = {url}\n')
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", str(config))
    store = Registry(SqliteStore(tmp_path / "state.db"))
    try:
        engine = SyncEngine(store, GitSource(url=url, workdir=tmp_path / "repos", timeout=2))
        assert engine.sync_once().result == "synced"
        (repo / "app.yaml").write_text((repo / "app.yaml").read_text().replace("'1'", "'2'"))
        _git(repo, "commit", "-q", "-am", "v2, never fetched")
        # ...then to the server that accepts and never answers.
        config.write_text("")
        res = _sync_within(engine, 20)
        assert res.result == "failed"
        assert "git fetch timed out after 2 s" in res.message, res.message
        from gitops.source.base import redact_url
        assert redact_url(url) in res.message and "s3cr3t" not in res.message
        assert store.get_state("applied_revision") == good
        assert store.get(ObjectKey("ConfigMap", "default", "app"))["data"] == {"v": "1"}
        assert _git_processes_for(silent_server) == []          # all of them killed
    finally:
        store.close()


class _AuthRequired(BaseHTTPRequestHandler):
    def do_GET(self) -> None:           # noqa: N802 - http.server's naming
        self.send_response(401)
        self.send_header("WWW-Authenticate", 'Basic realm="git"')
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args) -> None:
        pass


def test_a_remote_asking_for_credentials_fails_at_once_and_no_prompt_runs(tmp_path,
                                                                           monkeypatch):
    """A desktop askpass helper in the environment (or core.askPass) would wait for a click
    nobody makes; git must neither run it nor read a terminal."""
    marker = tmp_path / "askpass-ran"
    askpass = tmp_path / "askpass"
    askpass.write_text(f"#!/bin/sh\ntouch {marker}\nsleep 5\necho guess\n")
    askpass.chmod(0o755)
    config = tmp_path / "gitconfig"
    config.write_text(f"[core]\n\taskPass = {askpass}\n")
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", str(config))
    monkeypatch.setenv("GIT_ASKPASS", str(askpass))
    monkeypatch.setenv("SSH_ASKPASS", str(askpass))
    server = ThreadingHTTPServer(("127.0.0.1", 0), _AuthRequired)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/team/app.git"
        source = GitSource(url=url, workdir=tmp_path / "repos", timeout=30)
        store = Registry(SqliteStore(tmp_path / "state.db"))
        try:
            res = _sync_within(SyncEngine(store, source), 20)
        finally:
            store.close()
        assert res.result == "failed" and "terminal prompts disabled" in res.message
        assert not marker.exists()
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def test_git_timeout_is_an_agent_option():
    from gitops.cli.agent_options import AgentOptions
    from gitops.source import make_source
    flags = AgentOptions(git_timeout=15.0).to_argv()
    assert flags[flags.index("--git-timeout") + 1] == "15.0"
    source = make_source("https://git.example.invalid/a.git", Path("/nonexistent"),
                         git_timeout=15.0)
    assert isinstance(source, GitSource) and source.timeout == 15.0
    assert GitSource(url="https://git.example.invalid/a.git", workdir=Path("/x")).timeout == 60
