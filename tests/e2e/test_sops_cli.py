"""Issue 17 through the CLI (no Docker needed): `gitops validate` and `gitops diff` decrypt
SOPS-encrypted files with the key given and, without one, say which files they could not read
instead of failing on ciphertext; `up` and `run` refuse a key file others may read before
anything starts; `gitops age-keygen` makes keys the real sops encrypts for."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from xml.etree import ElementTree as ET

import pytest

from gitops.manifests.age_keys import KeySource
from gitops.paths import DataDir
from gitops.source.base import DirSource
from gitops.store import Registry, SqliteStore
from gitops.sync.engine import SyncEngine, SyncPolicy
from tests.e2e.conftest import gitops
from tests.sops_support import KEY, OTHER_KEY, RECIPIENT, encrypt, needs_sops, write_key

SECRET = """\
apiVersion: v1
kind: Secret
metadata:
  name: db
type: Opaque
stringData:
  password: {password}
"""
CONFIGMAP = """\
apiVersion: v1
kind: ConfigMap
metadata:
  name: settings
data:
  mode: {mode}
"""


@pytest.fixture(autouse=True)
def _sops():
    needs_sops()


@pytest.fixture
def repo(tmp_path):
    root = tmp_path / "repo"
    (root / "app").mkdir(parents=True)
    (root / "app" / "secret.enc.yaml").write_text(
        encrypt(SECRET.format(password="Cli-Pw-3318"), RECIPIENT))
    (root / "app" / "settings.yaml").write_text(CONFIGMAP.format(mode="fast"))
    return root


@pytest.fixture
def key(tmp_path):
    return write_key(tmp_path / "key.txt", KEY)


def test_validate_decrypts_with_the_key_and_checks_the_clear_objects(repo, key):
    done = gitops("validate", str(repo), "--decryption-key-file", str(key))
    assert done.returncode == 0, done.stderr
    assert "2 object(s), 0 problem(s)" in done.stderr and "not read" not in done.stderr
    assert "Cli-Pw-3318" not in done.stdout + done.stderr
    # The clear object is what is validated: a bad field inside the ciphertext is found.
    (repo / "app" / "secret.enc.yaml").write_text(
        encrypt(SECRET.format(password="x").replace("type: Opaque", "type: 42"), RECIPIENT))
    done = gitops("validate", str(repo), "--decryption-key-file", str(key))
    assert done.returncode == 1
    assert re.search(r"secret\.enc\.yaml:\d+: Secret/db: type: ", done.stdout), done.stdout


def test_validate_without_a_key_lists_the_files_it_could_not_read(repo):
    done = gitops("validate", str(repo))
    assert done.returncode == 0, done.stdout + done.stderr
    assert re.search(r"not read: app/secret\.enc\.yaml:\d+: .*no decryption key", done.stderr)
    assert "1 object(s), 0 problem(s), 1 not read" in done.stderr
    report = json.loads(gitops("validate", str(repo), "-o", "json").stdout)
    assert report["errors"] == [] and [u["file"] for u in report["unread"]] == [
        "app/secret.enc.yaml"]
    suite = ET.fromstring(gitops("validate", str(repo), "-o", "junit").stdout).find("testsuite")
    assert suite.get("skipped") == "1"
    assert suite.find("testcase/skipped").get("message").startswith("SOPS-encrypted")


def test_validate_with_the_key_in_the_environment_or_a_wrong_one(repo, monkeypatch):
    monkeypatch.setenv("GITOPS_AGE_KEY", KEY)
    assert gitops("validate", str(repo)).returncode == 0
    monkeypatch.setenv("GITOPS_AGE_KEY", OTHER_KEY)
    done = gitops("validate", str(repo))
    assert done.returncode == 1
    assert re.search(r"app/secret\.enc\.yaml:\d+: .*none of the agent's keys", done.stdout)
    assert OTHER_KEY not in done.stdout + done.stderr


def test_a_key_file_others_may_read_is_refused_by_every_command(repo, tmp_path):
    loose = write_key(tmp_path / "loose.txt", KEY, mode=0o644)
    data_dir = tmp_path / "dd"
    for args in (["validate", str(repo)], ["diff", str(repo), "--data-dir", str(data_dir)],
                 ["up", str(repo), "--data-dir", str(data_dir)]):
        done = gitops(*args, "--decryption-key-file", str(loose))
        assert done.returncode == 2, (args, done.stderr)
        assert f"decryption key file {loose} is readable by others (mode 0644)" in done.stderr
        assert KEY not in done.stdout + done.stderr
    assert not DataDir.at(data_dir).agent_file.exists()      # no agent was started
    done = gitops("run", "--repo", str(repo), "--data-dir", str(data_dir),
                  "--decryption-key-file", str(loose))
    assert done.returncode == 2 and "readable by others" in done.stderr


def synced_store(repo: Path, data_dir: Path, key: Path) -> None:
    """The data dir as an agent that applied `repo` leaves it."""
    data_dir.mkdir()
    store = Registry(SqliteStore(DataDir.at(data_dir).store))
    try:
        result = SyncEngine(store, DirSource(str(repo)),
                            SyncPolicy(decryption=KeySource(str(key)))).sync_once()
        assert result.result == "synced", result
    finally:
        store.close()


def test_diff_decrypts_with_the_key_and_masks_the_values(repo, key, tmp_path):
    data_dir = tmp_path / "dd"
    synced_store(repo, data_dir, key)
    args = ["diff", str(repo), "--data-dir", str(data_dir), "--decryption-key-file", str(key)]
    assert gitops(*args).returncode == 0
    (repo / "app" / "secret.enc.yaml").write_text(
        encrypt(SECRET.format(password="Cli-Next-7740"), RECIPIENT))
    done = gitops(*args)
    assert done.returncode == 1, done.stderr
    assert "update: Secret/default/db  (app/secret.enc.yaml:1)" in done.stdout
    as_json = gitops(*args, "-o", "json").stdout
    assert "data.password" in as_json and "***" in as_json
    for output in (done.stdout, as_json, gitops(*args, "-o", "markdown").stdout):
        assert "Cli-Next-7740" not in output and "Cli-Pw-3318" not in output


def test_diff_without_a_key_leaves_the_encrypted_files_out_instead_of_pruning(repo, key,
                                                                              tmp_path):
    data_dir = tmp_path / "dd"
    synced_store(repo, data_dir, key)
    done = gitops("diff", str(repo), "--data-dir", str(data_dir))
    assert done.returncode == 0, done.stdout + done.stderr      # nothing else changed
    assert re.search(r"not read: app/secret\.enc\.yaml:\d+", done.stderr)
    (repo / "app" / "settings.yaml").write_text(CONFIGMAP.format(mode="slow"))
    done = gitops("diff", str(repo), "--data-dir", str(data_dir), "-o", "json")
    assert done.returncode == 1
    changes = json.loads(done.stdout)
    listed = json.dumps(changes)
    assert "settings" in listed and "Secret" not in listed     # not a prune of the Secret


def test_age_keygen_makes_a_key_sops_encrypts_for_and_the_agent_decrypts_with(repo,
                                                                             tmp_path):
    path = tmp_path / "new-key.txt"
    done = gitops("age-keygen", "-o", str(path))
    assert done.returncode == 0
    recipient = re.fullmatch(r"Public key: (age1\w+)\n", done.stderr).group(1)
    assert oct(os.stat(path).st_mode & 0o777) == "0o600"
    assert gitops("age-keygen", "-y", str(path)).stdout.strip() == recipient
    again = gitops("age-keygen", "-o", str(path))
    assert again.returncode == 2 and "never overwritten" in again.stderr
    (repo / "app" / "secret.enc.yaml").write_text(
        encrypt(SECRET.format(password="Gen-Pw-5123"), recipient))
    done = gitops("validate", str(repo), "--decryption-key-file", str(path))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "not read" not in done.stderr
