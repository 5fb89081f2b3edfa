"""Hostile files in a real agent's watched directory: the agent keeps running, names every
bad file, leaves the running pod alone, and applies the next good revision."""

from __future__ import annotations

import json
import time

import pytest

from tests.e2e.conftest import gitops

pytestmark = pytest.mark.docker

APP = """\
apiVersion: apps/v1
kind: Deployment
metadata: {{name: app}}
spec:
  replicas: 1
  selector: {{matchLabels: {{app: app}}}}
  template:
    metadata: {{labels: {{app: app}}}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
        - name: main
          image: gitops/busybox:1
          command: ["sleep", "{seconds}"]
"""
BOMB = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{chr(98 + i)}: &{chr(98 + i)} [" + ", ".join([f"*{chr(97 + i)}"] * 9) + "]\n"
    for i in range(8))
HOSTILE = {
    "bomb.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: bomb}\ndata:\n"
                 + "".join("  " + line + "\n" for line in BOMB.splitlines()),
    "deep.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: deep}\ndata: {x: "
                 + "[" * 5000 + "]" * 5000 + "}\n",
    "dupkeys.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: d, name: e}\n",
    "binary.yaml": "\x00\x01\x02\x7f garbage",
    "types.yaml": APP.replace("replicas: 1", "replicas: lots").replace("name: app", "name: t"),
    "unicode.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: \"ünïcødé-名前\"}\n",
}


def status(data: str) -> dict:
    out = gitops("status", "-o", "json", "--data-dir", data)
    return json.loads(out.stdout)


def test_agent_survives_hostile_files_and_names_each(docker_client, tmp_path):
    from gitops.paths import DataDir
    manifests, data = tmp_path / "manifests", str(tmp_path / "data")
    manifests.mkdir()
    (manifests / "app.yaml").write_text(APP.format(seconds=3600))
    dd = DataDir.at(data)
    label = {"label": [f"gitops.instance={dd.instance}", "gitops.container=main"]}
    try:
        up = gitops("up", str(manifests), "--wait", "--timeout", "90", "--data-dir", data,
                    "--interval", "3600")
        assert up.returncode == 0, up.stdout + up.stderr
        good = status(data)["applied_revision"]
        [container] = docker_client.containers.list(filters=label)
        pid = dd.read_agent()["pid"]

        for name, text in HOSTILE.items():
            (manifests / name).write_bytes(text.encode())
        (manifests / "app.yaml").write_text(APP.format(seconds=3601))   # must not apply
        synced = gitops("sync", "--data-dir", data)
        assert synced.returncode == 1
        for name in HOSTILE:
            assert f"{name}:" in synced.stdout + synced.stderr, (name, synced.stdout)
        st = status(data)
        assert st["applied_revision"] == good and st["last_sync"]["result"] == "failed"
        assert dd.read_agent()["pid"] == pid                    # the same agent, alive
        assert [c.id for c in docker_client.containers.list(filters=label)] == [container.id]
        log = (tmp_path / "data" / "agent.log").read_text()
        logged = {json.loads(line).get("file") for line in log.splitlines()
                  if '"manifest_invalid"' in line}
        assert set(HOSTILE) <= logged

        for name in HOSTILE:
            (manifests / name).unlink()
        fixed = gitops("sync", "--data-dir", data)
        assert fixed.returncode == 0, fixed.stdout + fixed.stderr
        assert status(data)["applied_revision"] != good
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:                      # the rollout of 3601
            now = docker_client.containers.list(filters=label)
            if len(now) == 1 and now[0].id != container.id and '"3601"' in json.dumps(
                    now[0].attrs["Config"]):
                break
            time.sleep(0.5)
        else:
            pytest.fail("the good revision after the bad one was not rolled out")
    finally:
        gitops("down", "--data-dir", data)
