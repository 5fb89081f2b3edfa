"""`gitops down`: stop the agent and remove what it created on this host (containers, the
pod network, a cluster node's routes and tunnel device, service addresses, its store);
claims' volumes only when asked."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from gitops.cli.process import stop_agent
from gitops.errors import GitopsError
from gitops.paths import DataDir


class TeardownFailed(GitopsError):
    pass


@dataclass(frozen=True)
class Removed:
    containers: int
    volumes: int | None = None      # None: volumes were not asked for


def tear_down(dd: DataDir, volumes: bool) -> Removed:
    """TeardownFailed when the engine does not answer (running `down` again finishes)."""
    from gitops.agent.docker import DockerRuntime, docker_host
    from gitops.agent.runtime import RuntimeUnavailable
    stop_agent(dd)
    host = docker_host(dd.recorded("docker_host"))
    runtime = DockerRuntime(dd.instance, host=host)
    try:
        containers = runtime.cleanup(f"gitops-{dd.instance}")
    except RuntimeUnavailable as exc:    # the engine is down: nothing removed, say so
        raise TeardownFailed(
            f"no Docker engine answers at {host} (scripts/start-docker.sh starts one; set "
            "DOCKER_HOST to use another); run `gitops down` again once it answers") from exc
    except GitopsError as exc:
        raise TeardownFailed(f"{exc}; run `gitops down` again once the engine answers") \
            from exc
    if cidr := dd.recorded("service_cidr"):
        from gitops.proxy.vip import LoopbackVips
        LoopbackVips(cidr=cidr, label=f"lo:g{dd.instance}").remove_all()
    if dd.recorded("pod_routes"):       # a cluster's node: routes, the tunnel device
        from gitops.agent import routes
        routes.remove_all()
    removed = Removed(containers, runtime.remove_volumes() if volumes else None)
    for suffix in ("", "-wal", "-shm"):
        Path(str(dd.store) + suffix).unlink(missing_ok=True)
    shutil.rmtree(dd.root / "pods", ignore_errors=True)   # files of pods that are gone now
    dd.agent_file.unlink(missing_ok=True)
    return removed
