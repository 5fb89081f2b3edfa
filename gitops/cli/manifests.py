"""Offline checks of manifests, no agent needed: `validate`, and `diff` against the data
dir's store. Both decrypt SOPS-encrypted files with the key given; without one they say which
files they could not read and go on with the rest."""

from __future__ import annotations

import copy
import dataclasses
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click

from gitops.cli import output
from gitops.cli.common import (ALLOW_REMOTE_BASES, DATA_DIR, DECRYPTION_KEY_FILE, EXIT_ERROR,
                               EXIT_OK, EXIT_PROBLEM, fail)
from gitops.errors import GitopsError
from gitops.paths import DataDir

if TYPE_CHECKING:
    from gitops.manifests.sops import Decryption
    from gitops.sync.diff import Desired, Plan


def _decryption(key_file: str) -> Decryption:
    """This command's decryption: the key given (checked now: a bad one is an error), else
    none, and encrypted files are reported as not read."""
    import os

    from gitops.manifests.age_keys import AGE_KEY_ENV, KeySource
    from gitops.manifests.sops import Decryption
    keys = KeySource(key_file, os.environ.get(AGE_KEY_ENV, ""))
    try:
        if keys:
            keys.load()
    except GitopsError as exc:
        fail(str(exc))
    return Decryption(keys or None, skip_unreadable=True)


def _notes(decryption: Decryption) -> None:
    """Warnings and the files left encrypted, on stderr (stdout stays the report)."""
    for warning in decryption.warnings:
        click.echo(f"warning: {warning}", err=True)
    for note in decryption.unread:
        click.echo(f"not read: {note}", err=True)


def _render_flags(command):
    """How manifests render, as `run`/`up` take it: Helm values and release, destination
    namespace, directory recursion and globs, Jsonnet arguments."""
    from gitops.cli.agent_options import _check_jsonnet_vars
    flags = [
        click.option("--values", "helm_values", multiple=True, metavar="FILE",
                     help="A Helm values file, relative to the chart (repeatable)."),
        click.option("--release-name", default="",
                     help="Helm release name (default: the chart's name)."),
        click.option("--dest-namespace", "--namespace", "dest_namespace", default="",
                     metavar="NAMESPACE",
                     help="Namespace of namespaced objects that name none."),
        click.option("--directory-recurse/--no-directory-recurse", default=True,
                     help="Read subdirectories too (default: yes)."),
        click.option("--directory-include", default="", metavar="GLOB"),
        click.option("--directory-exclude", default="", metavar="GLOB"),
        click.option("--jsonnet-tla-str", multiple=True, metavar="NAME=VALUE",
                     callback=_check_jsonnet_vars),
        click.option("--jsonnet-tla-code", multiple=True, metavar="NAME=CODE",
                     callback=_check_jsonnet_vars),
        click.option("--jsonnet-ext-var-str", multiple=True, metavar="NAME=VALUE",
                     callback=_check_jsonnet_vars),
        click.option("--jsonnet-ext-var-code", multiple=True, metavar="NAME=CODE",
                     callback=_check_jsonnet_vars),
        click.option("--jsonnet-libs", multiple=True, metavar="DIR"),
    ]
    for flag in reversed(flags):
        command = flag(command)
    return command


def _render_options(params: dict):
    """The RenderOptions of the flags `_render_flags` added (popped from `params`)."""
    from gitops.manifests.options import (DirectoryOptions, HelmOptions, RenderOptions,
                                          parse_var)
    p = {k: params.pop(k) for k in (
        "helm_values", "release_name", "dest_namespace", "directory_recurse",
        "directory_include", "directory_exclude", "jsonnet_tla_str", "jsonnet_tla_code",
        "jsonnet_ext_var_str", "jsonnet_ext_var_code", "jsonnet_libs")}
    return RenderOptions(
        directory=DirectoryOptions(
            recurse=p["directory_recurse"], include=p["directory_include"],
            exclude=p["directory_exclude"],
            tlas=(*(parse_var(v) for v in p["jsonnet_tla_str"]),
                  *(parse_var(v, True) for v in p["jsonnet_tla_code"])),
            ext_vars=(*(parse_var(v) for v in p["jsonnet_ext_var_str"]),
                      *(parse_var(v, True) for v in p["jsonnet_ext_var_code"])),
            libs=tuple(p["jsonnet_libs"])),
        helm=HelmOptions(values_files=tuple(p["helm_values"]),
                         release_name=p["release_name"]),
        namespace=p["dest_namespace"])


@click.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True))
@click.option("-o", "--output", "fmt", default="text",
              type=click.Choice(["text", "json", "junit"]),
              help="text (file:line lines) | json | junit (XML for CI test reports)")
@click.option("--allow-host-access", is_flag=True,
              help="Accept hostPath, privileged, hostNetwork, hostPID and hostIPC.")
@ALLOW_REMOTE_BASES
@DECRYPTION_KEY_FILE
@_render_flags
def validate(paths: tuple[str, ...], fmt: str, allow_host_access: bool,
             allow_remote_bases: bool, decryption_key_file: str,
             **render_flags: object) -> None:
    """Validate manifests; one line per problem: file:line: Kind/name: field: message.

    Exit 0 when every manifest is valid, 1 on any problem, 2 when it cannot run.
    Pod spec fields this node cannot honour (priorityClassName, an nfs volume...) are
    warnings on stderr, not problems.
    SOPS-encrypted files are decrypted and validated with --decryption-key-file (or
    GITOPS_AGE_KEY); without a key they are listed as not read, not failed.

    \b
    Examples:
      gitops validate example-repo
      gitops validate -o junit k8s/ > validate.xml    # a PR check's test report
      gitops validate k8s/ --decryption-key-file ~/.config/sops/age/keys.txt
      gitops validate chart/ --values values-prod.yaml --release-name web --namespace web
    """
    from gitops.errors import ManifestError
    from gitops.manifests import policy
    from gitops.manifests.render import enclosing_repository
    options = _render_options(render_flags)
    results = []
    decryptions = []
    unhonoured: list[ManifestError] = []
    for p in paths:
        decryption = _decryption(decryption_key_file)
        objects, errors, apps = _check(Path(p), options, allow_host_access,
                                       allow_remote_bases, decryption)
        results.append((p, objects, errors, decryption.unread))
        decryptions.append(decryption)
        unhonoured += policy.warnings(objects)     # warned, never refused
        # The apps it declares from the same repo, checked as the agent would render them
        # (an app of apps: their apps too), their files named from the repo's root.
        repo_root, seen = enclosing_repository(Path(p)), set()
        while apps:
            app = apps.pop(0)
            if app.repo or app.name in seen:    # another repo: the agent fetches it
                continue
            seen.add(app.name)
            decryption = _decryption(decryption_key_file)
            objects, errors, more = _check(repo_root / app.path, app.render,
                                           allow_host_access, allow_remote_bases, decryption,
                                           repo_root, f"{app.path}/" if app.path else "")
            results.append((f"{p} (application {app.name})", objects, errors,
                            decryption.unread))
            decryptions.append(decryption)
            unhonoured += policy.warnings(objects)
            apps += more
    errors = [e for _, _, errs, _ in results for e in errs]
    count = sum(len(objs) for _, objs, _, _ in results)
    unread = [note for d in decryptions for note in d.unread]
    warnings = [w for d in decryptions for w in d.warnings] + unhonoured
    if fmt == "json":
        click.echo(json.dumps({"objects": count, "errors": [e.as_dict() for e in errors],
                               "warnings": [w.as_dict() for w in warnings],
                               "unread": [u.as_dict() for u in unread]}, indent=2))
    elif fmt == "junit":
        click.echo(output.render_junit(results))
    else:
        for e in errors:
            click.echo(str(e))
        for d in decryptions:
            _notes(d)
        for warning in unhonoured:
            click.echo(f"warning: {warning}", err=True)
        summary = f"{count} object(s), {len(errors)} problem(s)"
        if unhonoured:
            summary += f", {len(unhonoured)} warning(s) (fields this node cannot honour)"
        if unread:
            summary += (f", {len(unread)} not read (SOPS-encrypted; --decryption-key-file "
                        "decrypts them)")
        click.echo(summary, err=True)
    sys.exit(EXIT_PROBLEM if errors else EXIT_OK)


def _check(path: Path, options, allow_host_access: bool, allow_remote_bases: bool,
           decryption: Decryption, repo_root: Path | None = None, prefix: str = ""):
    """(objects, errors, Applications) of one manifest path, as `validate` reports them;
    `prefix` goes before every file name (an app's path in its repo)."""
    from gitops.errors import ManifestError
    from gitops.manifests import policy
    from gitops.manifests.loader import LoadResult
    from gitops.manifests.render import render_path
    from gitops.manifests.validate import validate as check
    from gitops.source.base import oversized
    from gitops.sync import application
    from gitops.sync import rules as sync_rules
    with output.working(f"rendering and validating {path}..."):
        problem = oversized(path) if path.exists() else f"no such directory: {path}"
        loaded = (render_path(path, allow_remote_bases=allow_remote_bases,
                              decryption=decryption, options=options, repo_root=repo_root)
                  if not problem else LoadResult(errors=[ManifestError(problem, str(path))]))
    declared, objects = application.split(loaded.objects)     # checked as Applications
    apps, app_errors = application.parse_all(declared)
    errors = [*loaded.errors, *app_errors, *check(objects, schema=sync_rules.schema_checked),
              *sync_rules.check(objects), *policy.check(objects, allow_host_access)]
    objects = loaded.objects
    if prefix:      # copies: an error may be a cached one
        errors = [copy.copy(e) for e in errors]
        for error in errors:
            error.file = prefix + error.file if error.file else error.file
        objects = [dataclasses.replace(o, file=prefix + o.file) for o in objects]
    return objects, errors, apps


@click.command()
@click.argument("source")
@click.option("--ref", default="")
@click.option("--path", "subpath", default="")
@click.option("-o", "--output", "fmt", default="text",
              type=click.Choice(["text", "json", "markdown"]))
@click.option("--create-namespace", is_flag=True,
              help="As the agent's flag: namespaces nothing declares would be created.")
@ALLOW_REMOTE_BASES
@DECRYPTION_KEY_FILE
@DATA_DIR
@_render_flags
def diff(source: str, ref: str, subpath: str, fmt: str, create_namespace: bool,
         allow_remote_bases: bool, decryption_key_file: str, data_dir: str,
         **render_flags: object) -> None:
    """Show what syncing SOURCE would change in the data dir's store (nothing is changed).

    Exit 0 when nothing would change, 1 when something would, 2 on an error (an invalid
    manifest, or a change the agent's admission would refuse, such as an immutable field).
    Against a data dir no agent has used, everything is a create.
    SOPS-encrypted files are decrypted with --decryption-key-file (or GITOPS_AGE_KEY); without
    a key they are listed as not read and what they hold is left out of the diff.

    \b
    Examples:
      gitops diff example-repo
      gitops diff . -o markdown > diff.md          # a PR comment
      gitops diff https://git.example.com/team/app.git --ref my-branch -o json
      gitops diff . --decryption-key-file key.txt     # SOPS-encrypted Secrets too (masked)
    """
    import tempfile

    from gitops.source import make_source
    from gitops.source.base import redact_url
    from gitops.sync.engine import render
    options = _render_options(render_flags)
    decryption = _decryption(decryption_key_file)
    try:
        with tempfile.TemporaryDirectory() as tmp, \
                output.working(f"reading {redact_url(source)}..."):
            revision = make_source(source, Path(tmp), ref, subpath).fetch()
            desired, errors = render(revision, allow_remote_bases=allow_remote_bases,
                                     decryption=decryption, options=options)
            if errors:
                for e in errors:
                    click.echo(str(e), err=True)
                sys.exit(EXIT_ERROR)
            plan, errors = _plan_against_data_dir(DataDir.at(data_dir), desired,
                                                  create_namespace, decryption)
            if errors:
                for e in errors:
                    click.echo(str(e), err=True)
                sys.exit(EXIT_ERROR)
    except GitopsError as exc:
        fail(str(exc))
    _notes(decryption)
    click.echo(output.render_plan(plan, fmt))
    sys.exit(EXIT_PROBLEM if plan.has_changes else EXIT_OK)


def _plan_against_data_dir(dd: DataDir, desired: list[Desired], create_namespace: bool,
                           decryption: Decryption | None = None
                           ) -> tuple[Plan, list[GitopsError]]:
    """The plan of syncing `desired` into the data dir's store, read only (an empty store
    when no agent has used the data dir), and what the agent's admission would refuse.
    Objects of files left encrypted are unknown: what the store holds from them is neither
    pruned nor compared."""
    from gitops.model.addresses import SERVICE_CIDR
    from gitops.store.registry import Registry
    from gitops.store.sqlite import SqliteStore
    from gitops.sync import admission
    from gitops.sync.engine import plan_against
    from gitops.sync.options import SyncOptions, options_of
    store = SqliteStore(dd.store if dd.store.exists() else ":memory:")
    try:
        inventory = store.inventory()
        if decryption is not None:
            inventory = {k: e for k, e in inventory.items() if not decryption.covers(e.file)}
        plan = plan_against(store, desired, inventory=inventory)
        registry = Registry(store, service_cidr=store.get_state("service_cidr")
                            or SERVICE_CIDR)          # reads only: admit writes nothing
        app = SyncOptions(create_namespace=create_namespace)
        verdict = admission.judge(registry, plan, {d.key: d for d in desired},
                                  lambda c: options_of(c.desired, app).create_namespace)
        return plan, list(verdict.errors)
    finally:
        store.close()


@click.command("age-keygen")
@click.option("-o", "--output", "out", default="", type=click.Path(dir_okay=False),
              help="Write the key to this new file (owner-only); default: stdout.")
@click.option("-y", "recipients_of", default="", type=click.Path(dir_okay=False),
              metavar="KEY_FILE", help="Print the public keys (recipients) of a key file.")
def age_keygen(out: str, recipients_of: str) -> None:
    """Make an age key for SOPS-encrypted manifests (as `age-keygen` does).

    The public key (age1...) is what `sops --encrypt --age` encrypts for; the key file is
    what the agent decrypts with (--decryption-key-file). It is never overwritten.

    \b
    Examples:
      gitops age-keygen -o key.txt            # prints "Public key: age1..." on stderr
      sops --encrypt --age age1... --encrypted-regex '^(data|stringData)$' \\
        secret.yaml > secret.enc.yaml
      gitops age-keygen -y key.txt            # the public key again
    """
    import os

    from gitops.manifests import age_keys
    if recipients_of:
        try:
            keys = age_keys.parse_keys(age_keys.read_key_file(recipients_of),
                                       f"key file {recipients_of}")
        except GitopsError as exc:
            fail(str(exc))
        click.echo("\n".join(keys.recipients))
        return
    identity, recipient = age_keys.generate()
    text = age_keys.key_file_text(identity, recipient)
    if not out:
        click.echo(text, nl=False)
        if not sys.stdout.isatty():
            click.echo(f"Public key: {recipient}", err=True)
        return
    try:
        fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except OSError as exc:
        fail(f"{out}: {exc.strerror or exc} (an existing key file is never overwritten)")
    with os.fdopen(fd, "w") as f:
        f.write(text)
    click.echo(f"Public key: {recipient}", err=True)
