"""A real etcd cluster for tests, started and stopped by scripts/etcd.sh (as a user would)."""

from __future__ import annotations

import os
import random
import shutil
import socket
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "scripts" / "etcd.sh"


def _free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_port_run(count: int) -> int:
    """A base port with `count` consecutive free ports after it (for client + peer pairs)."""
    for _ in range(200):
        base = random.randrange(21000, 29000, 2)
        if all(_free(base + i) for i in range(count)):
            return base
    raise RuntimeError("no free port range on loopback")


@dataclass
class EtcdCluster:
    dir: Path
    members: int
    port: int
    url: str = ""
    host: str = "127.0.0.1"         # what members listen on (GITOPS_ETCD_HOST)

    def run(self, *args: str, timeout: float = 60) -> str:
        done = subprocess.run([str(SCRIPT), *args], capture_output=True, text=True,
                              timeout=timeout,
                              env={**os.environ, "GITOPS_ETCD_HOST": self.host})
        if done.returncode:
            raise RuntimeError(f"scripts/etcd.sh {' '.join(args)}: {done.stderr}")
        return done.stdout.strip()

    def start(self) -> EtcdCluster:
        self.url = self.run("start", str(self.dir), str(self.members), str(self.port))
        return self

    def stop(self) -> None:
        self.run("stop", str(self.dir))

    def kill(self, member: int) -> None:
        self.run("kill", str(self.dir), str(member))

    def start_member(self, member: int) -> None:
        self.run("start-member", str(self.dir), str(member))

    def endpoint(self, member: int) -> str:
        return f"{self.host}:{self.port + 2 * member}"

    @property
    def endpoints(self) -> list[str]:
        return [self.endpoint(n) for n in range(self.members)]


def need_etcd() -> None:
    if shutil.which("etcd") is None:
        if os.environ.get("CI"):        # CI's setup (scripts/setup.sh) installs it
            pytest.fail("etcd is not installed: scripts/etcd.sh install")
        pytest.skip("etcd is not installed (scripts/etcd.sh install)")


def start_cluster(tmp: Path, members: int = 1, host: str = "127.0.0.1") -> EtcdCluster:
    need_etcd()
    return EtcdCluster(tmp / f"etcd{members}", members, free_port_run(2 * members),
                       host=host).start()
