"""Issue 13, item 6: a Secret's value, or a credential in the repo URL, never reaches
anything a person or a log collector reads: status, logs, errors, history, drift records,
`gitops diff` in every format, validation errors, and what `up --wait` prints and
`--report` writes (container logs, probe output, pod status messages).

Every value below is unique so a leak is found wherever it lands; each is checked in the
forms it may be printed in (plain and base64).
"""

from __future__ import annotations

import base64
import json
import socket
from pathlib import Path

import pytest
import structlog

from gitops.model import ObjectKey
from gitops.source.base import redact_url
from gitops.store import Registry, SqliteStore
from gitops.sync.diff import Desired, compute_plan, desired_hash, normalize
from tests.e2e.conftest import gitops
from tests.kube_support import KubeServer

TOKEN = "ghp_Tk93LEAKCHECKtoken"
OLD, NEW = "old-Pw41-LEAKCHECK", "new-Pw77-LEAKCHECK"
LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def assert_absent(text: str, *values: str) -> None:
    for value in values:
        for form in (value, b64(value)):
            assert form not in text, f"{form!r} leaked into:\n{text}"


def secret(value: str, **annotations: str) -> dict:
    body = {"apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": "db", "namespace": "default"},
            "type": "Opaque", "data": {"password": b64(value)}}
    if annotations:
        body["metadata"]["annotations"] = annotations
    return body


def as_stored(body: dict) -> dict:
    live = normalize(body)
    live["metadata"].update({"uid": "u-1", "resourceVersion": "3"})
    return live


def kubectl_applied(body: dict) -> str:
    """The annotation `kubectl apply` writes: a JSON copy of what was applied."""
    return json.dumps({k: v for k, v in body.items() if k != "metadata"}
                      | {"metadata": {"name": "db", "namespace": "default"}})


# -- the repo URL -----------------------------------------------------------------------
@pytest.mark.parametrize("url, shown", [
    # http(s) and every other non-ssh scheme: the whole userinfo is a credential
    (f"https://{TOKEN}@github.com/org/repo.git", "https://***@github.com/org/repo.git"),
    (f"https://x-access-token:{TOKEN}@github.com/o/r", "https://***@github.com/o/r"),
    (f"https://oauth2:{TOKEN}@gitlab.example.com/o/r", "https://***@gitlab.example.com/o/r"),
    (f"https://{TOKEN}:x-oauth-basic@github.com/o/r", "https://***@github.com/o/r"),
    (f"http://user:pa@ss{TOKEN}@git.local:8080/r.git?x=a@b",
     "http://***@git.local:8080/r.git?x=a@b"),
    (f"git+https://{TOKEN}@host/r", "git+https://***@host/r"),
    (f"HTTPS://{TOKEN}@HOST/r", "HTTPS://***@HOST/r"),
    # ssh: the login stays, a password does not
    (f"ssh://deploy:{TOKEN}@host:2222/r.git", "ssh://deploy:***@host:2222/r.git"),
    (f"git+ssh://git:{TOKEN}@host/r", "git+ssh://git:***@host/r"),
    ("ssh://git@github.com/org/repo.git", "ssh://git@github.com/org/repo.git"),
    ("git@github.com:org/repo.git", "git@github.com:org/repo.git"),
    # nothing to mask
    ("https://github.com/org/repo@v1", "https://github.com/org/repo@v1"),
    ("file:///srv/repo", "file:///srv/repo"),
    ("/srv/repo", "/srv/repo"),
])
def test_redact_url_masks_every_credential_but_an_ssh_login(url, shown):
    assert redact_url(url) == shown
    assert redact_url(shown) == shown           # idempotent: a shown URL stays as it is


def _closed_loopback_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("userinfo", [TOKEN, f"x-access-token:{TOKEN}", f"{TOKEN}:x"])
def test_a_token_in_the_repo_url_reaches_no_error_log_status_or_history(
        userinfo, tmp_path, monkeypatch):
    """git is pointed at a closed loopback port: the fetch fails, and the token must be in
    none of the error, the logs, the status's source, the last sync or the history."""
    from gitops.source.git import GitSource
    from gitops.sync.engine import SyncEngine
    for var in ("http_proxy", "https_proxy", "all_proxy", "HTTP_PROXY", "HTTPS_PROXY",
                "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)          # loopback only, never a proxy
    monkeypatch.setenv("GIT_TERMINAL_PROMPT", "0")
    url = f"https://{userinfo}@127.0.0.1:{_closed_loopback_port()}/org/repo.git"
    store = Registry(SqliteStore(tmp_path / "state.db"))
    try:
        engine = SyncEngine(store, GitSource(url=url, workdir=tmp_path / "repos"))
        with structlog.testing.capture_logs() as logs:
            result = engine.sync_once("manual")
        assert result.result == "failed" and result.message.startswith("git:")
        shown = {"error": result.message, "logs": json.dumps(logs, default=str),
                 "source": json.dumps(engine.source_info),
                 "last_sync": json.dumps(store.get_state("last_sync")),
                 "history": json.dumps(store.history())}
    finally:
        store.close()
    assert "127.0.0.1" in shown["source"] and "git_clone" in shown["logs"]   # not vacuous
    for where, text in shown.items():
        assert TOKEN not in text, f"the token leaked into {where}: {text}"


# -- gitops diff and drift records --------------------------------------------------------
def _render_all(plan) -> dict[str, str]:
    from gitops.cli.output import render_plan
    return {fmt: render_plan(plan, fmt) for fmt in ("text", "json", "markdown")}


def test_diff_of_a_pruned_secret_shows_no_value_in_any_format():
    """The live Secret carries kubectl's last-applied copy, a copy under another
    annotation, and a note quoting the value: all masked, in every format."""
    live = secret(OLD, **{"example.com/note": f"rotated to {OLD} on Monday"})
    live["metadata"]["annotations"][LAST_APPLIED] = kubectl_applied(secret(OLD))
    live["metadata"]["annotations"]["tool.example.com/original"] = json.dumps(secret(OLD))
    key = ObjectKey("Secret", "default", "db")
    plan = compute_plan([], {key: as_stored(live)}, {key: "applied-before"})
    assert [c.action for c in plan.changes] == ["prune"]
    for fmt, text in _render_all(plan).items():
        assert "Secret/default/db" in text or '"db"' in text, (fmt, text)
        assert_absent(text, OLD)
    assert "rotated to *** on Monday" in _render_all(plan)["text"]


def test_diff_and_drift_records_of_a_modified_secret_show_no_value():
    """Git declares the Secret with a last-applied annotation (a `kubectl get -o yaml`
    committed as it is); someone changed the live copy with kubectl apply: the field
    diffs, the unified diff, and the drift record carry no value, old or new."""
    from gitops.sync.drift import field_records
    want = secret(NEW)
    want["metadata"]["annotations"] = {LAST_APPLIED: kubectl_applied(secret(NEW))}
    live = secret(OLD)
    live["metadata"]["annotations"] = {LAST_APPLIED: kubectl_applied(secret(OLD)),
                                       "example.com/why": f"hotfix {OLD}"}
    key = ObjectKey("Secret", "default", "db")
    plan = compute_plan([Desired(want, "secret.yaml", 1)], {key: as_stored(live)},
                        {key: desired_hash(want)})
    [change] = plan.changes
    assert change.action == "update" and change.drift == "modified"
    paths = {f.path for f in change.fields}
    assert "data.password" in paths and any(LAST_APPLIED in p for p in paths)
    shown = {**_render_all(plan), "drift": json.dumps(field_records(change.fields))}
    for where, text in shown.items():
        assert_absent(text, OLD, NEW)
    assert "***" in shown["drift"] and "***" in shown["json"]


def test_a_secret_added_whole_under_a_new_path_is_masked():
    """A diff whose path is a whole map (annotations or data added at once)."""
    want = secret(NEW, **{"example.com/note": f"value is {NEW}"})
    live = secret(OLD)
    del live["data"]
    key = ObjectKey("Secret", "default", "db")
    plan = compute_plan([Desired(want, "s.yaml", 1)], {key: as_stored(live)}, {})
    [change] = plan.changes
    assert {f.path for f in change.fields} >= {"data", "metadata.annotations"}
    assert_absent(json.dumps([(f.desired, f.live) for f in change.fields]), NEW, OLD)


def test_the_api_view_masks_annotations_that_copy_or_quote_a_secret():
    """What `gitops get/describe` and kubectl read (present): values, kubectl's copy,
    another JSON copy, and a note quoting the value."""
    from gitops.api.kube.present import present
    obj = secret(OLD, **{LAST_APPLIED: kubectl_applied(secret(OLD)),
                         "tool.example.com/original": json.dumps(secret(OLD)),
                         "example.com/note": f"password is {OLD}"})
    shown = present(as_stored(obj))
    assert shown["data"] == {"password": "***"}
    assert set(shown["metadata"]["annotations"]) == set(obj["metadata"]["annotations"])
    assert_absent(json.dumps(shown), OLD)


def test_a_secret_written_back_as_read_keeps_its_masked_annotations():
    """kubectl edit/replace sends back what it read: what still reads masked keeps its
    stored value (the masking never destroys data); a changed annotation is taken."""
    from gitops.api.kube.present import present, unmask_secret
    stored = as_stored(secret(OLD, **{"example.com/note": f"password is {OLD}",
                                      "tool.example.com/original": json.dumps(secret(OLD)),
                                      "example.com/owner": "team-a"}))
    back = present(stored)
    back["metadata"]["annotations"]["example.com/owner"] = "team-b"
    written = unmask_secret(back, stored)
    annotations = written["metadata"]["annotations"]
    assert written["data"] == stored["data"]
    assert annotations["example.com/note"] == f"password is {OLD}"
    assert annotations["tool.example.com/original"] == json.dumps(secret(OLD))
    assert annotations["example.com/owner"] == "team-b"


def test_event_messages_mask_every_form_of_a_value(tmp_path):
    """stringData values are printed base64-encoded too (a process may encode them)."""
    from gitops.model.events import event_for
    from gitops.store.events import EventRecorder
    store = Registry(SqliteStore(tmp_path / "state.db"))
    try:
        body = {"apiVersion": "v1", "kind": "Secret",
                "metadata": {"name": "api", "namespace": "default"},
                "stringData": {"token": NEW}}
        store.create(body)
        pod = {"kind": "Pod", "metadata": {"name": "p", "namespace": "default", "uid": "u"}}
        EventRecorder(store).record(event_for(pod, "Unhealthy",
                                              f"probe said {NEW} then {b64(NEW)}"))
        [event] = store.list("Event")
    finally:
        store.close()
    assert event["message"] == "probe said *** then ***"


# -- validation errors ------------------------------------------------------------------
BAD_VALUES = ["!!int hunter2LEAK", "!!float hunter2LEAK", "!!bool hunter2LEAK",
              "12345678901", "true", "[hunter2LEAK, x]", "{nested: hunter2LEAK}",
              "!!int 0b1hunter2LEAK"]


def _bad_secret(value: str) -> str:
    return ("apiVersion: v1\nkind: Secret\nmetadata: {name: db}\n"
            f"stringData:\n  password: {value}\n")


@pytest.mark.parametrize("value", BAD_VALUES)
def test_a_wrongly_typed_secret_value_is_never_echoed_by_validation(value):
    from gitops.manifests.loader import load_text
    from gitops.manifests.validate import validate
    loaded = load_text(_bad_secret(value), "secret.yaml")
    errors = [*loaded.errors, *validate(loaded.objects)]
    assert errors, value
    err = errors[0]
    assert (err.file, err.line, err.path) == ("secret.yaml", 5, "stringData.password")
    shown = " ".join(str(e) for e in errors)
    for word in ("hunter2", "12345678901", "true"):
        if word in value:
            assert word not in shown.lower(), shown


def test_a_refused_sync_and_gitops_validate_never_echo_a_secret_value(tmp_path):
    """Status (last sync), history, the agent's logs and `gitops validate` (text, json)."""
    from gitops.source.base import DirSource
    from gitops.sync.engine import SyncEngine
    src = tmp_path / "src"
    src.mkdir()
    (src / "secret.yaml").write_text(_bad_secret("!!int hunter2LEAK"))
    store = Registry(SqliteStore(tmp_path / "state.db"))
    try:
        with structlog.testing.capture_logs() as logs:
            result = SyncEngine(store, DirSource(str(src))).sync_once("manual")
        shown = {"errors": " ".join(str(e) for e in result.errors),
                 "logs": json.dumps(logs, default=str),
                 "last_sync": json.dumps(store.get_state("last_sync")),
                 "history": json.dumps(store.history())}
    finally:
        store.close()
    assert result.result == "failed"
    for fmt in ("text", "json"):     # a process of its own: the CLI configures logging
        out = gitops("validate", "-o", fmt, str(src))
        assert out.returncode == 1
        shown[f"validate -o {fmt}"] = out.stdout + out.stderr
    for where, text in shown.items():
        assert "hunter2" not in text, f"the value leaked into {where}: {text}"
        assert "secret.yaml" in text and "stringData.password" in text, (where, text)
        assert ":5" in text or '"line": 5' in text, (where, text)


# -- what the pod prints: logs, probe output, status messages ---------------------------
POD_USING_SECRETS = {
    "apiVersion": "v1", "kind": "Pod",
    "metadata": {"name": "app", "namespace": "default", "uid": "pod-uid"},
    "spec": {
        "initContainers": [{"name": "init", "image": "i",
                            "envFrom": [{"secretRef": {"name": "from-envfrom"}}]}],
        "containers": [{"name": "main", "image": "i", "env": [
            {"name": "PLAIN", "value": "x"},
            {"name": "PW", "valueFrom": {"secretKeyRef": {"name": "from-env",
                                                          "key": "pw"}}}]}],
        "volumes": [{"name": "v", "secret": {"secretName": "from-volume"}},
                    {"name": "p", "projected": {"sources": [
                        {"secret": {"name": "from-projected"}},
                        {"configMap": {"name": "not-a-secret"}}]}}]}}


def test_the_secrets_a_pod_reads_are_all_found():
    from gitops.model.secrets import secrets_used_by
    assert secrets_used_by(POD_USING_SECRETS["spec"]) == {
        "from-env", "from-envfrom", "from-volume", "from-projected"}


def test_a_pod_log_read_with_mask_secrets_hides_every_value_the_pod_reads(tmp_path):
    """The log tail `up --wait` shows comes masked by the agent (it alone knows the
    values); a plain read (kubectl logs) is left as Kubernetes returns it."""
    values = {"from-env": "env-Val91-LEAK", "from-envfrom": "envfrom-Val92-LEAK",
              "from-volume": "-----BEGIN KEY-----\nvolume-Val93-LEAK-line\n-----END KEY-----",
              "from-projected": "projected-Val94-LEAK"}
    other = "unrelated-Val95-LEAK"      # a Secret the pod does not read stays as printed
    store = Registry(SqliteStore(tmp_path / "state.db"))
    printed = "\n".join([*values.values(), b64(values["from-env"]), other]) + "\n"

    async def logs(_req):
        return printed

    try:
        store.create(POD_USING_SECRETS)
        for name, value in {**values, "other": other}.items():
            store.create({"apiVersion": "v1", "kind": "Secret",
                          "metadata": {"name": name, "namespace": "default"},
                          "data": {"k": b64(value)}})
        with KubeServer(store, tmp_path, logs=logs) as api:
            path = "/api/v1/namespaces/default/pods/app/log?container=main"
            _, _, masked = api.request("GET", path + "&maskSecrets=true")
            _, _, plain = api.request("GET", path)
            code, _, _ = api.request("GET", path + "&maskSecrets=true&follow=true")
    finally:
        store.close()
    assert plain == printed
    assert_absent(masked, "env-Val91-LEAK", "envfrom-Val92-LEAK", "volume-Val93-LEAK-line",
                  "projected-Val94-LEAK")
    assert other in masked and masked.count("***") >= 5
    assert code == 400                  # a stream cannot be masked line-safe: refused


def test_probe_output_is_masked_before_it_is_kept_or_logged():
    from gitops.agent.prober import ProbeWorker
    from gitops.agent.probes import ProbeTracker
    tracker = ProbeTracker(clock=lambda: 100.0)
    container = {"name": "main", "readinessProbe": {
        "exec": {"command": ["sh", "-c", "echo $PW; exit 1"]}, "failureThreshold": 1}}

    def exec_fn(_cid, _cmd, _timeout):
        return 1, f"PW is {NEW}\n".encode()

    worker = ProbeWorker(tracker, exec_fn, workers=1)
    try:
        with structlog.testing.capture_logs() as logs:
            worker.run_due("uid", "10.0.0.2", container, "cid", 100.0,
                           redact=lambda text: text.replace(NEW, "***"))
            worker._pool.shutdown(wait=True)
    finally:
        worker.close()
    results = tracker.results("uid", "main", container)
    assert not results.ready and results.messages["readiness"] == "PW is ***"
    assert_absent(json.dumps(logs), NEW)


def test_pod_status_messages_are_masked():
    """An engine error can quote a command that $(PW) expansion filled with the value."""
    from gitops.agent.status import has_messages, mask_messages
    status = {"phase": "Pending", "containerStatuses": [{"name": "main", "state": {
        "waiting": {"reason": "CreateContainerError",
                    "message": f'exec: "/bin/{NEW}": no such file'}},
        "lastState": {"terminated": {"exitCode": 127, "message": f"/bin/{NEW}"}}}]}
    assert has_messages(status)
    shown = mask_messages(status, {NEW})
    assert_absent(json.dumps(shown), NEW)
    assert shown["containerStatuses"][0]["state"]["waiting"]["message"] == \
        'exec: "/bin/***": no such file'
    assert NEW in json.dumps(status)            # the input is left as it was


E2E_SECRET = "e2e-Sv58-LEAKCHECK"
E2E_REPO = f"""\
apiVersion: v1
kind: Secret
metadata: {{name: creds}}
stringData: {{password: "{E2E_SECRET}"}}
---
apiVersion: apps/v1
kind: Deployment
metadata: {{name: printer}}
spec:
  selector: {{matchLabels: {{app: printer}}}}
  template:
    metadata: {{labels: {{app: printer}}}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
        - name: app
          image: gitops/busybox:1
          imagePullPolicy: IfNotPresent
          command: ["sh", "-c", "echo password=$PW; echo b64=$(echo -n $PW | base64); \
cat /creds/password; echo; exit 3"]
          env:
            - name: PW
              valueFrom: {{secretKeyRef: {{name: creds, key: password}}}}
          volumeMounts: [{{name: creds, mountPath: /creds}}]
      volumes: [{{name: creds, secret: {{secretName: creds}}}}]
---
apiVersion: apps/v1
kind: Deployment
metadata: {{name: prober}}
spec:
  selector: {{matchLabels: {{app: prober}}}}
  template:
    metadata: {{labels: {{app: prober}}}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
        - name: app
          image: gitops/busybox:1
          imagePullPolicy: IfNotPresent
          command: ["sleep", "3600"]
          envFrom: [{{secretRef: {{name: creds}}}}]
          readinessProbe:
            exec: {{command: ["sh", "-c", "echo not ready with $password; exit 1"]}}
            periodSeconds: 1
"""


@pytest.mark.docker
def test_up_wait_report_and_agent_log_never_show_a_value_the_pod_prints(docker_client,
                                                                         tmp_path):
    """A pod that prints its secret (env, base64, file) and crash-loops, another whose
    readiness probe prints it: `up --wait --report` on them times out, and neither its
    output, the report, `gitops status`, `gitops events` nor the agent log show it."""
    src, data = tmp_path / "src", str(tmp_path / "data")
    src.mkdir()
    (src / "app.yaml").write_text(E2E_REPO)
    report = tmp_path / "report.json"
    shown: dict[str, str] = {}
    try:
        up = gitops("up", str(src), "--wait", "--timeout", "30", "--data-dir", data,
                    "--report", str(report), timeout=150)
        shown["up"] = up.stdout + up.stderr
        shown["report"] = report.read_text() if report.exists() else ""
        for args in (("status", "-o", "json"), ("events", "-A"), ("history", "-o", "json")):
            out = gitops(*args, "--data-dir", data)
            shown[" ".join(args)] = out.stdout + out.stderr
    finally:
        down = gitops("down", "--data-dir", data)
        log_file = Path(data) / "agent.log"
        shown["agent log"] = log_file.read_text(errors="replace") if log_file.exists() else ""
    assert down.returncode == 0, down.stdout + down.stderr
    assert up.returncode == 1, shown["up"]
    for where, text in shown.items():
        assert E2E_SECRET not in text, f"the value leaked into {where}"
        assert b64(E2E_SECRET) not in text, f"the base64 value leaked into {where}"
    # Not vacuous: the crash loop's log lines are shown (masked) and the probe did run.
    assert "crash-loop: pod printer-" in shown["up"], shown["up"]
    assert "| b64=***" in shown["up"] and "      | ***\n" in shown["up"], shown["up"]
    assert "b64=***" in shown["report"]
    assert "readiness-failing: pod prober-" in shown["up"], shown["up"]
    assert "not ready with ***" in shown["events -A"] + shown["agent log"]
