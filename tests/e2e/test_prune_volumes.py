"""Deleting a manifest prunes its objects from the store and the engine, never a claim's
volume: the data is there again when the claim comes back."""

from __future__ import annotations

import json
import time

import pytest

from tests.e2e.conftest import gitops

pytestmark = pytest.mark.docker

KEEP = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: keep}\ndata: {a: '1'}\n"
DATA = """\
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: store}
spec:
  accessModes: [ReadWriteOnce]
  resources: {requests: {storage: 10Mi}}
---
apiVersion: v1
kind: Pod
metadata: {name: writer}
spec:
  terminationGracePeriodSeconds: 1
  containers:
    - name: w
      image: gitops/busybox:1
      command: ["sh", "-c", "cat /data/v 2>/dev/null; [ -f /data/v ] || echo FIRST > /data/v;
                exec sleep 3600"]
      volumeMounts: [{name: d, mountPath: /data}]
  volumes:
    - name: d
      persistentVolumeClaim: {claimName: store}
"""


def _wait(predicate, timeout=40.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := predicate():
            return value
        time.sleep(0.3)
    raise AssertionError("condition not met in time")


def test_pruned_claim_keeps_its_volume_and_data(docker_client, tmp_path):
    from gitops.paths import DataDir
    src, data = tmp_path / "src", str(tmp_path / "data")
    src.mkdir()
    (src / "keep.yaml").write_text(KEEP)
    (src / "data.yaml").write_text(DATA.replace("FIRST", "written-first"))
    instance = DataDir.at(data).instance
    labels = [f"gitops.instance={instance}", "gitops.pvc.name=store"]

    def names(kind: str) -> set[str]:
        out = gitops("get", kind, "-o", "json", "--data-dir", data)
        return {o["metadata"]["name"] for o in json.loads(out.stdout)["items"]}
    try:
        up = gitops("up", str(src), "--wait", "--timeout", "90", "--data-dir", data,
                    "--interval", "600")
        assert up.returncode == 0, up.stdout + up.stderr
        [volume] = docker_client.volumes.list(filters={"label": labels})

        (src / "data.yaml").unlink()
        res = gitops("sync", "--data-dir", data)
        assert res.returncode == 0, res.stdout + res.stderr
        _wait(lambda: not names("pods") and not names("pvc"))
        assert names("cm") >= {"keep"}
        _wait(lambda: not docker_client.containers.list(all=True, filters={"label": [
            f"gitops.instance={instance}", "gitops.pod.name=writer"]}))
        assert [v.name for v in docker_client.volumes.list(filters={"label": labels})] == [
            volume.name]                                         # prune left the data

        (src / "data.yaml").write_text(DATA.replace("FIRST", "written-second"))
        assert gitops("sync", "--wait", "--timeout", "60", "--data-dir", data).returncode == 0
        logs = _wait(lambda: gitops("logs", "writer", "--data-dir", data).stdout.strip())
        assert logs == "written-first"                           # the old claim's file
    finally:
        gitops("down", "--data-dir", data)
    # `down` keeps it too; only `down --volumes` (tested elsewhere) removes it
    assert docker_client.volumes.list(filters={"label": labels})
    for v in docker_client.volumes.list(filters={"label": labels}):
        v.remove(force=True)
