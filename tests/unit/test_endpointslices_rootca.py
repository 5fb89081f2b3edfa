"""EndpointSlices kept beside Endpoints, and kube-root-ca.crt in every namespace, through
the control plane as the daemon wires it."""

from __future__ import annotations

import random

import pytest

from gitops.controllers import endpointslices
from gitops.model import ObjectKey, key_of
from gitops.testing import memory_store, namespace
from tests.control_plane import ControlPlane
from tests.unit.test_controller_queues import Clock, converge, deployment, node, service

PEM = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"


@pytest.fixture
def store():
    s = memory_store()
    yield s
    s.close()


def slices(store, name: str = "web") -> list[dict]:
    return endpointslices.ours(store.list("EndpointSlice", "default"), name)


def test_a_service_has_an_endpointslice_of_its_pods_kept_by_the_controller(store):
    clock = Clock()
    store.create(node("n1"))
    store.create(deployment("web", replicas=2))
    store.create(service("web"))
    plane = ControlPlane(store, random.Random(0), clock)
    converge(plane, store, clock)
    [got] = slices(store)
    assert got["addressType"] == "IPv4" and got["ports"] == [
        {"name": "", "port": 80, "protocol": "TCP"}]
    assert got["metadata"]["labels"][endpointslices.SERVICE_NAME] == "web"
    assert got["metadata"]["ownerReferences"][0]["kind"] == "Service"
    pods = {p["metadata"]["name"]: p for p in store.list("Pod")}
    assert sorted(e["targetRef"]["name"] for e in got["endpoints"]) == sorted(pods)
    assert all(e["conditions"] == {"ready": True, "serving": True, "terminating": False}
               and e["nodeName"] == "n1" for e in got["endpoints"])
    addresses = {a for e in got["endpoints"] for a in e["addresses"]}
    endpoints = store.get(ObjectKey("Endpoints", "default", "web"))
    assert addresses == {a["ip"] for a in endpoints["subsets"][0]["addresses"]}

    store.delete(key_of(got))                      # deleted by hand: made again
    plane.run_once()
    assert len(slices(store)) == 1

    svc = store.get(ObjectKey("Service", "default", "web"))
    svc["spec"].pop("selector")                     # selector-less: hand-kept endpoints
    store.update(svc)
    plane.run_once()
    assert slices(store) == []


def test_a_slice_of_another_manager_is_left_alone(store):
    store.create(service("web"))
    foreign = {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
               "metadata": {"name": "web-extra", "namespace": "default",
                            "labels": {endpointslices.SERVICE_NAME: "web"}},
               "addressType": "IPv4", "endpoints": [{"addresses": ["10.1.1.1"]}]}
    store.create(foreign)
    plane = ControlPlane(store, random.Random(0), Clock())
    plane.run_once()
    assert store.get(ObjectKey("EndpointSlice", "default", "web-extra"))["endpoints"] == \
        foreign["endpoints"]


def test_every_namespace_gets_kube_root_ca_crt_and_keeps_it(store):
    store.create(namespace("default"))
    plane = ControlPlane(store, random.Random(0), Clock(), root_ca=PEM)
    plane.run_once()
    store.create(namespace("shop"))
    plane.run_once()
    for ns in ("default", "shop"):
        cm = store.get(ObjectKey("ConfigMap", ns, "kube-root-ca.crt"))
        assert cm["data"] == {"ca.crt": PEM}
    cm = store.get(ObjectKey("ConfigMap", "shop", "kube-root-ca.crt"))
    store.update({**cm, "data": {"ca.crt": "tampered"}})
    plane.run_once()
    assert store.get(ObjectKey("ConfigMap", "shop", "kube-root-ca.crt"))["data"] == \
        {"ca.crt": PEM}
    store.delete(ObjectKey("ConfigMap", "shop", "kube-root-ca.crt"))
    plane.run_once()
    assert store.get(ObjectKey("ConfigMap", "shop", "kube-root-ca.crt")) is not None
