"""The CLI as a user meets it, where that takes a process or a socket: shell completion
(click asks bash for its version) and errors of a missing engine and of git, read as their
cause. The rest is in tests/unit/test_cli_front.py."""

from __future__ import annotations

import click
import pytest
from click.testing import CliRunner

from gitops import cli
from gitops.cli import objects


@pytest.fixture(autouse=True)
def _restore_logging():
    """main() configures structlog for the process: later tests must not inherit it."""
    yield
    import structlog
    structlog.reset_defaults()


def invoke(*args, **kw):
    return CliRunner().invoke(cli.main, list(args), **kw)


def test_shell_completion_scripts_and_kind_completion():
    for shell in ("bash", "zsh", "fish"):
        res = invoke("completion", shell)
        assert res.exit_code == 0 and "_GITOPS_COMPLETE" in res.output
    ctx = click.Context(objects.get)
    assert {"deployments", "deploy"} <= set(objects._complete_kinds(ctx, None, "dep"))
    res = CliRunner().invoke(cli.main, [], env={"_GITOPS_COMPLETE": "bash_complete",
                                                "COMP_WORDS": "gitops get po",
                                                "COMP_CWORD": "2"}, prog_name="gitops")
    assert res.output.split() == ["plain,po", "plain,poddisruptionbudgets", "plain,pods",
                                  "plain,podtemplates"]


def test_engine_and_git_errors_read_as_their_cause(tmp_path, monkeypatch):
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/no-engine.sock")
    res = invoke("down", "--data-dir", str(tmp_path / "data"))
    assert res.exit_code == 2
    assert res.output.strip() == (f"error: no Docker engine answers at unix://{tmp_path}/"
                                  "no-engine.sock (scripts/start-docker.sh starts one; set "
                                  "DOCKER_HOST to use another); run `gitops down` again once "
                                  "it answers")
    res = invoke("diff", f"file://{tmp_path}/not-a-repo", "--data-dir", str(tmp_path / "d"))
    assert res.exit_code == 2
    lines = res.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: git: fatal: ")
    assert "does not appear to be a git repository" in lines[0]
