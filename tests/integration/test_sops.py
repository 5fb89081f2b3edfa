"""Issue 17 with the real sops: SOPS-encrypted files decrypted in memory at render time (plain
YAML, Kustomize inputs, Helm values files), refusals with file:line for a missing key, a wrong
key or a file changed after encryption, the key handed to sops through memory only, and the
sync engine refusing a revision whole while what runs keeps running."""

from __future__ import annotations

import base64
import os
import shutil
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from gitops.manifests import decrypt, render, sandbox, sops
from gitops.manifests.age_keys import KeySource
from gitops.manifests.render import render_path
from gitops.manifests.sops import Decryption
from gitops.manifests.validate import validate
from gitops.model import ObjectKey
from gitops.source.git import GitSource
from gitops.store import Registry, SqliteStore
from gitops.sync.engine import SyncEngine, SyncPolicy
from tests.sops_support import (KEY, OTHER_KEY, OTHER_RECIPIENT, RECIPIENT, encrypt, needs_sops,
                                write_key)

needs_kustomize = pytest.mark.skipif(
    shutil.which("kubectl") is None and shutil.which("kustomize") is None,
    reason="neither kubectl nor kustomize on PATH")

SECRET = """\
apiVersion: v1
kind: Secret
metadata:
  name: db
  namespace: default
type: Opaque
stringData:
  password: Pw-Plain-4417
  ca.crt: |
    -----BEGIN CERTIFICATE-----
    MIIBfake
    -----END CERTIFICATE-----
"""
CONFIGMAP = """\
apiVersion: v1
kind: ConfigMap
metadata:
  name: settings
data:
  api_token: Tok-Visible-2291
"""


@pytest.fixture(autouse=True)
def _sops():
    needs_sops()


def write(root: Path, files: dict[str, str]) -> Path:
    for rel, content in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content)
    return root


def decryption(tmp_path: Path, *keys: str, **kw) -> Decryption:
    path = write_key(tmp_path / "keys" / f"key{len(list(tmp_path.glob('keys/*')))}.txt",
                     *keys) if keys else None
    return Decryption(KeySource(str(path)) if path else None, **kw)


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


@pytest.fixture
def keydir(tmp_path):
    (tmp_path / "keys").mkdir()
    return tmp_path


# -- plain YAML ------------------------------------------------------------------------------

def test_an_encrypted_secret_is_decrypted_in_memory_and_kept_at_its_lines(keydir):
    encrypted = encrypt(SECRET, RECIPIENT)
    repo = write(keydir / "repo", {"app/secret.enc.yaml": encrypted})
    result = render_path(repo, decryption=decryption(keydir, KEY))
    assert result.errors == []
    [secret] = result.objects
    assert secret.body["data"] == {"password": b64("Pw-Plain-4417"), "ca.crt": b64(
        "-----BEGIN CERTIFICATE-----\nMIIBfake\n-----END CERTIFICATE-----\n")}
    assert "stringData" not in secret.body and "sops" not in secret.body
    lines = encrypted.splitlines()
    assert secret.file == "app/secret.enc.yaml"
    assert lines[secret.line_of("data.password") - 1].strip().startswith("password: ENC[")
    assert lines[secret.line_of("data[\"ca.crt\"]") - 1].strip().startswith("ca.crt: ENC[")
    assert validate(result.objects) == []
    assert (repo / "app/secret.enc.yaml").read_text() == encrypted    # the tree untouched


def test_a_single_encrypted_file_is_decrypted_too(keydir):
    path = write(keydir / "repo", {"secret.enc.yaml": encrypt(SECRET, RECIPIENT)})
    result = render_path(path / "secret.enc.yaml", decryption=decryption(keydir, KEY))
    assert result.errors == [] and result.objects[0].file == "secret.enc.yaml"


def test_a_file_for_several_recipients_opens_with_any_of_their_keys(keydir):
    repo = write(keydir / "repo", {"s.yaml": encrypt(SECRET, OTHER_RECIPIENT, RECIPIENT)})
    for key in (KEY, OTHER_KEY):
        result = render_path(repo, decryption=decryption(keydir, key))
        assert result.errors == [] and result.objects[0].body["data"]["password"] == b64(
            "Pw-Plain-4417")


def test_other_kinds_decrypt_too_with_a_warning_that_their_values_show(keydir):
    repo = write(keydir / "repo", {"all.yaml": encrypt(SECRET + "---\n" + CONFIGMAP,
                                                       RECIPIENT)})
    dec = decryption(keydir, KEY)
    result = render_path(repo, decryption=dec)
    assert result.errors == []
    assert [o.kind for o in result.objects] == ["Secret", "ConfigMap"]
    assert result.objects[1].body["data"] == {"api_token": "Tok-Visible-2291"}
    [warning] = dec.warnings
    assert (warning.file, warning.kind, warning.name) == ("all.yaml", "ConfigMap", "settings")
    assert warning.line == result.objects[1].line > 1
    assert "shown by the API" in warning.message


def tampered_mac(text: str) -> str:
    head, mac = text.split("    mac: ENC[AES256_GCM,data:", 1)
    return head + "    mac: ENC[AES256_GCM,data:" + ("A" if mac[0] != "A" else "B") + mac[1:]


@pytest.mark.parametrize("case, says", [
    ("no key", "the agent has no decryption key"),
    ("wrong key", "none of the agent's keys"),
    ("tampered MAC", "MAC mismatch"),
    ("changed after encryption", "MAC mismatch"),
    ("value from another file", "a value cannot be decrypted"),
])
def test_what_cannot_be_decrypted_is_refused_with_file_line_and_reason(keydir, case, says):
    encrypted = encrypt(SECRET, RECIPIENT)
    text = {
        "no key": encrypted, "wrong key": encrypted,
        "tampered MAC": tampered_mac(encrypted),
        "changed after encryption": encrypted.replace("namespace: default", "namespace: x"),
        "value from another file": encrypted.replace(
            encrypted.split("password: ")[1].split("\n")[0],
            encrypt(SECRET, RECIPIENT).split("password: ")[1].split("\n")[0]),
    }[case]
    repo = write(keydir / "repo", {"ok.yaml": CONFIGMAP, "app/secret.enc.yaml": text})
    keys = {"no key": (), "wrong key": (OTHER_KEY,)}.get(case, (KEY,))
    result = render_path(repo, decryption=decryption(keydir, *keys))
    [err] = result.errors
    assert (err.file, err.line) == ("app/secret.enc.yaml", sops.metadata_line(text, "yaml"))
    assert says in err.message
    assert KEY not in str(err) and OTHER_KEY not in str(err)
    assert [o.name for o in result.objects] == ["settings"]   # the rest still loads


def test_without_a_key_validate_and_diff_skip_the_file_and_say_so(keydir):
    repo = write(keydir / "repo", {"ok.yaml": CONFIGMAP,
                                   "app/secret.enc.yaml": encrypt(SECRET, RECIPIENT)})
    dec = decryption(keydir, skip_unreadable=True)
    result = render_path(repo, decryption=dec)
    assert result.errors == [] and [o.name for o in result.objects] == ["settings"]
    assert [u.file for u in dec.unread] == ["app/secret.enc.yaml"]


# -- how sops runs --------------------------------------------------------------------------

def test_the_key_reaches_sops_in_memory_only(keydir, monkeypatch):
    """Not on its command line, not in its environment, not in a file: a memfd sops reads as
    often as it needs (once per age recipient)."""
    seen = keydir / "seen"
    fake = keydir / "sops"
    fake.write_text(textwrap.dedent(f"""\
        #!/bin/sh
        tr '\\0' ' ' < /proc/$$/cmdline > {seen}.argv
        env > {seen}.env
        cat "$SOPS_AGE_KEY_FILE" > {seen}.first
        cat "$SOPS_AGE_KEY_FILE" > {seen}.second
        readlink "$SOPS_AGE_KEY_FILE" > {seen}.link
        cat > /dev/null
        printf 'apiVersion: v1\\nkind: Secret\\nmetadata: {{name: x}}\\n'
        """))
    fake.chmod(0o755)
    monkeypatch.setattr(sops, "sops_binary", lambda: str(fake))
    repo = write(keydir / "repo", {"s.yaml": encrypt(SECRET, RECIPIENT)})
    result = render_path(repo, decryption=decryption(keydir, KEY))
    assert result.errors == []
    argv, env = Path(f"{seen}.argv").read_text(), Path(f"{seen}.env").read_text()
    assert KEY not in argv and KEY not in env and "--config /dev/null decrypt" in argv
    assert Path(f"{seen}.first").read_text() == Path(f"{seen}.second").read_text() == KEY + "\n"
    assert "memfd:" in Path(f"{seen}.link").read_text()
    assert f"HOME={sops._NO_HOME}" in env          # no ~/.config/sops keys, no ~/.ssh key


def test_sops_runs_without_a_network():
    outcome = sandbox.run_tool(["/bin/cat", "/proc/self/net/dev"], sandbox.Limits(64, 10, 1),
                               extras=sandbox.Extras(offline=True))
    assert outcome.ok
    interfaces = [line.split(":")[0].strip() for line in
                  outcome.stdout.decode().splitlines()[2:]]
    assert interfaces == ["lo"]


def test_stdin_larger_than_a_pipe_reaches_the_tool_whole():
    data = os.urandom(300_000).hex().encode()
    outcome = sandbox.run_tool(["/bin/cat"], sandbox.Limits(64, 10, 2),
                               extras=sandbox.Extras(stdin=data))
    assert outcome.ok and outcome.stdout == data


# -- Kustomize -------------------------------------------------------------------------------

APP_ENV = "DB_USER=admin\nDB_PASSWORD=Env-Kust-8812\n"


def test_a_private_copy_a_killed_agent_left_is_removed_by_the_next_build(keydir):
    base = Path("/dev/shm")
    if not base.is_dir():
        pytest.skip("no /dev/shm")
    stale = base / f"{decrypt.COPY_PREFIX}stale-test-{os.getpid()}"
    fresh = base / f"{decrypt.COPY_PREFIX}fresh-test-{os.getpid()}"
    for path in (stale, fresh):
        (path / "checkout").mkdir(parents=True)
        (path / "checkout" / "app.env").write_text("DB_PASSWORD=left-behind\n")
    old = time.time() - decrypt.STALE_COPY_SECONDS - 60
    os.utime(stale, (old, old))
    try:
        with decrypt.private_copy(write(keydir / "repo", {"a.yaml": "a: 1\n"}), {}) as copy:
            assert (copy / "a.yaml").read_text() == "a: 1\n"
        assert not stale.exists() and fresh.exists()    # a build going on elsewhere stays
    finally:
        shutil.rmtree(stale, ignore_errors=True)
        shutil.rmtree(fresh, ignore_errors=True)


def leftover_copies() -> set[str]:
    return {p.name for p in Path("/dev/shm").glob("gitops-sops-*")} \
        if Path("/dev/shm").is_dir() else set()


@needs_kustomize
def test_kustomize_secret_generator_with_an_encrypted_env_file_and_encrypted_resources(
        keydir):
    before = leftover_copies()
    repo = write(keydir / "repo", {
        "base/kustomization.yaml": "resources: [db.enc.yaml, web.yaml]\n"
                                   "secretGenerator:\n- name: app\n  envs: [app.enc.env]\n",
        "base/app.enc.env": encrypt(APP_ENV, RECIPIENT, name="app.env", regex=None),
        "base/db.enc.yaml": encrypt(SECRET, RECIPIENT),
        "base/web.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: web}\n"
                         "data: {mode: fast}\n",
        "prod/kustomization.yaml": "namespace: prod\nnamePrefix: prod-\nresources: [../base]\n",
    })
    snapshot = {p: p.read_bytes() for p in repo.rglob("*") if p.is_file()}
    dec = decryption(keydir, KEY)
    result = render_path(repo / "prod", repo_root=repo, decryption=dec)
    assert result.errors == [] and dec.warnings == []
    by_name = {o.name: o for o in result.objects}
    generated = next(o for name, o in by_name.items() if name.startswith("prod-app-"))
    assert generated.body["data"] == {"DB_USER": b64("admin"),
                                      "DB_PASSWORD": b64("Env-Kust-8812")}
    assert generated.body["metadata"]["namespace"] == "prod"
    db = by_name["prod-db"]
    assert db.body["data"]["password"] == b64("Pw-Plain-4417") and "stringData" not in db.body
    assert db.file == "../base/db.enc.yaml" and db.body["metadata"]["namespace"] == "prod"
    assert by_name["prod-web"].file == "../base/web.yaml"
    assert validate(result.objects) == []
    assert {p: p.read_bytes() for p in repo.rglob("*") if p.is_file()} == snapshot
    assert leftover_copies() == before          # the clear copy is gone


@needs_kustomize
def test_kustomize_reads_the_clear_file_through_an_absolute_symlink_too(keydir):
    repo = write(keydir / "repo", {
        "app/secrets/app.enc.env": encrypt(APP_ENV, RECIPIENT, name="app.env", regex=None),
        "app/kustomization.yaml": "secretGenerator:\n- name: app\n  envs: [app.env]\n",
    })
    (repo / "app" / "app.env").symlink_to(repo.resolve() / "app" / "secrets" / "app.enc.env")
    result = render_path(repo / "app", repo_root=repo, decryption=decryption(keydir, KEY))
    assert result.errors == []
    assert result.objects[0].body["data"]["DB_PASSWORD"] == b64("Env-Kust-8812")


@needs_kustomize
def test_kustomize_config_map_generator_fed_encrypted_is_warned_about(keydir):
    repo = write(keydir / "repo", {
        "kustomization.yaml": "configMapGenerator:\n- name: cfg\n  envs: [cfg.enc.env]\n",
        "cfg.enc.env": encrypt("TOKEN=Cfg-Tok-5521\n", RECIPIENT, name="cfg.env", regex=None),
    })
    dec = decryption(keydir, KEY)
    result = render_path(repo, decryption=dec)
    assert result.errors == []
    assert result.objects[0].body["data"] == {"TOKEN": "Cfg-Tok-5521"}
    [warning] = dec.warnings
    assert (warning.file, warning.line, warning.path) == (
        "kustomization.yaml", 3, "configMapGenerator[0].envs[0]")


@needs_kustomize
def test_kustomize_with_a_wrong_key_is_refused_at_the_encrypted_file(keydir):
    repo = write(keydir / "repo", {
        "kustomization.yaml": "secretGenerator:\n- name: app\n  envs: [app.enc.env]\n",
        "app.enc.env": encrypt(APP_ENV, RECIPIENT, name="app.env", regex=None),
    })
    [err] = render_path(repo, decryption=decryption(keydir, OTHER_KEY)).errors
    assert err.file == "app.enc.env" and "none of the agent's keys" in err.message


@needs_kustomize
def test_kustomize_without_a_key_is_not_built_and_every_file_it_reads_is_noted(keydir):
    repo = write(keydir / "repo", {
        "kustomization.yaml": "resources: [web.yaml]\n"
                              "secretGenerator:\n- name: app\n  envs: [app.enc.env]\n",
        "app.enc.env": encrypt(APP_ENV, RECIPIENT, name="app.env", regex=None),
        "web.yaml": CONFIGMAP,
    })
    dec = decryption(keydir, skip_unreadable=True)
    result = render_path(repo, decryption=dec)
    assert result.errors == [] and result.objects == []
    assert [u.file for u in dec.unread] == ["app.enc.env", "kustomization.yaml"]
    assert dec.covers("web.yaml") and dec.covers("kustomization.yaml")


# -- Helm ------------------------------------------------------------------------------------

CHART = {
    "Chart.yaml": "apiVersion: v2\nname: app\nversion: 0.1.0\n",
    "values.yaml": "user: app\npassword: \"\"\n",
    "templates/secret.yaml": "apiVersion: v1\nkind: Secret\nmetadata:\n"
                             "  name: {{ .Release.Name }}-db\nstringData:\n"
                             "  user: {{ .Values.user }}\n"
                             "  password: {{ .Values.password | quote }}\n",
}
LEAKY = {"templates/cm.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: url}\n"
                              "data:\n  url: \"db://{{ .Values.password }}@db\"\n"}


@pytest.fixture
def helm_sdk():
    return pytest.importorskip("helm_python")


def test_helm_values_file_encrypted_with_sops(keydir, helm_sdk):
    chart = write(keydir / "chart", {**CHART, **LEAKY, "secrets.yaml": encrypt(
        "password: Helm-Pw-6630\n", RECIPIENT, name="secrets.yaml", regex=None)})
    dec = decryption(keydir, KEY)
    result = render_path(chart, ["secrets.yaml"], decryption=dec)
    assert result.errors == []
    by_kind = {o.kind: o for o in result.objects}
    assert by_kind["Secret"].body["data"] == {"user": b64("app"),
                                               "password": b64("Helm-Pw-6630")}
    [warning] = dec.warnings         # the ConfigMap quotes a decrypted value
    assert (warning.kind, warning.file) == ("ConfigMap", "templates/cm.yaml")


def test_helm_decrypted_values_never_reach_a_command_line(keydir, monkeypatch):
    """Through the helm binary: every values file merged here, on helm's stdin."""
    monkeypatch.setitem(sys.modules, "helm_python", None)
    bindir, calls = keydir / "bin", keydir / "calls"
    bindir.mkdir()
    (bindir / "helm").write_text(f"#!/bin/sh\necho \"$@\" > {calls}.argv\n"
                                 f"cat > {calls}.stdin\n")
    (bindir / "helm").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bindir}{os.pathsep}{os.environ['PATH']}")
    chart = write(keydir / "chart", {**CHART, "prod.yaml": "user: prod\nreplicas: 2\n",
                                     "secrets.yaml": encrypt("password: Bin-Pw-1207\n",
                                                             RECIPIENT, name="s.yaml",
                                                             regex=None)})
    result = render_path(chart, ["prod.yaml", "secrets.yaml"],
                         decryption=decryption(keydir, KEY))
    assert result.errors == []
    argv = Path(f"{calls}.argv").read_text().split()
    assert argv[-2:] == ["--values", "-"] and "Bin-Pw-1207" not in " ".join(argv)
    assert Path(f"{calls}.stdin").read_text() == (
        '{"user": "prod", "replicas": 2, "password": "Bin-Pw-1207"}')


def test_helm_chart_with_its_own_values_yaml_encrypted_is_refused(keydir, helm_sdk):
    chart = write(keydir / "chart", {**CHART, "values.yaml": encrypt(
        "password: x\n", RECIPIENT, name="values.yaml", regex=None)})
    [err] = render_path(chart, decryption=decryption(keydir, KEY)).errors
    assert err.file == "values.yaml" and "--values" in err.message


def test_helm_without_a_key_is_not_rendered_and_noted(keydir, helm_sdk):
    chart = write(keydir / "chart", {**CHART, "secrets.yaml": encrypt(
        "password: x-Nokey\n", RECIPIENT, name="secrets.yaml", regex=None)})
    dec = decryption(keydir, skip_unreadable=True)
    result = render_path(chart, ["secrets.yaml"], decryption=dec)
    assert result.errors == [] and result.objects == []
    assert [u.file for u in dec.unread] == ["secrets.yaml", "Chart.yaml"]
    assert dec.covers("templates/secret.yaml")


# -- the sync engine --------------------------------------------------------------------------

def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True,
                          text=True).stdout.strip()


def commit(repo: Path, files: dict[str, str]) -> str:
    write(repo, files)
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "change")
    return git(repo, "rev-parse", "HEAD")


@pytest.fixture
def engine(keydir):
    repo = keydir / "repo"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    git(repo, "config", "user.email", "t@example.invalid")
    git(repo, "config", "user.name", "t")
    store = Registry(SqliteStore(keydir / "state.db"))
    key = write_key(keydir / "keys" / "agent.txt", KEY)
    source = GitSource(url=f"file://{repo}", workdir=keydir / "clones")
    yield repo, store, SyncEngine(store, source, SyncPolicy(decryption=KeySource(str(key))))
    store.close()


def test_the_engine_applies_the_decrypted_secret_and_refuses_a_bad_revision_whole(engine):
    repo, store, eng = engine
    good = commit(repo, {"secret.enc.yaml": encrypt(SECRET, RECIPIENT), "cm.yaml": CONFIGMAP})
    assert eng.sync_once().result == "synced"
    secret = store.get(ObjectKey("Secret", "default", "db"))
    assert secret["data"]["password"] == b64("Pw-Plain-4417") and "stringData" not in secret

    changed = SECRET.replace("Pw-Plain-4417", "Pw-Next-0093")
    for bad in (encrypt(changed, OTHER_RECIPIENT),             # a key the agent lacks
                tampered_mac(encrypt(changed, RECIPIENT))):     # changed by hand
        commit(repo, {"secret.enc.yaml": bad, "cm.yaml": CONFIGMAP.replace("2291", "0000")})
        with capture_logs() as logs:
            res = eng.sync_once()
        assert res.result == "failed" and "the last good revision keeps running" in res.message
        [err] = res.errors
        assert (err.file, err.line) == ("secret.enc.yaml", sops.metadata_line(bad, "yaml"))
        assert store.get(ObjectKey("Secret", "default", "db"))["data"]["password"] == b64(
            "Pw-Plain-4417")
        assert store.get(ObjectKey("ConfigMap", "default", "settings"))["data"] == {
            "api_token": "Tok-Visible-2291"}                # nothing of it applied
        assert eng.status.applied_revision() == good
        text = repr(logs)
        assert "Pw-Next-0093" not in text and KEY not in text


def test_an_engine_without_a_key_refuses_the_revision_whole(engine, keydir):
    repo, store, _ = engine
    commit(repo, {"secret.enc.yaml": encrypt(SECRET, RECIPIENT), "cm.yaml": CONFIGMAP})
    source = GitSource(url=f"file://{repo}", workdir=keydir / "clones-2")
    res = SyncEngine(store, source, SyncPolicy()).sync_once()
    assert res.result == "failed"
    [err] = res.errors
    assert err.file == "secret.enc.yaml" and "no decryption key" in err.message
    assert store.get(ObjectKey("ConfigMap", "default", "settings")) is None


def test_the_engine_warns_once_per_revision_about_a_decrypted_non_secret(engine):
    repo, _store, eng = engine
    commit(repo, {"cm.enc.yaml": encrypt(CONFIGMAP, RECIPIENT)})
    with capture_logs() as logs:
        assert eng.sync_once().result == "synced"
        assert eng.sync_once().result == "unchanged"
    warnings = [entry for entry in logs if entry["event"] == "manifest_warning"]
    assert len(warnings) == 1 and warnings[0]["kind"] == "ConfigMap"
    assert warnings[0]["file"] == "cm.enc.yaml"


@needs_kustomize
def test_an_object_the_build_outputs_still_encrypted_is_decrypted_as_flux_does(keydir,
                                                                             monkeypatch):
    """What escaped the inputs' decryption (a remote base): decrypted as built, the
    namespace kustomize added (which breaks the MAC) kept."""
    monkeypatch.setattr(render.kustomize_inputs, "input_files", lambda *a: [])
    repo = write(keydir / "repo", {"kustomization.yaml": "namespace: prod\n"
                                                         "resources: [db.enc.yaml]\n",
                                   "db.enc.yaml": encrypt(SECRET, RECIPIENT)})
    result = render_path(repo, decryption=decryption(keydir, KEY))
    assert result.errors == []
    [db] = result.objects
    assert db.body["metadata"]["namespace"] == "prod" and "sops" not in db.body
    assert db.body["data"]["password"] == b64("Pw-Plain-4417")
    [err] = render_path(repo, decryption=decryption(keydir, OTHER_KEY)).errors
    assert (err.file, err.kind, err.name) == ("db.enc.yaml", "Secret", "db")
    assert "none of the agent's keys" in err.message
