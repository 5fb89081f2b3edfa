"""The agent killed with SIGKILL and started again adopts what runs: nothing is recreated."""

from __future__ import annotations

import json
import os
import signal
import time

import pytest

from tests.conftest import free_port
from tests.e2e.conftest import gitops
from tests.e2e.test_up_down import answers, commit

pytestmark = pytest.mark.docker


def test_kill_9_then_restart_adopts_containers(docker_client, repo, tmp_path):
    from gitops.paths import DataDir
    port = free_port(30000, 32767)
    commit(repo, "first", replicas=2, greeting="hello", node_port=port)
    data = str(tmp_path / "data")
    dd = DataDir.at(data)
    label = f"gitops.instance={dd.instance}"
    try:
        up = gitops("up", f"file://{repo}", "--wait", "--timeout", "90", "--data-dir", data)
        assert up.returncode == 0, up.stdout + up.stderr
        before = {c.id: c.attrs["State"]["StartedAt"]
                  for c in docker_client.containers.list(filters={"label": label})}
        assert len(before) == 2                      # 2 pods of one container each
        pid = json.loads(dd.agent_file.read_text())["pid"]
        os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while dd.read_agent() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert dd.read_agent() is None

        again = gitops("up", f"file://{repo}", "--wait", "--timeout", "60", "--data-dir", data)
        assert again.returncode == 0, again.stdout + again.stderr
        time.sleep(3)                                # a few agent passes
        after = {c.id: c.attrs["State"]["StartedAt"]
                 for c in docker_client.containers.list(all=True, filters={"label": label})}
        assert after == before                       # same containers, never restarted
        assert len(answers(port, 2, "hello")) == 2
    finally:
        gitops("down", "--data-dir", data)
