"""The CLI as a user meets it: --help with an example on every command, one-line errors
(tracebacks only with --debug), stable exit codes, JUnit output. Shell completion and the
errors of a missing engine or git are in tests/integration/test_cli_front.py."""

from __future__ import annotations

from xml.etree import ElementTree as ET

import pytest
from click.testing import CliRunner

from gitops import cli

CM = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\ndata:\n  a: '1'\n"
BAD = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: bad\ndata:\n  a: 1\nbogus: true\n"


@pytest.fixture(autouse=True)
def _restore_logging():
    """main() configures structlog for the process: later tests must not inherit it."""
    yield
    import structlog
    structlog.reset_defaults()


def invoke(*args, **kw):
    return CliRunner().invoke(cli.main, list(args), **kw)


def commands():
    return sorted(cli.main.commands)


@pytest.mark.parametrize("name", commands())
def test_every_command_has_help_with_an_example(name):
    res = invoke(name, "--help")
    assert res.exit_code == 0, res.output
    assert "Example" in res.output and "gitops " in res.output.split("Example", 1)[1]


def test_user_errors_are_one_line_and_exit_2(tmp_path):
    res = invoke("get", "pods", "--data-dir", str(tmp_path / "none"))
    assert res.exit_code == 2
    assert res.output.startswith("error: no agent is running for data dir")
    assert len(res.output.strip().splitlines()) == 1 and "Traceback" not in res.output
    res = invoke("get", "widgets", "--data-dir", str(tmp_path))
    assert res.exit_code == 2 and 'resource type "widgets"' in res.output
    assert invoke("get").exit_code == 2                     # usage error: click's own


def test_unexpected_errors_are_one_line_unless_debug(tmp_path, monkeypatch):
    (tmp_path / "a.yaml").write_text(CM.format(name="a"))

    def boom(*_):
        raise RuntimeError("boom\nsecond line")
    monkeypatch.setattr(cli.output, "render_junit", boom)
    res = invoke("validate", "-o", "junit", str(tmp_path))
    assert res.exit_code == 2
    assert res.output.strip() == "error: boom (RuntimeError; --debug shows the traceback)"
    res = invoke("--debug", "validate", "-o", "junit", str(tmp_path))
    assert res.exit_code == 2 and "Traceback (most recent call last)" in res.output
    res = invoke("validate", "-o", "junit", str(tmp_path), env={"GITOPS_DEBUG": "1"})
    assert res.exit_code == 2 and "Traceback (most recent call last)" in res.output
    res = invoke("validate", "-o", "junit", str(tmp_path), env={"GITOPS_DEBUG": "0"})
    assert "Traceback" not in res.output


def test_validate_junit_has_a_testcase_per_object_and_failures_with_file_line(tmp_path):
    (tmp_path / "a.yaml").write_text(CM.format(name="a") + "---\n" + CM.format(name="b"))
    (tmp_path / "bad.yaml").write_text(BAD)
    (tmp_path / "broken.yaml").write_text("kind: [\n")
    res = invoke("validate", "-o", "junit", str(tmp_path))
    assert res.exit_code == 1
    top = ET.fromstring(res.stdout)
    cases = {c.get("name"): c for c in top.iter("testcase")}
    assert {"ConfigMap/a", "ConfigMap/b", "ConfigMap/bad", "broken.yaml"} <= set(cases)
    assert cases["ConfigMap/a"].find("failure") is None
    failures = [f.text for f in cases["ConfigMap/bad"].findall("failure")]
    assert any(t.startswith("bad.yaml:7: ConfigMap/bad: bogus") for t in failures), failures
    assert cases["broken.yaml"].find("failure") is not None
    assert int(top.get("failures")) == len(list(top.iter("failure"))) >= 3
    assert int(top.get("tests")) == len(cases)

    ok = tmp_path / "ok"
    ok.mkdir()
    (ok / "a.yaml").write_text(CM.format(name="a"))
    res = invoke("validate", "-o", "junit", str(ok))
    assert res.exit_code == 0 and ET.fromstring(res.stdout).get("failures") == "0"


def test_service_cidr_is_checked_and_passed_to_the_background_agent():
    from gitops.cli.agent_options import AgentOptions
    res = invoke("run", "--repo", ".", "--service-cidr", "10.300.0.0/20")
    assert res.exit_code == 2 and "--service-cidr" in res.output
    res = invoke("up", ".", "--service-cidr", "10.96.0.0/30")
    assert res.exit_code == 2 and "too small" in res.output
    flags = AgentOptions(service_cidr="10.96.0.0/20").to_argv()
    assert flags[flags.index("--service-cidr") + 1] == "10.96.0.0/20"


def test_an_agent_that_does_not_start_in_time_says_what_it_waits_for(tmp_path, monkeypatch):
    """`up` names the agent's last warnings (an engine that does not answer), not only
    where its log is, and stops the agent it gave up on."""
    import json

    from gitops.cli import process
    from gitops.paths import DataDir
    dd = DataDir.at(str(tmp_path))
    records = [{"event": "agent_starting", "level": "info"},
               *[{"event": "runtime_unavailable_waiting", "level": "warning",
                  "error": "docker engine at unix:///x.sock does not answer"}] * 4,
               "not json"]
    dd.log_file.write_text("\n".join(r if isinstance(r, str) else json.dumps(r)
                                     for r in records) + "\n")
    monkeypatch.setattr(process, "_exited", lambda pid: False)     # it keeps waiting
    stopped = []
    monkeypatch.setattr(process, "_stop_child", stopped.append)
    with pytest.raises(process.AgentStartFailed) as failed:
        process.await_agent(dd, 12345, timeout=0.2)
    assert stopped == [12345]           # not left behind in the background
    message = str(failed.value)
    assert "did not start within" in message
    assert message.count("runtime_unavailable_waiting: docker engine at unix:///x.sock "
                         "does not answer") == 1          # repeats said once
    assert str(dd.log_file) in message and "agent_starting" not in message
