"""The agent's files: the API token, the data dir, its logs, and the repo credential.

- The token file is written atomically at 0600; a short or empty one is refused, and an
  empty token (or an empty header) never authorizes anything.
- Everything in the data dir is its owner's alone (0700 / 0600, an old 0755 dir tightened);
  a local user who is not the owner reads none of it, while a container running as a
  non-root user still reads its Secret file.
- The repo URL's credential is neither on the agent's command line nor in agent.json,
  state.db or the log.
- agent.log is written by the agent itself and rotated by size.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import functools
import http.server
import json
import os
import secrets
import stat
import subprocess
import threading
import time
from pathlib import Path

import pytest
import structlog
from aiohttp.test_utils import TestClient, TestServer

from gitops.errors import GitopsError
from tests.e2e.conftest import git, gitops

GOOD_TOKEN = "a" * 43
NOBODY = ["setpriv", "--reuid", "65534", "--regid", "65534", "--clear-groups"]


def mode(path: Path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


@contextlib.contextmanager
def umask(value: int):
    old = os.umask(value)
    try:
        yield
    finally:
        os.umask(old)


# -- item 3: the token -------------------------------------------------------------------
def _status_with(server_token: str, header: str | None) -> int:
    from gitops.api.server import ApiContext, make_app
    from gitops.store import Registry, SqliteStore

    async def never(*_args):
        raise AssertionError("not reached")
    ctx = ApiContext(Registry(SqliteStore(":memory:")), server_token, lambda: {"ok": True},
                     never, lambda: None, never)

    async def go() -> int:
        async with TestClient(TestServer(make_app(ctx))) as client:
            headers = {} if header is None else {"Authorization": header}
            resp = await client.get("/gitops/v1/status", headers=headers)
            return resp.status
    return asyncio.run(go())


@pytest.mark.parametrize("server_token", ["", "   ", "\n"])
@pytest.mark.parametrize("header", [None, "", "Bearer ", "Bearer    ", "Bearer", "bearer ",
                                    "   "])
def test_an_empty_server_token_authorizes_nothing(server_token, header):
    assert _status_with(server_token, header) == 401


@pytest.mark.parametrize("header", [GOOD_TOKEN, f"Basic {GOOD_TOKEN}", f"Token {GOOD_TOKEN}",
                                    f"Bearer {GOOD_TOKEN}x", f"Bearer{GOOD_TOKEN}"])
def test_only_the_bearer_scheme_with_the_exact_token_is_accepted(header):
    assert _status_with(GOOD_TOKEN, header) == 401
    assert _status_with(GOOD_TOKEN, f"Bearer {GOOD_TOKEN}") == 200


def test_the_bearer_scheme_is_case_insensitive():
    """As RFC 6750 and the Kubernetes API read it (client libraries differ)."""
    assert _status_with(GOOD_TOKEN, f"bearer  {GOOD_TOKEN} ") == 200
    assert _status_with(GOOD_TOKEN, f"BEARER {GOOD_TOKEN}") == 200


def test_a_new_token_is_long_private_and_written_atomically(tmp_path):
    from gitops.api.token import MIN_TOKEN_CHARS, load_or_create
    path = tmp_path / "token"
    with umask(0o022):
        token = load_or_create(path)
    assert len(token) >= MIN_TOKEN_CHARS and mode(path) == 0o600
    assert path.read_text().strip() == token
    assert load_or_create(path) == token                    # kept across starts
    assert sorted(p.name for p in tmp_path.iterdir()) == ["token"]   # no temp file left


def test_a_crash_while_making_the_token_leaves_no_empty_token_file(tmp_path, monkeypatch):
    """The old writer created the file, then wrote: a crash in between left an empty token,
    which authorized an empty `Bearer ` header."""
    from gitops.api.token import load_or_create
    path = tmp_path / "token"

    def crash(fd):
        raise OSError("disk full")
    monkeypatch.setattr(os, "fsync", crash)
    with pytest.raises(OSError):
        load_or_create(path)
    assert list(tmp_path.iterdir()) == []                 # neither token nor temp file
    monkeypatch.undo()
    assert len(load_or_create(path)) >= 32                # the next start makes a good one


@pytest.mark.parametrize("content", ["", "\n", "   \n", "short-token", "x" * 31 + "\n"])
def test_a_short_or_empty_token_file_is_refused(tmp_path, content):
    from gitops.api.token import load_or_create
    path = tmp_path / "token"
    path.write_text(content)
    with pytest.raises(GitopsError, match="at least 32"):
        load_or_create(path)
    assert path.read_text() == content                    # refused, not silently replaced


def test_an_existing_token_file_is_forced_to_0600(tmp_path):
    from gitops.api.token import load_or_create
    path = tmp_path / "token"
    path.write_text(GOOD_TOKEN + "\n")
    path.chmod(0o644)
    assert load_or_create(path) == GOOD_TOKEN and mode(path) == 0o600


def test_tls_keys_and_certificates_are_0600(tmp_path):
    """Even over the world-readable temp file a crash left: the old writer reused it
    (O_TRUNC keeps a file's mode) and renamed it into the key."""
    from gitops.api.kube.tls import ensure_server_cert
    for stale in ("ca.key.tmp", "server.key.tmp"):
        (tmp_path / stale).write_text("half a key")
        (tmp_path / stale).chmod(0o644)
    with umask(0o022):
        cert, key = ensure_server_cert(tmp_path, ["127.0.0.1"])
    assert mode(tmp_path / "ca.key") == 0o600 and mode(key) == 0o600
    assert mode(tmp_path / "ca.crt") == 0o600 and mode(cert) == 0o600


@pytest.mark.docker
def test_up_refuses_to_serve_with_an_empty_token_file(docker_client, tmp_path):
    """An empty token file (a crash of an older writer) used to make an API that any
    `Authorization: Bearer ` header opened. Now the agent does not start, and `up` says why
    with the agent's own words."""
    data, manifests = tmp_path / "data", tmp_path / "manifests"
    manifests.mkdir()
    data.mkdir()
    (data / "token").write_text("")
    try:
        up = gitops("up", str(manifests), "--data-dir", str(data), "--interval", "3600",
                    timeout=120)
        info_file = data / "agent.json"
        assert up.returncode == 2, up.stdout + up.stderr
        assert "agent exited during start-up" in up.stderr
        assert "holds 0 character(s)" in up.stderr and "at least 32" in up.stderr
        assert not info_file.exists()                     # nothing listens
        assert (data / "token").read_text() == ""         # refused, not replaced
        # Also in the agent's own log, where a user reading agent.log looks.
        assert "agent_failed" in (data / "agent.log").read_text()
    finally:
        down = gitops("down", "--data-dir", str(data))
    assert down.returncode == 0, down.stdout + down.stderr


# -- item 4: owner-only files ------------------------------------------------------------
def test_an_old_0755_data_dir_is_tightened(tmp_path):
    from gitops.private_files import make_private_dir
    root = tmp_path / "data"
    root.mkdir(mode=0o755)
    root.chmod(0o755)
    for name in ("state.db", "state.db-wal", "agent.json", "agent.log", "token"):
        (root / name).write_text("x")
        (root / name).chmod(0o644)
    (root / "pods").mkdir()
    (root / "pods").chmod(0o755)
    outside = tmp_path / "outside"
    outside.write_text("x")
    outside.chmod(0o644)
    (root / "link").symlink_to(outside)
    make_private_dir(root)
    assert mode(root) == 0o700 and mode(root / "pods") == 0o700
    for name in ("state.db", "state.db-wal", "agent.json", "agent.log", "token"):
        assert mode(root / name) == 0o600, name
    assert mode(outside) == 0o644                         # a symlink is not followed
    new = tmp_path / "new" / "data"
    with umask(0o022):
        make_private_dir(new)
    assert mode(new) == 0o700


def test_the_store_and_its_wal_are_owner_only_whatever_the_umask(tmp_path):
    from gitops.model import ObjectKey
    from gitops.store import Registry, SqliteStore
    path = tmp_path / "state.db"
    with umask(0o022):
        store = Registry(SqliteStore(path))
        store.create({"apiVersion": "v1", "kind": "Secret",
                      "metadata": {"name": "s", "namespace": "default"},
                      "stringData": {"password": "pw"}})
    try:
        assert store.get(ObjectKey("Secret", "default", "s")) is not None
        files = [p for p in tmp_path.iterdir() if p.name.startswith("state.db")]
        assert {p.name for p in files} >= {"state.db", "state.db-wal", "state.db-shm"}
        assert {p.name: mode(p) for p in files} == {p.name: 0o600 for p in files}
    finally:
        store.close()
    # An older version's world-readable files are tightened when the store opens.
    for p in tmp_path.iterdir():
        p.chmod(0o644)
    again = Registry(SqliteStore(path))
    try:
        assert {p.name: mode(p) for p in tmp_path.iterdir()} == {
            p.name: 0o600 for p in tmp_path.iterdir()}
    finally:
        again.close()


def test_projected_files_stay_readable_in_containers_under_umask_077(tmp_path):
    """The agent runs with umask 077; the volume dirs it bind-mounts must still let a
    non-root container user in (as the kubelet's 0755 dirs, files at defaultMode)."""
    from gitops.agent.files import write_file_set
    from gitops.agent.volumes import FileSet
    with umask(0o077):
        write_file_set(tmp_path, FileSet("creds", {"password": (b"pw", 0o644),
                                                   "nested/key": (b"k", 0o400)}))
    vdir = tmp_path / "creds"
    data = vdir / os.readlink(vdir / "..data")
    assert mode(vdir) == 0o755 and mode(data) == 0o755 and mode(data / "nested") == 0o755
    assert mode(data / "password") == 0o644 and mode(data / "nested" / "key") == 0o400


def _secret_volume_files(data: Path) -> list[Path]:
    return [p for p in (data / "pods").glob("*/volumes/creds/..*/password")
            if p.is_file() and not p.is_symlink()]


REPO_USER, REPO_TOKEN = "deploy", "ghp-Tk39-REPOCREDLEAKCHECK"
SECRET_VALUE = "pw-Vb27-FILECHECK"
MANIFESTS = f"""\
apiVersion: v1
kind: Secret
metadata: {{name: creds}}
stringData: {{password: "{SECRET_VALUE}"}}
---
apiVersion: apps/v1
kind: Deployment
metadata: {{name: reader}}
spec:
  replicas: 1
  selector: {{matchLabels: {{app: reader}}}}
  template:
    metadata: {{labels: {{app: reader}}}}
    spec:
      terminationGracePeriodSeconds: 1
      securityContext: {{runAsUser: 1000, runAsGroup: 1000}}
      containers:
        - name: main
          image: gitops/busybox:1
          command: [sh, -c, "id -u; cat /creds/password >/dev/null && echo secret-readable;
                    cat /etc/resolv.conf >/dev/null && echo resolv-readable; exec sleep 3600"]
          volumeMounts: [{{name: creds, mountPath: /creds}}]
      volumes: [{{name: creds, secret: {{secretName: creds}}}}]
"""


@contextlib.contextmanager
def git_http_server(bare: Path):
    """A bare repo over git's dumb HTTP protocol on 127.0.0.1, behind Basic auth: only a
    client that has the credential from the URL can clone it."""
    expected = "Basic " + base64.b64encode(f"{REPO_USER}:{REPO_TOKEN}".encode()).decode()

    class Handler(http.server.SimpleHTTPRequestHandler):
        def do_GET(self):
            if self.headers.get("Authorization") != expected:
                self.send_response(401)
                self.send_header("WWW-Authenticate", 'Basic realm="git"')
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            super().do_GET()

        def log_message(self, *_args):
            pass

    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(Handler, directory=str(bare)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def _as_nobody_can_read(path: Path) -> bool:
    res = subprocess.run([*NOBODY, "cat", str(path)], capture_output=True, timeout=10)
    return res.returncode == 0


def _pod_log(data: str, pod: str) -> str:
    return gitops("logs", pod, "--data-dir", data).stdout


@pytest.mark.docker
def test_data_dir_is_owner_only_and_the_repo_credential_stays_in_git(docker_client, repo,
                                                                      tmp_path):
    (repo / "app.yaml").write_text(MANIFESTS)
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "v1")
    bare = tmp_path / "served" / "app.git"
    subprocess.run(["git", "clone", "-q", "--bare", str(repo), str(bare)], check=True,
                   capture_output=True)
    git(bare, "update-server-info")
    data = tmp_path / "data"
    # What an older version left: a 0755 data dir, a world-readable log and token.
    data.mkdir(mode=0o755)
    data.chmod(0o755)
    (data / "agent.log").write_text('{"event": "from_an_older_version"}\n')
    (data / "agent.log").chmod(0o644)
    old_token = secrets.token_urlsafe(32)
    (data / "token").write_text(old_token)
    (data / "token").chmod(0o644)
    with git_http_server(bare) as port:
        url = f"http://{REPO_USER}:{REPO_TOKEN}@127.0.0.1:{port}/"
        try:
            up = gitops("up", url, "--data-dir", str(data), "--wait", "--timeout", "120",
                        "--interval", "3600")
            assert up.returncode == 0, up.stdout + up.stderr
            info = json.loads((data / "agent.json").read_text())
            pid = int(info["pid"])

            # -- the credential: on no command line, in no file but git's own config ---
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
            assert b"gitops" in cmdline and REPO_TOKEN.encode() not in cmdline
            assert REPO_TOKEN not in json.dumps(info)
            assert info["repo"] == f"http://***@127.0.0.1:{port}/"   # userinfo masked whole
            again = gitops("up", url, "--data-dir", str(data))     # same source: a sync
            assert again.returncode == 0, again.stdout + again.stderr
            assert REPO_TOKEN not in again.stdout + again.stderr
            for db in data.glob("state.db*"):
                assert REPO_TOKEN.encode() not in db.read_bytes(), db.name
            assert (data / "token").read_text().strip() == old_token   # kept, tightened

            # -- the container (uid 1000, gid 1000) reads its Secret and resolv.conf ----
            pods = json.loads(gitops("get", "pods", "-o", "json", "--data-dir",
                                     str(data)).stdout)["items"]
            [pod] = [p["metadata"]["name"] for p in pods]
            deadline, log = time.monotonic() + 60, ""
            while time.monotonic() < deadline and "resolv-readable" not in log:
                log = _pod_log(str(data), pod)
                time.sleep(0.5)
            assert log.split() == ["1000", "secret-readable", "resolv-readable"], log

            # -- modes, and what another local user can read: nothing --------------------
            secret_files = _secret_volume_files(data)
            assert secret_files, list((data / "pods").rglob("*"))
            assert secret_files[0].read_text() == SECRET_VALUE    # the real file
            private = [data / n for n in ("state.db", "state.db-wal", "state.db-shm",
                                          "agent.json", "agent.log", "token")]
            assert mode(data) == 0o700
            for path in private:
                assert path.is_file() and mode(path) == 0o600, path.name
            for path in data.iterdir():                  # and all else the agent wrote
                assert mode(path) == (0o700 if path.is_dir() else 0o600), path.name
            for path in [*private, *secret_files, data / "agent.startup.log"]:
                assert not _as_nobody_can_read(path), path
            assert _as_nobody_can_read(Path("/etc/hostname")) or \
                _as_nobody_can_read(Path("/etc/passwd"))          # the check is not vacuous
        finally:
            down = gitops("down", "--data-dir", str(data))
    assert down.returncode == 0, down.stdout + down.stderr
    # -- item 8c: the agent wrote agent.log itself (appended to the old one) -------------
    log_text = (data / "agent.log").read_text()
    assert "from_an_older_version" in log_text and '"event": "agent_started"' in log_text
    assert REPO_TOKEN not in log_text and SECRET_VALUE not in log_text
    assert mode(data / "agent.log") == 0o600
    assert (data / "agent.startup.log").stat().st_size < 4096   # stderr only, not the log


# -- item 8c: the agent's log rotates ------------------------------------------------------
@pytest.fixture
def restore_logging():
    saved = structlog.get_config()
    yield
    from gitops import log as logsetup
    logsetup._close_file_logger()
    structlog.configure(**saved)


def test_the_agent_log_rotates_by_size_and_stays_private(tmp_path, restore_logging):
    from gitops import log as logsetup
    path = tmp_path / "agent.log"
    path.write_text('{"event": "older"}\n')
    path.chmod(0o644)                                   # an older version's log
    with umask(0o022):
        logsetup.configure("auto", "info", log_file=path, max_bytes=2000, backups=2)
        log = structlog.get_logger(component="test")
        for i in range(200):
            log.info("record_written", i=i, padding="x" * 40)
        log.debug("below_the_level")
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["agent.log", "agent.log.1", "agent.log.2"]   # rotated, 2 kept
    records = []
    for p in tmp_path.iterdir():
        assert mode(p) == 0o600, p.name
        assert p.stat().st_size <= 2000, p.name
        records += [json.loads(line) for line in p.read_text().splitlines()]
    assert all(r["event"] == "record_written" and r["level"] == "info" for r in records)
    last = [json.loads(line) for line in path.read_text().splitlines()]
    assert last[-1]["i"] == 199 and last[-1]["component"] == "test"
