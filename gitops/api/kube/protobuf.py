"""Protobuf request bodies (application/vnd.kubernetes.protobuf), as kubectl's generators
send them (`kubectl create configmap|secret|deployment|job|...`), decoded into the JSON
form every other path handles (pure).

The wire format is Kubernetes' own: the magic `k8s\\0`, then a runtime.Unknown envelope
(apiVersion and kind, and the object's bytes). The messages are read with the protobuf
library against a descriptor set compiled from Kubernetes 1.32's generated.proto files
(k8s.io/api and k8s.io/apimachinery, v0.32; scripts/gen-kube-proto.sh remakes it). Their
field names are the JSON names; Go embedded structs (a Volume's VolumeSource) are
inlined as in JSON; the types apimachinery encodes its own way (Time, MicroTime,
Duration, IntOrString, Quantity, RawExtension, FieldsV1) become what their JSON is; and
values Go's JSON would omit (empty strings and lists, zeros, false, zero times) are left
out, as a JSON body has them (`replicas: 0` is kept: a generator sets it on purpose).
"""

from __future__ import annotations

import base64
import functools
import json
from datetime import UTC, datetime
from importlib.resources import files
from typing import Any

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import DecodeError, Message

from gitops.errors import PermanentError

MAGIC = b"k8s\x00"
CONTENT_TYPE = "application/vnd.kubernetes.protobuf"
_META = "k8s.io.apimachinery.pkg.apis.meta.v1."
_UNKNOWN = "k8s.io.apimachinery.pkg.runtime.Unknown"


class NotDecodable(PermanentError):
    """A body this decoder cannot read: a kind it has no message for."""


class Malformed(NotDecodable):
    """Not Kubernetes protobuf at all, or broken."""


@functools.lru_cache(maxsize=1)
def _pool() -> descriptor_pool.DescriptorPool:
    raw = files("gitops.api.kube").joinpath("k8s-1.32.desc").read_bytes()
    pool = descriptor_pool.DescriptorPool()
    for proto in descriptor_pb2.FileDescriptorSet.FromString(raw).file:
        pool.Add(proto)
    pool.Add(_authentication_v1())
    return pool


def _authentication_v1() -> descriptor_pb2.FileDescriptorProto:
    """TokenRequest (`kubectl create token` sends it as protobuf), described here: the
    descriptor set holds the groups objects are stored in, and authentication.k8s.io
    stores none. Field numbers are k8s.io/api/authentication/v1/generated.proto's."""
    meta = ".k8s.io.apimachinery.pkg.apis.meta.v1."
    string, int64, msg = (FieldDescriptor.TYPE_STRING, FieldDescriptor.TYPE_INT64,
                          FieldDescriptor.TYPE_MESSAGE)
    optional, repeated = FieldDescriptor.LABEL_OPTIONAL, FieldDescriptor.LABEL_REPEATED
    messages = {
        "BoundObjectReference": [("kind", 1, string, ""), ("apiVersion", 2, string, ""),
                                 ("name", 3, string, ""), ("uid", 4, string, "")],
        "TokenRequestSpec": [("audiences", 1, string, "repeated"),
                             ("boundObjectRef", 3, msg, "BoundObjectReference"),
                             ("expirationSeconds", 4, int64, "")],
        "TokenRequestStatus": [("token", 1, string, ""),
                               ("expirationTimestamp", 2, msg, meta + "Time")],
        "TokenRequest": [("metadata", 1, msg, meta + "ObjectMeta"),
                         ("spec", 2, msg, "TokenRequestSpec"),
                         ("status", 3, msg, "TokenRequestStatus")],
    }
    package = "k8s.io.api.authentication.v1"
    proto = descriptor_pb2.FileDescriptorProto(
        name="k8s.io/api/authentication/v1/generated.proto", package=package, syntax="proto2",
        dependency=["k8s.io/apimachinery/pkg/apis/meta/v1/generated.proto"])
    for name, fields in messages.items():
        message = proto.message_type.add(name=name)
        for field, number, kind, extra in fields:
            f = message.field.add(name=field, number=number, type=kind,
                                  label=repeated if extra == "repeated" else optional)
            if kind == msg:
                f.type_name = extra if extra.startswith(".") else f".{package}.{extra}"
    return proto


def _message(name: str) -> Message:
    try:
        descriptor = _pool().FindMessageTypeByName(name)
    except KeyError as exc:
        raise NotDecodable(f"no protobuf message {name}") from exc
    return message_factory.GetMessageClass(descriptor)()


def message_name(api_version: str, kind: str) -> str:
    """apps/v1 Deployment -> k8s.io.api.apps.v1.Deployment (the group's first label)."""
    group, _, version = api_version.rpartition("/")
    return f"k8s.io.api.{group.split('.')[0] if group else 'core'}.{version}.{kind}"


def decode(raw: bytes) -> dict:
    """A Kubernetes protobuf body as the object's JSON."""
    if not raw.startswith(MAGIC):
        raise Malformed("the body does not start with Kubernetes' protobuf magic k8s\\0")
    envelope = _message(_UNKNOWN)
    try:
        envelope.ParseFromString(raw[len(MAGIC):])
        api_version, kind = envelope.typeMeta.apiVersion, envelope.typeMeta.kind
        obj = _message(message_name(api_version, kind))
        obj.ParseFromString(envelope.raw)
    except DecodeError as exc:
        raise Malformed(f"the protobuf body is malformed: {exc}") from exc
    return {"apiVersion": api_version, "kind": kind, **to_json(obj)}


def to_json(msg: Message) -> Any:
    special = _SPECIAL.get(msg.DESCRIPTOR.full_name)
    if special is not None:
        return special(msg)
    out: dict = {}
    inline = _inlined(msg.DESCRIPTOR.full_name)
    for field, value in msg.ListFields():
        shown = _field(field, value)
        if shown is _OMIT:
            continue
        if field.name in inline and isinstance(shown, dict):
            out.update(shown)             # a Go embedded struct: its fields inline in JSON
        else:
            out[field.name] = shown
    return out


@functools.lru_cache(maxsize=None)
def _inlined(full_name: str) -> frozenset[str]:
    """Fields of a message that are Go embedded structs (VolumeSource in a Volume,
    IngressRuleValue, ProbeHandler...): message fields the kind's JSON schema does not
    name, whose own fields it does."""
    from gitops.api.kube.openapi import definitions
    schema = definitions().get("io.k8s." + full_name.removeprefix("k8s.io."))
    props = (schema or {}).get("properties") or {}
    if not props:
        return frozenset()
    out = set()
    for field in _pool().FindMessageTypeByName(full_name).fields:
        if field.name not in props and field.message_type is not None and \
                any(f.name in props for f in field.message_type.fields):
            out.add(field.name)
    return frozenset(out)


_OMIT = object()
# Go pointer fields a generator may set to zero on purpose (else zero means "not set").
_KEEP_ZERO = frozenset({"replicas"})


def _field(field: FieldDescriptor, value: Any) -> Any:
    if field.message_type is not None and field.message_type.GetOptions().map_entry:
        entry_value = field.message_type.fields_by_name["value"]
        shown = {k: _scalar(entry_value, v) for k, v in value.items()}
        return shown or _OMIT
    if _is_repeated(field):
        items = [_scalar(field, v) for v in value]
        return items or _OMIT
    shown = _scalar(field, value)
    if shown is None or shown == "":
        return _OMIT
    if field.type != FieldDescriptor.TYPE_MESSAGE and shown in (0, False) and \
            not isinstance(shown, str) and field.name not in _KEEP_ZERO:
        return _OMIT                      # Go's omitempty: zero numbers and false
    return shown


def _is_repeated(field: FieldDescriptor) -> bool:
    repeated = getattr(field, "is_repeated", None)
    if repeated is not None:
        return bool(repeated)
    return field.label == FieldDescriptor.LABEL_REPEATED


def _scalar(field: FieldDescriptor, value: Any) -> Any:
    if field.type == FieldDescriptor.TYPE_MESSAGE:
        return to_json(value)
    if field.type == FieldDescriptor.TYPE_BYTES:
        return base64.b64encode(value).decode()
    return value


def _time(msg: Message) -> str | None:
    if not msg.seconds and not getattr(msg, "nanos", 0):
        return None                       # Go's zero time: null in JSON
    return datetime.fromtimestamp(msg.seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _micro_time(msg: Message) -> str | None:
    if not msg.seconds and not msg.nanos:
        return None
    at = datetime.fromtimestamp(msg.seconds, UTC)
    return at.strftime("%Y-%m-%dT%H:%M:%S") + f".{msg.nanos // 1000:06d}Z"


def _duration(msg: Message) -> str:
    ns = msg.duration
    hours, rest = divmod(ns, 3_600_000_000_000)
    minutes, rest = divmod(rest, 60_000_000_000)
    seconds = rest / 1e9
    text = f"{seconds:g}s"
    if hours:
        return f"{hours}h{minutes}m{text}"
    return f"{minutes}m{text}" if minutes else text


def _raw_json(msg: Message, field: str = "raw") -> Any:
    data = getattr(msg, field)
    return json.loads(data) if data else None


_SPECIAL = {
    _META + "Time": _time,
    _META + "MicroTime": _micro_time,
    _META + "Duration": _duration,
    _META + "FieldsV1": lambda m: _raw_json(m, "Raw"),
    "k8s.io.apimachinery.pkg.util.intstr.IntOrString":
        lambda m: m.intVal if m.type == 0 else m.strVal,
    "k8s.io.apimachinery.pkg.api.resource.Quantity": lambda m: m.string,
    "k8s.io.apimachinery.pkg.runtime.RawExtension": _raw_json,
}


def descriptor(name: str) -> Descriptor:
    return _pool().FindMessageTypeByName(name)
