"""Files an agent keeps in its data dir, and the instance id derived from it."""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class DataDir:
    root: Path

    @classmethod
    def at(cls, path: str | Path) -> "DataDir":
        return cls(Path(path).resolve())

    @property
    def instance(self) -> str:
        """Labels every container/network of this agent, so agents never touch each other's."""
        return hashlib.sha256(str(self.root).encode()).hexdigest()[:8]

    @property
    def store(self) -> Path:
        return self.root / "state.db"

    @property
    def agent_file(self) -> Path:
        return self.root / "agent.json"

    @property
    def token_file(self) -> Path:
        return self.root / "token"

    @property
    def kube_port_file(self) -> Path:
        """The HTTPS port kubeconfigs name, kept (as the CA and the token are) by `down`."""
        return self.root / "kube-port"

    @property
    def service_account_key_file(self) -> Path:
        """The key ServiceAccount tokens are signed with (owner only)."""
        return self.root / "sa.key"

    @property
    def runtime_file(self) -> Path:
        """Which engine the agent used; lets `down` clean up after a dead agent."""
        return self.root / "runtime.json"

    def recorded(self, field: str) -> str:
        """A fact the agent recorded about its runtime (docker_host, service_cidr...)."""
        try:
            return json.loads(self.runtime_file.read_text()).get(field, "")
        except (OSError, ValueError):
            return ""

    @property
    def log_file(self) -> Path:
        """The background agent's JSON log, rotated by size (agent.log.1, .2, .3)."""
        return self.root / "agent.log"

    @property
    def startup_log(self) -> Path:
        """The background agent's stderr: what it said before its log was set up (a crash
        at start-up, a refused option). Made afresh by each `gitops up`, so it stays small."""
        return self.root / "agent.startup.log"

    @property
    def lock_file(self) -> Path:
        return self.root / "agent.lock"

    def read_agent(self) -> dict | None:
        """The running agent's record, or None when there is none (or it died)."""
        try:
            info = json.loads(self.agent_file.read_text())
        except (OSError, ValueError):
            return None
        try:
            os.kill(int(info["pid"]), 0)
        except (OSError, KeyError, ValueError):
            return None
        return info

    def token(self) -> str:
        return self.token_file.read_text().strip()
