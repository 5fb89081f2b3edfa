"""Kubernetes protobuf bodies decoded to their JSON form (api/kube/protobuf.py): bodies
made with the protobuf library from the same descriptors kubectl's are compiled from."""

from __future__ import annotations

import pytest
from google.protobuf import message_factory

from gitops.api.kube import protobuf


def message(name: str):
    return message_factory.GetMessageClass(protobuf.descriptor(name))()


def wrapped(api_version: str, kind: str, obj) -> bytes:
    envelope = message("k8s.io.apimachinery.pkg.runtime.Unknown")
    envelope.typeMeta.apiVersion = api_version
    envelope.typeMeta.kind = kind
    envelope.raw = obj.SerializeToString()
    envelope.contentType = protobuf.CONTENT_TYPE
    return protobuf.MAGIC + envelope.SerializeToString()


def test_a_secret_and_its_bytes():
    secret = message("k8s.io.api.core.v1.Secret")
    secret.metadata.name = "creds"
    secret.metadata.namespace = ""                 # Go writes empty strings: omitted
    secret.metadata.creationTimestamp.seconds = 0  # a zero time: null, omitted
    secret.data["password"] = b"hunter2"
    secret.type = "Opaque"
    assert protobuf.decode(wrapped("v1", "Secret", secret)) == {
        "apiVersion": "v1", "kind": "Secret", "metadata": {"name": "creds"},
        "data": {"password": "aHVudGVyMg=="}, "type": "Opaque"}


def test_a_deployment_with_inlined_structs_int_or_string_and_quantities():
    deploy = message("k8s.io.api.apps.v1.Deployment")
    deploy.metadata.name = "web"
    deploy.spec.replicas = 0                       # set on purpose: kept
    deploy.spec.minReadySeconds = 0                # Go's zero: omitted
    deploy.spec.strategy.rollingUpdate.maxSurge.type = 1
    deploy.spec.strategy.rollingUpdate.maxSurge.strVal = "25%"
    deploy.spec.strategy.rollingUpdate.maxUnavailable.type = 0
    deploy.spec.strategy.rollingUpdate.maxUnavailable.intVal = 1
    pod = deploy.spec.template.spec
    container = pod.containers.add()
    container.name = "app"
    container.image = "gitops/busybox:1"
    container.stdin = False
    container.resources.limits["memory"].string = "64Mi"
    container.readinessProbe.handler.tcpSocket.port.intVal = 8080
    volume = pod.volumes.add()
    volume.name = "scratch"
    volume.volumeSource.emptyDir.SetInParent()     # an empty source still names the type
    got = protobuf.decode(wrapped("apps/v1", "Deployment", deploy))
    spec = got["spec"]
    assert spec["replicas"] == 0 and "minReadySeconds" not in spec
    assert spec["strategy"] == {"rollingUpdate": {"maxSurge": "25%", "maxUnavailable": 1}}
    [c] = spec["template"]["spec"]["containers"]
    assert c == {"name": "app", "image": "gitops/busybox:1",
                 "resources": {"limits": {"memory": "64Mi"}},
                 "readinessProbe": {"tcpSocket": {"port": 8080}}}
    assert spec["template"]["spec"]["volumes"] == [{"name": "scratch", "emptyDir": {}}]


@pytest.mark.parametrize("body, why", [
    (b'{"kind": "ConfigMap"}', "magic"),
    (protobuf.MAGIC + b"\xff\xff\xff", "malformed"),
])
def test_what_it_cannot_read_is_named(body, why):
    with pytest.raises(protobuf.NotDecodable, match=why):
        protobuf.decode(body)


def test_a_kind_without_a_message_is_named():
    obj = message("k8s.io.api.core.v1.ConfigMap")
    with pytest.raises(protobuf.NotDecodable, match="no protobuf message"):
        protobuf.decode(wrapped("example.com/v1", "Widget", obj))
