"""The README's datastore commands end to end: `gitops up --datastore etcd://...`,
`gitops backup`, `gitops migrate --to etcd://...` and `gitops restore`, on the real engine
and a real etcd: what runs is adopted, never recreated, and nothing stored is lost."""

from __future__ import annotations

import json
import os
import stat

import pytest

from tests.conftest import free_port
from tests.e2e.conftest import gitops
from tests.e2e.test_up_down import answers, commit
from tests.etcd_support import start_cluster

pytestmark = pytest.mark.docker


@pytest.fixture
def etcd(tmp_path):
    cluster = start_cluster(tmp_path)
    yield cluster
    cluster.stop()


def _containers(docker_client, data: str) -> dict[str, str]:
    from gitops.paths import DataDir
    label = f"gitops.instance={DataDir.at(data).instance}"
    return {c.id: c.attrs["State"]["StartedAt"]
            for c in docker_client.containers.list(all=True, filters={"label": label})}


def _objects(data: str, *args: str) -> dict[str, str]:
    got = gitops("get", *args, "-o", "json", "--data-dir", data)
    assert got.returncode == 0, got.stderr
    return {o["metadata"]["name"]: o["metadata"]["uid"] for o in json.loads(got.stdout)["items"]}


def test_migrate_sqlite_to_etcd_then_backup_and_restore(docker_client, repo, tmp_path, etcd):
    port = free_port(30000, 32767)
    commit(repo, "first", replicas=1, greeting="hello", node_port=port)
    data, saved = str(tmp_path / "data"), tmp_path / "state.json"
    try:
        up = gitops("up", f"file://{repo}", "--wait", "--timeout", "90", "--data-dir", data)
        assert up.returncode == 0, up.stdout + up.stderr
        pods, running = _objects(data, "pods"), _containers(docker_client, data)
        assert len(pods) == 1 and len(running) == 1

        moved = gitops("migrate", "--to", etcd.url, "--data-dir", data)
        assert moved.returncode == 0, moved.stderr
        assert "migrated" in moved.stdout and f"--datastore {etcd.url}" in moved.stdout
        again = gitops("up", f"file://{repo}", "--wait", "--timeout", "60",
                       "--datastore", etcd.url, "--data-dir", data)
        assert again.returncode == 0, again.stdout + again.stderr
        assert _objects(data, "pods") == pods                 # same pod, same uid
        assert _containers(docker_client, data) == running    # adopted, not recreated
        assert len(answers(port, 1, "hello")) == 1

        backed = gitops("backup", str(saved), "--data-dir", data)   # the agent's etcd
        assert backed.returncode == 0, backed.stderr
        assert stat.S_IMODE(os.stat(saved).st_mode) == 0o600       # Secrets are in it
        dump = json.loads(saved.read_text())
        assert {o["metadata"]["uid"] for o in dump["objects"]} >= set(pods.values())

        # restore replaces the store with the backup; the agent converges on it again
        gitops("down", "--data-dir", data)
        restored = gitops("restore", str(saved), "--datastore", etcd.url, "--data-dir", data)
        assert restored.returncode == 0, restored.stderr
        assert f"restored {len(dump['objects'])} objects" in restored.stdout
        back = gitops("up", f"file://{repo}", "--wait", "--timeout", "90",
                      "--datastore", etcd.url, "--data-dir", data)
        assert back.returncode == 0, back.stdout + back.stderr
        assert set(_objects(data, "deployments")) == {"hello"}
    finally:
        gitops("down", "--data-dir", data)


def test_a_backup_of_etcd_restores_into_sqlite_and_a_bad_file_touches_nothing(
        tmp_path, etcd):
    from gitops.model import ObjectKey
    from gitops.store import Registry
    from gitops.store.etcd import EtcdStore
    from gitops.store.sqlite import SqliteStore
    source = Registry(EtcdStore(etcd.url))
    made = source.create({"apiVersion": "v1", "kind": "ConfigMap",
                          "metadata": {"name": "kept", "namespace": "default"},
                          "data": {"k": "v"}})
    source.set_state("applied_revision", "abc")
    source.close()
    saved, data = tmp_path / "b.json", tmp_path / "data"
    assert gitops("backup", str(saved), "--datastore", etcd.url).returncode == 0
    bad = tmp_path / "bad.json"
    bad.write_text('{"format": "gitops-store-backup", "version": 1, "objects": [{"x": 1}]}')
    refused = gitops("restore", str(bad), "--data-dir", str(data))
    assert refused.returncode == 2 and "objects[0] has no kind" in refused.stderr
    assert not (data / "state.db").exists()
    done = gitops("restore", str(saved), "--data-dir", str(data))
    assert done.returncode == 0, done.stderr
    store = SqliteStore(data / "state.db")
    kept = store.get(ObjectKey("ConfigMap", "default", "kept"))
    assert kept["metadata"]["uid"] == made["metadata"]["uid"] and kept["data"] == {"k": "v"}
    assert store.get_state("applied_revision") == "abc"
    store.close()
