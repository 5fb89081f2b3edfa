"""Offline checks of manifests, no agent needed: `validate`, and `diff` against the data
dir's store. Both decrypt SOPS-encrypted files with the key given; without one they say which
files they could not read and go on with the rest."""

from __future__ import annotations

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


@click.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True))
@click.option("-o", "--output", "fmt", default="text",
              type=click.Choice(["text", "json", "junit"]),
              help="text (file:line lines) | json | junit (XML for CI test reports)")
@click.option("--allow-host-access", is_flag=True,
              help="Accept hostPath, privileged, hostNetwork, hostPID and hostIPC.")
@ALLOW_REMOTE_BASES
@DECRYPTION_KEY_FILE
def validate(paths: tuple[str, ...], fmt: str, allow_host_access: bool,
             allow_remote_bases: bool, decryption_key_file: str) -> None:
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
    """
    from gitops.errors import ManifestError
    from gitops.manifests import policy
    from gitops.manifests.loader import LoadResult
    from gitops.manifests.render import render_path
    from gitops.manifests.validate import validate as check
    from gitops.source.base import oversized
    from gitops.sync import rules as sync_rules
    results = []
    decryptions = []
    unhonoured: list[ManifestError] = []
    for p in paths:
        decryption = _decryption(decryption_key_file)
        with output.working(f"rendering and validating {p}..."):
            problem = oversized(Path(p))
            loaded = (render_path(p, allow_remote_bases=allow_remote_bases,
                                  decryption=decryption) if not problem
                      else LoadResult(errors=[ManifestError(problem, p)]))
        errors = [*loaded.errors, *check(loaded.objects, schema=sync_rules.schema_checked),
                  *sync_rules.check(loaded.objects),
                  *policy.check(loaded.objects, allow_host_access)]
        results.append((p, loaded.objects, errors, decryption.unread))
        decryptions.append(decryption)
        unhonoured += policy.warnings(loaded.objects)     # warned, never refused
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


@click.command()
@click.argument("source")
@click.option("--ref", default="")
@click.option("--path", "subpath", default="")
@click.option("-o", "--output", "fmt", default="text",
              type=click.Choice(["text", "json", "markdown"]))
@click.option("--values", "helm_values", multiple=True, metavar="FILE",
              help="A Helm values file, relative to the chart (repeatable).")
@ALLOW_REMOTE_BASES
@DECRYPTION_KEY_FILE
@DATA_DIR
def diff(source: str, ref: str, subpath: str, fmt: str, helm_values: tuple[str, ...],
         allow_remote_bases: bool, decryption_key_file: str, data_dir: str) -> None:
    """Show what syncing SOURCE would change in the data dir's store (nothing is changed).

    Exit 0 when nothing would change, 1 when something would, 2 on an error (e.g. an
    invalid manifest). Against a data dir no agent has used, everything is a create.
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
    decryption = _decryption(decryption_key_file)
    try:
        with tempfile.TemporaryDirectory() as tmp, \
                output.working(f"reading {redact_url(source)}..."):
            revision = make_source(source, Path(tmp), ref, subpath).fetch()
            desired, errors = render(revision, helm_values=helm_values,
                                     allow_remote_bases=allow_remote_bases,
                                     decryption=decryption)
            if errors:
                for e in errors:
                    click.echo(str(e), err=True)
                sys.exit(EXIT_ERROR)
            plan = _plan_against_data_dir(DataDir.at(data_dir), desired, decryption)
    except GitopsError as exc:
        fail(str(exc))
    _notes(decryption)
    click.echo(output.render_plan(plan, fmt))
    sys.exit(EXIT_PROBLEM if plan.has_changes else EXIT_OK)


def _plan_against_data_dir(dd: DataDir, desired: list[Desired],
                           decryption: Decryption | None = None) -> Plan:
    """The plan of syncing `desired` into the data dir's store, read only (an empty store
    when no agent has used the data dir). Objects of files left encrypted are unknown: what
    the store holds from them is neither pruned nor compared."""
    from gitops.store.sqlite import SqliteStore
    from gitops.sync.engine import plan_against
    store = SqliteStore(dd.store if dd.store.exists() else ":memory:")
    try:
        inventory = store.inventory()
        if decryption is not None:
            inventory = {k: e for k, e in inventory.items() if not decryption.covers(e.file)}
        return plan_against(store, desired, inventory=inventory)
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
