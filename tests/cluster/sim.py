"""Simulated hosts for cluster tests: scripts/sim-hosts.sh under a prefix of the test
run's own, so a developer's hosts and a test run's never meet, and `down` in a finally."""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "sim-hosts.sh"


def usable() -> str:
    """Why simulated hosts cannot run here, or "" when they can."""
    if os.geteuid() != 0:
        return "simulated hosts need root (network namespaces, dockerd)"
    for tool in ("ip", "nsenter", "dockerd", "docker"):
        if shutil.which(tool) is None:
            return f"{tool} is missing (scripts/setup-cluster.sh installs it)"
    return ""


@dataclass
class SimHosts:
    prefix: str = field(default_factory=lambda: "t" + uuid.uuid4().hex[:6])

    @property
    def env(self) -> dict[str, str]:
        return {**os.environ, "GITOPS_SIM_PREFIX": self.prefix}

    def run(self, *args: str, check: bool = True, timeout: float = 300,
            input: str | None = None) -> subprocess.CompletedProcess:
        return subprocess.run([str(SCRIPT), *args], env=self.env, capture_output=True,
                              text=True, timeout=timeout, check=False, input=input)

    def _checked(self, *args: str, timeout: float = 300) -> str:
        done = self.run(*args, timeout=timeout)
        if done.returncode != 0:
            raise AssertionError(f"sim-hosts.sh {' '.join(args)} failed "
                                 f"({done.returncode}): {done.stderr}")
        return done.stdout

    def up(self, n: int) -> None:
        self._checked("up", str(n))

    def down(self) -> None:
        self._checked("down", timeout=120)

    def addr(self, host: str) -> str:
        return self._checked("addr", host).strip()

    def exec(self, host: str, *cmd: str, timeout: float = 60) -> subprocess.CompletedProcess:
        return self.run("exec", host, *cmd, timeout=timeout)

    def docker_host(self, host: str) -> str:
        return f"unix:///run/gitops-sim/{self.prefix}/{host}/docker.sock"

    def popen(self, host: str, cmd: list[str], **kw) -> subprocess.Popen:
        """A long-running process in the host's namespace (its pid: kill it yourself)."""
        return subprocess.Popen([str(SCRIPT), "exec", host, *cmd], env=self.env, **kw)


def require_sim() -> None:
    reason = usable()
    if reason:
        if os.environ.get("GITOPS_REQUIRE_CLUSTER"):
            pytest.fail(f"GITOPS_REQUIRE_CLUSTER is set but {reason}")
        pytest.skip(reason)
