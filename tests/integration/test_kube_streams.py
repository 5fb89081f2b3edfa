"""kubectl exec and port-forward through the API's WebSocket protocols, without Docker:
exec runs against a scripted session, port-forward dials a local TCP server standing in
for the pod (pod IP 127.0.0.1)."""

from __future__ import annotations

import os
import queue
import socket
import subprocess
import threading
import urllib.request
import zlib

import pytest

from gitops.api.kube import spdy
from gitops.api.kube.api import KubeBackends
from gitops.model import ObjectKey
from gitops.store import Registry, SqliteStore
from tests.conftest import free_port
from tests.kube_support import KubeServer, kubectl_path


class ScriptedSession:
    """Echoes stdin back on stdout until stdin closes, then exits with 7."""

    def __init__(self, command):
        self.command = command
        self.stdin: queue.Queue = queue.Queue()
        self.resized = []
        self.closed = False

    def output(self):
        yield 1, ("ran " + " ".join(self.command) + "\n").encode()
        while (data := self.stdin.get(timeout=20)) is not None:
            yield 1, data
        yield 2, b"bye\n"

    def write(self, data):
        self.stdin.put(data)

    def close_stdin(self):
        self.stdin.put(None)

    def resize(self, width, height):
        self.resized.append((width, height))

    def exit_code(self):
        return 7

    def close(self):
        self.closed = True
        self.stdin.put(None)


class ScriptedExec:
    def __init__(self):
        self.sessions = []

    def container_id(self, pod, container):
        return f"{pod['metadata']['name']}/{container}"

    def pod_address(self, pod):
        return "127.0.0.1"          # where the node runs the pod in these tests

    def start_exec(self, container_id, command, stdin, tty):
        self.sessions.append((container_id, ScriptedSession(command)))
        return self.sessions[-1][1]

    def start_attach(self, container_id, stdin):
        self.sessions.append((container_id, ScriptedSession(["(attached)"])))
        return self.sessions[-1][1]


@pytest.fixture
def kube(tmp_path):
    kubectl_path()
    store = Registry(SqliteStore(tmp_path / "state.db"))
    store.create({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
                  "spec": {"containers": [{"name": "app", "image": "i"}]}})
    store.update_status(ObjectKey("Pod", "default", "p"), {"phase": "Running",
                                                           "podIP": "127.0.0.1"})
    backend = ScriptedExec()
    with KubeServer(store, tmp_path, kube=KubeBackends(exec=backend)) as server:
        server.exec_backend = backend
        yield server
    store.close()


def test_kubectl_exec_streams_stdin_stdout_stderr_and_the_exit_code(kube):
    res = kube.kubectl("exec", "-i", "p", "--", "cat", "-n", input="line one\nline two\n")
    assert res.returncode == 7
    assert res.stdout == "ran cat -n\nline one\nline two\n"
    assert "bye" in res.stderr and "command terminated with exit code 7" in res.stderr
    [(container, _)] = kube.exec_backend.sessions
    assert container == "p/app"
    bad = kube.kubectl("exec", "p", "-c", "nope", "--", "true")
    assert bad.returncode == 1 and "container nope is not valid" in bad.stderr


def test_kubectl_attach_joins_the_process_and_ends_with_success(kube):
    res = kube.kubectl("attach", "-i", "p", "-c", "app", input="hello\n")
    assert res.returncode == 0, res.stderr
    assert res.stdout.endswith("ran (attached)\nhello\n")
    assert "bye" in res.stderr
    [(container, session)] = kube.exec_backend.sessions
    assert container == "p/app" and session.closed


def serve_tcp(port: int, stop: threading.Event) -> None:
    """A server that answers each connection with a checksum of what it received."""
    with socket.create_server(("127.0.0.1", port)) as srv:
        srv.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = srv.accept()
            except socket.timeout:
                continue
            with conn:
                data = b""
                while chunk := conn.recv(65536):
                    data += chunk
                    if data.endswith(b"\n\n"):
                        break
                conn.sendall(b"got %d bytes crc %d\n" % (len(data), zlib.crc32(data)))


def test_kubectl_port_forward_tunnels_spdy_over_websocket(kube, tmp_path):
    pod_port, local = free_port(), free_port()
    stop = threading.Event()
    server = threading.Thread(target=serve_tcp, args=(pod_port, stop), daemon=True)
    server.start()
    proc = subprocess.Popen([kubectl_path(), "--cache-dir", str(tmp_path / "kcache"),
                             "port-forward", "pod/p", f"{local}:{pod_port}"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "KUBECONFIG": str(kube.kubeconfig)})
    try:
        assert "Forwarding from 127.0.0.1" in proc.stdout.readline()
        for size in (10, 300_000):          # several connections, one bigger than a frame
            payload = os.urandom(size).replace(b"\n", b"x") + b"\n\n"
            with socket.create_connection(("127.0.0.1", local), timeout=20) as conn:
                conn.sendall(payload)
                answer = b""
                while not answer.endswith(b"\n"):
                    answer += conn.recv(4096)
            assert answer == b"got %d bytes crc %d\n" % (len(payload), zlib.crc32(payload))
    finally:
        proc.kill()
        proc.communicate(timeout=10)
        stop.set()
        server.join(5)
    # a port nothing listens on: kubectl reports the error from the error stream
    closed = free_port()
    proc = subprocess.Popen([kubectl_path(), "--cache-dir", str(tmp_path / "kcache"),
                             "port-forward", "pod/p", f"{local}:{closed}"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "KUBECONFIG": str(kube.kubeconfig)})
    try:
        assert "Forwarding from" in proc.stdout.readline()
        with pytest.raises(OSError):
            urllib.request.urlopen(f"http://127.0.0.1:{local}/", timeout=10).read()
    finally:
        proc.kill()
        _, err = proc.communicate(timeout=10)
    assert f"error forwarding port {closed}" in err


def test_spdy_frames_round_trip():
    client_deflate = zlib.compressobj(zdict=spdy.DICTIONARY)
    decoder = spdy.Decoder()
    raw = spdy.client_syn_stream(client_deflate, 1, {"streamType": "data", "port": "80",
                                                      "requestID": "0"})
    raw += spdy.client_syn_stream(client_deflate, 3, {"streamtype": "error"}, fin=True)
    raw += spdy.Encoder().data(1, b"hello", fin=True) + spdy.Encoder().ping(9)
    frames = []
    for i in range(0, len(raw), 7):             # arbitrary chunking
        frames += decoder.feed(raw[i:i + 7])
    assert [(f.control, f.type, f.stream_id) for f in frames] == [
        (True, spdy.SYN_STREAM, 1), (True, spdy.SYN_STREAM, 3), (False, 0, 1),
        (True, spdy.PING, 0)]
    assert frames[0].headers == {"streamtype": "data", "port": "80", "requestid": "0"}
    assert frames[1].fin and frames[2].data == b"hello" and frames[2].fin
    assert frames[3].ping_id == 9
    # the server's header blocks share one compression context, as Go's reader expects
    enc = spdy.Encoder()
    replies = enc.syn_reply(1) + enc.syn_reply(3, {"a": "b"}) + enc.rst(5) + enc.goaway(3)
    decoded = spdy.Decoder().feed(replies)
    assert [(f.type, f.stream_id, f.headers) for f in decoded] == [
        (spdy.SYN_REPLY, 1, {}), (spdy.SYN_REPLY, 3, {"a": "b"}),
        (spdy.RST_STREAM, 5, {}), (spdy.GOAWAY, 3, {})]
    with pytest.raises(spdy.ProtocolError):
        spdy.Decoder().feed(b"\x80\x02\x00\x01\x00\x00\x00\x00")     # SPDY/2


def test_exec_ends_when_the_client_hangs_up(kube):
    import asyncio
    import ssl

    import aiohttp

    async def go():
        ctx = ssl.create_default_context(cafile=str(kube.root / "ca.crt"))
        url = (kube.kube_url.replace("https", "wss") +
               "/api/v1/namespaces/default/pods/p/exec?command=sh&stdin=true&stdout=true")
        async with aiohttp.ClientSession() as session:
            async with session.ws_connect(url, protocols=("v5.channel.k8s.io",), ssl=ctx,
                                          headers={"Authorization": "Bearer test-token"}) as ws:
                assert ws.protocol == "v5.channel.k8s.io"
                first = await ws.receive_bytes(timeout=10)
                assert first == b"\x01ran sh\n"
                await ws.send_bytes(b"\x00typed\n")
                assert await ws.receive_bytes(timeout=10) == b"\x01typed\n"
            # hung up without closing stdin: the server closes the session on its own
        [(_, scripted)] = kube.exec_backend.sessions
        for _ in range(200):            # bounded: 10 s
            if scripted.closed:
                break
            await asyncio.sleep(0.05)
        return scripted

    assert asyncio.run(go()).closed      # the server closed the session on its own


def test_a_pod_closing_one_forwarded_connection_does_not_end_the_tunnel():
    """Data for a connection the pod already closed (httpd closes once it has answered)
    ends that connection only: before, the error left the frame loop and kubectl said
    'lost connection to pod' on its next connection."""
    import asyncio

    from gitops.api.kube.streams import _Forward, _on_frame

    class Gone:
        closed = False

        def is_closing(self):
            return self.closed

        def write(self, data):
            pass

        async def drain(self):
            raise ConnectionResetError("Connection lost")

        def close(self):
            self.closed = True

    fwd = _Forward()
    fwd.data_stream, fwd.writer = 3, Gone()

    async def nothing(_make):
        pass
    asyncio.run(_on_frame(spdy.Frame(False, stream_id=3, data=b"more"), spdy.Encoder(),
                          nothing, {"1": fwd}, {3: fwd}, None))
    assert fwd.writer.closed


def serve_http_once_per_connection(port: int, stop: threading.Event) -> None:
    """Like busybox httpd: read one request, answer it, close; many connections at once."""
    def answer(conn: socket.socket) -> None:
        with conn:
            data = b""
            while b"\r\n\r\n" not in data:
                chunk = conn.recv(4096)
                if not chunk:
                    return
                data += chunk
            path = data.split(b" ", 2)[1]
            body = b"answer to " + path
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\nConnection: close\r\n\r\n"
                         % len(body) + body)
    with socket.create_server(("127.0.0.1", port)) as srv:
        srv.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = srv.accept()
            except socket.timeout:
                continue
            threading.Thread(target=answer, args=(conn,), daemon=True).start()


def _get_through(local: int, path: str) -> bytes:
    with socket.create_connection(("127.0.0.1", local), timeout=20) as conn:
        conn.sendall(b"GET " + path.encode() + b" HTTP/1.1\r\nHost: x\r\n"
                     b"Connection: keep-alive\r\n\r\n")
        out = b""
        while chunk := conn.recv(4096):
            out += chunk
        # the client keeps writing after the pod closed: its FIN and a late byte
        try:
            conn.sendall(b"\r\n")
        except OSError:
            pass
    return out


def test_one_port_forward_survives_many_closing_connections(kube, tmp_path):
    """50 requests one after another and 10 at once through one kubectl port-forward, to a
    server that closes each connection once it has answered, on the agent's event loop
    (uvloop): before, write_eof() on a transport the pod had closed raised RuntimeError
    under uvloop and kubectl said `lost connection to pod` after a few requests."""
    from concurrent.futures import ThreadPoolExecutor
    pod_port, local = free_port(), free_port()
    stop = threading.Event()
    server = threading.Thread(target=serve_http_once_per_connection, args=(pod_port, stop),
                              daemon=True)
    server.start()
    proc = subprocess.Popen([kubectl_path(), "--cache-dir", str(tmp_path / "kcache"),
                             "port-forward", "pod/p", f"{local}:{pod_port}"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "KUBECONFIG": str(kube.kubeconfig)})
    try:
        assert "Forwarding from 127.0.0.1" in proc.stdout.readline()
        for i in range(50):
            out = _get_through(local, f"/seq/{i}")
            assert out.endswith(b"answer to /seq/%d" % i), (i, out)
        with ThreadPoolExecutor(10) as pool:
            outs = list(pool.map(lambda i: _get_through(local, f"/par/{i}"), range(10)))
        assert [o.rsplit(b"\r\n\r\n", 1)[-1] for o in outs] == \
            [b"answer to /par/%d" % i for i in range(10)]
        assert proc.poll() is None, proc.stderr.read()      # the tunnel is still up
    finally:
        proc.kill()
        _, err = proc.communicate(timeout=10)
        stop.set()
        server.join(5)
    assert "lost connection" not in err, err
