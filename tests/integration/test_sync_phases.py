"""Sync phases, hooks and per-object options on real git repos and a real SQLite store.

No controllers run here: the engine's injected `sleep` stands in for them (it completes or
fails the Jobs the sync waits for, as the Job controller would), and a fake clock bounds
every wait, so each test is deterministic and quick. The same repos run on the real engine
in tests/e2e/test_sync_phases_e2e.py."""

from __future__ import annotations

import pytest
from structlog.testing import capture_logs

from gitops.api.kube import managed
from gitops.api.kube.managed import GitFieldOwner
from gitops.api.kube.openapi import kind_schema
from gitops.api.kube.registry import for_kind
from gitops.model import ObjectKey
from gitops.source.git import GitSource
from gitops.store import Registry, SqliteStore
from gitops.sync.engine import SyncEngine, SyncPolicy
from gitops.sync.ignore import parse_flag
from gitops.sync.options import app_options
from gitops.testing import FakeClock
from tests.integration.test_sync_engine import Repo

CM = """\
apiVersion: v1
kind: ConfigMap
metadata:
  name: {name}
{annotations}data:
  value: "{value}"
"""
JOB = """\
apiVersion: batch/v1
kind: Job
metadata:
  {name_field}: {name}
  annotations:
{annotations}spec:
  backoffLimit: 0
  template:
    spec:
      restartPolicy: Never
      containers:
        - name: run
          image: gitops/busybox:1
          imagePullPolicy: IfNotPresent
          command: ["sh", "-c", "echo {name}"]
"""


def cm(name: str, value: str = "1", **annotations: str) -> str:
    ann = "".join(f"    {k}: \"{v}\"\n" for k, v in annotations.items())
    return CM.format(name=name, value=value, annotations=f"  annotations:\n{ann}" if ann else "")


def job(name: str, generate: bool = False, **annotations: str) -> str:
    ann = "".join(f"    {k}: \"{v}\"\n" for k, v in annotations.items())
    return JOB.format(name=name, annotations=ann,
                      name_field="generateName" if generate else "name")


class Controllers:
    """Plays the Job controller from the engine's `sleep`: each Job whose name starts with
    a prefix in `outcome` gets that outcome; records what existed at each look."""

    def __init__(self, store, clock: FakeClock, outcome: dict[str, str]) -> None:
        self.store, self.clock, self.outcome = store, clock, outcome
        self.looks: list[set[str]] = []

    def __call__(self, seconds: float) -> None:
        self.clock.advance(seconds)
        names = set()
        for obj in self.store.all_objects():
            names.add(f"{obj['kind']}/{obj['metadata']['name']}")
            if obj["kind"] != "Job" or obj.get("status", {}).get("conditions"):
                continue
            for prefix, result in self.outcome.items():
                if obj["metadata"]["name"].startswith(prefix):
                    ctype = "Complete" if result == "succeed" else "Failed"
                    self.store.update_status(ObjectKey("Job", "default", obj["metadata"]["name"]),
                                             {"conditions": [{"type": ctype, "status": "True",
                                                              "reason": "BackoffLimitExceeded"
                                                              if ctype == "Failed" else ""}]})
        self.looks.append(names)


@pytest.fixture
def env(tmp_path):
    repo = Repo(tmp_path / "repo")
    store = Registry(SqliteStore(tmp_path / "state.db"))
    source = GitSource(url=f"file://{repo.path}", workdir=tmp_path / "clones")
    yield repo, store, source
    store.close()


def engine_for(store, source, outcome, policy=None, owner=None):
    clock = FakeClock()
    controllers = Controllers(store, clock, outcome)
    engine = SyncEngine(store, source, policy or SyncPolicy(wave_timeout=30), sleep=controllers,
                        clock=clock, owner=owner)
    return engine, controllers


def jobs(store) -> list[str]:
    return sorted(o["metadata"]["name"] for o in store.list("Job"))


def exists(store, kind: str, name: str) -> bool:
    return store.get(ObjectKey(kind, "default", name)) is not None


def test_presync_completes_before_anything_applies_postsync_after_and_once_per_revision(env):
    repo, store, source = env
    repo.write("app.yaml", cm("app"))
    repo.write("migrate.yaml", job("migrate", **{"argocd.argoproj.io/hook": "PreSync"}))
    repo.write("smoke.yaml", job("smoke", **{"argocd.argoproj.io/hook": "PostSync",
                                             "argocd.argoproj.io/hook-delete-policy":
                                                 "HookSucceeded"}))
    first = repo.commit()
    engine, ctl = engine_for(store, source, {"migrate": "succeed", "smoke": "succeed"})
    res = engine.sync_once()
    assert res.result == "synced", res.message
    # while the PreSync Job ran, nothing of the revision existed; the PostSync one came last
    first_look = ctl.looks[0]
    assert "Job/migrate" in first_look and "ConfigMap/app" not in first_look
    assert any("Job/smoke" in look and "ConfigMap/app" in look for look in ctl.looks)
    assert exists(store, "ConfigMap", "app")
    assert jobs(store) == ["migrate"]            # smoke deleted once it succeeded
    hooks = store.get_state("hooks")
    assert hooks["revision"] == first and hooks["result"] == "succeeded"
    assert [(h["phase"], h["name"], h["status"], h["deleted"]) for h in hooks["hooks"]] == [
        ("PreSync", "migrate", "Succeeded", False), ("PostSync", "smoke", "Succeeded", True)]
    # hooks are not inventoried: never pruned, never diffed
    assert ObjectKey("Job", "default", "migrate") not in store.inventory()
    # a no-op sync runs no hook
    uid = store.get(ObjectKey("Job", "default", "migrate"))["metadata"]["uid"]
    assert engine.sync_once().result == "unchanged"
    assert store.get(ObjectKey("Job", "default", "migrate"))["metadata"]["uid"] == uid
    # a new revision runs them again: the old migrate Job is replaced (BeforeHookCreation)
    repo.write("app.yaml", cm("app", "2"))
    repo.commit()
    assert engine.sync_once().result == "synced"
    assert store.get(ObjectKey("Job", "default", "migrate"))["metadata"]["uid"] != uid


def test_failed_presync_refuses_the_revision_runs_syncfail_and_is_not_retried_each_poll(env):
    repo, store, source = env
    repo.write("app.yaml", cm("app"))
    good = repo.commit()
    engine, ctl = engine_for(store, source, {"migrate": "fail", "notify": "succeed"})
    assert engine.sync_once().result == "synced"
    repo.write("app.yaml", cm("app", "2"))
    repo.write("migrate.yaml", job("migrate", **{"argocd.argoproj.io/hook": "PreSync",
                                                 "argocd.argoproj.io/hook-delete-policy":
                                                     "HookFailed"}))
    repo.write("notify.yaml", job("notify", **{"argocd.argoproj.io/hook": "SyncFail"}))
    bad = repo.commit()
    res = engine.sync_once()
    assert res.result == "failed"
    assert "PreSync hook Job/default/migrate failed" in res.message
    assert "last good revision keeps running" in res.message
    assert store.get(ObjectKey("ConfigMap", "default", "app"))["data"]["value"] == "1"
    assert store.get_state("applied_revision") == good
    assert jobs(store) == ["notify"]          # migrate deleted (HookFailed), SyncFail ran
    assert store.get_state("hooks")["phase"] == "PreSync"
    # the next poll neither retries the hook nor applies the revision; history says it once
    notify_uid = store.get(ObjectKey("Job", "default", "notify"))["metadata"]["uid"]
    res = engine.sync_once("interval")
    assert res.result == "failed" and "PreSync hooks failed" in res.message
    assert store.get(ObjectKey("Job", "default", "notify"))["metadata"]["uid"] == notify_uid
    assert [h["revision"] for h in store.history(5)].count(bad) == 2   # two messages
    engine.sync_once("interval")
    assert [h["revision"] for h in store.history(5)].count(bad) == 2   # not a third time
    # `gitops sync` (manual) runs the hooks again; now they pass
    ctl.outcome["migrate"] = "succeed"
    assert engine.sync_once("manual").result == "synced"
    assert store.get(ObjectKey("ConfigMap", "default", "app"))["data"]["value"] == "2"


def test_a_failed_job_ends_its_wave_at_once(env):
    repo, store, source = env
    repo.write("job.yaml", job("setup", **{"argocd.argoproj.io/sync-wave": "0"}))
    repo.write("app.yaml", cm("app", **{"argocd.argoproj.io/sync-wave": "1"}))
    repo.commit()
    engine, ctl = engine_for(store, source, {"setup": "fail"},
                             SyncPolicy(wave_timeout=300))
    start = engine.clock()
    res = engine.sync_once()
    assert res.result == "failed" and "wave 0: Job/default/setup failed" in res.message
    assert engine.clock() - start < 5           # not the 300 s wave timeout
    assert not exists(store, "ConfigMap", "app")


def test_helm_hooks_map_to_phases_and_tests_are_never_deployed(env):
    repo, store, source = env
    repo.write("app.yaml", cm("app"))
    repo.write("pre.yaml", job("db-init", **{"helm.sh/hook": "pre-install,pre-upgrade",
                                             "helm.sh/hook-weight": "-5",
                                             "helm.sh/hook-delete-policy":
                                                 "before-hook-creation,hook-succeeded"}))
    repo.write("test.yaml", job("app-test", **{"helm.sh/hook": "test"}))
    repo.write("skip.yaml", cm("skipped", **{"argocd.argoproj.io/hook": "Skip"}))
    repo.write("crd.yaml", cm("crd-like", **{"helm.sh/hook": "crd-install"}))
    repo.commit()
    engine, ctl = engine_for(store, source, {"db-init": "succeed"})
    with capture_logs() as logs:
        res = engine.sync_once()
    assert res.result == "synced"
    assert "ConfigMap/app" not in ctl.looks[0]          # pre-install ran first
    assert jobs(store) == []                            # db-init deleted (hook-succeeded)
    assert not exists(store, "ConfigMap", "skipped")
    assert exists(store, "ConfigMap", "crd-like")       # crd-install: an ordinary object
    reasons = {e["object"]: e["reason"] for e in logs if e["event"] == "object_not_synced"}
    assert "never deployed by a sync" in reasons["Job/app-test"]
    assert reasons["ConfigMap/skipped"] == "argocd.argoproj.io/hook: Skip"


def test_generate_name_hooks_get_a_name_per_run_and_other_objects_need_one(env):
    repo, store, source = env
    repo.write("app.yaml", cm("app"))
    repo.write("seed.yaml", job("seed-", generate=True, **{"argocd.argoproj.io/hook": "Sync"}))
    repo.commit()
    engine, _ = engine_for(store, source, {"seed-": "succeed"})
    assert engine.sync_once().result == "synced"
    [name] = jobs(store)
    assert name.startswith("seed-") and len(name) == len("seed-") + 5
    repo.write("bad.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  generateName: x-\n")
    repo.commit()
    res = engine.sync_once()
    [err] = res.errors
    assert (err.file, err.line, err.path) == ("bad.yaml", 4, "metadata.generateName")
    assert "generateName is for hooks only" in err.message


def test_bad_hook_and_option_annotations_name_file_line_and_field(env):
    repo, store, source = env
    repo.write("a.yaml", cm("a", **{"argocd.argoproj.io/hook": "PreSnyc"}))
    repo.write("b.yaml", cm("b", **{"argocd.argoproj.io/sync-options": "Prune=confirm"}))
    repo.write("c.yaml", cm("c", **{"argocd.argoproj.io/compare-options": "IgnoreEverything"}))
    repo.commit()
    engine, _ = engine_for(store, source, {})
    res = engine.sync_once()
    assert res.result == "failed"
    found = {(e.file, e.path): e.message for e in res.errors}
    assert 'unknown hook "PreSnyc"' in \
        found[("a.yaml", 'metadata.annotations["argocd.argoproj.io/hook"]')]
    assert "Prune=confirm waits for a person" in \
        found[("b.yaml", 'metadata.annotations["argocd.argoproj.io/sync-options"]')]
    assert 'unknown compare option "IgnoreEverything"' in \
        found[("c.yaml", 'metadata.annotations["argocd.argoproj.io/compare-options"]')]
    assert all(e.line == 6 for e in res.errors)      # the annotation's own line
    assert store.list("ConfigMap") == []


def test_prune_false_keeps_the_object_out_of_sync_and_prune_last_goes_after(env):
    repo, store, source = env
    repo.write("keep.yaml", cm("keep", **{"argocd.argoproj.io/sync-options": "Prune=false"}))
    repo.write("quiet.yaml", cm("quiet", **{"gitops.io/sync-options": "Prune=false",
                                            "argocd.argoproj.io/compare-options":
                                                "IgnoreExtraneous"}))
    repo.write("last.yaml", cm("last", **{"argocd.argoproj.io/sync-options": "PruneLast=true"}))
    repo.write("gone.yaml", cm("gone"))
    repo.write("stay.yaml", cm("stay"))
    repo.commit()
    engine, _ = engine_for(store, source, {})
    engine.sync_once()
    for name in ("keep", "quiet", "last", "gone"):
        (repo.path / f"{name}.yaml").unlink()
    repo.commit()
    with capture_logs() as logs:
        res = engine.sync_once()
    assert res.result == "synced"
    assert exists(store, "ConfigMap", "keep") and exists(store, "ConfigMap", "quiet")
    assert not exists(store, "ConfigMap", "last") and not exists(store, "ConfigMap", "gone")
    pruned = [e["object"] for e in logs if e["event"] == "object_pruned"]
    assert set(pruned) == {"ConfigMap/default/gone", "ConfigMap/default/last"}
    inventory = store.inventory()
    assert inventory[ObjectKey("ConfigMap", "default", "keep")].sync_status == \
        "OutOfSync (prune skipped)"
    assert inventory[ObjectKey("ConfigMap", "default", "quiet")].sync_status == \
        "Synced (extraneous, ignored)"


def test_prune_last_waits_for_everything_healthy(env):
    repo, store, source = env
    repo.write("old.yaml", cm("old", **{"argocd.argoproj.io/sync-options": "PruneLast=true"}))
    repo.commit()
    engine, ctl = engine_for(store, source, {"setup": "succeed"})
    engine.sync_once()
    (repo.path / "old.yaml").unlink()
    repo.write("job.yaml", job("setup"))
    repo.commit()
    assert engine.sync_once().result == "synced"
    # the old object was still there while the new Job ran, gone after it completed
    assert any("Job/setup" in look and "ConfigMap/old" in look for look in ctl.looks)
    assert not exists(store, "ConfigMap", "old")


def test_replace_force_validate_and_create_namespace_options(env):
    repo, store, source = env
    repo.write("r.yaml", cm("r", **{"argocd.argoproj.io/sync-options": "Replace=true"}))
    repo.write("f.yaml", cm("f", **{"argocd.argoproj.io/sync-options": "Force=true,Replace=true"}))
    repo.write("m.yaml", cm("m"))
    repo.write("ns.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: n\n"
                          "  namespace: made-for-me\ndata: {}\n")
    repo.write("v.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: v\n"
                         "  annotations:\n    argocd.argoproj.io/sync-options: Validate=false\n"
                         "data: {}\nextra: field-the-schema-does-not-know\n")
    repo.commit()
    engine, _ = engine_for(store, source, {},
                           SyncPolicy(options=app_options(["CreateNamespace=true"])))
    assert engine.sync_once().result == "synced", engine.status.read().last_sync
    assert store.get(ObjectKey("Namespace", "", "made-for-me")) is not None
    assert store.get(ObjectKey("ConfigMap", "default", "v"))["extra"] == \
        "field-the-schema-does-not-know"
    # labels added through the API: a merge keeps them, Replace does not
    for name in ("r", "f", "m"):
        live = store.get(ObjectKey("ConfigMap", "default", name))
        live["metadata"]["labels"] = {"added": "by-hand"}
        store.update(live)
    uid_f = store.get(ObjectKey("ConfigMap", "default", "f"))["metadata"]["uid"]
    for name in ("r", "f", "m"):
        repo.write(f"{name}.yaml", cm(name, "2", **(
            {"argocd.argoproj.io/sync-options": {"r": "Replace=true",
                                                 "f": "Force=true,Replace=true"}[name]}
            if name != "m" else {})))
    repo.commit()
    assert engine.sync_once().result == "synced"
    labels = {n: store.get(ObjectKey("ConfigMap", "default", n))["metadata"].get("labels")
              for n in ("r", "f", "m")}
    assert labels == {"r": None, "f": None, "m": {"added": "by-hand"}}
    assert store.get(ObjectKey("ConfigMap", "default", "f"))["metadata"]["uid"] != uid_f


DEPLOY = """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: 2
  selector: {{matchLabels: {{app: web}}}}
  template:
    metadata: {{labels: {{app: web}}}}
    spec:
      containers:
        - name: web
          image: gitops/busybox:{tag}
"""


def test_ignore_differences_from_a_flag_and_a_file_are_not_fought_over(env):
    repo, store, source = env
    repo.write("deploy.yaml", DEPLOY.format(tag="1"))
    repo.write(".gitops/ignore.yaml", "ignoreDifferences:\n  - kind: Deployment\n"
               "    jqPathExpressions:\n"
               "      - '.spec.template.spec.containers[] | select(.name == \"web\") | "
               ".imagePullPolicy'\n")
    repo.commit()
    policy = SyncPolicy(ignore_differences=(parse_flag("Deployment/web:/spec/replicas"),),
                        ignore_file=".gitops/ignore.yaml")
    engine, _ = engine_for(store, source, {}, policy, owner=GitFieldOwner())
    assert engine.sync_once().result == "synced"
    key = ObjectKey("Deployment", "default", "web")
    owned = store.get(key)["metadata"]["managedFields"]
    assert [e["manager"] for e in owned] == ["gitops"]
    assert "f:replicas" not in owned[0]["fieldsV1"]["f:spec"]   # not claimed by git
    live = store.get(key)
    live["spec"]["replicas"] = 5                                # an HPA scales it
    live["spec"]["template"]["spec"]["containers"][0]["imagePullPolicy"] = "Never"
    store.update(live)
    res = engine.sync_once()
    assert res.result == "unchanged" and not res.plan.drifted
    repo.write("deploy.yaml", DEPLOY.format(tag="2"))          # a real change in git
    repo.commit()
    assert engine.sync_once().result == "synced"
    after = store.get(key)
    assert after["spec"]["replicas"] == 5                       # kept, not reset to 2
    container = after["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == "gitops/busybox:2" and container["imagePullPolicy"] == "Never"


def test_a_bad_ignore_file_refuses_the_revision_naming_the_rule(env):
    repo, store, source = env
    repo.write("a.yaml", cm("a"))
    repo.write(".gitops/ignore.yaml", "ignoreDifferences:\n  - kind: Deployment\n"
               "    jqPathExpressions: ['.spec | length']\n")
    repo.commit()
    engine, _ = engine_for(store, source, {}, SyncPolicy(ignore_file=".gitops/ignore.yaml"))
    res = engine.sync_once()
    [err] = res.errors
    assert (err.file, err.line, err.path) == (".gitops/ignore.yaml", 3,
                                              "ignoreDifferences[0].jqPathExpressions[0]")
    assert "unsupported jq" in err.message


def test_git_writes_as_field_manager_and_takes_fields_back_from_others(env):
    repo, store, source = env
    repo.write("deploy.yaml", DEPLOY.format(tag="1"))
    repo.commit()
    engine, _ = engine_for(store, source, {}, owner=GitFieldOwner())
    engine.sync_once()
    key = ObjectKey("Deployment", "default", "web")
    fields = store.get(key)["metadata"]["managedFields"][0]
    assert (fields["manager"], fields["operation"]) == ("gitops", "Apply")
    assert "f:replicas" in fields["fieldsV1"]["f:spec"]
    # someone takes replicas with an Update (as `kubectl scale` does)
    live = store.get(key)
    live["spec"]["replicas"] = 7
    schema = kind_schema(for_kind("Deployment"))
    store.update(live, record_fields=lambda old, new: managed.record_update(
        old, new, "kubectl", "apps/v1", schema))
    assert {e["manager"] for e in store.get(key)["metadata"]["managedFields"]} == \
        {"gitops", "kubectl"}
    with capture_logs() as logs:
        engine.sync_once()
    [record] = [e for e in logs if e["event"] == "drift.detected"]
    assert record["drift"]["actor"] == "kubectl"
    after = store.get(key)
    assert after["spec"]["replicas"] == 2
    managers = {e["manager"] for e in after["metadata"]["managedFields"]}
    assert managers == {"gitops"}         # git's apply took replicas back


def test_server_side_apply_merges_lists_by_key_where_a_client_side_apply_replaces(env):
    repo, store, source = env
    ssa = DEPLOY.format(tag="1").replace(
        "  name: web\n", "  name: web\n  annotations:\n"
        "    argocd.argoproj.io/sync-options: ServerSideApply=true\n")
    repo.write("ssa.yaml", ssa)
    repo.write("csa.yaml", DEPLOY.format(tag="1").replace("name: web\n", "name: csa\n", 1))
    repo.commit()
    engine, _ = engine_for(store, source, {}, owner=GitFieldOwner())
    engine.sync_once()
    for name in ("web", "csa"):              # a sidecar injected through the API
        live = store.get(ObjectKey("Deployment", "default", name))
        live["spec"]["template"]["spec"]["containers"].append(
            {"name": "sidecar", "image": "gitops/pause:1"})
        store.update(live)
    repo.write("ssa.yaml", ssa.replace("busybox:1", "busybox:2"))
    repo.write("csa.yaml", DEPLOY.format(tag="2").replace("name: web\n", "name: csa\n", 1))
    repo.commit()
    assert engine.sync_once().result == "synced"
    names = {n: [(c["name"], c["image"]) for c in store.get(ObjectKey(
        "Deployment", "default", n))["spec"]["template"]["spec"]["containers"]]
        for n in ("web", "csa")}
    assert names["web"] == [("web", "gitops/busybox:2"), ("sidecar", "gitops/pause:1")]
    assert names["csa"] == [("web", "gitops/busybox:2")]
    res = engine.sync_once()          # the kept sidecar is no drift: nothing to correct
    assert res.result == "unchanged" and not res.plan.drifted
