"""SPDY/3.1 framing, the part `kubectl port-forward` needs (pure).

kubectl 1.32 tunnels SPDY through a WebSocket (subprotocol SPDY/3.1+portforward.k8s.io):
the client opens one stream per forwarded connection (and one for its errors) with
SYN_STREAM, bytes flow in DATA frames, PINGs keep the connection alive. Header blocks are
zlib-compressed with SPDY's dictionary, one compression context per direction for the
whole connection. Flow control (WINDOW_UPDATE) is ignored, as the Go implementation does.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass, field

from spdy.dictionary import zdict as DICTIONARY   # the constant of the SPDY/3 spec

from gitops.errors import PermanentError

VERSION = 3
SYN_STREAM, SYN_REPLY, RST_STREAM, SETTINGS, PING, GOAWAY, HEADERS, WINDOW_UPDATE = (
    1, 2, 3, 4, 6, 7, 8, 9)
FLAG_FIN = 0x01
RST_PROTOCOL_ERROR, RST_INVALID_STREAM, RST_CANCEL = 1, 2, 5
_MAX_FRAME = 16 * 1024 * 1024


class ProtocolError(PermanentError):
    """The peer sent something that is not SPDY/3 as we speak it."""


@dataclass
class Frame:
    control: bool
    type: int = 0                  # control frames
    stream_id: int = 0
    flags: int = 0
    data: bytes = b""              # data frames (and raw control payload)
    headers: dict[str, str] = field(default_factory=dict)
    ping_id: int = 0
    status: int = 0

    @property
    def fin(self) -> bool:
        return bool(self.flags & FLAG_FIN)


class Decoder:
    """Bytes from the client, in any chunks -> frames."""

    def __init__(self) -> None:
        self._buf = bytearray()
        self._inflate = zlib.decompressobj(zdict=DICTIONARY)

    def feed(self, data: bytes) -> list[Frame]:
        self._buf.extend(data)
        out = []
        while len(self._buf) >= 8:
            word, flags_len = struct.unpack(">II", self._buf[:8])
            length = flags_len & 0xFFFFFF
            if length > _MAX_FRAME:
                raise ProtocolError(f"frame of {length} bytes")
            if len(self._buf) < 8 + length:
                break
            payload = bytes(self._buf[8:8 + length])
            del self._buf[:8 + length]
            flags = flags_len >> 24
            if word & 0x80000000:
                out.append(self._control((word >> 16) & 0x7FFF, word & 0xFFFF, flags, payload))
            else:
                out.append(Frame(False, stream_id=word & 0x7FFFFFFF, flags=flags, data=payload))
        return out

    def _control(self, version: int, kind: int, flags: int, payload: bytes) -> Frame:
        if version != VERSION:
            raise ProtocolError(f"SPDY version {version}")
        frame = Frame(True, type=kind, flags=flags, data=payload)
        if kind == SYN_STREAM:
            frame.stream_id = struct.unpack(">I", payload[:4])[0] & 0x7FFFFFFF
            frame.headers = self._headers(payload[10:])
        elif kind in (SYN_REPLY, HEADERS):
            frame.stream_id = struct.unpack(">I", payload[:4])[0] & 0x7FFFFFFF
            frame.headers = self._headers(payload[4:])
        elif kind in (RST_STREAM, WINDOW_UPDATE, GOAWAY):
            frame.stream_id, frame.status = struct.unpack(">II", payload[:8])
            frame.stream_id &= 0x7FFFFFFF
        elif kind == PING:
            frame.ping_id = struct.unpack(">I", payload[:4])[0]
        return frame

    def _headers(self, block: bytes) -> dict[str, str]:
        raw = self._inflate.decompress(block) + self._inflate.flush(zlib.Z_SYNC_FLUSH)
        pos = 4
        count = struct.unpack(">I", raw[:4])[0]
        out = {}
        for _ in range(count):
            (n,) = struct.unpack(">I", raw[pos:pos + 4])
            name = raw[pos + 4:pos + 4 + n].decode()
            pos += 4 + n
            (v,) = struct.unpack(">I", raw[pos:pos + 4])
            out[name.lower()] = raw[pos + 4:pos + 4 + v].decode().split("\x00")[0]
            pos += 4 + v
        return out


class Encoder:
    """Frames the server sends."""

    def __init__(self) -> None:
        self._deflate = zlib.compressobj(zdict=DICTIONARY)

    def _control(self, kind: int, flags: int, payload: bytes) -> bytes:
        return struct.pack(">HHI", 0x8000 | VERSION, kind, (flags << 24) | len(payload)) + \
            payload

    def _block(self, headers: dict[str, str]) -> bytes:
        raw = struct.pack(">I", len(headers))
        for name, value in headers.items():
            n, v = name.lower().encode(), value.encode()
            raw += struct.pack(">I", len(n)) + n + struct.pack(">I", len(v)) + v
        return self._deflate.compress(raw) + self._deflate.flush(zlib.Z_SYNC_FLUSH)

    def syn_reply(self, stream_id: int, headers: dict[str, str] | None = None,
                  fin: bool = False) -> bytes:
        return self._control(SYN_REPLY, FLAG_FIN if fin else 0,
                             struct.pack(">I", stream_id) + self._block(headers or {}))

    def data(self, stream_id: int, data: bytes, fin: bool = False) -> bytes:
        return struct.pack(">II", stream_id & 0x7FFFFFFF,
                           ((FLAG_FIN if fin else 0) << 24) | len(data)) + data

    def rst(self, stream_id: int, status: int = RST_CANCEL) -> bytes:
        return self._control(RST_STREAM, 0, struct.pack(">II", stream_id, status))

    def ping(self, ping_id: int) -> bytes:
        return self._control(PING, 0, struct.pack(">I", ping_id))

    def goaway(self, last_stream: int) -> bytes:
        return self._control(GOAWAY, 0, struct.pack(">II", last_stream, 0))


def client_syn_stream(encoder_deflate: zlib._Compress, stream_id: int,
                      headers: dict[str, str], fin: bool = False) -> bytes:
    """A SYN_STREAM as a client sends it (tests drive the server with it)."""
    enc = Encoder()
    enc._deflate = encoder_deflate
    payload = struct.pack(">IIBB", stream_id, 0, 0, 0) + enc._block(headers)
    return enc._control(SYN_STREAM, FLAG_FIN if fin else 0, payload)
