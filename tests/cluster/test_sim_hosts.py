"""scripts/sim-hosts.sh: hosts with their own engines on one segment, routable pod
subnets, no pulls, and a `down` that leaves nothing even after the engines were killed."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from tests.cluster.sim import SimHosts, require_sim

pytestmark = pytest.mark.cluster
BUSYBOX = "gitops/busybox:1"


def _leftovers(prefix: str) -> list[str]:
    import subprocess
    out = []
    netns = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    out += [f"netns {line}" for line in netns.splitlines() if line.startswith(prefix + "-")]
    links = subprocess.run(["ip", "-o", "link", "show"], capture_output=True, text=True).stdout
    out += [f"link {line.split(': ')[1]}" for line in links.splitlines()
            if line.split(": ")[1].startswith(prefix + "-")]
    mounts = Path("/proc/mounts").read_text()
    out += [f"mount {line.split()[1]}" for line in mounts.splitlines()
            if f"/gitops-sim/{prefix}" in line.split()[1]]
    for path in (Path("/run/gitops-sim") / prefix, Path("/var/lib/gitops-sim") / prefix):
        if path.exists():
            out.append(f"dir {path}")
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            if f"/gitops-sim/{prefix}/".encode() in cmdline.read_bytes():
                out.append(f"process {cmdline.parent.name}")
        except OSError:
            continue
    return out


def test_hosts_have_engines_routes_and_down_leaves_nothing_after_a_crash():
    require_sim()
    sim = SimHosts()
    try:
        sim.up(2)
        a1, a2 = sim.addr("h1"), sim.addr("h2")
        assert a1 != a2 and a1.rsplit(".", 1)[0] == a2.rsplit(".", 1)[0]
        # Each host its own engine, the local images loaded, no default bridge.
        for host in ("h1", "h2"):
            images = sim.exec(host, "docker", "images", "--format", "{{.Repository}}:{{.Tag}}")
            assert images.returncode == 0, images.stderr
            assert {BUSYBOX, "gitops/pause:1", "gitops/python:3.11"} <= set(
                images.stdout.split())
            nets = sim.exec(host, "docker", "network", "ls", "--format", "{{.Name}}").stdout
            assert "bridge" not in nets.split()
        info = sim.exec("h1", "docker", "info", "--format", "{{.DockerRootDir}}").stdout
        assert f"/var/lib/gitops-sim/{sim.prefix}/h1" in info
        # Nothing is ever pulled.
        pull = sim.exec("h1", "docker", "pull", "example.invalid/nothing:1")
        assert pull.returncode != 0
        # A container on h2's own subnet is reached from h1 by a route via h2's address.
        net = sim.exec("h2", "docker", "network", "create", "--subnet", "10.79.2.0/24", "pods")
        assert net.returncode == 0, net.stderr
        run = sim.exec("h2", "docker", "run", "-d", "--network", "pods", "--ip", "10.79.2.7",
                       BUSYBOX, "sleep", "600")
        assert run.returncode == 0, run.stderr
        route = sim.exec("h1", "ip", "route", "add", "10.79.2.0/24", "via", a2)
        assert route.returncode == 0, route.stderr
        ping = sim.exec("h1", "docker", "run", "--rm", "--network", "host", BUSYBOX,
                        "ping", "-c", "1", "-W", "5", "10.79.2.7")
        assert ping.returncode == 0, ping.stdout + ping.stderr
        # `exec` runs in the host's namespace: its address is there, h2's is not.
        addrs = sim.exec("h1", "ip", "-4", "-o", "addr", "show").stdout
        assert f"inet {a1}/" in addrs and f"inet {a2}/" not in addrs
        # A crash: both engines killed with their containers still running.
        for host in ("h1", "h2"):
            pid = int(Path(f"/run/gitops-sim/{sim.prefix}/{host}/docker.pid").read_text())
            os.kill(pid, signal.SIGKILL)
    finally:
        sim.down()
    assert _leftovers(sim.prefix) == []


def test_two_runs_started_at_once_get_segments_of_their_own():
    """Two test runs (or a bench and a test run) under their own prefixes, started at the
    same moment: each picks a free /24 and takes it in one locked step."""
    from concurrent.futures import ThreadPoolExecutor
    require_sim()
    sims = [SimHosts(), SimHosts()]
    try:
        with ThreadPoolExecutor(2) as pool:
            list(pool.map(lambda s: s.up(1), sims))
        nets = [s.addr("h1").rsplit(".", 1)[0] for s in sims]
        assert nets[0] != nets[1]
    finally:
        for s in sims:
            s.down()
    for s in sims:
        assert _leftovers(s.prefix) == []
