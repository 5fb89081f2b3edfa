"""Applications as git declares them, and how a source is rendered (pure parts of issue 16):
Argo CD's globs, the Application manifest (gitops.io and argoproj.io), the status tree."""

from __future__ import annotations

import pytest

from gitops.cli.output import render_status
from gitops.manifests.loader import load_text
from gitops.manifests.options import DirectoryOptions, expand_braces, glob_matches, parse_var
from gitops.sync.application import parse, parse_all, split


@pytest.mark.parametrize("pattern,path,matches", [
    ("*.yaml", "web.yaml", True),
    ("*.yaml", "alt/web.yaml", True),            # Argo CD: `*` crosses `/`
    ("config.yaml", "sub/config.yaml", False),   # the whole relative path
    ("{app.yaml,prod/*}", "prod/x.yaml", True),
    ("{app.yaml,prod/*}", "app.yaml", True),
    ("{app.yaml,prod/*}", "dev/x.yaml", False),
    ("alt/*", "alt/deep/x.yaml", True),
])
def test_globs_match_as_argo_cd_matches_them(pattern, path, matches):
    assert glob_matches(pattern, path) is matches


def test_brace_alternatives_nest_and_an_unclosed_brace_is_literal():
    assert expand_braces("a{b,c{d,e}}f") == ["abf", "acdf", "acef"]
    assert expand_braces("a{b") == ["a{b"]


def test_include_then_exclude():
    options = DirectoryOptions(include="*.yaml", exclude="alt/*")
    assert [p for p in ("a.yaml", "alt/a.yaml", "a.json") if options.selects(p)] == ["a.yaml"]


def test_a_jsonnet_variable_flag_names_what_is_wrong():
    assert parse_var("env=prod").value == "prod"
    with pytest.raises(ValueError, match="NAME=VALUE"):
        parse_var("no-equals")
    with pytest.raises(ValueError, match="identifier"):
        parse_var("1x=2")


ARGO = """\
apiVersion: argoproj.io/v1alpha1
kind: Application
metadata:
  name: guestbook
  namespace: argocd
  finalizers: [resources-finalizer.argocd.argoproj.io]
spec:
  project: default
  source:
    repoURL: https://git.example.invalid/apps.git
    targetRevision: HEAD
    path: ./guestbook/
    directory:
      include: '*.yaml'
      jsonnet:
        tlas: [{name: replicas, value: "2", code: true}]
        extVars: [{name: env, value: prod}]
    helm:
      releaseName: gb
      valueFiles: [values-prod.yaml]
  destination:
    server: https://kubernetes.default.svc
    namespace: guestbook
  syncPolicy:
    automated: {prune: true}
    syncOptions: [CreateNamespace=true, PruneLast=true]
    retry: {limit: 5}
  ignoreDifferences:
    - group: apps
      kind: Deployment
      jsonPointers: [/spec/replicas]
"""


def one(text: str):
    objects = load_text(text, "apps/app.yaml").objects
    return parse(objects[0])


def test_an_argo_cd_application_is_read_with_argo_cd_defaults():
    app, errors = one(ARGO)
    assert errors == []
    assert (app.name, app.repo, app.ref, app.path) == (
        "guestbook", "https://git.example.invalid/apps.git", "", "guestbook")
    assert app.render.namespace == "guestbook"
    assert app.render.directory.recurse is False        # Argo CD's default
    assert app.render.directory.include == "*.yaml"
    assert [(v.name, v.code) for v in app.render.directory.tlas] == [("replicas", True)]
    assert app.render.helm.release_name == "gb"
    assert app.render.helm.values_files == ("values-prod.yaml",)
    assert (app.automated, app.prune, app.self_heal) == (True, True, False)
    assert app.options.create_namespace and app.options.prune_last
    assert len(app.ignore_differences) == 1 and app.cascade


def test_a_gitops_application_defaults_to_the_agents_policy_and_its_repo():
    app, errors = one("apiVersion: gitops.io/v1alpha1\nkind: Application\n"
                      "metadata: {name: web}\nspec:\n  source: {path: apps/web}\n")
    assert errors == []
    assert (app.repo, app.automated, app.prune, app.self_heal) == ("", True, True, True)
    assert app.render.directory.recurse is True and not app.cascade


def test_an_argo_application_without_automated_syncs_only_by_hand():
    app, _ = one(ARGO.replace("    automated: {prune: true}\n", ""))
    assert app.automated is False


@pytest.mark.parametrize("change,field,says", [
    (("    path: ./guestbook/\n", "    path: ./guestbook/\n    chart: redis\n"),
     "spec.source.chart", "not fetched"),
    (("  source:\n", "  sources: []\n  source:\n"), "spec.sources", "one Application"),
    (("    helm:\n", "    kustomize: {namePrefix: x}\n    helm:\n"),
     "spec.source.kustomize", "kustomization.yaml"),
    (("      releaseName: gb\n", "      releaseName: gb\n      parameters: []\n"),
     "spec.source.helm.parameters", "values file"),
    (("server: https://kubernetes.default.svc", "server: https://prod.example.invalid"),
     "spec.destination.server", "own host only"),
    (("    retry: {limit: 5}\n", "    retry: {limit: 5}\n    managedNamespaceMetadata: {}\n"),
     "spec.syncPolicy.managedNamespaceMetadata", "Namespace"),
    (("    retry: {limit: 5}\n", "    retry: {limit: 5}\n    surprise: 1\n"),
     "spec.syncPolicy.surprise", "not supported"),
    (("    path: ./guestbook/\n", "    path: ../elsewhere\n"), "spec.source.path", "inside"),
    (("      valueFiles: [values-prod.yaml]", "      valueFiles: [/etc/values.yaml]"),
     "spec.source.helm.valueFiles[0]", "in the repository"),
    (("    syncOptions: [", "    syncOptions: [Bogus=true, "),
     "spec.syncPolicy.syncOptions", "Bogus"),
])
def test_what_means_nothing_on_one_host_is_refused_by_name_at_its_line(change, field, says):
    text = ARGO.replace(*change)
    assert text != ARGO
    app, errors = one(text)
    assert app is None
    found = {e.path: e for e in errors}
    assert field in found, [str(e) for e in errors]
    assert says in found[field].message
    assert found[field].file == "apps/app.yaml"
    line = next(i for i, ln in enumerate(text.splitlines(), 1)
                if ln.strip().startswith(field.rsplit(".", 1)[-1].split("[")[0] + ":")
                or field.endswith("valueFiles[0]") and "valueFiles" in ln)
    assert found[field].line == line


def test_a_bad_name_and_a_name_declared_twice():
    _, errors = one(ARGO.replace("name: guestbook", "name: Guest_Book"))
    assert [e.path for e in errors] == ["metadata.name"]
    objects = load_text(ARGO + "---\n" + ARGO, "apps.yaml").objects
    apps, errors = parse_all(objects)
    assert len(apps) == 1 and "declared twice" in errors[0].message


def test_applications_are_split_from_the_objects_they_sit_among():
    objects = load_text(ARGO + "---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n"
                        "---\napiVersion: example.io/v1\nkind: Application\n"
                        "metadata: {name: not-ours}\n", "x.yaml").objects
    apps, rest = split(objects)
    assert [o.name for o in apps] == ["guestbook"]
    assert [o.name for o in rest] == ["a", "not-ours"]


def test_status_shows_each_apps_tree_and_the_apps_in_their_parents_tree():
    obj = {"kind": "ConfigMap", "namespace": "web", "name": "config", "sync": "Synced",
           "health": "Healthy", "message": ""}
    app = {"name": "web", "parent": "", "file": "apps/web.yaml", "line": 1,
           "namespace": "web", "policy": {"automated": True},
           "source": {"repo": "/repo", "ref": "", "path": "apps/web"},
           "applied_revision": "abc", "last_sync": {"result": "synced"}, "objects": [obj]}
    child = {**app, "name": "child", "parent": "web", "objects": [],
             "last_sync": {"result": "failed", "message": "revision refused"},
             "policy": {"automated": False}}
    text = render_status({"source": {"repo": "/repo", "ref": "", "path": ""},
                          "applied_revision": "abc", "last_sync": {"result": "synced"},
                          "objects": [], "apps": [app, child]})
    web, kid = text.split("Application: ")[1:]
    assert "Application/web  Synced  Healthy" in text.split("Application: web")[0]
    assert web.startswith("web (apps/web.yaml:1; automated, namespace web)")
    assert "ConfigMap/web/config  Synced  Healthy" in web
    assert "Application/child  SyncFailed" in web
    assert kid.startswith("child (apps/web.yaml:1, declared by web; manual sync")
    assert "revision refused" in kid


def test_up_wait_waits_for_every_app_and_names_one_refused():
    from gitops.cli.progress import with_apps
    obj = {"kind": "ConfigMap", "namespace": "web", "name": "a", "health": "Healthy"}
    root = {"applied_revision": "r1", "last_sync": {"result": "synced"}, "objects": []}
    pending = {"name": "web", "policy": {"automated": True}, "applied_revision": None,
               "last_sync": None, "objects": []}
    assert with_apps({**root, "apps": [pending]})["applied_revision"] is None
    applied = {**pending, "applied_revision": "r1", "objects": [obj]}
    merged = with_apps({**root, "apps": [applied]})
    assert merged["applied_revision"] == "r1" and merged["objects"] == [obj]
    refused = {**pending, "last_sync": {"result": "failed", "message": "bad.yaml:1"}}
    merged = with_apps({**root, "apps": [refused]})
    assert merged["last_sync"]["message"] == "application web: bad.yaml:1"
    manual = {**pending, "policy": {"automated": False}}
    assert with_apps({**root, "apps": [manual]})["applied_revision"] == "r1"
