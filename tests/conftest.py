"""Shared fixtures. Everything tests create on Docker carries TEST_LABEL, so a crashed run
is swept up at the start of the next one (and at the end of this one)."""

from __future__ import annotations

import os
import socket
import subprocess
from pathlib import Path

import pytest

TEST_LABEL = "gitops.test=true"
os.environ.setdefault("GITOPS_RUNTIME_LABELS", TEST_LABEL)
ROOT = Path(__file__).resolve().parent.parent


def _docker_client():
    import docker
    try:
        client = docker.from_env(timeout=30)
        client.ping()
        return client
    except Exception as exc:   # noqa: BLE001 - any failure means "no engine"
        if os.environ.get("GITOPS_REQUIRE_DOCKER"):
            pytest.fail(f"GITOPS_REQUIRE_DOCKER is set but no Docker engine answers: {exc}")
        pytest.skip(f"no Docker engine (run scripts/start-docker.sh): {exc}")


def sweep(client) -> None:
    for c in client.containers.list(all=True, filters={"label": TEST_LABEL}):
        c.remove(force=True, v=True)
    for n in client.networks.list(filters={"label": TEST_LABEL}):
        n.remove()
    for v in client.volumes.list(filters={"label": TEST_LABEL}):
        v.remove(force=True)


@pytest.fixture(scope="session")
def docker_client():
    client = _docker_client()
    sweep(client)
    for image in ("gitops/pause:1", "gitops/busybox:1"):
        try:
            client.images.get(image)
        except Exception:  # noqa: BLE001
            subprocess.run([str(ROOT / "scripts" / "build-images.sh")], check=True)
            break
    yield client
    sweep(client)


def free_port(lo: int = 0, hi: int = 0) -> int:
    """A free TCP port on 127.0.0.1, optionally inside [lo, hi] (NodePorts)."""
    if not lo:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            return s.getsockname()[1]
    import random
    for port in random.sample(range(lo, hi + 1), 200):
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
                return port
            except OSError:
                continue
    raise RuntimeError("no free port")
