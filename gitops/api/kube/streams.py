"""pods/exec, pods/attach and pods/portforward over the WebSocket protocols kubectl 1.32
speaks.

exec and attach (v5.channel.k8s.io, v4 too): every binary message starts with a channel
byte, 0 stdin, 1 stdout, 2 stderr, 3 the final Status (JSON), 4 terminal resize, 255
"close this channel" (v5). exec runs the command as a Docker exec in the pod's
container; attach joins the container's own process (Docker attach).

portforward (SPDY/3.1+portforward.k8s.io): SPDY tunnelled in binary messages; per
forwarded connection the client opens an error stream and a data stream sharing a
requestid and a port, and the data stream is piped to a TCP connection to the pod IP.
"""

from __future__ import annotations

import asyncio
import json
import threading
from typing import TYPE_CHECKING, Any

import structlog
from aiohttp import WSMsgType, web

from gitops.api.kube import spdy
from gitops.api.kube import status as st
from gitops.api.kube.request import Target, bool_param
from gitops.model import ObjectKey

if TYPE_CHECKING:
    from gitops.api.kube.api import KubeApi

log = structlog.get_logger(component="kube-api")

EXEC_PROTOCOLS = ("v5.channel.k8s.io", "v4.channel.k8s.io")
PORTFORWARD_PROTOCOLS = ("SPDY/3.1+portforward.k8s.io",)
STDIN, STDOUT, STDERR, ERROR, RESIZE, CLOSE = 0, 1, 2, 3, 4, 255


async def handle(api: "KubeApi", request: web.Request, target: Target) -> web.StreamResponse:
    pod = await asyncio.to_thread(api.store.get,
                                  ObjectKey("Pod", target.namespace or "default", target.name))
    if pod is None:
        raise st.not_found("pods", "", target.name)
    if (pod.get("status") or {}).get("phase") != "Running":
        raise st.bad_request(f"pod {target.name} is not running "
                             f"(phase {(pod.get('status') or {}).get('phase', 'Pending')})")
    if target.sub == "exec":
        return await exec_session(api, request, pod)
    if target.sub == "attach":
        return await attach_session(api, request, pod)
    return await port_forward(api, request, pod)


def _websocket_only(request: web.Request, what: str) -> None:
    """Checked after the request's own errors, so kubectl's SPDY fallback (tried when the
    WebSocket upgrade is refused) reports those, not this."""
    if request.headers.get("Upgrade", "").lower() != "websocket":
        raise st.ApiError(400, "BadRequest", f"this server speaks WebSocket for {what} "
                          "(kubectl 1.30 or newer); SPDY upgrades are not served")


# -- exec --------------------------------------------------------------------------------
def exit_status(code: int, command: list[str]) -> dict:
    if code == 0:
        return {"metadata": {}, "status": "Success"}
    return {"metadata": {}, "status": "Failure", "reason": "NonZeroExitCode",
            "message": f"command terminated with non-zero exit code: error executing command "
                       f"{command}, exit code {code}",
            "details": {"causes": [{"reason": "ExitCode", "message": str(code)}]}}


def _container(pod: dict, name: str) -> str:
    containers = [c["name"] for c in (pod.get("spec") or {}).get("containers") or []]
    if not name:
        return containers[0] if containers else ""
    if name not in containers:
        raise st.bad_request(f"container {name} is not valid for pod "
                             f"{pod['metadata']['name']}")
    return name


async def exec_session(api: "KubeApi", request: web.Request, pod: dict) -> web.StreamResponse:
    command = request.query.getall("command", [])
    if not command:
        raise st.bad_request("you must specify at least 1 command")
    stdin, tty = bool_param(request.query, "stdin"), bool_param(request.query, "tty")
    return await _session(api, request, pod, "exec",
                          lambda backend, cid: backend.start_exec(cid, command, stdin, tty),
                          lambda session: exit_status(session.exit_code(), command))


async def attach_session(api: "KubeApi", request: web.Request,
                         pod: dict) -> web.StreamResponse:
    """kubectl attach: the container's own process, from now on (its stdin if it has one
    open, `stdin: true` in the pod spec). It ends when the process does or the client
    detaches."""
    stdin = bool_param(request.query, "stdin")
    return await _session(api, request, pod, "attach",
                          lambda backend, cid: backend.start_attach(cid, stdin),
                          lambda _session: {"metadata": {}, "status": "Success"})


async def _session(api: "KubeApi", request: web.Request, pod: dict, what: str, start,
                   final) -> web.StreamResponse:
    """Serve one exec or attach session: start(backend, container id) makes it, its output
    goes out on channels 1 and 2, and final(session) is the closing Status."""
    backend = api.backends.exec
    if backend is None:
        raise st.ApiError(503, "ServiceUnavailable", f"{what} is not available from this server")
    container = _container(pod, request.query.get("container", ""))
    container_id = await asyncio.to_thread(backend.container_id, pod, container)
    if not container_id:
        raise st.bad_request(f'container "{container}" in pod "{pod["metadata"]["name"]}" '
                             "is not running")
    _websocket_only(request, what)
    ws = web.WebSocketResponse(protocols=EXEC_PROTOCOLS, heartbeat=None, max_msg_size=0)
    await ws.prepare(request)
    loop = asyncio.get_running_loop()
    try:
        session = await asyncio.to_thread(start, backend, container_id)
    except Exception as exc:  # noqa: BLE001 - the runtime's refusal goes to the client
        await ws.send_bytes(bytes([ERROR]) + json.dumps(st.ApiError(
            500, "InternalError", f"{what} failed: {exc}").status()).encode())
        await ws.close()
        return ws
    output: asyncio.Queue = asyncio.Queue()

    def pump() -> None:                    # blocking reads, on a thread
        for stream, data in session.output():
            loop.call_soon_threadsafe(output.put_nowait, (stream, data))
        loop.call_soon_threadsafe(output.put_nowait, None)

    threading.Thread(target=pump, name="exec-output", daemon=True).start()
    reader = asyncio.create_task(_exec_input(ws, session))
    # The client hanging up ends the session too (its command may run on in the container).
    reader.add_done_callback(lambda _task: output.put_nowait(None))
    log.info(f"pod_{what}", namespace=pod["metadata"]["namespace"],
             pod=pod["metadata"]["name"], container=container)
    try:
        while (item := await output.get()) is not None:
            stream, data = item
            await ws.send_bytes(bytes([STDOUT if stream == 1 else STDERR]) + data)
        if not ws.closed:
            status = await asyncio.to_thread(final, session)
            await ws.send_bytes(bytes([ERROR]) + json.dumps(status).encode())
    except (ConnectionResetError, ConnectionError):
        pass
    finally:
        reader.cancel()
        await asyncio.to_thread(session.close)
        await ws.close()
    return ws


async def _exec_input(ws: web.WebSocketResponse, session: Any) -> None:
    async for msg in ws:
        if msg.type != WSMsgType.BINARY or not msg.data:
            continue
        channel, data = msg.data[0], msg.data[1:]
        if channel == STDIN and data:
            await asyncio.to_thread(session.write, data)
        elif channel == RESIZE and data:
            try:
                size = json.loads(data)
                await asyncio.to_thread(session.resize, int(size["Width"]), int(size["Height"]))
            except (ValueError, KeyError, TypeError):
                pass
        elif channel == CLOSE and data[:1] == bytes([STDIN]):
            await asyncio.to_thread(session.close_stdin)


# -- port-forward ------------------------------------------------------------------------
# What writing to a connection the pod already closed raises: asyncio's loop says
# ConnectionError / OSError, uvloop's RuntimeError ("the handler is closed").
_GONE = (ConnectionError, OSError, RuntimeError)


class _Forward:
    """One forwarded connection: the client's data stream <-> TCP to the pod. The pod may
    close its side at any time (httpd does once it has answered): what the client still
    sends for it is dropped, and only this connection ends, never the tunnel."""

    def __init__(self) -> None:
        self.error_stream = 0
        self.data_stream = 0
        self.writer: asyncio.StreamWriter | None = None
        self.pending: list[bytes] = []
        self.client_done = False
        self.task: asyncio.Task | None = None

    def connected(self, writer: asyncio.StreamWriter) -> None:
        """The dial succeeded: what the client sent meanwhile goes first."""
        self.writer = writer
        pending, self.pending = self.pending, []
        for chunk in pending:
            if not self._write(chunk):
                return
        if self.client_done:
            self._half_close()

    async def send(self, data: bytes) -> None:
        if self.writer is None:
            self.pending.append(data)
        elif self._write(data):
            try:
                await self.writer.drain()
            except _GONE:
                self.close()

    def client_finished(self) -> None:
        self.client_done = True
        if self.writer is not None:
            self._half_close()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()

    def _write(self, data: bytes) -> bool:
        if self.writer.is_closing():
            return False
        try:
            self.writer.write(data)
            return True
        except _GONE:
            self.close()
            return False

    def _half_close(self) -> None:
        if self.writer.is_closing() or not self.writer.can_write_eof():
            return
        try:
            self.writer.write_eof()
        except _GONE:
            self.close()


async def port_forward(api: "KubeApi", request: web.Request, pod: dict) -> web.StreamResponse:
    if api.backends.exec is not None:   # the node's own view of the pod, not its status
        pod_ip = await asyncio.to_thread(api.backends.exec.pod_address, pod)
    else:                               # a store-only API (tests): status is all there is
        pod_ip = (pod.get("status") or {}).get("podIP")
    if not pod_ip:
        raise st.bad_request(f"pod {pod['metadata']['name']} has no IP yet")
    _websocket_only(request, "port-forward")
    dial = api.backends.dial or _dial
    ws = web.WebSocketResponse(protocols=PORTFORWARD_PROTOCOLS, heartbeat=None, max_msg_size=0)
    await ws.prepare(request)
    decoder, encoder = spdy.Decoder(), spdy.Encoder()
    send_lock = asyncio.Lock()
    forwards: dict[str, _Forward] = {}
    by_stream: dict[int, _Forward] = {}

    async def send_frame(make) -> None:
        async with send_lock:           # frames never interleave; the encoder is stateful
            if not ws.closed:
                await ws.send_bytes(make())

    async def pipe(fwd: _Forward, port: int) -> None:
        try:
            reader, writer = await dial(pod_ip, port)
        except (OSError, asyncio.TimeoutError) as exc:
            message = (f"error forwarding port {port} to pod {pod['metadata']['name']}: "
                       f"{exc or type(exc).__name__}").encode()
            await send_frame(lambda: encoder.data(fwd.error_stream, message, fin=True))
            await send_frame(lambda: encoder.data(fwd.data_stream, b"", fin=True))
            return
        fwd.connected(writer)
        try:
            while chunk := await reader.read(65536):
                await send_frame(lambda: encoder.data(fwd.data_stream, chunk))
        except _GONE:
            pass
        await send_frame(lambda: encoder.data(fwd.data_stream, b"", fin=True))
        await send_frame(lambda: encoder.data(fwd.error_stream, b"", fin=True))
        fwd.close()

    try:
        async for msg in ws:
            if msg.type != WSMsgType.BINARY:
                continue
            try:
                frames = decoder.feed(msg.data)
            except (spdy.ProtocolError, ValueError, IndexError) as exc:
                log.warning("portforward_protocol_error", error=str(exc))
                break
            for frame in frames:
                await _on_frame(frame, encoder, send_frame, forwards, by_stream, pipe)
    finally:
        for fwd in forwards.values():
            if fwd.task:
                fwd.task.cancel()
            fwd.close()
        await ws.close()
    return ws


async def _on_frame(frame: spdy.Frame, encoder: spdy.Encoder, send_frame, forwards, by_stream,
                    pipe) -> None:
    if frame.control:
        if frame.type == spdy.PING:
            await send_frame(lambda: encoder.ping(frame.ping_id))
        elif frame.type == spdy.SYN_STREAM:
            await send_frame(lambda: encoder.syn_reply(frame.stream_id))
            kind = frame.headers.get("streamtype", "")
            request_id = frame.headers.get("requestid", str(frame.stream_id))
            fwd = forwards.setdefault(request_id, _Forward())
            by_stream[frame.stream_id] = fwd
            if kind == "error":
                fwd.error_stream = frame.stream_id
            elif kind == "data":
                fwd.data_stream = frame.stream_id
                try:
                    port = int(frame.headers.get("port", ""))
                except ValueError:
                    await send_frame(lambda: encoder.rst(frame.stream_id,
                                                         spdy.RST_PROTOCOL_ERROR))
                    return
                fwd.task = asyncio.create_task(pipe(fwd, port))
            if frame.fin and kind == "data":
                fwd.client_finished()
        elif frame.type == spdy.RST_STREAM:
            fwd = by_stream.get(frame.stream_id)
            if fwd and fwd.data_stream == frame.stream_id:
                if fwd.task:
                    fwd.task.cancel()
                fwd.close()
        return
    fwd = by_stream.get(frame.stream_id)
    if fwd is None or frame.stream_id != fwd.data_stream:
        return                          # the error stream carries nothing from the client
    if frame.data:
        await fwd.send(frame.data)
    if frame.fin:
        fwd.client_finished()


async def _dial(host: str, port: int):
    return await asyncio.wait_for(asyncio.open_connection(host, port), timeout=10)
