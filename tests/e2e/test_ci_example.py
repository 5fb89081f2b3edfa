"""The README's CI job runs as written: scripts/ci-example.sh, which the README shows
verbatim, against a copy of example-repo/ on a free NodePort. It validates (JUnit), diffs
against an empty deployed data dir (exit 1 listing every object, which the job accepts),
brings the environment up Healthy with a JSON report, tests web -> api -> db through the
NodePort and leaves nothing behind."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from xml.etree import ElementTree as ET

import pytest

from tests.conftest import ROOT, free_port

pytestmark = pytest.mark.docker

SCRIPT = ROOT / "scripts" / "ci-example.sh"


def test_readme_shows_the_ci_job_verbatim():
    readme = (ROOT / "README.md").read_text()
    body = SCRIPT.read_text()
    assert f"```sh\n{body}```" in readme, "README's CI section must show scripts/ci-example.sh"


def test_ci_example_job_runs_as_written(docker_client, tmp_path):
    from gitops.paths import DataDir
    try:
        docker_client.images.get("gitops/python:3.11")
    except Exception:  # noqa: BLE001
        pytest.skip("gitops/python:3.11 is not built: run scripts/build-images.sh")
    repo = tmp_path / "example-repo"
    shutil.copytree(ROOT / "example-repo", repo)
    port = free_port(30000, 32767)
    service = repo / "web" / "service.yaml"
    service.write_text(service.read_text().replace("nodePort: 30080", f"nodePort: {port}"))
    shim = tmp_path / "bin"           # `gitops` is this checkout, whatever is installed
    shim.mkdir()
    (shim / "gitops").write_text(f"#!/bin/sh\nexec {sys.executable} -m gitops \"$@\"\n")
    (shim / "gitops").chmod(0o755)
    deployed, env_dir, out = tmp_path / "deployed", tmp_path / "env", tmp_path / "out"
    out.mkdir()
    env = {**os.environ, "PATH": f"{shim}:{os.environ['PATH']}", "REPO": str(repo),
           "DEPLOYED": str(deployed), "ENV_DIR": str(env_dir), "PORT": str(port),
           "OUT": str(out)}
    run = subprocess.run(["bash", str(SCRIPT)], env=env, capture_output=True, text=True,
                         timeout=420, cwd=tmp_path)
    try:
        assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-4000:]
        assert "CI job passed" in run.stdout

        suite = ET.parse(out / "validate.xml").getroot()
        assert suite.get("failures") == "0" and int(suite.get("tests")) >= 16
        diff = (out / "diff.md").read_text()     # an empty deployed dir: all to create
        for obj in ("Deployment/default/web", "Deployment/default/api", "Service/default/db",
                    "PersistentVolumeClaim/default/db-data", "CronJob/default/db-backup"):
            assert f"create: {obj}" in diff
        report = json.loads((out / "health.json").read_text())
        assert report["result"] == "healthy" and report["healthy"] == report["total"] >= 16
        assert all(o["health"] == "Healthy" and o["findings"] == [] for o in report["objects"])
        # status printed the tree: source -> objects with sync and health -> pods
        assert "Deployment/default/web  Synced  Healthy" in run.stdout
        assert "Pod/web-" in run.stdout
    finally:
        subprocess.run([sys.executable, "-m", "gitops", "down", "--volumes", "--data-dir",
                        str(env_dir)], capture_output=True, timeout=120)
    instance = DataDir.at(env_dir).instance
    assert docker_client.containers.list(
        all=True, filters={"label": f"gitops.instance={instance}"}) == []
    assert docker_client.volumes.list(filters={"label": f"gitops.instance={instance}"}) == []
    assert not deployed.exists()            # a diff writes nothing
    assert not env_dir.exists()             # the job removed its environment's data dir
