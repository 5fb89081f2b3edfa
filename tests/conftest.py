"""Shared fixtures. Everything tests create on Docker carries TEST_LABEL, so a crashed run
is swept up at the start of the next one (and at the end of this one)."""

from __future__ import annotations

import os
import socket
import subprocess
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path

import pytest

TEST_LABEL = "gitops.test=true"
# This run's own label: the final sweep takes only what this run made, so two test runs
# on one engine (a developer's and CI's) never remove each other's containers.
SESSION_LABEL = f"gitops.test.session={uuid.uuid4().hex[:12]}"
os.environ.setdefault("GITOPS_RUNTIME_LABELS", f"{TEST_LABEL},{SESSION_LABEL}")
STALE_AFTER = 3600      # seconds: test objects older than this are a crashed run's
ROOT = Path(__file__).resolve().parent.parent
# Where every engine (and browser) the tests use sends pulls: a port nobody listens on, so
# nothing ever leaves the machine (scripts/start-docker.sh and sim-hosts.sh use it too).
DEAD_PROXY = "http://127.0.0.1:9"


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


def _age(created: str | int | None) -> float:
    """Seconds since an object was created: containers give epoch seconds, networks and
    volumes an RFC 3339 string."""
    if isinstance(created, (int, float)):
        return time.time() - created
    if not created:
        return 0.0
    head = created.split(".")[0].rstrip("Z")[:19]
    stamp = datetime.fromisoformat(head).replace(tzinfo=timezone.utc)
    return time.time() - stamp.timestamp()


def sweep(client, label: str, only_stale: bool = False) -> None:
    """Remove test containers, networks and volumes carrying `label` (best effort).

    Uses the list endpoints only (no inspect per object): other test runs on the same
    engine remove their own objects meanwhile, and a vanished object is simply skipped."""
    import docker.errors
    api = client.api
    filters = {"label": label}
    kinds = ((api.containers(all=True, filters=filters), "Id", "Created",
              lambda ident: api.remove_container(ident, force=True, v=True)),
             (api.networks(filters=filters), "Id", "Created", api.remove_network),
             ((api.volumes(filters=filters) or {}).get("Volumes") or [], "Name", "CreatedAt",
              lambda ident: api.remove_volume(ident, force=True)))
    for objects, ident, created, remove in kinds:
        for obj in objects:
            if only_stale and _age(obj.get(created)) < STALE_AFTER:
                continue
            try:
                remove(obj[ident])
            except docker.errors.APIError:
                pass        # gone already, or in use by a live run that cleans up itself


def _listed(list_fn, tries: int = 5) -> list:
    """containers.list() inspects each container it lists: one removed in between (by a
    test running at the same time) is a NotFound, so list again."""
    import docker.errors
    for attempt in range(tries):
        try:
            return list_fn()
        except docker.errors.NotFound:
            if attempt == tries - 1:
                raise
            time.sleep(0.2)
    return []


@pytest.fixture(scope="session")
def docker_client():
    client = _docker_client()
    sweep(client, TEST_LABEL, only_stale=True)
    for image in ("gitops/pause:1", "gitops/busybox:1"):
        try:
            client.images.get(image)
        except Exception:  # noqa: BLE001
            subprocess.run([str(ROOT / "scripts" / "build-images.sh")], check=True)
            break
    yield client
    sweep(client, SESSION_LABEL)


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
