"""port-forward: argument parsing and target resolution (pure). The Forwarder over loopback
sockets is tests/integration/test_portforward.py."""

from __future__ import annotations

import pytest

from gitops.errors import GitopsError
from gitops.proxy.portforward import (PortSpec, Target, parse_port, parse_target,
                                      pod_targets, service_targets)


@pytest.mark.parametrize("text,want", [
    ("pod/web-0", Target("pod", "web-0")),
    ("pods/web-0", Target("pod", "web-0")),
    ("web-0", Target("pod", "web-0")),
    ("svc/web", Target("service", "web")),
    ("service/web", Target("service", "web")),
    ("Services/web", Target("service", "web")),
])
def test_parse_target(text, want):
    assert parse_target(text) == want


@pytest.mark.parametrize("text", ["deploy/web", "svc/", "/web", "cm/x"])
def test_parse_target_rejects(text):
    with pytest.raises(GitopsError, match="pod/NAME or svc/NAME"):
        parse_target(text)


@pytest.mark.parametrize("text,want", [
    ("8080:80", PortSpec(8080, 80)),
    ("8080", PortSpec(8080, 8080)),
    (":80", PortSpec(0, 80)),
    ("9000:http", PortSpec(9000, "http")),
    (":http", PortSpec(0, "http")),
])
def test_parse_port(text, want):
    assert parse_port(text) == want


@pytest.mark.parametrize("text", ["", "8080:", "x:80", "70000:80", "80:0", "80:70000", "http"])
def test_parse_port_rejects(text):
    with pytest.raises(GitopsError, match="invalid port mapping"):
        parse_port(text)


def pod(ip="10.0.0.5", deleting=False, ports=(("http", 8080),)):
    meta = {"name": "p", "namespace": "default"}
    if deleting:
        meta["deletionTimestamp"] = "2024-01-01T00:00:00Z"
    return {"metadata": meta, "status": {"podIP": ip} if ip else {},
            "spec": {"containers": [{"name": "c", "ports": [
                {"name": n, "containerPort": p} for n, p in ports]}]}}


@pytest.mark.parametrize("obj,remote,want", [
    (pod(), 8080, [("10.0.0.5", 8080)]),
    (pod(), 9999, [("10.0.0.5", 9999)]),           # a number needs no declared port
    (pod(), "http", [("10.0.0.5", 8080)]),
    (pod(), "metrics", []),                        # no container port of that name
    (pod(ip=None), 8080, []),                      # not started yet
    (pod(deleting=True), 8080, []),
])
def test_pod_targets(obj, remote, want):
    assert pod_targets(obj, remote) == want


SVC = {"metadata": {"name": "web", "namespace": "default"},
       "spec": {"ports": [{"name": "http", "port": 80, "targetPort": "http"},
                          {"name": "dns", "port": 53, "protocol": "UDP"}]}}
EPS = {"subsets": [
    {"addresses": [{"ip": "10.0.0.5"}], "notReadyAddresses": [{"ip": "10.0.0.9"}],
     "ports": [{"name": "http", "port": 8080}]},
    {"addresses": [{"ip": "10.0.0.6"}], "ports": [{"name": "http", "port": 8081}]}]}


@pytest.mark.parametrize("remote,eps,want", [
    (80, EPS, [("10.0.0.5", 8080), ("10.0.0.6", 8081)]),   # per-pod target ports, ready only
    ("http", EPS, [("10.0.0.5", 8080), ("10.0.0.6", 8081)]),
    (80, None, []),
])
def test_service_targets(remote, eps, want):
    assert service_targets(SVC, eps, remote) == want


def test_service_targets_unknown_port():
    with pytest.raises(GitopsError, match='service "web" has no port 8080'):
        service_targets(SVC, EPS, 8080)
