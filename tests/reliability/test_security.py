"""Security on a real agent: the API wants its token, webhooks their signature, host access
is refused without --allow-host-access, and a Secret's values appear nowhere a person or a
log collector can read: agent log, `gitops diff`, `gitops get secret -o json`, status,
history, events, and the error messages of a refused revision.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import sqlite3
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.conftest import _listed
from tests.e2e.conftest import git, gitops

HOOK_SECRET = "hook-Kq93-secret"
# Every form in which a Secret value could leak: plain, and as Kubernetes stores it.
V1_PLAIN, V1_DATA = "pw-Zq81-LEAKCHECK", "tok-Ux72-LEAKCHECK"
V2_PLAIN = "pw-Rr55-LEAKCHECK-v2"
BAD_VALUE = "LEAKCHECK-bad!value"


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


SECRET = """\
apiVersion: v1
kind: Secret
metadata: {{name: creds}}
type: Opaque
stringData: {{password: "{plain}"}}
data: {{token: "{data}"}}
"""
APP = """\
apiVersion: apps/v1
kind: Deployment
metadata: {name: app}
spec:
  replicas: 1
  selector: {matchLabels: {app: app}}
  template:
    metadata: {labels: {app: app}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
        - name: main
          image: gitops/busybox:1
          command: ["sleep", "3600"]
          env:
            - name: PASSWORD
              valueFrom: {secretKeyRef: {name: creds, key: password}}
          volumeMounts: [{name: creds, mountPath: /creds}]
      volumes: [{name: creds, secret: {secretName: creds}}]
"""
HOSTILE = {
    "hostpath.yaml": """\
apiVersion: v1
kind: Pod
metadata: {name: rootfs}
spec:
  containers: [{name: c, image: gitops/busybox:1, command: [sleep, "60"],
                volumeMounts: [{name: root, mountPath: /host}]}]
  volumes:
    - name: root
      hostPath: {path: /}
""",
    "privileged.yaml": """\
apiVersion: apps/v1
kind: Deployment
metadata: {name: priv}
spec:
  selector: {matchLabels: {app: priv}}
  template:
    metadata: {labels: {app: priv}}
    spec:
      containers:
        - name: c
          image: gitops/busybox:1
          securityContext:
            privileged: true
""",
    "dockersock.yaml": """\
apiVersion: v1
kind: Pod
metadata: {name: sock}
spec:
  containers: [{name: c, image: gitops/busybox:1, command: [sleep, "60"],
                volumeMounts: [{name: sock, mountPath: /var/run/docker.sock}]}]
  volumes:
    - name: sock
      hostPath: {path: /var/run/docker.sock, type: Socket}
""",
}
# Where each hostile file's refusal must point (file, line).
HOSTILE_LINES = {("hostpath.yaml", 9), ("privileged.yaml", 13), ("dockersock.yaml", 9)}
BAD_SECRET = f"""\
apiVersion: v1
kind: Secret
metadata: {{name: broken}}
data: {{token: "{BAD_VALUE}"}}
"""


def commit(repo: Path, message: str, files: dict[str, str | None]) -> str:
    for name, text in files.items():
        if text is None:
            (repo / name).unlink(missing_ok=True)
        else:
            (repo / name).write_text(text)
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", message)
    return subprocess.run(["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True,
                          text=True, check=True).stdout.strip()


def request(url: str, method: str = "GET", body: bytes | None = None,
            headers: dict | None = None) -> int:
    req = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status
    except urllib.error.HTTPError as exc:
        return exc.code


def applied(data: str) -> str:
    return json.loads(gitops("status", "-o", "json", "--data-dir", data).stdout)[
        "applied_revision"]


def stored_secret(data: str, name: str = "creds") -> dict:
    db = sqlite3.connect(f"file:{Path(data) / 'state.db'}?mode=ro", uri=True, timeout=10)
    try:
        [(body,)] = db.execute("SELECT body FROM objects WHERE kind='Secret' AND name=?",
                               (name,)).fetchall()
    finally:
        db.close()
    return json.loads(body)


@pytest.mark.docker
def test_tokens_signatures_host_access_and_secret_values(docker_client, tmp_path):
    from gitops.paths import DataDir
    repo, data = tmp_path / "repo", str(tmp_path / "data")
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    git(repo, "config", "user.email", "t@example.invalid")
    git(repo, "config", "user.name", "t")
    first = commit(repo, "v1", {"secret.yaml": SECRET.format(plain=V1_PLAIN, data=b64(V1_DATA)),
                                "app.yaml": APP})
    hook_file = tmp_path / "hook-secret"
    hook_file.write_text(HOOK_SECRET + "\n")
    dd = DataDir.at(data)
    outputs: dict[str, str] = {}          # every text a person could read, checked at the end
    try:
        up = gitops("up", f"file://{repo}", "--wait", "--timeout", "120", "--data-dir", data,
                    "--interval", "3600", "--webhook-secret-file", str(hook_file))
        assert up.returncode == 0, up.stdout + up.stderr
        url = json.loads(dd.agent_file.read_text())["url"]
        token = dd.token()

        # -- the API: nothing but /healthz without the bearer token ----------------------
        routes = [("GET", "/api/v1/namespaces/default/secrets"),
                  ("GET", "/api/v1/namespaces/default/secrets/creds"),
                  ("GET", "/api/v1/pods"), ("GET", "/gitops/v1/status"),
                  ("GET", "/gitops/v1/history"), ("POST", "/gitops/v1/sync"),
                  ("POST", "/gitops/v1/suspend"), ("POST", "/gitops/v1/shutdown")]
        bad_auth = [{}, {"Authorization": "Bearer "}, {"Authorization": "Bearer wrong"},
                    {"Authorization": f"Bearer {token}x"}, {"Authorization": token[:-1]},
                    {"Authorization": f"Basic {token}"}]
        for method, path in routes:
            for headers in bad_auth:
                assert request(url + path, method, b"" if method == "POST" else None,
                               headers) == 401, (method, path, headers)
        assert request(url + "/healthz") == 200
        assert request(url + "/gitops/v1/status",
                       headers={"Authorization": f"Bearer {token}"}) == 200
        assert dd.read_agent() is not None                   # shutdown was refused
        assert not json.loads(gitops("status", "-o", "json", "--data-dir", data).stdout)[
            "suspended"]

        # -- webhooks: a bad signature triggers nothing, a good one syncs ---------------
        second = commit(repo, "v2 via webhook", {"app.yaml": APP.replace("3600", "3601")})
        body = json.dumps({"ref": "refs/heads/main", "after": second}).encode()
        good_sig = "sha256=" + hmac.new(HOOK_SECRET.encode(), body, hashlib.sha256).hexdigest()
        wrong_key = "sha256=" + hmac.new(b"guess", body, hashlib.sha256).hexdigest()
        other_body = "sha256=" + hmac.new(HOOK_SECRET.encode(), body + b" ",
                                          hashlib.sha256).hexdigest()
        rejected = [
            ("github", {"X-GitHub-Event": "push"}),
            ("github", {"X-GitHub-Event": "push", "X-Hub-Signature-256": wrong_key}),
            ("github", {"X-GitHub-Event": "push", "X-Hub-Signature-256": other_body}),
            ("github", {"X-GitHub-Event": "push", "X-Hub-Signature-256": good_sig[7:]}),
            ("gitea", {"X-Gitea-Event": "push", "X-Gitea-Signature": wrong_key[7:]}),
            ("gitlab", {"X-Gitlab-Event": "Push Hook", "X-Gitlab-Token": "guess"}),
            ("gitlab", {"X-Gitlab-Event": "Push Hook", "X-Gitlab-Token": HOOK_SECRET + "x"}),
            ("generic", {"X-Signature-256": wrong_key}),
            ("generic", {"X-Signature-256": "sha256="}),
            ("generic", {"Authorization": f"Bearer {token}"}),      # the API token is not it
        ]
        for provider, headers in rejected:
            status = request(f"{url}/hooks/{provider}", "POST", body,
                             {"Content-Type": "application/json", **headers})
            assert status == 401, (provider, headers, status)
        time.sleep(2)
        assert applied(data) == first                        # nothing was triggered
        assert request(f"{url}/hooks/generic", "POST", body,
                       {"Content-Type": "application/json", "X-Signature-256": good_sig}) == 202
        deadline = time.monotonic() + 60
        while applied(data) != second and time.monotonic() < deadline:
            time.sleep(0.5)
        assert applied(data) == second                       # the check is not vacuous
        label = {"label": f"gitops.instance={dd.instance}"}
        deadline = time.monotonic() + 90                     # the rollout of v2 settles
        while time.monotonic() < deadline:
            # the rollout removes containers while they are listed: list again then
            now = _listed(lambda: docker_client.containers.list(all=True, filters=label))
            if len(now) == 1 and all(c.status == "running" for c in now) and any(
                    '"3601"' in json.dumps(c.attrs["Config"]) for c in now):
                break
            time.sleep(0.5)
        else:
            pytest.fail("the webhook's revision did not roll out")

        # -- host access refused without the flag, with file:line ----------------------
        before = {c.id for c in docker_client.containers.list(all=True, filters=label)}
        commit(repo, "hostile", {**HOSTILE, "broken.yaml": BAD_SECRET,
                                 "secret.yaml": SECRET.format(plain=V2_PLAIN, data=b64(V1_DATA))})
        refused = gitops("sync", "--data-dir", data)
        outputs["refused sync"] = refused.stdout + refused.stderr
        assert refused.returncode == 1, outputs["refused sync"]
        for file, line in HOSTILE_LINES:
            assert f"{file}:{line}:" in outputs["refused sync"], (file, outputs["refused sync"])
        assert "--allow-host-access" in outputs["refused sync"]
        assert "broken.yaml:4:" in outputs["refused sync"]   # the bad Secret is named too
        status = gitops("status", "-o", "json", "--data-dir", data)
        outputs["status after refusal"] = status.stdout
        assert json.loads(status.stdout)["applied_revision"] == second
        assert stored_secret(data)["data"]["password"] == b64(V1_PLAIN)   # nothing applied
        after = docker_client.containers.list(all=True, filters=label)
        assert {c.id for c in after} == before               # nothing started either
        for c in after:
            binds = c.attrs["HostConfig"].get("Binds") or []
            assert not any(b.startswith(("/:", "/var/run/docker.sock", "/run/docker.sock"))
                           for b in binds), binds
            assert not c.attrs["HostConfig"].get("Privileged")
        check = gitops("validate", str(repo))
        assert check.returncode == 1
        allowed = gitops("validate", "--allow-host-access", *(str(repo / f) for f in HOSTILE))
        assert allowed.returncode == 0, allowed.stdout + allowed.stderr   # the flag is the gate

        # -- a Secret change: the diff says so without a value, the sync applies it -----
        third = commit(repo, "v2 secret", {**{f: None for f in HOSTILE}, "broken.yaml": None})
        diffs = [gitops("diff", f"file://{repo}", "--data-dir", data, "-o", fmt)
                 for fmt in ("text", "json", "markdown")]
        for fmt, d in zip(("text", "json", "markdown"), diffs):
            outputs[f"diff -o {fmt}"] = d.stdout + d.stderr
            assert d.returncode == 1 and "creds" in d.stdout, d.stdout + d.stderr
        synced = gitops("sync", "--data-dir", data)
        assert synced.returncode == 0, synced.stdout + synced.stderr
        assert applied(data) == third
        assert stored_secret(data)["data"]["password"] == b64(V2_PLAIN)   # stringData merged

        for args in (("get", "secret", "creds", "-o", "json"), ("get", "secrets", "-o", "yaml"),
                     ("get", "secrets", "-A", "-o", "wide"), ("status", "-o", "json"),
                     ("history", "-o", "json"), ("events",), ("get", "events", "-o", "json"),
                     ("describe", "secret", "creds")):
            out = gitops(*args, "--data-dir", data)
            outputs[" ".join(args)] = out.stdout + out.stderr
        got = json.loads(outputs["get secret creds -o json"])
        assert "stringData" not in got and set(got["data"]) == {"password", "token"}
    finally:
        down = gitops("down", "--data-dir", data)
        outputs["agent log"] = (Path(data) / "agent.log").read_text(errors="replace") \
            if (Path(data) / "agent.log").exists() else ""
    assert down.returncode == 0, down.stdout + down.stderr
    assert "sync_completed" in outputs["agent log"]          # the log is the real one
    leaks = [V1_PLAIN, V1_DATA, b64(V1_DATA), V2_PLAIN, b64(V2_PLAIN), BAD_VALUE, HOOK_SECRET]
    for where, text in outputs.items():
        for value in leaks:
            assert value not in text, f"{value!r} leaked into {where}"
    assert token not in outputs["agent log"]


# -- 1. volume paths never leave the pod's volume directory --------------------------------
def _pod(name: str, mounts: list, volumes: list) -> str:
    return json.dumps({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
                       "spec": {"containers": [{"name": "c", "image": "gitops/busybox:1",
                                                "volumeMounts": mounts}],
                                "volumes": volumes}}, indent=1)


CM_VOLUME = {"name": "cfg", "configMap": {"name": "cfg"}}
# file -> (manifest, the field that must be named). JSON with indent=1 is YAML with one
# field per line, so each refusal has a line of its own to point at.
VOLUME_ESCAPES = {
    "items-absolute.yaml": (_pod("a", [], [{"name": "cfg", "configMap": {
        "name": "cfg", "items": [{"key": "k", "path": "/etc/cron.d/gitops-escape"}]}}]),
        "spec.volumes[0].configMap.items[0].path"),
    "items-dotdot.yaml": (_pod("b", [], [{"name": "s", "secret": {
        "secretName": "s", "items": [{"key": "k", "path": "x/../../../../root/.ssh/keys"}]}}]),
        "spec.volumes[0].secret.items[0].path"),
    "items-reserved.yaml": (_pod("c", [], [{"name": "d", "downwardAPI": {"items": [
        {"path": "..data/x", "fieldRef": {"fieldPath": "metadata.name"}}]}}]),
        "spec.volumes[0].downwardAPI.items[0].path"),
    "projected.yaml": (_pod("d", [], [{"name": "p", "projected": {"sources": [
        {"configMap": {"name": "cfg", "items": [{"key": "k", "path": "../x"}]}}]}}]),
        "spec.volumes[0].projected.sources[0].configMap.items[0].path"),
    "subpath.yaml": (_pod("e", [{"name": "cfg", "mountPath": "/s",
                                 "subPath": "../../../../../var/run/docker.sock"}],
                          [CM_VOLUME]), "spec.containers[0].volumeMounts[0].subPath"),
    "subpathexpr.yaml": (_pod("f", [{"name": "cfg", "mountPath": "/s",
                                     "subPathExpr": "$(POD)/../../.."}], [CM_VOLUME]),
                         "spec.containers[0].volumeMounts[0].subPathExpr"),
    "volume-name.yaml": (_pod("g", [], [{"name": "../../../../tmp", "configMap": {
        "name": "cfg"}}]), "spec.volumes[0].name"),
    "key.yaml": (json.dumps({"apiVersion": "v1", "kind": "ConfigMap",
                             "metadata": {"name": "cfg"}, "data": {"..": "x"}}, indent=1),
                 'data[".."]'),
}


def _line_of(text: str, field: str) -> int:
    """The line of a field's own key in an indent=1 JSON document: the first line, after
    the lines of its parent fields, that holds its last key."""
    keys = [quoted or plain for quoted, plain in
            re.findall(r'\["([^"]*)"\]|\[\d+\]|([^.\[\]]+)', field) if quoted or plain]
    lines, at = text.splitlines(), 0
    for key in keys:
        at = next(i for i in range(at, len(lines)) if lines[i].strip().startswith(f'"{key}"'))
    return at + 1


def test_validate_refuses_every_path_out_of_a_volume_with_file_line_field(tmp_path):
    for name, (text, _) in VOLUME_ESCAPES.items():
        (tmp_path / name).write_text(text)
    out = gitops("validate", str(tmp_path))
    assert out.returncode == 1, out.stdout + out.stderr
    for name, (text, field) in VOLUME_ESCAPES.items():
        assert f"{name}:{_line_of(text, field)}: " in out.stdout and f": {field}: " in \
            out.stdout, (name, field, out.stdout)
    # the host-access flag opens hostPath, never a path out of a volume
    allowed = gitops("validate", "--allow-host-access", str(tmp_path))
    assert allowed.returncode == 1 and "subPath" in allowed.stdout


def test_api_admission_refuses_paths_out_of_a_volume_with_422(tmp_path):
    from gitops.store import Registry, SqliteStore
    from tests.kube_support import KubeServer
    store = Registry(SqliteStore(tmp_path / "state.db"))
    try:
        with KubeServer(store, tmp_path) as api:
            for name, (text, field) in VOLUME_ESCAPES.items():
                body = json.loads(text)
                plural = "configmaps" if body["kind"] == "ConfigMap" else "pods"
                status, _, answer = api.request(
                    "POST", f"/api/v1/namespaces/default/{plural}", body)
                assert status == 422, (name, status, answer)
                assert answer["reason"] == "Invalid"
                assert field in [c["field"] for c in answer["details"]["causes"]], answer
        assert store.list("Pod") == [] and store.list("ConfigMap") == []
    finally:
        store.close()


def test_the_store_and_the_sync_never_take_a_uid_from_the_writer(tmp_path):
    from gitops.model.volumepaths import is_safe_uid
    from gitops.source.base import Revision
    from gitops.store import Registry, SqliteStore
    from gitops.sync.engine import render
    store = Registry(SqliteStore(tmp_path / "state.db"))
    try:
        made = store.create({"apiVersion": "v1", "kind": "ConfigMap",
                             "metadata": {"name": "x", "uid": "../../../../etc"}})
        assert is_safe_uid(made["metadata"]["uid"]) and ".." not in made["metadata"]["uid"]
    finally:
        store.close()
    (tmp_path / "repo").mkdir()
    (tmp_path / "repo" / "cm.yaml").write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x, uid: a-b-c}\n")
    desired, errors = render(Revision("dir-1", tmp_path / "repo"))
    assert errors == [] and "uid" not in desired[0].body["metadata"]


@pytest.mark.docker
def test_the_node_writes_nothing_outside_a_pod_and_one_bad_pod_never_stops_the_others(
        docker_client, tmp_path):
    """Objects that bypassed validation (stored before a rule existed, or by a bug) reach
    the node agent as they are: it must refuse each path that leaves the pod's volume
    directory, mark that pod alone CreateContainerConfigError, and run the innocent pod."""
    import uuid

    from gitops.agent.docker import DockerRuntime
    from gitops.agent.node import NodeAgent
    from gitops.model import ObjectKey
    from gitops.model.addresses import pick_subnet
    from gitops.store import Registry, SqliteStore

    outside = tmp_path / "outside"          # what an escape would reach: must stay empty
    outside.mkdir()
    escape = f"../../../../outside/{uuid.uuid4().hex[:6]}"   # pods/<uid>/volumes/<vol>/..N
    instance = uuid.uuid4().hex[:8]
    store = Registry(SqliteStore(tmp_path / "state.db"))
    runtime = DockerRuntime(instance, docker_client)
    node = NodeAgent(store, runtime, "test-node", f"gitops-{instance}", tmp_path / "pods")
    sleeper = {"name": "c", "image": "gitops/busybox:1", "command": ["sleep", "3600"]}

    def pod(name, volumes=(), mounts=(), **container):
        store.create({"apiVersion": "v1", "kind": "Pod",
                      "metadata": {"name": name, "namespace": "default"},
                      "spec": {"nodeName": "test-node", "terminationGracePeriodSeconds": 0,
                               "containers": [{**sleeper, "volumeMounts": list(mounts),
                                               **container}],
                               "volumes": list(volumes)}})

    try:
        node.setup(pick_subnet(instance, runtime.used_subnets()))
        store.create({"apiVersion": "v1", "kind": "ConfigMap",
                      "metadata": {"name": "cfg", "namespace": "default"},
                      "data": {"k": "v", "a": "1", "..": "dot-dot", "..data": "reserved"}})
        store.create({"apiVersion": "v1", "kind": "ConfigMap",
                      "metadata": {"name": "plain", "namespace": "default"},
                      "data": {"k": "v"}})
        items = lambda *pairs: {"name": "cfg", "configMap": {   # noqa: E731
            "name": "cfg", "items": [{"key": k, "path": p} for k, p in pairs]}}
        bad = {
            "absolute": dict(volumes=[items(("k", str(outside / "abs")))]),
            "dotdot": dict(volumes=[items(("k", escape))]),
            "dotdot-key": dict(volumes=[{"name": "cfg", "configMap": {"name": "cfg"}}]),
            "clash": dict(volumes=[items(("k", "a"), ("a", "a/b"))]),
            "subpath": dict(volumes=[{"name": "cfg", "configMap": {"name": "plain"}}],
                            mounts=[{"name": "cfg", "mountPath": "/s",
                                     "subPath": "../../../../outside"}]),
            "subpathexpr": dict(volumes=[{"name": "cfg", "configMap": {"name": "plain"}}],
                                mounts=[{"name": "cfg", "mountPath": "/s",
                                         "subPathExpr": "$(UP)"}],
                                env=[{"name": "UP", "value": "../../../../outside"}]),
            "volume-name": dict(volumes=[{"name": "../../../../outside",
                                          "configMap": {"name": "plain"}}],
                                mounts=[{"name": "../../../../outside", "mountPath": "/s"}]),
            "quantity": dict(resources={"limits": {"memory": "64Mb"}}),
        }
        for name, fields in bad.items():
            pod(name, **fields)
        pod("innocent", volumes=[{"name": "cfg", "configMap": {"name": "plain"}}],
            mounts=[{"name": "cfg", "mountPath": "/cfg"}])

        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            node.sync_once()                  # never raises for one pod's fault
            pods = {p["metadata"]["name"]: p for p in store.list("Pod")}
            reasons = {n: [(c.get("state") or {}).get("waiting", {}).get("reason")
                           for c in (p.get("status") or {}).get("containerStatuses") or []]
                       for n, p in pods.items()}
            if (pods["innocent"].get("status") or {}).get("phase") == "Running" and all(
                    reasons[n] == ["CreateContainerConfigError"] for n in bad):
                break
            time.sleep(0.3)
        else:
            pytest.fail(f"pods did not settle: {reasons}")
        for name in bad:                  # each says why, in status and in a Warning event
            waiting = pods[name]["status"]["containerStatuses"][0]["state"]["waiting"]
            assert waiting.get("message"), (name, waiting)
        warned = {e["involvedObject"]["name"] for e in store.list("Event")
                  if e.get("type") == "Warning" and e.get("reason") == "Failed"}
        assert set(bad) <= warned, warned
        for _ in range(5):                # later passes: nothing leaks, nothing escapes
            node.sync_once()
        assert list(outside.iterdir()) == []
        assert not (tmp_path / "abs").exists()
        copies = [p for p in (tmp_path / "pods").rglob("..[0-9]*")]
        running = [c for c in runtime.list_containers() if c.state == "running"]
        assert len(copies) <= len(store.list("Pod")) and len(running) == 1
        innocent = store.get(ObjectKey("Pod", "default", "innocent"))
        assert innocent["status"]["containerStatuses"][0]["ready"]
        for c in runtime.list_containers():     # nothing of the host got mounted
            for m in docker_client.containers.get(c.id).attrs.get("Mounts") or []:
                source = m.get("Source") or ""
                assert source.startswith(str(tmp_path / "pods")) or m["Type"] == "volume", m
    finally:
        node.close()
        runtime.cleanup(node.network)
        store.close()


# -- 7. one claim, one volume ---------------------------------------------------------------
@pytest.mark.docker
def test_two_claims_never_share_a_volume_and_a_foreign_volume_is_not_adopted(
        docker_client, tmp_path):
    import uuid

    from gitops.agent.docker import DockerRuntime
    from gitops.agent.node import NodeAgent
    from gitops.agent.volumes import pvc_volume_name
    from gitops.model import ObjectKey
    from gitops.model.addresses import pick_subnet
    from gitops.store import Registry, SqliteStore
    from tests.conftest import SESSION_LABEL, TEST_LABEL

    instance = uuid.uuid4().hex[:8]
    store = Registry(SqliteStore(tmp_path / "state.db"))
    runtime = DockerRuntime(instance, docker_client)
    node = NodeAgent(store, runtime, "test-node", f"gitops-{instance}", tmp_path / "pods")
    test_labels = dict(label.split("=", 1) for label in (TEST_LABEL, SESSION_LABEL))

    def claim_and_pod(ns: str, claim: str, pod: str, text: str) -> None:
        store.create({"apiVersion": "v1", "kind": "PersistentVolumeClaim",
                      "metadata": {"name": claim, "namespace": ns},
                      "spec": {"accessModes": ["ReadWriteOnce"],
                               "resources": {"requests": {"storage": "1Gi"}}}})
        store.create({"apiVersion": "v1", "kind": "Pod",
                      "metadata": {"name": pod, "namespace": ns},
                      "spec": {"nodeName": "test-node", "terminationGracePeriodSeconds": 0,
                               "volumes": [{"name": "d",
                                            "persistentVolumeClaim": {"claimName": claim}}],
                               "containers": [{"name": "c", "image": "gitops/busybox:1",
                                               "command": ["sh", "-c",
                                                           f"cat /d/owner 2>/dev/null; echo "
                                                           f"{text} >> /d/owner; sleep 3600"],
                                               "volumeMounts": [{"name": "d",
                                                                 "mountPath": "/d"}]}]}})

    def states() -> dict[str, str]:
        out = {}
        for p in store.list("Pod"):
            [c] = (p.get("status") or {}).get("containerStatuses") or [{}]
            state = c.get("state") or {}
            out[p["metadata"]["name"]] = "running" if "running" in state else \
                (state.get("waiting") or {}).get("reason", "")
        return out

    try:
        node.setup(pick_subnet(instance, runtime.used_subnets()))
        # a volume of the earlier naming scheme for team/legacy: adopted by its labels
        legacy = docker_client.volumes.create(
            f"gitops-{instance}-pvc-team-legacy", labels={
                **test_labels, "gitops.managed": "true", "gitops.instance": instance,
                "gitops.volume.kind": "pvc", "gitops.pvc.namespace": "team",
                "gitops.pvc.name": "legacy"})
        # a volume under the name of team/taken whose labels name another claim
        docker_client.volumes.create(pvc_volume_name(instance, "team", "taken"), labels={
            **test_labels, "gitops.managed": "true", "gitops.instance": instance,
            "gitops.volume.kind": "pvc", "gitops.pvc.namespace": "other",
            "gitops.pvc.name": "claim"})
        for ns in ("team", "team-a"):
            store.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})
        claim_and_pod("team", "a-db", "one", "team/a-db")
        claim_and_pod("team-a", "db", "two", "team-a/db")
        claim_and_pod("team", "legacy", "three", "team/legacy")
        claim_and_pod("team", "taken", "four", "team/taken")
        want = {"one": "running", "two": "running", "three": "running",
                "four": "CreateContainerConfigError"}
        deadline = time.monotonic() + 60
        while states() != want and time.monotonic() < deadline:
            node.sync_once()
            time.sleep(0.3)
        assert states() == want
        names = {pvc_volume_name(instance, "team", "a-db"),
                 pvc_volume_name(instance, "team-a", "db")}
        assert len(names) == 2                    # the names differ: no shared data
        mounted = {}
        for c in runtime.list_containers():
            [m] = [m for m in docker_client.containers.get(c.id).attrs["Mounts"]
                   if m["Destination"] == "/d"]
            mounted[c.labels["gitops.pod.name"]] = m["Name"]
        assert {mounted["one"], mounted["two"]} == names
        assert mounted["three"] == legacy.name
        four = store.get(ObjectKey("Pod", "team", "four"))
        message = four["status"]["containerStatuses"][0]["state"]["waiting"]["message"]
        assert "belongs to claim other/claim" in message, message
    finally:
        node.close()
        runtime.cleanup(node.network)
        runtime.remove_volumes()
        store.close()


# -- 8. port-forward dials the pod the node runs, not the address its status names ------------
def test_port_forward_never_dials_the_address_a_writer_put_in_status(tmp_path):
    import socket
    import threading

    from gitops.agent.runtime import POD_UID, ContainerInfo
    from gitops.api.kube.api import KubeBackends
    from gitops.api.kube.backends import RuntimeStreams
    from gitops.model import ObjectKey
    from gitops.store import Registry, SqliteStore
    from tests.conftest import free_port
    from tests.kube_support import KubeServer, kubectl_path

    class Engine:                       # the pod runs, on the pod network, at 127.0.0.2
        ip = "127.0.0.2"

        def list_containers(self, pod_uid: str = ""):
            return [ContainerInfo("c1", "c1", {POD_UID: pod_uid}, "running", ip=self.ip)]

    victim_port = free_port()
    hits: list[str] = []
    listener = socket.create_server(("127.0.0.1", victim_port))   # "another host"
    listener.settimeout(0.2)
    stop = threading.Event()

    def accept() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except socket.timeout:
                continue
            hits.append("connected")
            conn.close()
    acceptor = threading.Thread(target=accept, daemon=True)
    acceptor.start()
    store = Registry(SqliteStore(tmp_path / "state.db"))
    store.create({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
                  "spec": {"containers": [{"name": "app", "image": "i"}]}})
    # a token holder rewrites the status to aim the agent at another address
    store.update_status(ObjectKey("Pod", "default", "p"), {"phase": "Running",
                                                           "podIP": "127.0.0.1"})
    engine = Engine()
    try:
        with KubeServer(store, tmp_path, kube=KubeBackends(exec=RuntimeStreams(engine))) as kube:
            for ip in ("127.0.0.2", ""):      # running at its own address; then nowhere
                engine.ip = ip
                local = free_port()
                proc = subprocess.Popen(
                    [kubectl_path(), "--cache-dir", str(tmp_path / "kcache"), "port-forward",
                     "pod/p", f"{local}:{victim_port}"], stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE, text=True,
                    env={**__import__("os").environ, "KUBECONFIG": str(kube.kubeconfig)})
                try:
                    if "Forwarding from" in (proc.stdout.readline() or ""):
                        with pytest.raises(OSError):
                            urllib.request.urlopen(f"http://127.0.0.1:{local}/",
                                                   timeout=10).read()
                finally:
                    proc.kill()
                    _, err = proc.communicate(timeout=10)
                assert "error" in err.lower() or "no IP" in err, err
    finally:
        stop.set()
        acceptor.join(5)
        listener.close()
        store.close()
    assert hits == []                    # the address in status was never dialled


def test_a_pre_stop_hook_goes_to_the_pod_not_to_the_address_in_its_status(tmp_path):
    """A preStop httpGet may name only the pod's own address; that address is the one the
    engine gives the pod, so a status.podIP rewritten through the API cannot aim the
    agent's request at a service of the host."""
    import socket
    import threading

    from gitops.agent.node import NodeAgent
    from gitops.model import ObjectKey
    from gitops.store import Registry, SqliteStore
    from gitops.testing import RecordingRuntime
    from tests.conftest import free_port

    class Runtime(RecordingRuntime):
        def stop(self, cid, timeout):
            self.containers.pop(cid, None)

    port, hits, stop = free_port(), [], threading.Event()
    listener = socket.create_server(("127.0.0.1", port))      # a service of the host
    listener.settimeout(0.2)

    def accept() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except socket.timeout:
                continue
            hits.append(conn.recv(1024))
            conn.close()
    acceptor = threading.Thread(target=accept, daemon=True)
    acceptor.start()
    store = Registry(SqliteStore(tmp_path / "state.db"))
    runtime = Runtime()
    node = NodeAgent(store, runtime, "n1", "net", tmp_path / "pods")
    node.subnet = "10.0.0.0/24"
    key = ObjectKey("Pod", "default", "p")
    try:
        store.create({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
                      "spec": {"nodeName": "n1", "terminationGracePeriodSeconds": 2,
                               "containers": [{"name": "c", "image": "i:1", "lifecycle": {
                                   "preStop": {"httpGet": {"host": "127.0.0.1", "port": port,
                                                           "path": "/steal"}}}}]}})
        node.sync_once()
        node.sync_once()
        assert store.get(key)["status"]["podIP"] == "10.0.0.128"
        store.request_delete(key)
        store.update_status(key, {**store.get(key)["status"], "podIP": "127.0.0.1"})
        node.sync_once()
        deadline = time.monotonic() + 10
        while runtime.containers and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not runtime.containers            # the stop ran (its hook first)
    finally:
        node.close()
        stop.set()
        acceptor.join(5)
        listener.close()
        store.close()
    assert hits == []


# -- 8. /metrics names Services and the source: the token guards it unless opted out ---------
@pytest.mark.parametrize("public", [False, True])
def test_metrics_want_the_token_unless_the_operator_made_them_public(public, tmp_path):
    import asyncio

    from aiohttp import web
    from aiohttp.test_utils import TestClient, TestServer

    from gitops.api.server import ApiContext, make_app
    from gitops.store import Registry, SqliteStore

    token = "t" * 40
    store = Registry(SqliteStore(tmp_path / "state.db"))

    async def metrics(_: web.Request) -> web.Response:
        return web.Response(text="gitops_objects 1\n")

    async def scrape() -> dict[str, int]:
        app = make_app(ApiContext(store, token, dict, None, lambda: None, None,
                                  public_metrics=public))
        app.router.add_get("/metrics", metrics)
        async with TestClient(TestServer(app)) as client:
            return {name: (await client.get("/metrics", headers=headers)).status
                    for name, headers in (("none", {}), ("wrong", {"Authorization": "Bearer x"}),
                                          ("token", {"Authorization": f"Bearer {token}"}))}
    try:
        got = asyncio.run(scrape())
    finally:
        store.close()
    assert got == ({"none": 200, "wrong": 200, "token": 200} if public else
                   {"none": 401, "wrong": 401, "token": 200})
