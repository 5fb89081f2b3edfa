"""The project's Docker engine (scripts/start-docker.sh) never tries a registry: its proxy
and registry mirror are a dead local port, so an image that is not built here fails to
pull at once, on this machine, and no test can reach an address it did not create."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.conftest import DEAD_PROXY

pytestmark = pytest.mark.docker

RUN = Path(os.environ.get("GITOPS_DOCKER_RUN", "/run/gitops-docker"))


def test_the_projects_engine_pulls_nothing(docker_client):
    import docker.errors
    if docker_client.api.base_url != "http+docker://localhost" or \
            os.environ.get("DOCKER_HOST") != f"unix://{RUN}/docker.sock" or \
            not (RUN / "docker.pid").exists() or os.environ.get("GITOPS_DOCKER_PULLS") == "1":
        pytest.skip("not the engine scripts/start-docker.sh started (its own settings)")
    info = docker_client.info()
    hint = "restart it: scripts/stop-docker.sh && scripts/start-docker.sh"
    assert info.get("HttpProxy") == DEAD_PROXY and info.get("HttpsProxy") == DEAD_PROXY, hint
    assert info["RegistryConfig"]["Mirrors"] == [DEAD_PROXY + "/"], hint
    with pytest.raises(docker.errors.APIError, match=DEAD_PROXY.removeprefix("http://")):   # refused locally
        docker_client.images.pull("nginx", tag="latest")
