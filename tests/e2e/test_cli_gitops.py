"""CLI verbs end to end: validate, diff, rollback/unpin, suspend/resume, history, status."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tests.e2e.conftest import git, gitops

CM = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\ndata:\n  value: \"{value}\"\n"


def write_cm(root: Path, name: str, value: str) -> None:
    (root / f"{name}.yaml").write_text(CM.format(name=name, value=value))


def test_validate_prints_file_line_kind_field_and_exit_codes(tmp_path):
    (tmp_path / "ok.yaml").write_text(CM.format(name="ok", value="1"))
    assert gitops("validate", str(tmp_path)).returncode == 0
    (tmp_path / "bad.yaml").write_text(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\nspec:\n"
        "  selector:\n    matchLabels: {app: web}\n  template:\n    metadata:\n"
        "      labels: {app: web}\n    spec:\n      containers:\n        - name: c\n"
        "          image: x:1\n          ports:\n            - containerPort: \"80\"\n")
    res = gitops("validate", str(tmp_path))
    assert res.returncode == 1
    assert res.stdout.strip() == ("bad.yaml:16: Deployment/web: "
                                  "spec.template.spec.containers[0].ports[0].containerPort: "
                                  "expected integer, got string \"80\"")
    as_json = json.loads(gitops("validate", "-o", "json", str(tmp_path)).stdout)
    assert as_json["errors"][0]["line"] == 16 and as_json["objects"] == 2


def test_diff_against_empty_store_and_markdown(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    write_cm(src, "a", "1")
    res = gitops("diff", str(src), "--data-dir", str(tmp_path / "data"))
    assert res.returncode == 1 and "create: ConfigMap/default/a" in res.stdout
    md = gitops("diff", str(src), "-o", "markdown", "--data-dir", str(tmp_path / "data"))
    assert "```diff" in md.stdout and "+  value: '1'" in md.stdout
    plan = json.loads(gitops("diff", str(src), "-o", "json",
                             "--data-dir", str(tmp_path / "data")).stdout)
    assert [c["action"] for c in plan["changes"]] == ["create"]
    (src / "bad.yaml").write_text("kind: [")
    assert gitops("diff", str(src), "--data-dir", str(tmp_path / "data")).returncode == 2


@pytest.mark.docker
def test_rollback_pin_suspend_resume_through_the_agent(docker_client, tmp_path):
    repo = tmp_path / "repo"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    git(repo, "config", "user.email", "t@example.invalid")
    git(repo, "config", "user.name", "t")

    def push(value: str) -> str:
        write_cm(repo, "a", value)
        git(repo, "add", "-A")
        git(repo, "commit", "-q", "-m", value)
        return subprocess.run(["git", "-C", str(repo), "rev-parse", "HEAD"],
                              capture_output=True, text=True).stdout.strip()

    def value(data: str) -> str:
        out = gitops("get", "cm", "a", "-o", "json", "--data-dir", data)
        return json.loads(out.stdout)["data"]["value"]

    first = push("1")
    data = str(tmp_path / "data")
    try:
        assert gitops("up", f"file://{repo}", "--wait", "--timeout", "60", "--data-dir", data,
                      "--interval", "300").returncode == 0
        push("2")
        assert gitops("sync", "--data-dir", data).returncode == 0 and value(data) == "2"
        # no diff once synced
        assert gitops("diff", f"file://{repo}", "--data-dir", data).returncode == 0

        assert gitops("rollback", "--data-dir", data).returncode == 0
        assert value(data) == "1"
        status = json.loads(gitops("status", "-o", "json", "--data-dir", data).stdout)
        assert status["pin"]["sha"] == first and status["applied_revision"] == first
        assert gitops("sync", "--data-dir", data).returncode == 0 and value(data) == "1"
        assert "Pinned:" in gitops("status", "--data-dir", data).stdout
        assert gitops("unpin", "--data-dir", data).returncode == 0 and value(data) == "2"
        # --to an abbreviated sha pins to the full one; an unknown sha changes nothing
        assert gitops("rollback", "--to", first[:10], "--data-dir", data).returncode == 0
        status = json.loads(gitops("status", "-o", "json", "--data-dir", data).stdout)
        assert status["pin"]["sha"] == first and value(data) == "1"
        bad = gitops("rollback", "--to", "0123456789abcdef", "--data-dir", data)
        assert bad.returncode == 1 and "pin unchanged" in bad.stderr
        status = json.loads(gitops("status", "-o", "json", "--data-dir", data).stdout)
        assert status["pin"]["sha"] == first and value(data) == "1"
        assert gitops("unpin", "--data-dir", data).returncode == 0 and value(data) == "2"

        assert gitops("suspend", "--data-dir", data).returncode == 0
        push("3")
        assert gitops("sync", "--data-dir", data).returncode == 1   # suspended: not synced
        assert value(data) == "2"
        assert gitops("resume", "--data-dir", data).returncode == 0 and value(data) == "3"
        hist = json.loads(gitops("history", "-o", "json", "--data-dir", data).stdout)
        assert hist[0]["result"] == "synced" and len(hist) >= 4
    finally:
        gitops("down", "--data-dir", data)


@pytest.mark.docker
def test_watched_directory_edit_applies_without_waiting_for_the_poll(docker_client, tmp_path):
    import time
    src = tmp_path / "src"
    src.mkdir()
    write_cm(src, "a", "1")
    data = str(tmp_path / "data")
    try:
        assert gitops("up", str(src), "--wait", "--timeout", "60", "--data-dir", data,
                      "--interval", "600").returncode == 0
        edited_at = time.monotonic()
        write_cm(src, "a", "2")
        value = ""
        while time.monotonic() - edited_at < 15 and value != "2":
            out = gitops("get", "cm", "a", "-o", "json", "--data-dir", data)
            value = json.loads(out.stdout)["data"]["value"]
        assert value == "2"
        status = json.loads(gitops("status", "-o", "json", "--data-dir", data).stdout)
        assert status["last_sync"]["result"] == "synced"
    finally:
        gitops("down", "--data-dir", data)


@pytest.mark.docker
def test_webhook_push_converges_without_the_poll(docker_client, tmp_path):
    import hashlib
    import hmac
    import time
    import urllib.error
    import urllib.request
    repo = tmp_path / "repo"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    git(repo, "config", "user.email", "t@example.invalid")
    git(repo, "config", "user.name", "t")
    write_cm(repo, "a", "1")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "one")
    secret = tmp_path / "hook-secret"
    secret.write_text("topsecret\n")
    data = str(tmp_path / "data")

    def post(body: bytes, signature: str) -> int:
        url = json.loads((tmp_path / "data" / "agent.json").read_text())["url"]
        req = urllib.request.Request(f"{url}/hooks/github", data=body, method="POST", headers={
            "X-GitHub-Event": "push", "X-Hub-Signature-256": signature,
            "Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=10) as resp:
                return resp.status
        except urllib.error.HTTPError as exc:
            return exc.code

    try:
        assert gitops("up", f"file://{repo}", "--wait", "--timeout", "60", "--data-dir", data,
                      "--interval", "3600", "--webhook-secret-file", str(secret)).returncode == 0
        write_cm(repo, "a", "2")
        git(repo, "commit", "-qam", "two")
        body = json.dumps({"ref": "refs/heads/main",
                           "repository": {"clone_url": f"file://{repo}"}}).encode()
        bad = "sha256=" + hmac.new(b"wrong", body, hashlib.sha256).hexdigest()
        assert post(body, bad) == 401
        time.sleep(1)
        out = gitops("get", "cm", "a", "-o", "json", "--data-dir", data)
        assert json.loads(out.stdout)["data"]["value"] == "1"      # nothing changed
        good = "sha256=" + hmac.new(b"topsecret", body, hashlib.sha256).hexdigest()
        pushed = time.monotonic()
        assert post(body, good) == 202
        value = "1"
        while value != "2" and time.monotonic() - pushed < 15:
            out = gitops("get", "cm", "a", "-o", "json", "--data-dir", data)
            value = json.loads(out.stdout)["data"]["value"]
        assert value == "2"
        assert "topsecret" not in (tmp_path / "data" / "agent.log").read_text()
    finally:
        gitops("down", "--data-dir", data)


def test_validate_warns_without_refusing_for_fields_the_node_cannot_honour(tmp_path):
    (tmp_path / "app.yaml").write_text(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\nspec:\n"
        "  selector:\n    matchLabels: {app: web}\n  template:\n    metadata:\n"
        "      labels: {app: web}\n    spec:\n      priorityClassName: high\n"
        "      containers:\n        - name: c\n          image: x:1\n"
        "      volumes:\n        - name: share\n          nfs: {server: nfs.example, path: /x}\n")
    res = gitops("validate", str(tmp_path))
    assert res.returncode == 0 and res.stdout == ""
    assert ("warning: app.yaml:12: Deployment/web: spec.template.spec.priorityClassName: "
            "not honoured by this node: pod priority and preemption are not implemented"
            ) in res.stderr
    assert ("warning: app.yaml:18: Deployment/web: spec.template.spec.volumes[0].nfs: not "
            "honoured by this node: nfs volumes are not supported: the pod will not start "
            "on this node") in res.stderr
    assert "0 problem(s), 2 warning(s)" in res.stderr
    as_json = json.loads(gitops("validate", "-o", "json", str(tmp_path)).stdout)
    assert [w["path"] for w in as_json["warnings"]] == [
        "spec.template.spec.priorityClassName", "spec.template.spec.volumes[0].nfs"]
    assert as_json["errors"] == []
